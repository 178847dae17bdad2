"""Label models M_real / M_syn (paper eq. 13): P(y | x) for a row's own label.

Stage 2 weighs a synthetic row by ``M_real(y|x) / M_syn(y|x)``, where ``y``
is the row's own label: for a non-click that is ``1 - P(click | x)``, not
``P(click | x)``. Both models share the recall model's architecture so the
ratio compares like with like. A ``LabelModel`` pickles to plain tensors and
JSON-able dicts, so a pandas UDF can ship it to executors.

``CrossFitLabelModel`` is what stage 2 scores with: K models, model k fitted
without fold k, and a row is scored by the model of its own fold. A model
scoring the rows it was trained on is over-confident on exactly those rows
(it has partly memorised their labels), so ``log M_syn(y|x)`` of a synthetic
row would be biased upwards and its weight downwards - most for the rows
whose labels are least typical. Folds come from a hash of the row's content
(``jobs.stage2.reweight.label_fold``), so identical rows share a fold and a
copy of a training row is never scored by a model that saw it.
"""

from __future__ import annotations

import copy
import logging
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from configs.recmodel import ModelSettings, TrainSettings
from recmodel.data import encode_frame, label_array, random_split
from recmodel.features import FeatureEncoder, FeatureSpec
from recmodel.model import RecallModel, build_model, model_from_state, model_state
from recmodel.train import TrainReport, fit_in_memory

log = logging.getLogger(__name__)

PREDICT_BATCH = 65_536


def train_on_frame(
    pdf: pd.DataFrame,
    spec: FeatureSpec,
    label: str,
    *,
    seed: int,
    weight: str | None = None,
    model_cfg: ModelSettings | None = None,
    train_cfg: TrainSettings | None = None,
    what: str = "label model",
) -> tuple[RecallModel, FeatureEncoder, TrainReport]:
    """Fit encoder + model on an in-memory frame with a seeded validation split."""
    model_cfg = model_cfg or ModelSettings()
    train_cfg = (train_cfg or TrainSettings()).model_copy(update={"seed": seed})
    label_array(pdf, label, what)  # fail fast: empty, non-0/1 or one-class labels
    encoder = FeatureEncoder.fit(pdf, spec, buckets=model_cfg.buckets)
    val_mask = random_split(len(pdf), train_cfg.val_fraction, seed)
    train_rows, val_rows = pdf[~val_mask], pdf[val_mask]
    label_array(train_rows, label, f"{what} (training split)")
    train = encode_frame(encoder, train_rows, label, weight=weight, what=what)
    val = encode_frame(encoder, val_rows, label, weight=weight, what=what)
    model = build_model(encoder, model_cfg, seed=seed)
    report = fit_in_memory(model, train, val, train_cfg)
    if encoder.nan_counts:
        log.info("%s: imputed numeric NaNs %s", what, encoder.nan_counts)
    return model, encoder, report


class LabelModel:
    """A trained click model that scores ``P(y_i | x_i)`` for each row's own ``y_i``."""

    def __init__(
        self,
        model: RecallModel,
        encoder: FeatureEncoder,
        label: str,
        report: TrainReport | None = None,
    ) -> None:
        self.model = model
        self.encoder = encoder
        self.label = label
        self.report = report

    @classmethod
    def fit(
        cls,
        pdf: pd.DataFrame,
        spec: FeatureSpec,
        label: str,
        *,
        seed: int,
        weight: str | None = None,
        model_cfg: ModelSettings | None = None,
        train_cfg: TrainSettings | None = None,
    ) -> LabelModel:
        """Train on ``pdf`` (0/1 ``label``, optional per-row ``weight`` column)."""
        model, encoder, report = train_on_frame(
            pdf,
            spec,
            label,
            seed=seed,
            weight=weight,
            model_cfg=model_cfg,
            train_cfg=train_cfg,
            what=f"label model on {label!r}",
        )
        return cls(model, encoder, label, report)

    def click_logits(self, pdf: pd.DataFrame) -> np.ndarray:
        """Logit of ``P(y=1 | x)`` per row, computed in float64.

        float32 kernels pick their reduction order by batch shape, so a row's
        float32 logit moves by ~1e-7 with the rows it is batched with - and
        the batches are Arrow batches of whatever partition the row landed
        in. In float64 the same row scores the same (to ~1e-15) on a laptop
        and on a cluster, which is what lets weights agree within 1e-9.
        """
        cat, num = self.encoder.transform(pdf)
        scorer = self._float64_model()
        out = []
        with torch.no_grad():
            for start in range(0, len(pdf), PREDICT_BATCH):
                sl = slice(start, start + PREDICT_BATCH)
                out.append(scorer(cat[sl], num[sl].double()))
        return torch.cat(out).numpy() if out else np.zeros(0)

    def _float64_model(self) -> RecallModel:
        """A float64 copy of the trained model (made once per process)."""
        if getattr(self, "_scorer", None) is None:
            self._scorer = copy.deepcopy(self.model).double().eval()
        return self._scorer

    def log_prob_of_label(self, pdf: pd.DataFrame) -> np.ndarray:
        """``log P(y_i | x_i)`` for each row's own label (stable log-sigmoid)."""
        y = label_array(pdf, self.label, "label model scoring", both_classes=False)
        logits = torch.from_numpy(self.click_logits(pdf))
        sign = torch.from_numpy(2.0 * y.astype(np.float64) - 1.0)
        return F.logsigmoid(sign * logits).numpy()

    def prob_of_label(self, pdf: pd.DataFrame) -> np.ndarray:
        """``P(y_i | x_i)``: ``p`` for clicked rows, ``1 - p`` for the others."""
        return np.exp(self.log_prob_of_label(pdf))

    def __getstate__(self) -> dict[str, Any]:
        return {"state": model_state(self.model, self.encoder), "label": self.label}

    def __setstate__(self, data: dict[str, Any]) -> None:
        self.model, self.encoder = model_from_state(data["state"])
        self.label = data["label"]
        self.report = None


class CrossFitLabelModel:
    """K label models; ``models[k]`` never saw a row of fold ``k`` and scores only those.

    Example::

        m = CrossFitLabelModel.fit(pdf, pdf["fold"].to_numpy(), spec, "clicked", folds=3, seed=7)
        p = m.prob_of_label(rows, rows_fold)
    """

    def __init__(self, models: list[LabelModel]) -> None:
        self.models = models

    @classmethod
    def fit(
        cls,
        pdf: pd.DataFrame,
        fold: np.ndarray,
        spec: FeatureSpec,
        label: str,
        *,
        folds: int,
        seed: int,
        weight: str | None = None,
        model_cfg: ModelSettings | None = None,
        train_cfg: TrainSettings | None = None,
    ) -> CrossFitLabelModel:
        """Fit model k on the rows of ``pdf`` whose ``fold`` (0..folds-1) is not k."""
        fold = np.asarray(fold) % folds
        models = []
        for k in range(folds):
            rows = pdf[fold != k].reset_index(drop=True)
            models.append(
                LabelModel.fit(
                    rows,
                    spec,
                    label,
                    seed=seed + 1000 * k,
                    weight=weight,
                    model_cfg=model_cfg,
                    train_cfg=train_cfg,
                )
            )
        return cls(models)

    def log_prob_of_label(self, pdf: pd.DataFrame, fold: np.ndarray) -> np.ndarray:
        """``log P(y_i | x_i)`` of each row by the model that did not train on its fold."""
        fold = np.asarray(fold, dtype=np.int64) % len(self.models)
        out = np.zeros(len(pdf))
        for k, model in enumerate(self.models):
            mask = fold == k
            if mask.any():
                out[mask] = model.log_prob_of_label(pdf[mask].reset_index(drop=True))
        return out

    def prob_of_label(self, pdf: pd.DataFrame, fold: np.ndarray) -> np.ndarray:
        """``P(y_i | x_i)`` out of fold: ``p`` for clicked rows, ``1 - p`` for the others."""
        return np.exp(self.log_prob_of_label(pdf, fold))
