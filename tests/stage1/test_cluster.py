"""User profiles, the KMeans pipeline, k shrinking, and the cluster job's tables."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from configs.stage1 import ClusterSettings
from jobs.cli import main as cli_main
from jobs.platform import schema as S
from jobs.platform.tables import read_table, table_exists, write_partition
from jobs.stage1.cluster import (
    CLICKS,
    IMPRESSIONS,
    TOP_CATEGORY,
    cluster_day,
    model_path,
    user_profiles,
)
from jobs.stage1.sample import SAMPLE_WEIGHT

DS = "2026-11-23"
PROFILE = {f: S.VOCAB[f][0] for f in S.PROFILE_FIELDS}


def _row(user: str, category: str | None, clicked: int, weight: float, **profile: str | None):
    values = {**PROFILE, **profile}
    return (user, *[values[f] for f in S.PROFILE_FIELDS], category, clicked, weight)


COLUMNS = [S.USER_ID, *S.PROFILE_FIELDS, S.CATEGORY, S.CLICKED, SAMPLE_WEIGHT]


@pytest.fixture(scope="module")
def small_day(spark):
    """Six users: one with a single impression, a null gender, an unseen OS."""
    rows = [
        _row("a", "games", 1, 1.0),
        _row("a", "games", 1, 1.0),
        _row("a", "social", 0, 4.0),
        _row("b", "music", 0, 4.0, gender=None),
        _row("c", "unheard-of", 1, 1.0, os="symbian"),
        _row("d", "video", 0, 4.0, age_band="65+"),
        _row("d", "video", 1, 1.0, age_band="65+"),
        _row("e", "tools", 1, 1.0, interest="tools"),
        _row("f", "travel", 0, 4.0, device="tablet"),
    ]
    return spark.createDataFrame(rows, COLUMNS)


def test_user_profiles__one_row_per_user_weighted_counts(small_day):
    profiles = {r[S.USER_ID]: r for r in user_profiles(small_day).collect()}
    assert sorted(profiles) == ["a", "b", "c", "d", "e", "f"]
    a, b, c = profiles["a"], profiles["b"], profiles["c"]
    assert (a[IMPRESSIONS], a[CLICKS], a[TOP_CATEGORY]) == (6, 2, "games")
    assert a["ctr"] == pytest.approx(2 / 6)
    assert (b[IMPRESSIONS], b[CLICKS], b[TOP_CATEGORY], b[S.GENDER]) == (4, 0, None, None)
    # An unseen category counts in the totals, not as a top category.
    assert (c[IMPRESSIONS], c[CLICKS], c[TOP_CATEGORY]) == (1, 1, None)


def test_cluster_day__k_shrinks_and_odd_values_never_crash(small_day, caplog):
    cfg = ClusterSettings(k=1000, seeds_total=4, max_iter=5)
    profiles = user_profiles(small_day).cache()
    with caplog.at_level(logging.WARNING, logger="jobs.stage1.cluster"):
        result = cluster_day(profiles, cfg)
    assert result.figures["k"] == 6 and result.figures["k_configured"] == 1000
    assert "shrinking k to 6" in caplog.text
    clusters = result.clusters.collect()
    assert sorted(r[S.USER_ID] for r in clusters) == ["a", "b", "c", "d", "e", "f"]
    sizes = {}
    for r in clusters:
        sizes[r[S.CLUSTER_ID]] = sizes.get(r[S.CLUSTER_ID], 0) + 1
    assert all(r[S.CLUSTER_SIZE] == sizes[r[S.CLUSTER_ID]] for r in clusters)
    seeds = result.seeds.collect()
    # seeds_total 4 < non-empty clusters: one seed per cluster wins.
    assert sorted(r[S.CLUSTER_ID] for r in seeds) == sorted(sizes)
    result.assigned.unpersist()
    profiles.unpersist()


@pytest.fixture()
def small_config(tmp_path: Path) -> str:
    path = tmp_path / "stage1.yaml"
    path.write_text("cluster:\n  k: 12\n  seeds_total: 40\n  max_iter: 5\n")
    return str(path)


def test_cluster_main__tables_contract_and_rerun_idempotent(spark, settings, small_config):
    assert cli_main(["simulate", "--ds", DS, "--rows", "3000", "--config", small_config]) == 0
    assert cli_main(["sample", "--ds", DS, "--config", small_config]) == 0
    for _ in range(2):
        assert cli_main(["cluster", "--ds", DS, "--config", small_config]) == 0
    sampled = read_table(spark, settings.table_path(settings.tables.sampled_logs), DS)
    users = sampled.select(S.USER_ID).distinct().count()
    clusters = read_table(spark, settings.table_path(settings.tables.user_clusters), DS)
    seeds = read_table(spark, settings.table_path(settings.tables.seeds), DS)
    assert clusters.count() == users == clusters.select(S.USER_ID).distinct().count()
    assert dict(clusters.dtypes)[S.CLUSTER_ID] == "int"
    assert dict(clusters.dtypes)[S.CLUSTER_SIZE] == "bigint"
    assert seeds.count() == 40
    assert seeds.select(S.CLUSTER_ID).distinct().count() == 12
    want = [S.USER_ID, S.CLUSTER_ID, S.CLUSTER_SIZE, *S.PROFILE_FIELDS]
    want += [IMPRESSIONS, CLICKS, TOP_CATEGORY, S.DS]
    assert seeds.columns == want
    assert Path(model_path(settings.warehouse, DS), "metadata").is_dir()


def test_cluster_main__empty_day_fails_cleanly_nothing_written(spark, settings, small_day, capsys):
    sampled = settings.table_path(settings.tables.sampled_logs)
    write_partition(small_day, sampled, "2026-11-22")
    assert cli_main(["cluster", "--ds", DS]) == 1
    assert f"stage/sampled_logs: no rows for ds={DS}" in capsys.readouterr().err
    for table in (settings.tables.user_clusters, settings.tables.seeds):
        assert not table_exists(spark, settings.table_path(table))
    assert not Path(model_path(settings.warehouse, DS)).exists()


def _duplicated_day(spark, distinct: int, copies: int, seed: int):
    """``distinct`` profile vectors, each shared by ``copies`` users with identical logs."""
    import random

    rng = random.Random(seed)
    fields = list(S.PROFILE_FIELDS)
    rows = []
    for v in range(distinct):
        profile = {f: rng.choice(S.VOCAB[f]) for f in fields}
        category = S.CATEGORIES[v % len(S.CATEGORIES)]
        clicks = v % 3
        for c in range(copies):
            user = f"u{v}-{c}"
            rows.append(_row(user, category, 1, 1.0, **profile) if clicks else None)
            rows += [_row(user, category, 0, 4.0, **profile) for _ in range(1 + v % 4)]
    return spark.createDataFrame([r for r in rows if r is not None], COLUMNS)


@pytest.mark.parametrize(
    ("distinct", "copies", "k", "seed"),
    [(24, 6, 20, 11), (40, 3, 38, 5), (60, 10, 55, 2)],
)
def test_cluster_day__many_identical_profiles_k_near_distinct_vectors(
    spark, distinct, copies, k, seed
):
    # Setup: users collapse onto few distinct vectors, so a random draw of k
    # users almost surely repeats a vector (the 300k-row day's crash).
    day = _duplicated_day(spark, distinct, copies, seed)
    profiles = user_profiles(day).cache()
    n_vectors = profiles.drop(S.USER_ID).distinct().count()
    cfg = ClusterSettings(k=k, seeds_total=k, max_iter=5, solver="block", seed=seed)

    # Run
    result = cluster_day(profiles, cfg)

    # Assert: every user assigned, k clusters used, identical users share one.
    rows = result.clusters.collect()
    assert len(rows) == distinct * copies
    assert result.figures["k"] == min(k, n_vectors)
    assert result.figures["distinct_vectors"] == n_vectors
    by_vector: dict[str, set[int]] = {}
    for r in rows:
        by_vector.setdefault(r[S.USER_ID].split("-")[0], set()).add(r[S.CLUSTER_ID])
    assert all(len(ids) == 1 for ids in by_vector.values())
    assert len({r[S.CLUSTER_ID] for r in rows}) == min(k, n_vectors)
    result.assigned.unpersist()
    profiles.unpersist()


def test_cluster_day__every_user_identical_gives_one_cluster(spark):
    day = _duplicated_day(spark, 1, 8, 3)
    profiles = user_profiles(day).cache()
    result = cluster_day(profiles, ClusterSettings(k=5, seeds_total=3, max_iter=3))
    rows = result.clusters.collect()
    assert len(rows) == 8 and {r[S.CLUSTER_SIZE] for r in rows} == {8}
    assert result.figures["distinct_vectors"] == 1
    result.assigned.unpersist()
    profiles.unpersist()


def test_cluster_main__spark_failure_is_one_line_with_step_and_root_cause(
    spark, settings, small_day, capsys, tmp_path, monkeypatch
):
    # Setup: a real partition whose Parquet file is then corrupted on disk.
    monkeypatch.setenv("COLDSTART_LOG_DIR", str(tmp_path / "logs"))
    sampled = settings.table_path(settings.tables.sampled_logs)
    write_partition(small_day, sampled, DS)
    for part in Path(sampled).rglob("*.parquet"):
        part.write_bytes(b"not parquet at all" * 10)

    # Run
    code = cli_main(["cluster", "--ds", DS])

    # Assert: exit 1, one line naming job, step and the Java root cause; trace in a file.
    err = capsys.readouterr().err.strip().splitlines()
    line = next(x for x in err if x.startswith("coldstart cluster: error:"))
    assert code == 1
    assert "Spark failed in step 'read':" in line
    assert "Exception" in line.split("step 'read':")[1]
    assert not any(x.lstrip().startswith("at org.apache") for x in err)
    logs = list((tmp_path / "logs").glob("cluster-*.log"))
    assert len(logs) == 1 and "Traceback" in logs[0].read_text()
    assert str(logs[0]) in line
