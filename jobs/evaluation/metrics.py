"""Metrics of the evaluation: utility (AUC, logloss), similarity, privacy, tests.

Pure functions over numpy arrays and bounded pandas frames, so each one is
checked on tiny hand-made cases with known answers (tests/test_eval_metrics.py).

* ``auc`` is the exact Mann-Whitney statistic (ties count half), not the
  histogram approximation the streaming trainer uses: the evaluation's test
  splits are bounded and the table compares arms to the third decimal.
* ``quality`` is SDMetrics' single-table QualityReport (column shapes + column
  pair trends, the paper's "SDV similarity") on bounded samples of each side.
* ``privacy`` measures distance to the closest training record (Gower-style:
  mismatching categories count 1, numbers their range-scaled difference,
  averaged over fields) and the share of synthetic rows that are exact copies
  of a training row.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from jobs.platform.errors import InputError

EPS = 1e-7


def auc(y: np.ndarray, p: np.ndarray) -> float | None:
    """Area under the ROC curve; None when only one class is present."""
    from scipy.stats import rankdata

    y = np.asarray(y, dtype=np.float64)
    p = np.asarray(p, dtype=np.float64)
    if y.shape != p.shape:
        raise InputError(f"auc: labels {y.shape} and scores {p.shape} differ in shape")
    n_pos = float((y == 1).sum())
    n_neg = float(len(y) - n_pos)
    if n_pos == 0 or n_neg == 0:
        return None
    ranks = rankdata(p)  # average ranks: ties count half
    return float((ranks[y == 1].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def logloss(y: np.ndarray, p: np.ndarray) -> float | None:
    """Mean binary cross-entropy with probabilities clipped to [EPS, 1 - EPS]."""
    y = np.asarray(y, dtype=np.float64)
    if y.size == 0:
        return None
    q = np.clip(np.asarray(p, dtype=np.float64), EPS, 1 - EPS)
    return float(-(y * np.log(q) + (1 - y) * np.log(1 - q)).mean())


def ttest_pvalue(a: Sequence[float], b: Sequence[float]) -> float | None:
    """Two-sided two-sample t-test (Student, pooled variance) p-value, as in the paper.

    None when a side has fewer than two values; 1.0 when both sides are
    constant and equal (no evidence of a difference), 0.0 when constant and
    different.
    """
    from scipy.stats import ttest_ind

    x, z = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if x.size < 2 or z.size < 2:
        return None
    if np.ptp(x) == 0 and np.ptp(z) == 0:
        return 1.0 if x[0] == z[0] else 0.0
    return float(ttest_ind(x, z, equal_var=True).pvalue)


def finite_count(values: Sequence[float | None]) -> int:
    """How many of ``values`` are finite numbers (the repeats a mean rests on)."""
    return sum(1 for x in values if x is not None and math.isfinite(x))


def mean_std(values: Sequence[float | None]) -> tuple[float | None, float | None]:
    """Mean and sample std of the non-None values."""
    v = np.asarray([x for x in values if x is not None and math.isfinite(x)], dtype=np.float64)
    if v.size == 0:
        return None, None
    return float(v.mean()), float(v.std(ddof=1)) if v.size > 1 else 0.0


def bounded(pdf: pd.DataFrame, n: int, seed: int) -> pd.DataFrame:
    """At most ``n`` rows (seeded sample), index reset."""
    if len(pdf) <= n:
        return pdf.reset_index(drop=True)
    return pdf.sample(n=n, random_state=seed).reset_index(drop=True)


def _sdmetrics_frame(pdf: pd.DataFrame, categorical: Sequence[str], numeric: Sequence[str]):
    out = pd.DataFrame(index=pdf.index)
    for c in categorical:
        out[c] = pdf[c].astype("object").where(pdf[c].notna(), None).astype(str)
    for c in numeric:
        out[c] = pd.to_numeric(pdf[c], errors="coerce").astype(float)
    return out


@dataclass(frozen=True)
class Quality:
    """SDMetrics QualityReport: overall score and its two properties (0..1)."""

    score: float
    column_shapes: float
    column_pair_trends: float | None


def quality(
    real: pd.DataFrame,
    syn: pd.DataFrame,
    categorical: Sequence[str],
    numeric: Sequence[str] = (),
    *,
    max_rows: int = 2_000,
    seed: int = 0,
) -> Quality:
    """Column shapes + column pair trends of ``syn`` against ``real`` (shared columns)."""
    import warnings

    with warnings.catch_warnings():
        # 0.32 deprecates the single-table import path; its unified successor
        # takes multi-table metadata for the same numbers.
        warnings.simplefilter("ignore", FutureWarning)
        from sdmetrics.reports.single_table import QualityReport

    cols_c = [c for c in categorical if c in real.columns and c in syn.columns]
    cols_n = [c for c in numeric if c in real.columns and c in syn.columns]
    if not cols_c and not cols_n:
        raise InputError("quality: real and synthetic rows share no column")
    if len(real) == 0 or len(syn) == 0:
        raise InputError(f"quality: empty side (real {len(real)} rows, synthetic {len(syn)})")
    r = _sdmetrics_frame(bounded(real, max_rows, seed), cols_c, cols_n)
    s = _sdmetrics_frame(bounded(syn, max_rows, seed + 1), cols_c, cols_n)
    meta = {"columns": {c: {"sdtype": "categorical"} for c in cols_c}}
    meta["columns"].update({c: {"sdtype": "numerical"} for c in cols_n})
    report = QualityReport()
    report.generate(r, s, meta, verbose=False)
    props = report.get_properties().set_index("Property")["Score"].to_dict()
    pairs = props.get("Column Pair Trends")
    pairs = None if pairs is None or not math.isfinite(pairs) else float(pairs)
    return Quality(float(report.get_score()), float(props["Column Shapes"]), pairs)


@dataclass(frozen=True)
class Privacy:
    """Distance to the closest training record and the exact-copy rate."""

    dcr_mean: float
    dcr_median: float
    dcr_zero_share: float
    exact_copy_rate: float


def _row_keys(pdf: pd.DataFrame, columns: Sequence[str]) -> pd.Series:
    return pdf[list(columns)].astype(str).agg("\x1f".join, axis=1)


def _gower_matrix(
    pdf: pd.DataFrame, categorical: Sequence[str], numeric: Sequence[str], ref: pd.DataFrame
) -> np.ndarray:
    """One-hot (x 0.5, so a mismatch costs 1 under L1) + range-scaled numbers."""
    parts = []
    for c in categorical:
        cats = pd.Index(sorted(set(ref[c].astype(str)) | set(pdf[c].astype(str))))
        codes = cats.get_indexer(pdf[c].astype(str))
        onehot = np.zeros((len(pdf), len(cats)))
        onehot[np.arange(len(pdf)), codes] = 0.5
        parts.append(onehot)
    for c in numeric:
        lo, hi = float(ref[c].min()), float(ref[c].max())
        span = hi - lo if hi > lo else 1.0
        parts.append(
            ((pd.to_numeric(pdf[c], errors="coerce").fillna(lo) - lo) / span).to_numpy()[:, None]
        )
    return np.hstack(parts)


def privacy(
    train: pd.DataFrame,
    syn: pd.DataFrame,
    categorical: Sequence[str],
    numeric: Sequence[str] = (),
    *,
    max_rows: int = 2_000,
    seed: int = 0,
) -> Privacy:
    """DCR (in [0, 1], 0 = identical to some training row) and exact copies.

    The copy rate is exact against every training row (a hash set of row
    keys); the DCR uses a bounded sample of each side (nearest-neighbour
    search is quadratic in the worst case).
    """
    from sklearn.neighbors import NearestNeighbors

    cols_c = [c for c in categorical if c in syn.columns and c in train.columns]
    cols_n = [c for c in numeric if c in syn.columns and c in train.columns]
    cols = [*cols_c, *cols_n]
    if not cols or len(train) == 0 or len(syn) == 0:
        raise InputError("privacy: need rows on both sides and at least one shared column")
    keys = set(_row_keys(train, cols))
    copies = float(_row_keys(syn, cols).isin(keys).mean())
    t = bounded(train, max_rows * 5, seed)
    s = bounded(syn, max_rows, seed + 1)
    both = pd.concat([t[cols], s[cols]], ignore_index=True)
    x_t = _gower_matrix(t, cols_c, cols_n, both)
    x_s = _gower_matrix(s, cols_c, cols_n, both)
    nn = NearestNeighbors(n_neighbors=1, metric="manhattan").fit(x_t)
    dist = nn.kneighbors(x_s, return_distance=True)[0][:, 0] / len(cols)
    return Privacy(float(dist.mean()), float(np.median(dist)), float((dist < 1e-12).mean()), copies)


def tvd(real: pd.Series, syn: pd.Series, weights: np.ndarray | None = None) -> float:
    """Total variation distance of two categorical marginals (syn optionally weighted)."""
    p = real.astype(str).value_counts(normalize=True)
    w = np.ones(len(syn)) if weights is None else np.asarray(weights, dtype=np.float64)
    q = pd.Series(w, index=syn.astype(str).to_numpy()).groupby(level=0).sum()
    q = q / q.sum() if q.sum() > 0 else q
    keys = p.index.union(q.index)
    return float(0.5 * (p.reindex(keys, fill_value=0) - q.reindex(keys, fill_value=0)).abs().sum())
