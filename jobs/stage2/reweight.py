"""Stage 2 end to end on two DataFrames: the code path of ``weights`` and ``align``.

``coldstart weights`` (daily tables) and ``coldstart align`` (any table pair)
differ only in where rows, feature groups and label models come from; the
estimator itself is here, once:

* ``samplellm`` (the paper, daily default): per-group frequency ratios plus
  the label-model term ``log M_real(y|x) - log M_syn(y|x)``;
* ``classifier``: an out-of-fold, calibrated real-vs-synthetic classifier
  on (features, label) - a joint density ratio, no independence assumption;
* ``hybrid``: the paper's weights times the classifier's residual ratio.

Models are trained on bounded samples (``bounded_sample``); scoring and
everything that grows with the day stays in Spark.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from configs.weights import WeightsSettings
from jobs.stage2 import transforms as stage2

if TYPE_CHECKING:
    import pandas as pd
    from pyspark.sql import Column, DataFrame

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Stage2Inputs:
    """Rows and their description. ``label`` holds 0/1 ints on both sides."""

    real: DataFrame
    syn: DataFrame
    categorical: list[str]
    numeric: list[str]
    label: str
    groups: list[list[str]]
    # Column of real-row weights (``sample_weight``) that undoes down-sampling.
    real_weight: str | None = None
    # Columns that identify a synthetic row (for seeded folds / resampling).
    syn_key: list[str] = field(default_factory=list)

    @property
    def features(self) -> list[str]:
        return [*self.categorical, *self.numeric]


@dataclass
class Stage2Output:
    """Weighted synthetic rows (persisted) and the figures for the report."""

    df: DataFrame
    stats: stage2.WeightStats
    method: str
    groups: list[list[str]]
    bins: dict[str, list[float]]
    dependent_pairs: list[tuple] = field(default_factory=list)
    floor_hits: dict[str, int] = field(default_factory=dict)
    join: str | None = None
    keys: int | None = None
    warnings: list[str] = field(default_factory=list)
    figures: dict[str, Any] = field(default_factory=dict)


def bounded_sample(
    df: DataFrame,
    n: int,
    seed: int,
    columns: list[str],
    total: int | None = None,
    draw_on: list[str] | None = None,
) -> pd.DataFrame:
    """At most ``n`` rows of ``columns`` as pandas: the same rows, in the same order, for any
    partitioning of ``df``.

    Models fitted on the sample (label models, the classifier, dependence
    tests) see their rows in this order, so a daily run on a cluster gives the
    weights of a local run. Spark's ``sample`` + ``limit`` cannot: its draws
    are seeded per partition and ``limit`` keeps whichever partitions come
    first. Here a row's draw is a hash of the seed and its hashable columns
    (so identical feature rows of different users are drawn independently):
    all of them, or those of ``draw_on``. A frame that carries columns which
    are not the row's own data (weights, group keys, a run id: they depend on
    the other rows or on the run) passes ``draw_on`` so that the draw stays a
    function of the row alone. Rows are kept with probability
    ~``1.2 n / total``, and the ``n`` smallest hashes among them are returned
    in hash order (a top-k, not a sort of the day).
    """
    from pyspark.sql import functions as F
    from pyspark.sql.types import MapType

    from jobs.platform.errors import InputError

    total = df.count() if total is None else total
    frac = min(1.0, 1.2 * n / max(total, 1))
    hashable = [f.name for f in df.schema.fields if not isinstance(f.dataType, MapType)]
    if draw_on is not None:
        missing = [c for c in draw_on if c not in df.columns]
        if missing:
            raise InputError(f"bounded sample: draw column(s) {missing} not in {df.columns}")
        hashable = [c for c in draw_on if c in hashable]
    h = F.xxhash64(F.lit(seed), *[F.col(c) for c in hashable])
    part = df.select(*columns, h.alias("__draw"))
    if frac < 1.0:
        u = F.col("__draw").bitwiseAND(F.lit((1 << 53) - 1)).cast("double") / float(1 << 53)
        part = part.where(u < frac)
    ordered = part.orderBy("__draw", *columns).limit(n).drop("__draw")
    return ordered.toPandas().reset_index(drop=True)


LABEL_FOLD = "__label_fold"


def label_fold(seed: int, columns: list[str], folds: int) -> Column:
    """A row's cross-fitting fold: a hash of (seed, its feature and label values).

    Content, not an id: identical rows - a synthetic copy of a real row, or
    two equal synthetic rows - land in the same fold, so no model scores a
    row it saw under another name. Values are hashed as strings, so an int
    column on one side and a bigint on the other still agree. Independent of
    partitioning (local and cluster runs get the same folds).
    """
    from pyspark.sql import functions as F

    vals = [F.coalesce(F.col(c).cast("string"), F.lit("\x00null")) for c in columns]
    h = F.xxhash64(F.lit(seed), F.lit("stage2.label_fold"), *vals)
    return F.pmod(h, F.lit(folds)).cast("int")


def label_models(
    inputs: Stage2Inputs, cfg: WeightsSettings, warnings: list[str]
) -> tuple[Any, Any] | None:
    """Cross-fitted M_real and M_syn on bounded samples; None (with a warning) if a side
    has one class.

    Both are fitted fold by fold (``CrossFitLabelModel``) on the same content
    hash, so a synthetic row is scored by an M_syn - and an M_real - that
    never saw it (nor an identical row), and both models learn from the same
    (K-1)/K share of their side: the ratio compares like with like.
    """
    from recmodel.features import FeatureSpec
    from recmodel.label_models import CrossFitLabelModel

    spec = FeatureSpec(tuple(inputs.categorical), tuple(inputs.numeric))
    cols = [*inputs.features, inputs.label]
    fold = label_fold(cfg.seed, cols, cfg.label_model_folds)
    real_cols = [*cols, LABEL_FOLD, *([inputs.real_weight] if inputs.real_weight else [])]
    n = cfg.label_model_max_rows
    real_pdf = bounded_sample(inputs.real.withColumn(LABEL_FOLD, fold), n, cfg.seed, real_cols)
    syn_pdf = bounded_sample(
        inputs.syn.withColumn(LABEL_FOLD, fold), n, cfg.seed + 1, [*cols, LABEL_FOLD]
    )
    for side, pdf in (("real", real_pdf), ("synthetic", syn_pdf)):
        for k in range(cfg.label_model_folds):
            train = pdf[pdf[LABEL_FOLD] != k]
            classes = sorted(train[inputs.label].dropna().unique().tolist())
            if len(classes) < 2:
                msg = (
                    f"label term skipped: {side} rows outside fold {k} have one class of "
                    f"{inputs.label!r} ({classes}); weights use the feature groups only"
                )
                log.warning(msg)
                warnings.append(msg)
                return None
    k = cfg.label_model_folds
    m_real = CrossFitLabelModel.fit(
        real_pdf.drop(columns=LABEL_FOLD),
        real_pdf[LABEL_FOLD].to_numpy(),
        spec,
        inputs.label,
        folds=k,
        seed=cfg.seed,
        weight=inputs.real_weight,
    )
    m_syn = CrossFitLabelModel.fit(
        syn_pdf.drop(columns=LABEL_FOLD),
        syn_pdf[LABEL_FOLD].to_numpy(),
        spec,
        inputs.label,
        folds=k,
        seed=cfg.seed + 1,
    )
    return m_real, m_syn


def label_term(inputs: Stage2Inputs, cfg: WeightsSettings, warnings: list[str]) -> Column | None:
    """Column ``log M_real(y|x) - log M_syn(y|x)`` of each synthetic row, out of fold."""
    from spark_udfs.scoring import label_log_ratio

    models = label_models(inputs, cfg, warnings)
    if models is None:
        return None
    cols = [*inputs.features, inputs.label]
    return label_log_ratio(*models, cols, label_fold(cfg.seed, cols, cfg.label_model_folds))


def with_dependence_groups(
    inputs: Stage2Inputs, bins: dict[str, list[float]], cfg: WeightsSettings
) -> tuple[list[list[str]], list[tuple]]:
    """Merge Cramer's-V-dependent fields (on a bounded real sample) into the groups."""
    fields = inputs.features
    # Token columns are renamed so the draw still hashes each row's own values.
    toks = [f"__tok_{i}" for i in range(len(fields))]
    named = [stage2.token(f, bins).alias(t) for f, t in zip(fields, toks, strict=True)]
    tokens = inputs.real.select(*inputs.real.columns, *named)
    pdf = bounded_sample(tokens, cfg.dependence_max_rows, cfg.seed, toks)
    pdf.columns = fields
    pairs = stage2.dependent_pairs(pdf, fields, cfg.dependence_threshold)
    return stage2.merge_groups(inputs.groups, pairs, cfg.max_group_fields), pairs


def classifier_term(
    inputs: Stage2Inputs,
    syn: DataFrame,
    cfg: WeightsSettings,
    syn_weight: str | None = None,
) -> Column:
    """Fit the out-of-fold classifier on bounded samples; return its scoring column."""
    from jobs.stage2.classifier_ratio import fit_classifier_ratio, fold_column
    from spark_udfs.scoring import fold_log_ratio

    cc = cfg.classifier
    label_cat = [*inputs.categorical, inputs.label]
    cols = [*label_cat, *inputs.numeric]
    fold = fold_column(cfg.seed, inputs.syn_key or inputs.features, cc.folds)
    syn_f = syn.withColumn("__fold", fold)
    extra = ["__fold"] + ([syn_weight] if syn_weight else [])
    rw = inputs.real_weight
    real_pdf = bounded_sample(inputs.real, cc.max_rows, cfg.seed, cols + ([rw] if rw else []))
    # Drawn on the synthetic rows' own columns (+ their fold): under ``hybrid`` the
    # frame also carries group keys and SampleLLM weights, which must not pick the rows.
    draw = [*inputs.syn.columns, "__fold"]
    syn_pdf = bounded_sample(syn_f, cc.max_rows, cfg.seed + 1, cols + extra, draw_on=draw)
    model = fit_classifier_ratio(
        real_pdf,
        syn_pdf,
        syn_pdf["__fold"].to_numpy(),
        label_cat,
        list(inputs.numeric),
        folds=cc.folds,
        seed=cfg.seed,
        max_iter=cc.max_iter,
        max_categories=cc.max_categories,
        clip=cc.clip,
        syn_weight=syn_pdf[syn_weight].to_numpy() if syn_weight else None,
        real_weight=real_pdf[rw].to_numpy() if rw else None,
    )
    return fold_log_ratio(model, cols, fold)


def run_stage2(
    inputs: Stage2Inputs, cfg: WeightsSettings, method: str | None = None
) -> Stage2Output:
    """Weights for every synthetic row by ``method`` (default ``cfg.method``)."""
    method = method or cfg.method
    warnings: list[str] = []
    bins = stage2.fit_bins(inputs.real, inputs.numeric, cfg.numeric_bins)
    groups, pairs = stage2.check_groups(inputs.groups, inputs.features), []
    if cfg.dependence_grouping:
        groups, pairs = with_dependence_groups(
            Stage2Inputs(**{**inputs.__dict__, "groups": groups}), bins, cfg
        )
    out = Stage2Output(None, None, method, groups, bins, pairs, warnings=warnings)  # type: ignore[arg-type]
    if method == "classifier":
        df = inputs.syn.withColumn(stage2.LOG_W, classifier_term(inputs, inputs.syn, cfg))
        out.figures["label_term"] = False  # the classifier models (x, y) jointly
    else:
        df = _samplellm(inputs, groups, bins, cfg, out)
        if method == "hybrid":
            df = _hybrid(inputs, df, cfg)
    df = df.persist()
    weighted, stats = stage2.normalise(df, cfg.truncate_c, min_ess=cfg.min_ess)
    if method != "classifier":
        out.floor_hits = stage2.floor_hits(df, groups)
    out.df, out.stats = weighted.drop(*stage2.internal_columns(weighted)), stats
    return out


def _samplellm(
    inputs: Stage2Inputs,
    groups: list[list[str]],
    bins: dict[str, list[float]],
    cfg: WeightsSettings,
    out: Stage2Output,
) -> DataFrame:
    label_col = label_term(inputs, cfg, out.warnings) if cfg.label_term else None
    gw = stage2.group_log_weights(
        inputs.real,
        inputs.syn,
        groups,
        bins,
        alpha=cfg.smoothing_alpha,
        join_strategy=cfg.join_strategy,
        broadcast_max_keys=cfg.broadcast_max_keys,
        real_weight=inputs.real_weight,
        label_term=label_col,
    )
    out.join, out.keys = gw.join, gw.keys
    out.figures["label_term"] = label_col is not None
    return gw.df


def _hybrid(inputs: Stage2Inputs, df: DataFrame, cfg: WeightsSettings) -> DataFrame:
    """SampleLLM log weights + a classifier fitted on the SampleLLM-weighted rows."""
    from pyspark.sql import functions as F

    df = df.persist()
    weighted, _ = stage2.normalise(df, None)
    base = weighted.withColumn("__base_log_w", F.col(stage2.LOG_W)).withColumn(
        "__sw", F.col("weight")
    )
    base = base.drop("weight", "log_weight").persist()
    residual = classifier_term(inputs, base, cfg, syn_weight="__sw")
    return base.withColumn(stage2.LOG_W, F.col("__base_log_w") + residual)
