"""Rows -> tensors: label checks, deterministic splits, streaming Delta batches.

The weekly trainer must not load a week of impressions into memory, so a
Delta table is read through ``recmodel.reader`` (the snapshot's files at a
pinned version, scanned by pyarrow; never delta-rs's own scan, which aborts
the interpreter at exit) filtered to the window's ``ds`` values and iterated
batch by batch; a small shuffle buffer of a few batches de-correlates
consecutive minibatches.
Train / validation / test membership is a hash of the row key (ds,
event_id), so a row lands in the same split on every pass and every re-run.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from jobs.platform import schema as S
from jobs.platform.errors import EmptyInputError, InputError
from recmodel import reader
from recmodel.features import FeatureEncoder, check_columns
from recmodel.train import Batch

log = logging.getLogger(__name__)
# Set by the mixed dataset on every row: True for rows of the synthetic table.
SYNTHETIC = "_synthetic"


def check_labels(values: np.ndarray, label: str, what: str, *, both_classes: bool = True) -> None:
    """Labels must be 0/1 (no nulls); training also needs both classes present."""
    if values.size == 0:
        raise EmptyInputError(f"{what}: no rows with label {label!r}")
    if not np.isin(values, (0, 1)).all():
        bad = sorted({str(v) for v in values[~np.isin(values, (0, 1))]})[:5]
        raise InputError(f"{what}: label column {label!r} must be 0/1, found {bad}")
    if both_classes and np.unique(values).size < 2:
        raise InputError(
            f"{what}: label column {label!r} has only class {int(values[0])} in {values.size} "
            "rows; a click model needs both clicks and non-clicks"
        )


def label_array(
    pdf: pd.DataFrame, label: str, what: str, *, both_classes: bool = True
) -> np.ndarray:
    """The 0/1 label column as float32, validated."""
    check_columns(pdf, [label], what)
    raw = pd.to_numeric(pdf[label], errors="coerce").to_numpy(dtype=np.float64)
    if np.isnan(raw).any():
        raise InputError(f"{what}: label column {label!r} has {int(np.isnan(raw).sum())} nulls")
    check_labels(raw, label, what, both_classes=both_classes)
    return raw.astype(np.float32)


def weight_array(pdf: pd.DataFrame, weight: str | None, what: str) -> np.ndarray:
    """Per-row loss weights (1.0 when ``weight`` is None); must be finite and >= 0."""
    if weight is None:
        return np.ones(len(pdf), dtype=np.float32)
    check_columns(pdf, [weight], what)
    w = pd.to_numeric(pdf[weight], errors="coerce").to_numpy(dtype=np.float64)
    bad = ~np.isfinite(w) | (w < 0)
    if bad.any():
        raise InputError(
            f"{what}: weight column {weight!r} has {int(bad.sum())} non-finite/negative values"
        )
    return w.astype(np.float32)


def encode_frame(
    encoder: FeatureEncoder,
    pdf: pd.DataFrame,
    label: str,
    *,
    weight: str | None = None,
    cold_apps: frozenset[str] | None = None,
    what: str = "training rows",
) -> Batch:
    """One ``Batch`` from a pandas frame (labels, weights, cold-start flags)."""
    cat, num = encoder.transform(pdf)
    y = torch.from_numpy(label_array(pdf, label, what, both_classes=False))
    w = torch.from_numpy(weight_array(pdf, weight, what))
    cold = None
    if cold_apps is not None and S.APP_ID in pdf.columns:
        cold = torch.from_numpy(pdf[S.APP_ID].isin(cold_apps).to_numpy())
    syn = None
    if SYNTHETIC in pdf.columns:
        syn = torch.from_numpy(pdf[SYNTHETIC].fillna(False).to_numpy(bool))
    return Batch(cat, num, y, w, cold, syn)


def random_split(n: int, fraction: float, seed: int) -> np.ndarray:
    """Boolean mask selecting ~``fraction`` of ``n`` rows (at least one, not all)."""
    rng = np.random.default_rng(seed)
    mask = rng.random(n) < fraction
    if n >= 2 and not mask.any():
        mask[rng.integers(n)] = True
    if n >= 2 and mask.all():
        mask[rng.integers(n)] = False
    return mask


def key_fraction(ds: np.ndarray, event_id: np.ndarray, salt: int) -> np.ndarray:
    """A uniform [0, 1) number per row key (splitmix64 of ds, event_id, salt)."""
    day = pd.to_datetime(pd.Series(ds)).to_numpy().astype("datetime64[D]").astype(np.uint64)
    z = (event_id.astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15)) ^ (
        (day + np.uint64(salt)) * np.uint64(0xBF58476D1CE4E5B9)
    )
    with np.errstate(over="ignore"):
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z = z ^ (z >> np.uint64(31))
    return (z >> np.uint64(11)).astype(np.float64) / float(1 << 53)


@dataclass(frozen=True)
class DeltaSource:
    """A Delta table read for training: which days, which version, which column weights rows."""

    path: str
    days: tuple[str, ...]
    weight: str | None = None
    # Rows of this source may be held out for validation / test (real logs only).
    holdout: bool = True
    # The Delta table version read (None: the latest at each read; pin it to repeat a run).
    version: int | None = None


def delta_days(path: str, version: int | None = None) -> list[str]:
    """Sorted ``ds`` values in the table's snapshot (from the log, no scan)."""
    return reader.snapshot(path, version).days()


def stream_frames(
    source: DeltaSource,
    columns: list[str],
    batch_rows: int,
    shard: tuple[int, int] = (0, 1),
    snap: reader.Snapshot | None = None,
) -> Iterator[pd.DataFrame]:
    """Arrow batches of ``source`` (only its days, only ``columns``) as pandas frames.

    Columns the table lacks (e.g. context fields in the synthetic table) come
    back as nulls, which the encoder maps to the OOV slot. ``shard=(i, n)``
    reads every n-th file (one DataLoader worker's share); ``snap``, the
    source's snapshot resolved beforehand, keeps delta-rs out of the call.
    """
    if snap is None:
        snap = reader.snapshot(source.path, source.version)
    batches = reader.scan(
        snap,
        days=list(source.days),
        columns=columns,
        batch_rows=batch_rows,
        fill_missing=True,
        shard=shard,
    )
    for rb in batches:
        yield rb.to_pandas()


def shuffled(frames: Iterator[pd.DataFrame], buffer_rows: int, seed: int) -> Iterator[pd.DataFrame]:
    """Concatenate frames up to ``buffer_rows`` and yield each buffer shuffled."""
    rng = np.random.default_rng(seed)
    buf: list[pd.DataFrame] = []
    size = 0
    for frame in frames:
        buf.append(frame)
        size += len(frame)
        if size >= buffer_rows:
            block = pd.concat(buf, ignore_index=True)
            yield block.iloc[rng.permutation(len(block))]
            buf, size = [], 0
    if buf:
        block = pd.concat(buf, ignore_index=True)
        yield block.iloc[rng.permutation(len(block))]


def minibatch_stream(
    frames: Iterator[pd.DataFrame],
    to_batch: Callable[[pd.DataFrame], Batch],
    batch_size: int,
) -> Iterator[Batch]:
    """Cut encoded frames into minibatches of ``batch_size`` (last one may be short)."""
    for frame in frames:
        encoded = to_batch(frame)
        for start in range(0, len(encoded), batch_size):
            yield encoded.slice(start, start + batch_size)
