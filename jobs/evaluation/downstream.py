"""The downstream CTR model of every arm: the recmodel DNN, trained per seed.

One encoder is fitted on the real training rows of a data set and shared by
every arm, so all arms are scored on identical inputs; synthetic values the
real data never had (and fields a generator does not write) land in the
out-of-vocabulary slot. LLM rows carry the context of a real row of their
exemplar users with the same label (``synth.with_context``), as daily rows do.
Validation (early stopping) is always on real rows; the test split is real.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from configs.evaluation import EvaluateSettings
from configs.recmodel import ModelSettings, TrainSettings
from jobs.evaluation import metrics
from jobs.evaluation.data import COLD, LABEL, EvalData
from recmodel.data import encode_frame
from recmodel.features import FeatureEncoder, FeatureSpec
from recmodel.model import build_model
from recmodel.train import fit_in_memory

WEIGHT = "__w"


@dataclass(frozen=True)
class Scores:
    """Test AUC / logloss on all real test rows and on cold-start items' rows."""

    auc: float | None
    logloss: float | None
    cold_auc: float | None
    cold_logloss: float | None


def fit_encoder(data: EvalData) -> FeatureEncoder:
    return FeatureEncoder.fit(data.train, FeatureSpec(data.categorical, data.numeric))


def training_frame(
    data: EvalData, real: pd.DataFrame | None, syn: pd.DataFrame | None, weights: np.ndarray | None
) -> pd.DataFrame:
    """Real rows (weight 1) + synthetic rows (their stage-2 weight, else 1); missing fields null."""
    parts = []
    if real is not None:
        parts.append(real[[*data.features, LABEL]].assign(**{WEIGHT: 1.0}))
    if syn is not None:
        s = syn.reindex(columns=[*data.features, LABEL]).copy()
        s[WEIGHT] = 1.0 if weights is None else np.asarray(weights, dtype=np.float64)
        parts.append(s)
    out = pd.concat(parts, ignore_index=True)
    for c in data.categorical:
        out[c] = out[c].astype("object")
    return out


def _predict(model: torch.nn.Module, encoder: FeatureEncoder, pdf: pd.DataFrame) -> np.ndarray:
    cat, num = encoder.transform(pdf)
    with torch.no_grad():
        return torch.sigmoid(model(cat, num)).double().numpy()


def train_and_score(
    data: EvalData,
    encoder: FeatureEncoder,
    frame: pd.DataFrame,
    cfg: EvaluateSettings,
    seed: int,
) -> Scores:
    """Train the DNN on ``frame`` (weighted BCE) with ``seed``; score the real test split."""
    tcfg = TrainSettings(
        epochs=cfg.epochs, batch_size=cfg.batch_size, seed=seed, threads=cfg.threads, patience=1
    )
    model = build_model(encoder, ModelSettings(), seed=seed)
    train_b = encode_frame(encoder, frame, LABEL, weight=WEIGHT, what="evaluation training rows")
    val_b = encode_frame(encoder, data.val, LABEL, what="evaluation validation rows")
    fit_in_memory(model, train_b, val_b, tcfg)
    test = data.test
    p = _predict(model, encoder, test)
    y = test[LABEL].to_numpy(dtype=np.float64)
    cold = test[COLD].to_numpy(dtype=bool)
    return Scores(
        metrics.auc(y, p),
        metrics.logloss(y, p),
        metrics.auc(y[cold], p[cold]) if cold.any() else None,
        metrics.logloss(y[cold], p[cold]) if cold.any() else None,
    )
