"""Serving-side vectors of a two-tower recall model.

Why: a retrieval service does not run the model on every (user, app) pair. It
loads one vector and one bias per app into an index, computes (or looks up) a
user vector, and ranks apps by ``u . v + b_item``. For the two-tower head that
is exactly the model's ranking (``RecallModel.towers``):

    logit(user, context, app) = u . v + b_user + b_item

with ``b_user`` constant for one user and context. This module turns pandas
frames into those vectors in batches; ``jobs/model/serving.py`` applies them to
the app catalogue and, in Spark, to every user of the training window.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pandas as pd
import torch

from jobs.platform import schema as S
from jobs.platform.errors import InputError
from recmodel.features import FeatureEncoder
from recmodel.model import RecallModel, model_from_state

VECTOR = "vector"
BIAS = "bias"
BATCH_ROWS = 8_192


def tower_fields(model: RecallModel) -> tuple[list[str], list[str]]:
    """(user fields, item fields) of a two-tower model, in ``model.fields`` order."""
    if model.cfg.architecture != "two_tower":
        raise ValueError(f"serving vectors need a two_tower model, not {model.cfg.architecture!r}")
    user = [model.fields[i] for i in model.user_idx.tolist()]
    item = [model.fields[i] for i in model.item_idx.tolist()]
    return user, item


def _vectors(
    model: RecallModel, encoder: FeatureEncoder, pdf: pd.DataFrame, side: str, what: str
) -> tuple[np.ndarray, np.ndarray]:
    """``[N, tower_dim]`` vectors and ``[N]`` biases of one tower, in batches.

    The other tower's fields are not read by this side's output, so they are
    passed as nulls (the OOV slot / the median) when ``pdf`` lacks them; the
    imputation counts of the trained encoder are left as training left them.
    """
    user, item = tower_fields(model)
    need = user if side == "user" else item
    missing = [c for c in need if c not in pdf.columns]
    if missing:
        raise InputError(f"{what}: column {missing[0]!r} missing (the {side} tower reads {need})")
    frame = pdf.reindex(columns=list(encoder.spec.fields))
    encoder = dataclasses.replace(encoder, nan_counts={}, oov_counts={})
    vecs, biases = [], []
    model.eval()
    with torch.no_grad():
        for start in range(0, len(frame), BATCH_ROWS):
            cat, num = encoder.transform(frame.iloc[start : start + BATCH_ROWS])
            vec, bias = model.tower(side, cat, num)
            vecs.append(vec.numpy())
            biases.append(bias.numpy())
    dim = model.cfg.tower_dim
    if not vecs:
        return np.zeros((0, dim), np.float32), np.zeros(0, np.float32)
    return np.concatenate(vecs).astype(np.float32), np.concatenate(biases).astype(np.float32)


def with_vectors(
    model: RecallModel,
    encoder: FeatureEncoder,
    pdf: pd.DataFrame,
    side: str,
    keep: list[str],
    what: str,
) -> pd.DataFrame:
    """``pdf[keep]`` plus ``vector`` (list of float32) and ``bias`` of the ``side`` tower."""
    vec, bias = _vectors(model, encoder, pdf, side, what)
    out = pdf[keep].reset_index(drop=True).copy()
    out[VECTOR] = list(vec)
    out[BIAS] = bias
    return out


def user_vector_fn(
    state: dict[str, Any], keep: list[str]
) -> Callable[[Iterator[pd.DataFrame]], Iterator[pd.DataFrame]]:
    """A ``mapInPandas`` function: user vectors of each batch (one torch thread per task).

    ``state`` is ``recmodel.model.model_state`` (plain tensors and dicts, so it
    pickles to the executors); the model is rebuilt once per task.
    """

    def fn(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        torch.set_num_threads(1)
        model, encoder = model_from_state(state)
        for pdf in batches:
            yield with_vectors(model, encoder, pdf, "user", keep, "user vectors")

    return fn


def rank_apps(users: pd.DataFrame, items: pd.DataFrame, k: int) -> np.ndarray:
    """Top-``k`` row indices of ``items`` per user by ``u . v + b_item`` (what an index returns)."""
    u = np.stack(users[VECTOR].to_numpy())
    v = np.stack(items[VECTOR].to_numpy())
    scores = u @ v.T + items[BIAS].to_numpy()[None, :]
    k = min(k, scores.shape[1])
    top = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    order = np.take_along_axis(scores, top, 1).argsort(1)[:, ::-1]
    return np.take_along_axis(top, order, 1)


USER_KEEP = [S.USER_ID, S.DS, S.EVENT_ID]
ITEM_KEEP = [S.APP_ID, S.IS_COLD_START]
