"""Cluster the day's users into ~1,000 groups and pick seed users by group size.

    coldstart cluster --ds 2026-11-23
    spark-submit jobs/stage1/cluster.py --ds 2026-11-23

Reads ``stage.sampled_logs[ds]``, builds one profile row per user (profile
fields + behaviour aggregates: impressions, clicks, CTR, impression and click
shares per category), encodes it (StringIndexer with handleInvalid="keep" ->
OneHotEncoder -> VectorAssembler -> StandardScaler on the behaviour numbers),
then fits KMeans on the *distinct* feature vectors, each weighted by the
number of users that share it (``weightCol``), with k = min(k, distinct
vectors). Why: many users share an identical profile, and KMeans' random init
draws k rows; a draw that repeats a vector leaves fewer than k centres and the
block solver fails (issue 15: a 300k-row day with 13,446 users). Distinct
points cannot repeat, and identical users are far less work collapsed. Every
user is then assigned by the fitted model. It writes:

* ``<warehouse>/model/cluster_pipeline/ds=<ds>`` - the fitted PipelineModel
  (overwritten on a re-run of the same day);
* ``stage.user_clusters[ds]`` - ds, user_id, cluster_id, cluster_size;
* ``stage.seeds[ds]`` - seed users (``jobs.stage1.seeds``) with the profile fields,
  impressions, clicks and most-clicked category that the prompts need.

Behaviour counts are weighted by ``sample_weight``, so impressions and CTR
estimate the real day, not the down-sampled one. k larger than the number of
distinct profile vectors shrinks to that number with a warning. Only bounded
data reaches the driver: the user and vector counts, <= k cluster sizes, and
the model.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from configs.stage1 import ClusterSettings
from jobs.platform import schema as S
from jobs.platform.common import step, timed
from jobs.stage1.sample import SAMPLE_WEIGHT, read_day, require_columns
from jobs.stage1.seeds import apportion, cluster_sizes, pick_seeds, size_figures

if TYPE_CHECKING:
    from pyspark.ml import Pipeline, PipelineModel
    from pyspark.sql import DataFrame

log = logging.getLogger(__name__)

IMPRESSIONS = "impressions"
CLICKS = "clicks"
TOP_CATEGORY = "top_category"
CTR = "ctr"
FEATURES = "features"
MODEL_NAME = "cluster_pipeline"
# Users sharing one profile vector: the KMeans weight of that vector.
MULTIPLICITY = "_multiplicity"


def behaviour_columns(categories: Sequence[str]) -> list[str]:
    """Numeric per-user feature columns ``user_profiles`` adds (indexes, not names,
    so any category label - "Sci-Fi", "Children's" - makes a valid column)."""
    per_cat = [f"_imp_share_{i}" for i in range(len(categories))]
    per_cat += [f"_click_share_{i}" for i in range(len(categories))]
    return ["_log_impressions", "_log_clicks", CTR, *per_cat]


def user_profiles(
    sampled: DataFrame,
    *,
    profile_cols: Sequence[str] = S.PROFILE_FIELDS,
    categories: Sequence[str] = S.CATEGORIES,
    user_col: str = S.USER_ID,
    click_col: str = S.CLICKED,
    category_col: str = S.CATEGORY,
    weight_col: str | None = SAMPLE_WEIGHT,
) -> DataFrame:
    """One row per user: profile fields, impressions, clicks, CTR, top_category.

    Plus the ``behaviour_columns`` the pipeline clusters on. Categories outside
    ``categories`` count in the totals only; a user with one impression gets a
    full row like everyone else.
    """
    from pyspark.sql import functions as F

    require_columns(sampled, [user_col, click_col, category_col, *profile_cols], "cluster input")
    w = F.col(weight_col) if weight_col else F.lit(1.0)
    click = F.col(click_col).cast("long")
    aggs = [F.max(c).alias(c) for c in profile_cols]  # constant per user; max skips nulls
    aggs += [F.sum(w).alias("_imp_w"), F.sum(click).alias(CLICKS)]
    for i, cat in enumerate(categories):
        in_cat = F.col(category_col) == cat
        aggs.append(F.sum(F.when(in_cat, w).otherwise(0.0)).alias(f"_imp_{i}"))
        aggs.append(F.sum(F.when(in_cat, click).otherwise(0)).alias(f"_clk_{i}"))
    per_user = sampled.groupBy(user_col).agg(*aggs)
    imp, clk = F.col("_imp_w"), F.col(CLICKS)
    # Ties go to the category name that sorts last: deterministic, no window needed.
    top = F.greatest(
        *[
            F.struct(F.col(f"_clk_{i}").alias("n"), F.lit(c).alias("cat"))
            for i, c in enumerate(categories)
        ]
    )
    cols = [
        F.round(imp).cast("long").alias(IMPRESSIONS),
        F.log1p(imp).alias("_log_impressions"),
        F.log1p(clk).alias("_log_clicks"),
        (clk / imp).alias(CTR),
        F.when(top["n"] > 0, top["cat"]).alias(TOP_CATEGORY),
    ]
    cols += [(F.col(f"_imp_{i}") / imp).alias(f"_imp_share_{i}") for i in range(len(categories))]
    cols += [
        F.when(clk > 0, F.col(f"_clk_{i}") / clk).otherwise(F.lit(0.0)).alias(f"_click_share_{i}")
        for i in range(len(categories))
    ]
    return per_user.select(user_col, *profile_cols, CLICKS, *cols)


def effective_k(k: int, n_vectors: int) -> int:
    """``k`` or, when the day has fewer distinct profile vectors, that number (>= 2).

    Counting vectors, not users, is what keeps KMeans' random init from drawing
    the same point twice: users with identical profiles collapse into one
    weighted point, so any k points drawn are k distinct centres.
    """
    if n_vectors < k:
        log.warning(
            "k=%d > %d distinct profile vectors: shrinking k to %d", k, n_vectors, max(2, n_vectors)
        )
        return max(2, n_vectors)
    return k


def build_features(
    numeric_cols: Sequence[str],
    *,
    profile_cols: Sequence[str] = S.PROFILE_FIELDS,
) -> Pipeline:
    """Encode (unseen / null categories -> their own 'unknown' slot) and scale.

    Only the behaviour numbers are standardised; one-hot columns stay 0/1 so a
    rare profile value does not blow up into a huge coordinate.
    """
    from pyspark.ml import Pipeline
    from pyspark.ml.feature import OneHotEncoder, StandardScaler, StringIndexer, VectorAssembler

    idx = [f"_idx_{i}" for i in range(len(profile_cols))]
    ohe = [f"_ohe_{i}" for i in range(len(profile_cols))]
    return Pipeline(
        stages=[
            StringIndexer(inputCols=list(profile_cols), outputCols=idx, handleInvalid="keep"),
            OneHotEncoder(inputCols=idx, outputCols=ohe, handleInvalid="keep", dropLast=False),
            VectorAssembler(inputCols=list(numeric_cols), outputCol="_num", handleInvalid="keep"),
            StandardScaler(inputCol="_num", outputCol="_num_scaled", withMean=True, withStd=True),
            VectorAssembler(inputCols=[*ohe, "_num_scaled"], outputCol=FEATURES),
        ]
    )


def build_clusterer(
    cfg: ClusterSettings, k: int, *, n_vectors: int, prediction_col: str = S.CLUSTER_ID
) -> Any:
    """KMeans (or bisecting) over weighted distinct vectors (``MULTIPLICITY``).

    With a single distinct vector there is nothing to split: the row solver
    then returns one centre (the block solver needs k distinct initial points).
    """
    from pyspark.ml.clustering import BisectingKMeans, KMeans

    common = {
        "k": k,
        "maxIter": cfg.max_iter,
        "seed": cfg.seed,
        "featuresCol": FEATURES,
        "predictionCol": prediction_col,
        "weightCol": MULTIPLICITY,
    }
    if cfg.algorithm == "bisecting":
        return BisectingKMeans(**common)
    return KMeans(
        **common,
        tol=cfg.tol,
        initMode=cfg.init_mode,
        initSteps=cfg.init_steps,
        solver=cfg.solver if n_vectors >= k else "row",
    )


def distinct_vectors(
    profiles: DataFrame, features: PipelineModel, inputs: Sequence[str], partitions: int
) -> DataFrame:
    """One row per distinct input vector with its user count as ``MULTIPLICITY``, encoded.

    Deduplicated and laid out on the *raw* inputs (profile strings and the
    behaviour numbers, exact for a given day), not on the scaled vector: the
    scaler's mean and std are float sums whose last bits depend on the order
    tasks finish, so hashing the scaled doubles put points into other
    partitions on a cluster than locally, and KMeans' init (which samples per
    partition) drew other centres. ``partitions`` hash partitions sorted by
    the inputs give the fit the same rows in the same order anywhere.
    """
    from pyspark.sql import functions as F

    cols = list(inputs)
    points = (
        profiles.groupBy(*cols)
        .agg(F.count(F.lit(1)).cast("double").alias(MULTIPLICITY))
        .repartition(partitions, *cols)
        .sortWithinPartitions(*cols)
    )
    return features.transform(points).select(FEATURES, MULTIPLICITY)


def assign_clusters(
    profiles: DataFrame,
    model: PipelineModel,
    *,
    cluster_col: str = S.CLUSTER_ID,
) -> DataFrame:
    """Profiles plus ``cluster_id`` (int) and ``cluster_size`` (long, users in it)."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    keep = [*profiles.columns, cluster_col]
    assigned = model.transform(profiles).select(*keep)
    size = F.count(F.lit(1)).over(Window.partitionBy(cluster_col))
    return assigned.withColumn(cluster_col, F.col(cluster_col).cast("int")).withColumn(
        S.CLUSTER_SIZE, size.cast("long")
    )


def training_cost(model: PipelineModel) -> float | None:
    """Within-cluster sum of squares from the fit's summary (free: no extra pass)."""
    last = model.stages[-1]
    if not last.hasSummary:
        return None
    return round(float(last.summary.trainingCost), 3)


@dataclass(frozen=True)
class ClusterResult:
    """What ``cluster_day`` produced; ``assigned`` is cached (unpersist when written)."""

    model: PipelineModel
    assigned: DataFrame
    clusters: DataFrame
    seeds: DataFrame
    figures: dict[str, Any]


def fit_model(
    profiles: DataFrame,
    cfg: ClusterSettings,
    numeric_cols: Sequence[str],
    *,
    profile_cols: Sequence[str] = S.PROFILE_FIELDS,
) -> tuple[PipelineModel, dict[str, Any]]:
    """Fit encoders + scaler on every user, then KMeans on the distinct vectors.

    Returns one ``PipelineModel`` (features then clusterer) that assigns any
    user, and the figures of the fit (k, distinct vectors, seconds).
    """
    from pyspark.ml import PipelineModel

    figures: dict[str, Any] = {}
    features = build_features(numeric_cols, profile_cols=profile_cols).fit(profiles)
    inputs = [*profile_cols, *numeric_cols]
    points = distinct_vectors(profiles, features, inputs, cfg.fit_partitions).persist()
    try:
        n_vectors = points.count()
        k = effective_k(cfg.k, n_vectors)
        with timed(figures, "fit_s"):
            clusterer = build_clusterer(cfg, k, n_vectors=n_vectors).fit(points)
    finally:
        points.unpersist()
    figures.update(k=k, distinct_vectors=n_vectors)
    return PipelineModel(stages=[*features.stages, clusterer]), figures


def cluster_day(
    profiles: DataFrame,
    cfg: ClusterSettings,
    *,
    profile_cols: Sequence[str] = S.PROFILE_FIELDS,
    categories: Sequence[str] = S.CATEGORIES,
    user_col: str = S.USER_ID,
) -> ClusterResult:
    """Fit, assign and pick seeds.

    ``profiles`` should be cached by the caller: the fit, the count and the
    assignment each read it.
    """
    with step("profiles"):
        n_users = profiles.count()
    model, fit = fit_model(profiles, cfg, behaviour_columns(categories), profile_cols=profile_cols)
    timings: dict[str, Any] = {}
    with timed(timings, "assign_s"):
        assigned = assign_clusters(profiles, model).persist()
        sizes = cluster_sizes(assigned)
    quotas = apportion(sizes, cfg.seeds_total)
    seeds = pick_seeds(assigned, quotas, seed=cfg.seed, user_col=user_col).select(
        user_col, S.CLUSTER_ID, S.CLUSTER_SIZE, *profile_cols, IMPRESSIONS, CLICKS, TOP_CATEGORY
    )
    clusters = assigned.select(user_col, S.CLUSTER_ID, S.CLUSTER_SIZE)
    figures = {
        "users": n_users,
        "k_configured": cfg.k,
        **fit,
        "within_cluster_ss": training_cost(model),
        "seeds": sum(quotas.values()),
        **size_figures(sizes, fit["k"]),
        **timings,
    }
    return ClusterResult(model, assigned, clusters, seeds, figures)


def model_path(warehouse: str, ds: str) -> str:
    """``<warehouse>/model/cluster_pipeline/ds=<ds>`` (one model version per day)."""
    return f"{warehouse.rstrip('/')}/model/{MODEL_NAME}/ds={ds}"


def main(argv: Sequence[str] | None = None) -> int:
    """``coldstart cluster``: stage.sampled_logs[ds] -> user_clusters[ds] + seeds[ds]."""
    from configs.settings import load_config
    from jobs.platform.common import RunLog, job_parser
    from jobs.platform.spark import get_spark
    from jobs.platform.tables import write_partition

    args = job_parser("cluster", "Cluster users (KMeans) and pick seeds.").parse_args(argv)
    settings = load_config(args.config)
    writer, run = settings.io.delta_writer, RunLog("cluster", args.ds)
    spark = get_spark(settings.spark)
    src = settings.table_path(settings.tables.sampled_logs)
    # A fixed, sorted layout makes the fit independent of the executor count;
    # cached because the count, the fit's passes and the assignment all read it.
    profiles = (
        user_profiles(read_day(spark, src, args.ds, writer))
        .repartition(settings.cluster.fit_partitions, S.USER_ID)
        .sortWithinPartitions(S.USER_ID)
        .persist()
    )
    try:
        result = cluster_day(profiles, settings.cluster)
        steps: dict[str, Any] = {}
        with timed(steps, "save_model_s"):
            result.model.write().overwrite().save(model_path(settings.warehouse, args.ds))
        dst = settings.table_path(settings.tables.user_clusters)
        with timed(steps, "write_clusters_s"):
            written = write_partition(result.clusters, dst, args.ds, writer=writer)
        seeds_dst = settings.table_path(settings.tables.seeds)
        with timed(steps, "seeds_s"):
            seeded = write_partition(result.seeds, seeds_dst, args.ds, writer=writer)
        result.assigned.unpersist()
    finally:
        profiles.unpersist()
    figures = result.figures
    run.add(**figures, **steps, rows_out=written.rows, seeds_out=seeded.rows)
    run.add(algorithm=settings.cluster.algorithm, init_mode=settings.cluster.init_mode)
    run.add(model=model_path(settings.warehouse, args.ds))
    run.emit()
    print(
        f"clustered {figures['users']} users into {figures['clusters_non_empty']} clusters "
        f"(k={figures['k']}) and picked {seeded.rows} seeds for ds={args.ds}"
    )
    return 0


if __name__ == "__main__":
    import sys

    from jobs.cli import main as cli_main

    sys.exit(cli_main(["cluster", *sys.argv[1:]]))
