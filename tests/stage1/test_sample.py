"""Sampler rules: clicks kept, non-click rate, per-user cap, bots, empty day."""

from __future__ import annotations

import pytest

from configs.stage1 import SampleSettings
from jobs.cli import main as cli_main
from jobs.platform import schema as S
from jobs.platform.tables import read_table, table_exists, write_partition
from jobs.stage1.sample import DROP_REASON, SAMPLE_WEIGHT, label_sample, sample_logs

DS = "2026-11-23"
NO_RULES = SampleSettings(
    non_click_rate=0.25, max_impressions_per_user=None, bot_max_impressions=None, bot_max_ctr=None
)


@pytest.fixture(scope="module")
def logs(spark):
    """20,000 rows, 100 users x 200 rows, every 10th row a click."""
    from pyspark.sql import functions as F

    return spark.range(20_000).select(
        F.lit(DS).alias(S.DS),
        F.col("id").alias(S.EVENT_ID),
        F.format_string("u%03d", F.col("id") % 100).alias(S.USER_ID),
        (F.col("id") % 10 == 0).cast("int").alias(S.CLICKED),
    )


def test_sample_logs__keeps_every_click_and_hits_non_click_rate(logs):
    out = sample_logs(logs, NO_RULES)
    stats = out.groupBy(S.CLICKED, SAMPLE_WEIGHT).count().collect()
    by_click = {r[S.CLICKED]: (r[SAMPLE_WEIGHT], r["count"]) for r in stats}
    assert len(stats) == 2
    assert by_click[1] == (1.0, 2_000)
    weight, kept = by_click[0]
    assert weight == 4.0
    assert abs(kept / 18_000 - 0.25) < 0.015  # binomial sd ~0.003


def test_sample_logs__same_rows_on_any_partitioning(logs):
    a = sample_logs(logs, NO_RULES).select(S.EVENT_ID)
    b = sample_logs(logs.repartition(7), NO_RULES).select(S.EVENT_ID)
    assert a.exceptAll(b).count() == 0 and b.exceptAll(a).count() == 0


def test_sample_logs__user_cap_holds(logs):
    rules = NO_RULES.model_copy(update={"non_click_rate": 1.0, "max_impressions_per_user": 30})
    out = sample_logs(logs, rules)
    per_user = out.groupBy(S.USER_ID).count()
    assert per_user.count() == 100
    assert {r["count"] for r in per_user.collect()} == {30}


def test_label_sample__user_fraction_keeps_whole_users(logs):
    rules = NO_RULES.model_copy(update={"fraction": 0.5, "non_click_rate": 1.0})
    out = sample_logs(logs, rules)
    counts = {r["count"] for r in out.groupBy(S.USER_ID).count().collect()}
    assert counts == {200}
    assert 30 <= out.select(S.USER_ID).distinct().count() <= 70


def test_label_sample__default_rules_drop_simulated_bots_only(spark):
    from pyspark.sql import functions as F

    from configs.settings import SimulateSettings
    from jobs.sources import simulate

    sim = SimulateSettings(rows=40_000)
    plan = simulate.make_plan(sim, sim.rows)
    users, apps = simulate.build_users(spark, plan), simulate.build_apps(spark, plan, DS)
    day = simulate.build_logs(spark, plan, sim, DS, users, apps, 4).withColumn(S.DS, F.lit(DS))
    bots = set(simulate.truth_document(plan, sim, DS)["bot_user_ids"])
    labelled = label_sample(day, SampleSettings())
    flagged = labelled.where(labelled[DROP_REASON] == "bot").select(S.USER_ID).distinct()
    assert bots and {r[S.USER_ID] for r in flagged.collect()} == bots


def test_sample_main__empty_day_fails_cleanly_nothing_written(spark, settings, logs, capsys):
    src = settings.table_path(settings.tables.user_logs)
    write_partition(logs.limit(0), src, DS)
    other_day = "2026-11-24"
    code_empty = cli_main(["sample", "--ds", DS])
    code_missing = cli_main(["sample", "--ds", other_day])
    err = capsys.readouterr().err
    assert (code_empty, code_missing) == (1, 1)
    assert f"no rows for ds={DS}" in err and f"no rows for ds={other_day}" in err
    assert not table_exists(spark, settings.table_path(settings.tables.sampled_logs))


def test_sample_main__rerun_replaces_the_day(spark, settings, logs):
    src = settings.table_path(settings.tables.user_logs)
    write_partition(logs.withColumn(S.CATEGORY, logs[S.USER_ID]), src, DS)
    assert cli_main(["sample", "--ds", DS]) == 0
    dst = settings.table_path(settings.tables.sampled_logs)
    first = read_table(spark, dst, DS).count()
    assert cli_main(["sample", "--ds", DS]) == 0
    assert read_table(spark, dst, DS).count() == first > 0


def test_flag_bots__ctr_rule_needs_confidence_not_a_lucky_streak(spark):
    """7 clicks in 21 impressions (raw CTR 0.33) is an avid user; 94 in 182 is a script."""
    from pyspark.sql import functions as F

    from jobs.stage1.sample import flag_bots

    def user(name: str, n: int, clicks: int):
        return [(name, int(i < clicks)) for i in range(n)]

    rows = user("avid", 21, 7) + user("script", 182, 94) + user("few", 5, 5)
    logs = spark.createDataFrame(rows, [S.USER_ID, S.CLICKED])
    flagged = flag_bots(logs, max_impressions=None, max_ctr=0.3, min_impressions=20)
    bots = flagged.where(F.col("_is_bot")).select(S.USER_ID).distinct().collect()
    assert {r[S.USER_ID] for r in bots} == {"script"}
