"""Ranking metrics of the cold-start protocol, vectorised over a users x items score matrix.

Recall@k = hits in the top k / relevant items of the user; NDCG@k with binary
gains; both averaged over the users with at least one relevant item (a user
without test clicks has nothing to recall and is counted, not scored).
Coverage@k: share of the cold items that appear in at least one user's top k
over all items; Gini@k: Gini coefficient of the cold items' exposure counts in
those lists (0 = even exposure, 1 = one item takes all).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class RankScores:
    recall: float | None
    ndcg: float | None
    users: int  # users with >= 1 relevant item (the denominator)
    users_without_clicks: int


def top_k(scores: np.ndarray, k: int) -> np.ndarray:
    """(n_users, k) column indices by descending score."""
    k = min(k, scores.shape[1])
    part = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    order = np.argsort(-np.take_along_axis(scores, part, 1), axis=1, kind="stable")
    return np.take_along_axis(part, order, 1)


def rank_scores(scores: np.ndarray, relevant: np.ndarray, k: int) -> RankScores:
    """Recall@k / NDCG@k of ``scores`` against the boolean matrix ``relevant``."""
    n_rel = relevant.sum(1)
    has = n_rel > 0
    if not has.any():
        return RankScores(None, None, 0, len(has))
    s, r, n = scores[has], relevant[has], n_rel[has]
    top = top_k(s, k)
    hits = np.take_along_axis(r, top, 1).astype(float)
    disc = 1.0 / np.log2(np.arange(2, top.shape[1] + 2))
    dcg = (hits * disc).sum(1)
    ideal = np.cumsum(disc)[np.minimum(n, top.shape[1]) - 1]
    return RankScores(
        float((hits.sum(1) / n).mean()), float((dcg / ideal).mean()), int(has.sum()),
        int((~has).sum()),
    )  # fmt: skip


def exposure(scores: np.ndarray, cold_cols: np.ndarray, k: int) -> tuple[float, float]:
    """(coverage@k, gini@k) of the cold columns in the users' top-k lists over all items."""
    top = top_k(scores, k)
    counts = np.bincount(top.reshape(-1), minlength=scores.shape[1])[cold_cols].astype(float)
    coverage = float((counts > 0).mean()) if len(counts) else 0.0
    return coverage, gini(counts)


def gini(x: np.ndarray) -> float:
    """Gini coefficient of non-negative counts (0 when all are zero)."""
    if len(x) == 0 or x.sum() == 0:
        return 0.0
    s = np.sort(x)
    n = len(s)
    return float((2 * np.arange(1, n + 1) - n - 1).dot(s) / (n * s.sum()))


def auc(labels: np.ndarray, scores: np.ndarray) -> float | None:
    """ROC AUC; None when only one class is present."""
    from sklearn.metrics import roc_auc_score

    if len(np.unique(labels)) < 2:
        return None
    return float(roc_auc_score(labels, scores))
