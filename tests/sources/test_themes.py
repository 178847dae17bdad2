"""Simulator v2: themes, quality and tastes make a cold-start problem, and stay hidden."""

from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import pytest
from pyspark.sql import functions as F

from configs.settings import SimulateSettings
from jobs.platform import schema as S
from jobs.sources import simulate as sim
from jobs.sources import themes as TH

DS = "2026-11-23"
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def world(spark):
    cfg = SimulateSettings(rows=20_000, users=1_500, apps=300, seed=5, bot_impression_share=0)
    plan = sim.make_plan(cfg, cfg.rows)
    users = sim.build_users(spark, plan).cache()
    apps = sim.build_apps(spark, plan, DS).cache()
    return cfg, plan, users, apps


def test_build_apps__description_reveals_part_of_the_themes_never_all(world) -> None:
    _, _, _, apps = world
    pdf = apps.select(S.DESCRIPTION, sim.APP_THEMES).toPandas()
    said = [
        [any(p in d for p in TH.THEMES[t].phrases) for t in ts]
        for d, ts in zip(pdf[S.DESCRIPTION], pdf[sim.APP_THEMES], strict=True)
    ]
    share = np.mean([x for s in said for x in s])
    assert 0.4 < share < 0.8  # a reader infers part of the themes
    assert np.mean([not all(s) for s in said]) > 0.5  # most apps keep a theme unsaid
    others = [
        any(p in d for t in set(range(len(TH.THEMES))) - set(ts) for p in TH.THEMES[t].phrases)
        for d, ts in zip(pdf[S.DESCRIPTION], pdf[sim.APP_THEMES], strict=True)
    ]
    assert 0.1 < np.mean(others) < 0.5  # decoy phrases: text is noisy evidence
    assert set(sim.HIDDEN_APP_COLUMNS) <= set(apps.columns)


def test_build_users__tastes_follow_the_profile_but_are_not_determined_by_it(world) -> None:
    _, _, users, _ = world
    t = TH.THEME_NAMES.index("large_text")
    pdf = users.select(S.AGE_BAND, F.col(sim.TASTE)[t].alias("x")).toPandas()
    old = pdf.loc[pdf[S.AGE_BAND] == "65+", "x"]
    young = pdf.loc[pdf[S.AGE_BAND] == "18-24", "x"]
    assert old.mean() - young.mean() > 1.2
    assert young.std() > 0.5 and old.std() > 0.5  # the same profile, different tastes


def test_build_logs__taste_and_quality_drive_clicks(spark, world) -> None:
    cfg, plan, users, apps = world
    logs = sim.build_logs(spark, plan, cfg, DS, users, apps, partitions=3)
    latent = TH.theme_logit(plan.latent, F.col(sim.TASTE), F.col(sim.APP_THEMES),
                            F.col(sim.APP_QUALITY))  # fmt: skip
    scored = (
        logs.join(users.select(S.USER_ID, sim.TASTE), S.USER_ID)
        .join(apps.select(S.APP_ID, *sim.HIDDEN_APP_COLUMNS), S.APP_ID)
        .withColumn("z", latent)
    )
    mid = scored.approxQuantile("z", [0.5], 0.001)[0]
    hi = scored.where(F.col("z") > mid).agg(F.avg(S.CLICKED)).first()[0]
    lo = scored.where(F.col("z") <= mid).agg(F.avg(S.CLICKED)).first()[0]
    assert hi > 2.0 * lo


def test_stand_in_and_synthesis__never_read_the_truth() -> None:
    banned = {"simulator_truth", "jobs.sources.themes", "_taste", "_themes", "_quality"}
    hits = []
    for root in ("llm_client", "jobs/stage1", "jobs/stage2"):
        for path in sorted((REPO / root).rglob("*.py")):
            tree = ast.parse(path.read_text())
            for node in ast.walk(tree):
                text = None
                if isinstance(node, ast.Constant) and isinstance(node.value, str):
                    text = node.value
                elif isinstance(node, ast.ImportFrom):
                    text = node.module or ""
                if text and any(b in text for b in banned):
                    hits.append(f"{path.relative_to(REPO)}: {text[:60]}")
    assert hits == []
