"""The simulator: determinism, the truth contract, and the planted interactions."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from pyspark.sql import functions as F

from configs.settings import SimulateSettings
from jobs.platform import schema as S
from jobs.platform.tables import read_table
from jobs.sources import simulate as sim

DS = "2026-11-23"


@pytest.fixture(scope="module")
def sim_settings() -> SimulateSettings:
    return SimulateSettings(rows=30_000, apps=300, seed=7)


@pytest.fixture(scope="module")
def day(spark, sim_settings):
    plan = sim.make_plan(sim_settings, sim_settings.rows)
    users = sim.build_users(spark, plan)
    apps = sim.build_apps(spark, plan, DS)
    logs = sim.build_logs(spark, plan, sim_settings, DS, users, apps, partitions=3)
    # Cached: several assertions scan the same small day.
    return plan, logs.cache(), apps.cache()


def test_build_logs__deterministic_across_partitioning(spark, sim_settings, day) -> None:
    plan, logs, apps = day
    again = sim.build_logs(
        spark, plan, sim_settings, DS, sim.build_users(spark, plan), apps, partitions=7
    )
    assert logs.exceptAll(again).count() == 0
    assert again.exceptAll(logs).count() == 0


def test_build_logs__seed_changes_the_day(spark, sim_settings, day) -> None:
    _, logs, _ = day
    other = sim_settings.model_copy(update={"seed": 8})
    plan = sim.make_plan(other, other.rows)
    users, apps = sim.build_users(spark, plan), sim.build_apps(spark, plan, DS)
    logs8 = sim.build_logs(spark, plan, other, DS, users, apps, partitions=3)
    assert logs.exceptAll(logs8).count() > 0.9 * other.rows


def test_build_logs__schema_and_vocabularies(day) -> None:
    _, logs, _ = day
    assert tuple(logs.columns) == S.USER_LOG_COLUMNS
    for field, vocab in S.VOCAB.items():
        if field in logs.columns:
            seen = {r[0] for r in logs.select(field).distinct().collect()}
            assert seen <= set(vocab), field


def _ctr(df, cond) -> float:
    row = df.where(cond).agg(F.avg(S.CLICKED)).first()
    return float(row[0])


def test_build_logs__planted_interactions_are_in_the_data(day) -> None:
    plan, logs, _ = day
    human = logs.where(~F.col(S.USER_ID).isin([f"u{plan.users + i:08d}" for i in range(plan.bots)]))
    # interest x category: users click apps of their interest far more often.
    match = _ctr(human, F.col(S.INTEREST) == F.col(S.CATEGORY))
    miss = _ctr(human, F.col(S.INTEREST) != F.col(S.CATEGORY))
    assert match > 2.0 * miss
    # device x price: paid apps convert on flagships, not on entry phones.
    paid = F.col(S.PRICE) > 0
    assert _ctr(human, paid & (F.col(S.DEVICE) == "flagship")) > 1.5 * _ctr(
        human, paid & (F.col(S.DEVICE) == "entry")
    )
    # age_band x category: the strongest and weakest planted cells differ in CTR.
    best = max(plan.age_category, key=plan.age_category.get).split("|")
    worst = min(plan.age_category, key=plan.age_category.get).split("|")
    cell = lambda a, c: (F.col(S.AGE_BAND) == a) & (F.col(S.CATEGORY) == c)  # noqa: E731
    assert _ctr(human, cell(*best)) > _ctr(human, cell(*worst))


def test_build_logs__ctr_bots_and_cold_start_are_realistic(day, sim_settings) -> None:
    plan, logs, apps = day
    ctr = float(logs.agg(F.avg(S.CLICKED)).first()[0])
    assert 0.5 * sim_settings.base_ctr < ctr < 2.0 * sim_settings.base_ctr
    per_user = logs.groupBy(S.USER_ID).count()
    bot_ids = [f"u{plan.users + i:08d}" for i in range(plan.bots)]
    bot_min = per_user.where(F.col(S.USER_ID).isin(bot_ids)).agg(F.min("count")).first()[0]
    human_p99 = per_user.where(~F.col(S.USER_ID).isin(bot_ids)).approxQuantile("count", [0.99], 0)
    assert bot_min > 2 * human_p99[0]
    cold = {r[S.APP_ID] for r in apps.where(F.col(S.IS_COLD_START)).select(S.APP_ID).collect()}
    assert len(cold) == plan.cold_apps
    cold_share = logs.where(F.col(S.APP_ID).isin(list(cold))).count() / sim_settings.rows
    assert 0 < cold_share < 0.01


def test_simulate_cli__writes_tables_and_truth_contract(spark, warehouse: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "jobs.cli", "simulate", "--ds", DS, "--rows", "5000"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    logs = read_table(spark, str(warehouse / "raw" / "user_logs"), DS)
    assert logs.count() == 5000
    apps = read_table(spark, str(warehouse / "ref" / "apps"))
    assert apps.count() == 2000
    assert tuple(apps.columns) == S.APP_COLUMNS  # latents are not in what production reads
    truth = json.loads((warehouse / "ref" / "simulator_truth.json").read_text())
    assert truth["seed"] == 42
    assert truth["planted_pairs"]
    for a, b in truth["planted_pairs"]:
        assert a in logs.columns and b in logs.columns
    latent = truth["latent"]
    assert len(latent["apps"]) == 2000 and len(latent["themes"]) >= 20
    some = next(iter(latent["apps"].values()))
    assert set(some) == {"themes", "quality"} and set(some["themes"]) <= set(latent["themes"])
    assert latent["user_tastes_path"] == "ref/simulator_truth_users"  # warehouse-relative
    tastes = spark.read.parquet(str(warehouse / latent["user_tastes_path"]))
    assert tastes.count() == truth["users"]
