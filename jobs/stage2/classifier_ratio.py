"""Discriminative density ratio (``--method classifier|hybrid``), beyond the paper.

The paper's product of per-group ratios assumes the groups are independent;
when fields outside a group depend on each other the product over-corrects.
A classifier that tells real rows from synthetic ones estimates the joint
ratio directly: ``w(x, y) = P(real | x, y) / P(syn | x, y) * n_syn / n_real``.

* **Bounded training sample** per side, on the driver (gradient-boosted trees,
  scikit-learn's ``HistGradientBoostingClassifier``); scoring of every row
  runs in a pandas UDF (``spark_udfs.scoring.fold_log_ratio``).
* **Out-of-fold**: each synthetic row has a fold from a hash of its key; it is
  scored by the model trained without that fold, so rows the classifier saw
  are not scored by a model that memorised them.
* **Calibrated**: Platt scaling of the out-of-fold logits (one slope, one
  intercept), so the probabilities - and hence the ratio - are not over-sharp.
* **High-cardinality ids**: categorical columns keep only their most frequent
  ``max_categories - 1`` values; the rest share one code, so an id column
  cannot single rows out.
* **Hybrid**: fit on synthetic rows weighted by the SampleLLM weights; the
  classifier then learns only the residual ratio left after the group ratios.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import pandas as pd
    from pyspark.sql import Column


@dataclass
class ClassifierRatio:
    """Fold models + calibration; picklable, scored by ``log_ratio`` on executors."""

    categorical: list[str]
    numeric: list[str]
    vocab: dict[str, dict[str, int]]
    clip: float
    models: list = field(default_factory=list)
    slope: float = 1.0
    intercept: float = 0.0
    prior_log: float = 0.0

    def encode(self, pdf: pd.DataFrame) -> np.ndarray:
        """Categoricals as codes (rare or unseen: one shared code; null: NaN), numerics."""
        cols = []
        for c in self.categorical:
            codes = self.vocab[c]
            other = float(len(codes))
            values = pdf[c].astype("object")
            mapped = values.map(
                lambda v, m=codes, o=other: np.nan if v is None else m.get(str(v), o)
            )
            cols.append(mapped.to_numpy(dtype=float))
        for c in self.numeric:
            cols.append(pdf[c].astype(float).to_numpy())
        return np.column_stack(cols) if cols else np.zeros((len(pdf), 0))

    def raw_logit(self, x: np.ndarray, fold: np.ndarray) -> np.ndarray:
        out = np.zeros(len(x))
        for k, model in enumerate(self.models):
            mask = fold == k
            if mask.any():
                out[mask] = model.decision_function(x[mask])
        return out

    def log_ratio(self, pdf: pd.DataFrame, fold: np.ndarray) -> np.ndarray:
        """Calibrated log p_real(x)/p_syn(x) for each row, by its out-of-fold model."""
        z = self.slope * self.raw_logit(self.encode(pdf), np.asarray(fold) % len(self.models))
        z = z + self.intercept
        lo, hi = np.log(self.clip / (1 - self.clip)), np.log((1 - self.clip) / self.clip)
        return np.clip(z, lo, hi) + self.prior_log


def _vocab(frames: list[pd.DataFrame], columns: list[str], max_categories: int) -> dict:
    import pandas as pd

    vocab = {}
    for c in columns:
        counts = pd.concat([f[c].astype(str) for f in frames]).value_counts()
        top = counts.index[: max_categories - 1]
        vocab[c] = {v: i for i, v in enumerate(sorted(top))}
    return vocab


def fit_classifier_ratio(
    real: pd.DataFrame,
    syn: pd.DataFrame,
    syn_fold: np.ndarray,
    categorical: list[str],
    numeric: list[str],
    *,
    folds: int,
    seed: int,
    max_iter: int = 150,
    max_categories: int = 50,
    clip: float = 0.01,
    syn_weight: np.ndarray | None = None,
    real_weight: np.ndarray | None = None,
) -> ClassifierRatio:
    """Train ``folds`` real-vs-synthetic models out-of-fold and calibrate them (Platt).

    ``real_weight`` (the sampled logs' ``sample_weight``) undoes the
    down-sampling of the real side: without it the classifier learns the
    sample's click share (clicks ~4x over-represented), not the day's, and
    up-weights synthetic clicks by that bias. ``syn_weight``: the hybrid's
    SampleLLM weights. Both are rescaled to mean 1 per side.
    """
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.linear_model import LogisticRegression

    model = ClassifierRatio(
        categorical, numeric, _vocab([real, syn], categorical, max_categories), clip
    )
    x = np.vstack([model.encode(real), model.encode(syn)])
    y = np.concatenate([np.ones(len(real)), np.zeros(len(syn))])
    w = np.concatenate([_unit_mean(real_weight, len(real)), _unit_mean(syn_weight, len(syn))])
    rng = np.random.default_rng(seed)
    fold = np.concatenate([rng.integers(0, folds, len(real)), np.asarray(syn_fold) % folds])
    cat_mask = np.array([True] * len(categorical) + [False] * len(numeric))
    for k in range(folds):
        train = fold != k
        clf = HistGradientBoostingClassifier(
            max_iter=max_iter,
            learning_rate=0.1,
            max_leaf_nodes=31,
            l2_regularization=1.0,
            categorical_features=cat_mask if cat_mask.any() else None,
            early_stopping=True,
            validation_fraction=0.15,
            n_iter_no_change=10,
            random_state=seed + k,
        )
        clf.fit(x[train], y[train], sample_weight=w[train])
        model.models.append(clf)
    oof = model.raw_logit(x, fold).reshape(-1, 1)
    platt = LogisticRegression(C=1e4).fit(oof, y, sample_weight=w)
    model.slope = float(platt.coef_[0, 0])
    model.intercept = float(platt.intercept_[0])
    model.prior_log = float(np.log(w[y == 0].sum() / w[y == 1].sum()))
    return model


def _unit_mean(weight: np.ndarray | None, n: int) -> np.ndarray:
    if weight is None:
        return np.ones(n)
    weight = np.asarray(weight, dtype=float)
    return weight * n / weight.sum()


def fold_column(seed: int, key_cols: list[str], folds: int) -> Column:
    """A row's fold: a hash of (seed, key columns), independent of partitioning."""
    from pyspark.sql import functions as F

    h = F.xxhash64(F.lit(seed), F.lit("stage2.fold"), *[F.col(c) for c in key_cols])
    return F.pmod(h, F.lit(folds)).cast("int")
