"""Feature specification and encoding: pandas rows -> index / float tensors.

The encoder is fitted once on a bounded sample and then frozen, so that the
same vocabulary serves training, the interaction map and the label models,
and so that it can be written next to the model as plain JSON. Index 0 of
every categorical field is the out-of-vocabulary slot: unseen values and
nulls at inference land there instead of failing. Numeric NaNs are imputed
with the training median and counted (``nan_counts``) so they never reach
the loss.
"""

from __future__ import annotations

import logging
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

    def __post_init__(self) -> None:
        object.__setattr__(self, "categorical", tuple(self.categorical))
        object.__setattr__(self, "numeric", tuple(self.numeric))
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

    def to_dict(self) -> dict[str, list[str]]:
        return {"categorical": list(self.categorical), "numeric": list(self.numeric)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FeatureSpec:
        return cls(tuple(data["categorical"]), tuple(data.get("numeric", ())))


def check_columns(pdf: pd.DataFrame, columns: tuple[str, ...] | list[str], what: str) -> None:
    """Raise ``InputError`` listing every required column that ``pdf`` lacks."""
    missing = [c for c in columns if c not in pdf.columns]
    if missing:
        raise InputError(
            f"{what}: missing column(s) {missing}; have {sorted(map(str, pdf.columns))}"
        )


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
        """Embedding-table sizes per categorical field (vocabulary + OOV slot)."""
        return [len(self.vocab[c]) + 1 for c in self.spec.categorical]

    def transform(self, pdf: pd.DataFrame) -> tuple[torch.Tensor, torch.Tensor]:
        """``(cat_idx LongTensor [N, Kc], num FloatTensor [N, Kn])``; counts OOVs and NaNs.

        Numerics come out standardised (``(x - mean) / std``) after median
        imputation; the model bucketizes them itself when configured to.
        """
        check_columns(pdf, self.spec.fields, "feature encoder transform")
        n = len(pdf)
        cat = np.zeros((n, len(self.spec.categorical)), dtype=np.int64)
        for k, col in enumerate(self.spec.categorical):
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
