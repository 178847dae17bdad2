"""Model -> interaction map -> feature groups, on a bounded sample.

``fit_feature_groups`` is what ``coldstart align`` and the tests use on any
table: train the small smooth DNN on at most ``max_rows`` rows, attribute on
a sample of them with background baselines, threshold and merge.
``model_interactions`` is the same attribution step for an already trained
recall model (``coldstart interactions``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from configs.recmodel import InteractionSettings, ModelSettings, TrainSettings
from jobs.platform.errors import EmptyInputError
from recmodel.attribution import interaction_map
from recmodel.features import FeatureEncoder, FeatureSpec
from recmodel.groups import feature_groups, top_pairs
from recmodel.label_models import train_on_frame
from recmodel.model import RecallModel
from recmodel.train import TrainReport

log = logging.getLogger(__name__)


@dataclass
class FeatureGroupsResult:
    """The K x K map (field order = ``fields``), its groups and the threshold."""

    fields: list[str]
    matrix: np.ndarray
    groups: list[list[str]]
    gamma: float
    report: TrainReport | None = None
    top: list[tuple[str, str, float]] = field(default_factory=list)


def sample_rows(pdf: pd.DataFrame, max_rows: int, seed: int) -> pd.DataFrame:
    """At most ``max_rows`` rows of ``pdf``, drawn without replacement (seeded)."""
    if len(pdf) <= max_rows:
        return pdf.reset_index(drop=True)
    return pdf.sample(n=max_rows, random_state=seed).reset_index(drop=True)


def model_interactions(
    model: RecallModel,
    encoder: FeatureEncoder,
    pdf: pd.DataFrame,
    cfg: InteractionSettings,
) -> np.ndarray:
    """The field map of a trained model over ``cfg.rows`` rows of ``pdf``.

    Baselines come from a disjoint background sample of ``pdf`` when it has
    enough rows (else from the explained rows themselves).
    """
    if len(pdf) == 0:
        raise EmptyInputError("interaction map: no rows to attribute on")
    shuffled = pdf.sample(frac=1.0, random_state=cfg.seed).reset_index(drop=True)
    explain = shuffled.iloc[: cfg.rows]
    rest = shuffled.iloc[cfg.rows : cfg.rows + cfg.rows]
    background = encoder.transform(rest) if len(rest) >= cfg.baselines else None
    cat, num = encoder.transform(explain)
    return interaction_map(
        model,
        cat,
        num,
        background=background,
        n_baselines=cfg.baselines,
        baseline=cfg.baseline,
        method=cfg.method,
        seed=cfg.seed,
        chunk_rows=cfg.chunk_rows,
    )


def fit_feature_groups(
    pdf: pd.DataFrame,
    spec: FeatureSpec,
    label: str,
    *,
    gamma: float,
    seed: int,
    max_rows: int = 50_000,
    model_cfg: ModelSettings | None = None,
    train_cfg: TrainSettings | None = None,
    attribution: InteractionSettings | None = None,
) -> FeatureGroupsResult:
    """Train the smooth DNN on a bounded sample, attribute, group (eq. 10-12)."""
    sample = sample_rows(pdf, max_rows, seed)
    model, encoder, report = train_on_frame(
        sample,
        spec,
        label,
        seed=seed,
        model_cfg=model_cfg,
        train_cfg=train_cfg,
        what=f"feature-group model on {label!r}",
    )
    cfg = (attribution or InteractionSettings()).model_copy(update={"seed": seed, "gamma": gamma})
    matrix = model_interactions(model, encoder, sample, cfg)
    fields = list(spec.fields)
    groups = feature_groups(matrix, fields, gamma)
    top = top_pairs(matrix, fields, 5)
    log.info("feature groups gamma=%s: %s (top pairs %s)", gamma, groups, top)
    return FeatureGroupsResult(fields, matrix, groups, gamma, report, top)
