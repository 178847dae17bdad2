"""Impression context for synthetic rows, drawn from the real day.

Why: the LLM writes profiles and judges apps; it does not invent the context
of an impression (hour, weekday, network, slot). Left null, those fields would
reach the recall model as a value of their own that only synthetic rows carry,
so the model could learn "null context means the synthetic label
distribution". Each synthetic row instead gets the context of one real
impression drawn from the real conditional distribution given its seed
cluster and its label: the real rows of users in one of the row's exemplar
clusters (``stage.user_clusters``) with the same ``clicked`` value. A cell
without real rows (a cluster whose users never clicked, say) falls back to the
whole day's rows with that label; those rows are counted and reported as a
warning of the run, never silently.

Every draw is a hash of (seed, synth_id): a re-run draws the same context, on
any partitioning. The join is on (cell, row number), so the work is two
shuffles of the day's sampled rows, no driver collect.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from jobs.platform import schema as S
from jobs.platform.errors import EmptyInputError

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

DAY_CELL = -1  # the cluster id of the whole-day fallback cells
FALLBACK = "_context_fallback"


def fill_context(rows: DataFrame, real: DataFrame, clusters: DataFrame, seed: int,
                 *, source: str = "stage.sampled_logs") -> DataFrame:  # fmt: skip
    """``rows`` (synth_id, exemplar_cluster_ids, clicked, ...) + ``S.CONTEXT_FIELDS``.

    ``real``: the day's impressions (user_id, event_id, clicked, context fields);
    ``clusters``: user_id -> cluster_id. Adds a boolean ``_context_fallback``
    (True where the row's cluster cell was empty and the day cell was used).
    """
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    ctx = list(S.CONTEXT_FIELDS)
    missing = [c for c in (S.USER_ID, S.EVENT_ID, S.CLICKED, *ctx) if c not in real.columns]
    if missing:
        raise EmptyInputError(f"table {source}: missing columns {missing} for the context draw")
    labelled = real.select(S.USER_ID, S.EVENT_ID, S.CLICKED, *ctx).join(
        clusters.select(S.USER_ID, S.CLUSTER_ID), S.USER_ID
    )
    day = real.select(S.EVENT_ID, S.CLICKED, *ctx).withColumn(S.CLUSTER_ID, F.lit(DAY_CELL))
    cells = labelled.drop(S.USER_ID).unionByName(day)
    order = Window.partitionBy(S.CLUSTER_ID, S.CLICKED).orderBy(S.EVENT_ID)
    numbered = cells.withColumn("_ctx_no", F.row_number().over(order) - 1)
    sizes = numbered.groupBy(S.CLUSTER_ID, S.CLICKED).agg(F.count("*").alias("_cell_n"))

    size = F.greatest(F.size("exemplar_cluster_ids"), F.lit(1))
    pick = F.pmod(F.xxhash64(F.lit(seed), F.lit("ctx.cluster"), S.SYNTH_ID), size)
    drawn = rows.withColumn(
        "_ctx_cluster", F.element_at("exemplar_cluster_ids", (pick + 1).cast("int"))
    )
    own = sizes.select(
        F.col(S.CLUSTER_ID).alias("_ctx_cluster"), F.col(S.CLICKED).alias("_ctx_y"), "_cell_n"
    )
    drawn = drawn.join(
        F.broadcast(own),
        (drawn["_ctx_cluster"] == own["_ctx_cluster"]) & (drawn[S.CLICKED] == own["_ctx_y"]),
        "left",
    ).drop(own["_ctx_cluster"], "_ctx_y")
    day_n = sizes.where(F.col(S.CLUSTER_ID) == DAY_CELL).select(
        F.col(S.CLICKED).alias("_ctx_y"), F.col("_cell_n").alias("_day_n")
    )
    labels = {r["_ctx_y"] for r in day_n.collect()}  # at most two rows
    if labels != {0, 1}:
        raise EmptyInputError(
            f"table {source}: the day has no real rows with clicked in {sorted({0, 1} - labels)}; "
            "expected both labels to draw the context of synthetic rows from"
        )
    drawn = drawn.join(F.broadcast(day_n), drawn[S.CLICKED] == day_n["_ctx_y"], "left").drop(
        "_ctx_y"
    )
    fallback = F.col("_cell_n").isNull()
    drawn = drawn.select(
        "*",
        fallback.alias(FALLBACK),
        F.when(fallback, F.lit(DAY_CELL)).otherwise(F.col("_ctx_cluster")).alias("_cell"),
        F.pmod(
            F.xxhash64(F.lit(seed), F.lit("ctx.row"), S.SYNTH_ID),
            F.coalesce(F.col("_cell_n"), F.col("_day_n")),
        ).alias("_row"),
    )
    src = numbered.select(
        F.col(S.CLUSTER_ID).alias("_cell"), F.col(S.CLICKED).alias("_ctx_y"),
        F.col("_ctx_no").alias("_row"), *ctx,
    )  # fmt: skip
    out = drawn.join(
        src,
        (drawn["_cell"] == src["_cell"])
        & (drawn[S.CLICKED] == src["_ctx_y"])
        & (drawn["_row"] == src["_row"]),
    )
    return out.drop(src["_cell"], src["_row"], "_ctx_y").drop(
        "_ctx_cluster", "_cell_n", "_day_n", "_cell", "_row"
    )
