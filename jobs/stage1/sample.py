"""Down-sample one day of impression logs for clustering and seed picking.

    coldstart sample --ds 2026-11-23
    spark-submit jobs/stage1/sample.py --ds 2026-11-23

Reads ``raw.user_logs[ds]`` and writes ``stage.sampled_logs[ds]``: the same
columns plus ``sample_weight`` (1.0 for clicks, ``1 / non_click_rate`` for kept
non-clicks) so later stages can undo the down-sampling. Rules, in order
(``configs/stage1.py`` SampleSettings):

1. ``bot``: users over ``bot_max_impressions`` impressions, or whose CTR is
   above ``bot_max_ctr`` with 95% confidence (the Wilson lower bound of their
   CTR, over at least ``bot_min_impressions`` impressions), are dropped whole
   (counts over the full day, before any sampling). A bound rather than the raw
   CTR: an avid real user with 7 clicks in 21 impressions is not a bot, a
   script with 94 in 182 is.
2. ``user_fraction``: a share of the remaining users is kept, whole.
3. ``non_click``: non-clicks kept at ``non_click_rate``; every click kept.
4. ``user_cap``: at most ``max_impressions_per_user`` kept rows per user (a
   uniform random subset, clicks not favoured, so a capped user's CTR stays
   unbiased).

Every draw is a hash of (seed, salt, ds, key) like ``jobs.sources.simulate.uniform``,
not ``rand()``: the sample does not depend on partitioning. Per-user counts are
window aggregates (one shuffle by user); only the per-reason drop counts (a
handful of numbers) come back to the driver.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING

from configs.stage1 import SampleSettings
from jobs.platform import schema as S
from jobs.platform.errors import EmptyInputError, InputError
from jobs.platform.hashing import uniform

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame, SparkSession

log = logging.getLogger(__name__)

SAMPLE_WEIGHT = "sample_weight"
DROP_REASON = "_drop_reason"
REASONS: tuple[str, ...] = ("bot", "user_fraction", "non_click", "user_cap")


def require_columns(df: DataFrame, columns: Sequence[str], what: str) -> None:
    """Raise ``InputError`` listing every required column ``df`` lacks."""
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise InputError(f"{what}: missing column(s) {missing}; has {sorted(df.columns)}")


WILSON_Z = 1.96


def wilson_lower(successes: Column, trials: Column, z: float = WILSON_Z) -> Column:
    """Wilson score lower bound of a binomial rate, as a Spark column expression."""
    from pyspark.sql import functions as F

    p = successes / trials
    z2 = z * z
    centre = p + z2 / (2 * trials)
    spread = z * F.sqrt(p * (1 - p) / trials + z2 / (4 * trials * trials))
    return (centre - spread) / (1 + z2 / trials)


def flag_bots(
    logs: DataFrame,
    *,
    max_impressions: int | None,
    max_ctr: float | None,
    min_impressions: int,
    user_col: str = S.USER_ID,
    click_col: str = S.CLICKED,
) -> DataFrame:
    """Add boolean ``_is_bot`` (whole-day per-user counts over a window, no collect).

    The CTR rule compares the Wilson score lower bound (z = 1.96) with
    ``max_ctr``, so the false-positive rate on real users does not grow with
    the number of users who happen to sit just above ``min_impressions``.
    """
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    by_user = Window.partitionBy(user_col)
    n = F.count(F.lit(1)).over(by_user)
    clicks = F.sum(F.col(click_col)).over(by_user)
    rule = F.lit(False)
    if max_impressions is not None:
        rule = rule | (n > max_impressions)
    if max_ctr is not None:
        rule = rule | ((n >= min_impressions) & (wilson_lower(clicks, n) > max_ctr))
    return logs.withColumn("_is_bot", rule)


def label_sample(
    logs: DataFrame,
    rules: SampleSettings,
    *,
    user_col: str = S.USER_ID,
    click_col: str = S.CLICKED,
    key_cols: Sequence[str] = (S.DS, S.EVENT_ID),
) -> DataFrame:
    """Every input row plus ``_drop_reason`` (null: kept) and ``sample_weight``.

    Labelling instead of filtering lets one pass give both the sample and the
    drop counts by reason. ``key_cols`` identify a row (the hash input);
    ``ds`` in the key makes different days draw independently.
    """
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    require_columns(logs, [user_col, click_col, *key_cols], "sample input")
    user_key = [F.col(c) for c in key_cols if c == S.DS and c in logs.columns]
    u_user = uniform(rules.seed, "sample.user", *user_key, F.col(user_col))
    u_row = uniform(rules.seed, "sample.row", *[F.col(c) for c in key_cols])
    u_cap = uniform(rules.seed, "sample.cap", *[F.col(c) for c in key_cols])
    flagged = flag_bots(
        logs,
        max_impressions=rules.bot_max_impressions,
        max_ctr=rules.bot_max_ctr,
        min_impressions=rules.bot_min_impressions,
        user_col=user_col,
        click_col=click_col,
    )
    clicked = F.col(click_col) == 1
    reason = (
        F.when(F.col("_is_bot"), F.lit("bot"))
        .when(u_user >= rules.fraction, F.lit("user_fraction"))
        .when(~clicked & (u_row >= rules.non_click_rate), F.lit("non_click"))
    )
    labelled = flagged.withColumn(DROP_REASON, reason).drop("_is_bot")
    if rules.max_impressions_per_user is not None:
        # Rank kept rows first, in hash order, so the cap takes a uniform subset.
        order = Window.partitionBy(user_col).orderBy(F.col(DROP_REASON).isNotNull(), u_cap)
        over_cap = F.row_number().over(order) > rules.max_impressions_per_user
        labelled = labelled.withColumn(
            DROP_REASON,
            F.when(F.col(DROP_REASON).isNull() & over_cap, F.lit("user_cap")).otherwise(
                F.col(DROP_REASON)
            ),
        )
    weight = F.when(clicked, F.lit(1.0)).otherwise(F.lit(1.0 / rules.non_click_rate))
    return labelled.withColumn(SAMPLE_WEIGHT, weight.cast("double"))


def sample_logs(
    logs: DataFrame,
    rules: SampleSettings,
    *,
    user_col: str = S.USER_ID,
    click_col: str = S.CLICKED,
    key_cols: Sequence[str] = (S.DS, S.EVENT_ID),
) -> DataFrame:
    """The sampled rows: the input columns plus ``sample_weight``."""
    from pyspark.sql import functions as F

    labelled = label_sample(logs, rules, user_col=user_col, click_col=click_col, key_cols=key_cols)
    return labelled.where(F.col(DROP_REASON).isNull()).drop(DROP_REASON)


def reason_counts(
    labelled: DataFrame, click_col: str = S.CLICKED
) -> dict[tuple[str | None, int], int]:
    """Rows per (``_drop_reason``, clicked); None: kept. At most 10 rows reach the driver."""
    rows = labelled.groupBy(DROP_REASON, click_col).count().collect()
    return {(r[DROP_REASON], int(r[click_col])): int(r["count"]) for r in rows}


def sample_figures(counts: dict[tuple[str | None, int], int]) -> dict[str, object]:
    """Run-log figures from ``reason_counts``: totals, drops by reason, realised rates."""
    by_reason = {reason: 0 for reason in (None, *REASONS)}
    for (reason, _), n in counts.items():
        by_reason[reason] = by_reason.get(reason, 0) + n
    # Non-clicks that reached the non-click draw: kept ones (capped or not) + dropped ones.
    drawn_kept = sum(n for (r, c), n in counts.items() if c == 0 and r in (None, "user_cap"))
    drawn = drawn_kept + counts.get(("non_click", 0), 0)
    clicks_in = sum(n for (r, c), n in counts.items() if c == 1 and r in (None, "user_cap"))
    return {
        "rows_in": sum(counts.values()),
        "rows_kept": by_reason[None],
        "dropped": {r: by_reason[r] for r in REASONS},
        "realised_non_click_rate": round(drawn_kept / drawn, 5) if drawn else None,
        "clicks_kept": counts.get((None, 1), 0),
        "clicks_after_user_rules": clicks_in,
    }


def read_day(spark: SparkSession, path: str, ds: str, writer: str) -> DataFrame:
    """Read one day; a missing or empty partition is an ``EmptyInputError``."""
    from jobs.platform.common import step
    from jobs.platform.tables import partition_exists, read_table, table_exists

    with step("read"):
        if table_exists(spark, path, writer) and not partition_exists(spark, path, ds, writer):
            raise EmptyInputError(f"table {path}: no rows for ds={ds} (partition missing)")
        day = read_table(spark, path, ds, writer=writer)
        if day.isEmpty():
            raise EmptyInputError(f"table {path}: no rows for ds={ds} (partition is empty)")
    return day


def main(argv: Sequence[str] | None = None) -> int:
    """``coldstart sample``: raw.user_logs[ds] -> stage.sampled_logs[ds]."""
    from configs.settings import load_config
    from jobs.platform.common import RunLog, job_parser
    from jobs.platform.spark import get_spark
    from jobs.platform.tables import write_partition

    args = job_parser("sample", "Down-sample a day of raw.user_logs.").parse_args(argv)
    settings = load_config(args.config)
    rules, writer = settings.sample, settings.io.delta_writer
    run = RunLog("sample", args.ds)
    spark = get_spark(settings.spark)
    src = settings.table_path(settings.tables.user_logs)
    dst = settings.table_path(settings.tables.sampled_logs)
    labelled = label_sample(read_day(spark, src, args.ds, writer), rules).persist()
    try:
        figures = sample_figures(reason_counts(labelled))
        if figures["rows_kept"] == 0:
            raise EmptyInputError(f"table {src}: every row of ds={args.ds} dropped by the rules")
        sampled = labelled.where(labelled[DROP_REASON].isNull()).drop(DROP_REASON)
        result = write_partition(sampled, dst, args.ds, writer=writer)
    finally:
        # Cached so the counts and the write share one pass over the day.
        labelled.unpersist()
    for reason, n in figures.pop("dropped").items():
        run.drop(reason, n)
    run.add(**figures, rows_out=result.rows, rules=rules.model_dump(), table=dst)
    run.add(version=result.version)
    run.emit()
    print(f"sampled {result.rows} of {figures['rows_in']} rows for ds={args.ds} into {dst}")
    return 0


if __name__ == "__main__":
    import sys

    from jobs.cli import main as cli_main

    sys.exit(cli_main(["sample", *sys.argv[1:]]))
