"""Config of stage 2 (importance weights) and of ``coldstart align``.

Kept in its own module so ``configs/settings.py`` only gains two field lines.
It does not import ``configs.settings`` (that module imports this one).
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from configs.recmodel import GAMMA

Method = Literal["samplellm", "classifier", "hybrid"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ClassifierSettings(_Strict):
    """The real-vs-synthetic classifier of ``--method classifier|hybrid``."""

    # Rows per side the classifier is trained on (the scoring covers every row).
    max_rows: int = Field(default=50_000, ge=100)
    # Out-of-fold: a row is scored by the fold model that never saw its fold.
    folds: int = Field(default=3, ge=2, le=10)
    max_iter: int = Field(default=150, ge=10)
    # Categories beyond the most frequent ``max_categories`` share one bucket:
    # ids and other high-cardinality columns cannot memorise rows this way.
    max_categories: int = Field(default=50, ge=2, le=250)
    # Probabilities are clipped to [clip, 1 - clip] before the log ratio.
    clip: float = Field(default=0.01, gt=0, lt=0.5)


class WeightsSettings(_Strict):
    """Stage 2 (SampleLLM section 2.5.3): frequencies, weights, truncation, outputs."""

    # Estimator of the daily job. "classifier" (the out-of-fold real-vs-synthetic
    # classifier) by measurement: benchmarks/results/alignment.md - it undid
    # >= 75% of every planted damage on the numeric, categorical and simulator
    # cases where "samplellm" (the paper's per-group ratios + label term)
    # cannot undo a broken dependent pair outside its groups.
    method: Method = "classifier"
    # Additive smoothing per cell: P(z) = (n(z) + alpha) / (N + alpha * K).
    smoothing_alpha: float = Field(default=1.0, gt=0)
    # Quantile bins fitted on real data for numeric fields (same bins both sides).
    numeric_bins: int = Field(default=10, ge=2, le=100)
    # Frequency tables with at most this many keys are broadcast, else shuffled.
    join_strategy: Literal["auto", "broadcast", "shuffle"] = "auto"
    broadcast_max_keys: int = Field(default=2_000_000, ge=1)
    # Label term log M_real(y|x) - log M_syn(y|x); models trained on bounded samples.
    label_term: bool = True
    label_model_max_rows: int = Field(default=50_000, ge=100)
    # Cross-fitting: K label models per side, each scoring only the fold it never
    # saw (folds by a hash of the row's values; see recmodel.label_models).
    label_model_folds: int = Field(default=3, ge=2, le=10)
    # Truncated IS: w <- min(w, c * mean(w)), renormalised. Default "min_ess" by
    # measurement (benchmarks/results/alignment.md): the loosest cap on a geometric
    # grid from sqrt(N) (Ionides 2008) down to 1.25 that keeps the ESS at least
    # min_ess of the rows (one Spark aggregation). Every fixed cap missed a case:
    # sqrt(N) left ESS at 7-18% on three of four cases, and c = 3 (the previous
    # default, docs/alignment_defaults.md) made MovieLens's planted label damage
    # worse (-0.37 undone) where sqrt(N) undid 0.67 at ESS 23%. min_ess meets
    # ">= 50% of every damage undone at ESS >= 20%" on all four cases.
    # A number, "sqrt_n" and null (no truncation) remain; the report records rule and c.
    truncate_c: Annotated[float, Field(gt=1)] | Literal["sqrt_n", "min_ess"] | None = "min_ess"
    min_ess: float = Field(default=0.2, gt=0, lt=1)
    # Merge fields whose Cramer's V on real data exceeds the threshold into one
    # group (beyond the paper); groups never exceed ``max_group_fields`` by it.
    dependence_grouping: bool = False
    dependence_threshold: float = Field(default=0.3, gt=0, le=1)
    dependence_max_rows: int = Field(default=100_000, ge=100)
    max_group_fields: int = Field(default=3, ge=2)
    classifier: ClassifierSettings = ClassifierSettings()
    # Importance-resampled table of N rows (null: not written).
    resample_rows: int | None = Field(default=None, ge=1)
    resampled_table: str = "gold.resampled_synthetic"
    # Copies of real rows (jobs/stage2/copies.py): drop synthetic rows whose
    # exact-match / DCR<=1 rate to real train rows exceeds that of real rows
    # held out (by hash) from the same day - the privacy-evaluation baseline.
    copy_check: bool = True
    copy_holdout_fraction: float = Field(default=0.2, gt=0, lt=0.5)
    # Alignment report: SDMetrics runs on samples of at most this many rows.
    report_max_rows: int = Field(default=2_000, ge=100)
    seed: int = 7


class AlignSettings(_Strict):
    """``coldstart align`` on any real/synthetic pair (own small model + label models)."""

    # Same default and reason as WeightsSettings.method.
    method: Method = "classifier"
    # Hessian grouping threshold (pairs above gamma * max interaction merge);
    # the same default as the interactions job (configs.recmodel.GAMMA says why).
    gamma: float = Field(default=GAMMA, gt=0, le=1)
    model_max_rows: int = Field(default=50_000, ge=100)
    # Integer columns with at most this many distinct values count as categorical.
    categorical_max_distinct: int = Field(default=20, ge=2)
    # Categorical columns with more distinct values than this are id-like:
    # left out of the frequency tables (every key would be unseen).
    id_like_min_distinct: int = Field(default=1_000, ge=10)
    # Resampled rows written to DIR/resampled (null: not written).
    resample_rows: int | None = Field(default=None, ge=1)
