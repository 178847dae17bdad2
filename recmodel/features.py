"""Feature specification and encoding: pandas rows -> index / float tensors.

The encoder is fitted once on a bounded sample and then frozen, so that the
same vocabulary serves training, the interaction map and the label models,
and so that it can be written next to the model as plain JSON. Index 0 of
every categorical field is the out-of-vocabulary slot: unseen values and
nulls at inference land there instead of failing. Numeric NaNs are imputed
with the training median and counted (``nan_counts``) so they never reach
the loss.

*Hashed* categorical fields (identities such as ``app_id``) have no learned
vocabulary: a stable hash maps each value to one of ``hash_buckets`` slots.
Why: the vocabulary comes from a bounded sample of real rows, and the ids
that matter most - new apps, known only from synthetic rows or not at all -
are exactly the ones such a sample lacks; a hash gives them a slot of their
own (up to collisions, counted in ``collisions``) that synthetic rows train.
"""

from __future__ import annotations

import logging
import zlib
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import torch

from jobs.platform.errors import InputError

log = logging.getLogger(__name__)

OOV_INDEX = 0
DEFAULT_BUCKETS = 16


@dataclass(frozen=True)
class FeatureSpec:
    """Which columns the model reads, split by how they are embedded."""

    categorical: tuple[str, ...]
    numeric: tuple[str, ...] = ()
    # Categorical fields encoded by a stable hash into hash_buckets slots (no vocabulary).
    hashed: tuple[str, ...] = ()
    hash_buckets: int = 65_536

    def __post_init__(self) -> None:
        object.__setattr__(self, "categorical", tuple(self.categorical))
        object.__setattr__(self, "numeric", tuple(self.numeric))
        object.__setattr__(self, "hashed", tuple(self.hashed))
        stray = [c for c in self.hashed if c not in self.categorical]
        if stray:
            raise InputError(
                f"feature spec: hashed columns {stray} are not among the categorical columns"
            )
        if self.hash_buckets < 1:
            raise InputError(f"feature spec: hash_buckets {self.hash_buckets}; expected >= 1")
        both = set(self.categorical) & set(self.numeric)
        if both:
            raise InputError(
                f"feature spec: columns {sorted(both)} are both categorical and numeric"
            )
        if not self.fields:
            raise InputError("feature spec: no feature columns given")

    @property
    def fields(self) -> tuple[str, ...]:
        """Model field order: categorical fields first, then numeric ones."""
        return self.categorical + self.numeric

    def to_dict(self) -> dict[str, Any]:
        return {
            "categorical": list(self.categorical),
            "numeric": list(self.numeric),
            "hashed": list(self.hashed),
            "hash_buckets": self.hash_buckets,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FeatureSpec:
        return cls(
            tuple(data["categorical"]),
            tuple(data.get("numeric", ())),
            tuple(data.get("hashed", ())),
            int(data.get("hash_buckets", cls.hash_buckets)),
        )


def check_columns(pdf: pd.DataFrame, columns: tuple[str, ...] | list[str], what: str) -> None:
    """Raise ``InputError`` listing every required column that ``pdf`` lacks."""
    missing = [c for c in columns if c not in pdf.columns]
    if missing:
        raise InputError(
            f"{what}: missing column(s) {missing}; have {sorted(map(str, pdf.columns))}"
        )


def hash_slots(series: pd.Series, buckets: int) -> np.ndarray:
    """Slot 1..buckets of each value by CRC-32 of its string (0: null).

    Stable across processes and machines (unlike Python's ``hash``); the hash
    runs once per distinct value, not per row.
    """
    codes, uniques = pd.factorize(_as_str(series), use_na_sentinel=True)
    slots = np.fromiter(
        (1 + zlib.crc32(str(v).encode()) % buckets for v in uniques), np.int64, len(uniques)
    )
    return np.where(codes < 0, OOV_INDEX, slots[np.maximum(codes, 0)] if len(slots) else 0)


def _as_str(series: pd.Series) -> pd.Series:
    """Categories as strings; nulls stay null (they map to OOV)."""
    out = series.astype("object")
    mask = out.notna()
    out[mask] = out[mask].astype(str)
    return out


@dataclass
class FeatureEncoder:
    """Frozen vocabularies and numeric statistics for one ``FeatureSpec``."""

    spec: FeatureSpec
    vocab: dict[str, list[str]]
    medians: dict[str, float]
    means: dict[str, float]
    stds: dict[str, float]
    # Quantile bucket edges per numeric field (used by bucketized embeddings).
    edges: dict[str, list[float]]
    nan_counts: dict[str, int] = field(default_factory=dict)
    oov_counts: dict[str, int] = field(default_factory=dict)

    @classmethod
    def fit(
        cls, pdf: pd.DataFrame, spec: FeatureSpec, *, buckets: int = DEFAULT_BUCKETS
    ) -> FeatureEncoder:
        """Learn vocabularies (by frequency) and numeric stats from ``pdf``."""
        check_columns(pdf, spec.fields, "feature encoder fit")
        if len(pdf) == 0:
            raise InputError("feature encoder fit: no rows to learn vocabularies from")
        vocab = {}
        for col in spec.categorical:
            if col in spec.hashed:
                vocab[col] = []
                continue
            counts = _as_str(pdf[col]).dropna().value_counts(sort=False)
            # Sorted by (-count, value) so a refit on the same data is identical.
            vocab[col] = sorted(counts.index, key=lambda v: (-int(counts[v]), v))
        medians, means, stds, edges = {}, {}, {}, {}
        for col in spec.numeric:
            values = pd.to_numeric(pdf[col], errors="coerce").to_numpy(dtype=np.float64)
            finite = values[np.isfinite(values)]
            if finite.size == 0:
                raise InputError(f"feature encoder fit: numeric column {col!r} has no finite value")
            medians[col] = float(np.median(finite))
            means[col] = float(finite.mean())
            stds[col] = float(finite.std()) or 1.0
            qs = np.quantile(finite, np.linspace(0, 1, buckets + 1)[1:-1])
            edges[col] = [float(x) for x in np.unique(qs)]
        return cls(spec, vocab, medians, means, stds, edges)

    def cardinalities(self) -> list[int]:
        """Embedding-table sizes per categorical field (vocabulary or buckets + OOV slot)."""
        return [
            (self.spec.hash_buckets if c in self.spec.hashed else len(self.vocab[c])) + 1
            for c in self.spec.categorical
        ]

    def collisions(self, pdf: pd.DataFrame) -> dict[str, dict[str, int]]:
        """Per hashed field: distinct values in ``pdf``, distinct slots, values sharing one.

        What a trainer reports so that a bucket count too small for the
        catalogue shows (two apps in one slot share one identity vector).
        """
        out = {}
        for col in self.spec.hashed:
            values = _as_str(pdf[col]).dropna().unique()
            slots = hash_slots(pd.Series(values, dtype=object), self.spec.hash_buckets)
            counts = np.bincount(slots) if len(slots) else np.zeros(1, np.int64)
            out[col] = {
                "values": len(values),
                "slots": int((counts > 0).sum()),
                "values_sharing_a_slot": int(counts[counts > 1].sum()),
            }
        return out

    def transform(self, pdf: pd.DataFrame) -> tuple[torch.Tensor, torch.Tensor]:
        """``(cat_idx LongTensor [N, Kc], num FloatTensor [N, Kn])``; counts OOVs and NaNs.

        Numerics come out standardised (``(x - mean) / std``) after median
        imputation; the model bucketizes them itself when configured to.
        """
        check_columns(pdf, self.spec.fields, "feature encoder transform")
        n = len(pdf)
        cat = np.zeros((n, len(self.spec.categorical)), dtype=np.int64)
        for k, col in enumerate(self.spec.categorical):
            if col in self.spec.hashed:
                cat[:, k] = hash_slots(pdf[col], self.spec.hash_buckets)
                continue
            index = pd.Index(self.vocab[col])
            codes = index.get_indexer(_as_str(pdf[col]))
            cat[:, k] = codes + 1  # -1 (unseen / null) -> 0 = OOV
            self.oov_counts[col] = self.oov_counts.get(col, 0) + int((codes < 0).sum())
        num = np.zeros((n, len(self.spec.numeric)), dtype=np.float32)
        for k, col in enumerate(self.spec.numeric):
            values = pd.to_numeric(pdf[col], errors="coerce").to_numpy(dtype=np.float64)
            bad = ~np.isfinite(values)
            if bad.any():
                self.nan_counts[col] = self.nan_counts.get(col, 0) + int(bad.sum())
                values = np.where(bad, self.medians[col], values)
            num[:, k] = (values - self.means[col]) / self.stds[col]
        return torch.from_numpy(cat), torch.from_numpy(num)

    def standardized_edges(self) -> list[list[float]]:
        """Bucket edges on the standardised scale ``transform`` emits."""
        return [
            [(e - self.means[c]) / self.stds[c] for e in self.edges[c]] for c in self.spec.numeric
        ]

    def to_dict(self) -> dict[str, Any]:
        return {
            "spec": self.spec.to_dict(),
            "vocab": self.vocab,
            "medians": self.medians,
            "means": self.means,
            "stds": self.stds,
            "edges": self.edges,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FeatureEncoder:
        return cls(
            FeatureSpec.from_dict(data["spec"]),
            {k: list(v) for k, v in data["vocab"].items()},
            dict(data["medians"]),
            dict(data["means"]),
            dict(data["stds"]),
            {k: list(v) for k, v in data["edges"].items()},
        )
