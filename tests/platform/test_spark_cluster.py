"""Integration tests on a real standalone cluster (master + 2 workers, see cluster_fixture).

Every job goes through ``spark-submit`` exactly as ``coldstart submit-cmd``
prints it: project code from the ``--py-files`` zip, config by absolute
path, warehouse through the launcher. The submitter runs in its own empty
folder without ``COLDSTART_*`` variables, so nothing can lean on the
checkout being the working directory.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

import psutil
import pytest
import yaml
from deltalake import DeltaTable

from configs.settings import Settings, load_config
from jobs.cli import main as cli_main
from jobs.orchestration.publish import partition_rows
from jobs.platform import tables as T
from jobs.platform.errors import TableNotFoundError
from jobs.platform.package import ensure_artifact
from jobs.platform.submit import spark_submit_command, submit_options
from tests.cluster_fixture import (
    REPO,
    WEEKLY_FEATURE_GROUPS,
    StandaloneCluster,
    publish_feature_groups,
    start_cluster,
)

pytestmark = pytest.mark.cluster

DS = "2026-11-23"
SUBMIT_TIMEOUT_S = 900
# Small enough for two 1-core executors; keys belong to the stages' config sections.
STAGE_CONFIG = {
    "cluster": {"k": 20, "max_iter": 5, "seeds_total": 100},
    "synthesize": {"target_profiles": 20},
    "weights": {"report_max_rows": 300, "label_model_max_rows": 3000},
}
WEIGHT_TOL = 1e-9


# -- helpers -----------------------------------------------------------------


def write_config(folder: Path, warehouse: Path, stages: bool = False) -> Path:
    """A config sized for 1-core / 1.5 GB workers, on its own absolute warehouse."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "cluster-test.yaml"
    doc = {
        "warehouse": str(warehouse),
        "spark": {"master": "local[2]", "driver_memory": "1g", "shuffle_partitions": 4},
        "submit": {"driver_memory": "1g", "executor_memory": "1g", "executor_cores": 1},
        **(STAGE_CONFIG if stages else {}),
    }
    path.write_text(yaml.safe_dump(doc))
    return path


def clean_env() -> dict[str, str]:
    """The submitter's environment without anything that points at this test's tables."""
    return {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("COLDSTART_", "PYSPARK_", "SPARK_"))
    }


def run_submit(cmd: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    cwd.mkdir(parents=True, exist_ok=True)
    return subprocess.run(
        cmd,
        cwd=cwd,
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=SUBMIT_TIMEOUT_S,
        check=False,
    )


def submit_ok(cmd: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    proc = run_submit(cmd, cwd)
    assert proc.returncode == 0, f"{' '.join(cmd)}\n{proc.stderr[-4000:]}"
    return proc


def submit_probe(
    settings: Settings, master: str, script: Path, *args: str, py_files: bool = True
) -> subprocess.CompletedProcess[str]:
    """spark-submit a test probe script with the same options as a real job."""
    opts = submit_options(settings, master, f"probe-{script.stem}", ensure_artifact())
    if not py_files:
        i = opts.index("--py-files")
        opts = opts[:i] + opts[i + 2 :]
    return run_submit([*opts, str(script), *args], script.parent / "cwd")


def write_probe(folder: Path, name: str, body: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.py"
    path.write_text(textwrap.dedent(body))
    return path


def assert_same_table(spark, left: str, right: str, ds: str | None) -> int:
    """Same row count and the same multiset of rows (exceptAll both ways)."""
    a, b = T.read_table(spark, left, ds), T.read_table(spark, right, ds)
    return assert_frames_equal_as_multisets(a, b, left, right)


def assert_same_weights(spark, left: str, right: str, ds: str) -> int:
    """Same synthetic rows and columns; ``weight`` / ``log_weight`` within ``WEIGHT_TOL``.

    Weights come out of floating-point sums whose order depends on the
    partitioning, so they are compared with a tolerance; ``run_id`` is per run.
    """
    from pyspark.sql import functions as F

    a, b = T.read_table(spark, left, ds), T.read_table(spark, right, ds)
    exact = [c for c in a.columns if c not in ("weight", "log_weight", "run_id")]
    assert_frames_equal_as_multisets(a.select(*exact), b.select(*exact), left, right)
    joined = a.alias("l").join(b.alias("r"), "synth_id", "full_outer")
    worst = joined.agg(
        F.count("*").alias("rows"),
        F.sum((F.col("l.weight").isNull() | F.col("r.weight").isNull()).cast("int")).alias("lone"),
        F.max(F.abs(F.col("l.log_weight") - F.col("r.log_weight"))).alias("log_w"),
        F.max(F.abs(F.col("l.weight") / F.col("r.weight") - 1)).alias("rel_w"),
    ).first()
    assert worst["lone"] == 0, f"{worst['lone']} synth_id(s) on one side only"
    assert worst["log_w"] <= WEIGHT_TOL, f"log_weight differs by {worst['log_w']:.3g}"
    assert worst["rel_w"] <= WEIGHT_TOL, f"weight differs by a factor 1 + {worst['rel_w']:.3g}"
    return int(worst["rows"])


def assert_frames_equal_as_multisets(a, b, left: str, right: str) -> int:
    """Same row count and the same multiset of rows (exceptAll both ways); the count."""
    n_left, n_right = a.count(), b.count()
    assert n_left == n_right, f"{left}: {n_left} rows, {right}: {n_right} rows"
    assert a.exceptAll(b).count() == 0, f"{left} has rows {right} lacks"
    assert b.exceptAll(a).count() == 0, f"{right} has rows {left} lacks"
    return n_left


# -- the fixture itself ------------------------------------------------------


def test_cluster_fixture__starts_and_stops_cleanly(tmp_path: Path) -> None:
    cluster = start_cluster(tmp_path / "c")
    pids = [p.pid for p in cluster.descendants()]
    try:
        workers = cluster.state()["workers"]
        assert [w["state"] for w in workers] == ["ALIVE", "ALIVE"]
        assert [w["cores"] for w in workers] == [1, 1]
    finally:
        killed = cluster.stop()
    assert killed == []
    assert cluster.stray_pids() == []
    assert len(pids) == 3
    marker = str(tmp_path / "c")
    leftovers = [
        p.pid
        for p in psutil.process_iter(["cmdline"])
        if p.pid in pids or marker in " ".join(p.info["cmdline"] or [])
    ]
    assert leftovers == []


# -- the daily chain: cluster run == local run --------------------------------


@dataclass(frozen=True)
class Step:
    """One daily stage and the tables (ds-partitioned or not) it writes."""

    stage: str
    daily_tables: tuple[str, ...]
    whole_tables: tuple[str, ...] = ()


# 30k impressions (1,500 users, ~8.7k sampled rows) still spread every stage over
# several partitions on both sides, which is what the comparison needs; the chain at
# scale (1M rows on this cluster) is benchmarks/cluster.py. At 100k the test took
# 11-13 of the suite's 40 minutes.
CHAIN_ROWS = "30000"
SIMULATE = Step("simulate", ("user_logs",), ("apps",))
# run-daily's stages up to the candidate table; `interactions` reuses the published
# feature groups, `weights` writes orchestration.candidate_table (validate and
# publish only copy it and are covered by the orchestration tests).
CHAIN: tuple[Step, ...] = (
    Step("sample", ("sampled_logs",)),
    Step("cluster", ("user_clusters", "seeds")),
    Step("synthesize", ("synthetic_raw",)),
    Step("interactions", (), ("feature_groups",)),
    Step("weights", ("candidate",)),
)


def table_name(settings: Settings, name: str) -> str:
    if name == "candidate":
        return settings.orchestration.candidate_table
    return getattr(settings.tables, name)


def test_daily_chain__cluster_run_equals_local_run(
    spark, spark_cluster: StandaloneCluster, tmp_path: Path, monkeypatch
) -> None:
    # Two spark-submits per side, as a production day runs without Airflow:
    # `simulate`, then `run-daily` through the stages in one application (one JVM
    # and one executor start instead of five; each stage is its job's own main).
    # The per-stage submits Airflow and backfill use are tested in
    # tests/orchestration and in the backfill test below.
    local_wh, cluster_wh = tmp_path / "local", tmp_path / "cluster"
    local_cfg = write_config(tmp_path / "local-cfg", local_wh, stages=True)
    cluster_cfg = write_config(tmp_path / "cluster-cfg", cluster_wh, stages=True)
    settings = load_config(cluster_cfg)
    rel = settings.tables.feature_groups.replace(".", "/")
    publish_feature_groups([local_wh / rel, cluster_wh / rel], WEEKLY_FEATURE_GROUPS)
    stages = ",".join(step.stage for step in CHAIN)
    jobs = [
        ("simulate", ["--ds", DS, "--rows", CHAIN_ROWS]),
        ("run-daily", ["--ds", DS, "--stages", stages]),
    ]
    monkeypatch.setenv("COLDSTART_WAREHOUSE", str(local_wh))
    for job, args in jobs:
        submit_ok(
            spark_submit_command(job, args, settings, spark_cluster.master_url),
            tmp_path / "submitter",
        )
        assert cli_main([job, "--config", str(local_cfg), *args]) == 0
    for step in (SIMULATE, *CHAIN):
        tables = [(t, DS) for t in step.daily_tables] + [(t, None) for t in step.whole_tables]
        for name, ds in tables:
            rel = table_name(settings, name).replace(".", "/")
            same = assert_same_weights if step.stage == "weights" else assert_same_table
            n = same(spark, str(local_wh / rel), str(cluster_wh / rel), ds)
            assert n > 0, f"{step.stage}: {rel} empty"
    truth = [
        json.loads((w / "ref/simulator_truth.json").read_text()) for w in (local_wh, cluster_wh)
    ]
    assert truth[0] == truth[1]


# -- backfill: one spark-submit per (day, stage) to the cluster ----------------

BACKFILL_DAYS = ("2026-11-01", "2026-11-02")


def test_backfill_via_spark_submit__runs_each_day_on_the_cluster_then_skips(
    spark_cluster: StandaloneCluster, tmp_path: Path, monkeypatch
) -> None:
    # Setup: two simulated days (locally); the backfill runs as a user would, in
    # its own process and folder, submitting to the standalone master
    warehouse = tmp_path / "wh"
    config = write_config(tmp_path / "cfg", warehouse, stages=True)
    monkeypatch.setenv("COLDSTART_WAREHOUSE", str(warehouse))
    for day in BACKFILL_DAYS:
        assert cli_main(["simulate", "--config", str(config), "--ds", day, "--rows", "5000"]) == 0
    coldstart = str(Path(sys.executable).with_name("coldstart"))
    argv = [coldstart, "backfill", "--config", str(config), "--start", BACKFILL_DAYS[0]]
    argv += ["--end", BACKFILL_DAYS[-1], "--stages", "sample", "--via", "spark-submit"]
    argv += ["--master", spark_cluster.master_url]
    # Run
    first = submit_ok(argv, tmp_path / "submitter")
    second = submit_ok(argv, tmp_path / "submitter")
    # Assert: each day's partition written by its own cluster app; the re-run skips both
    settings = load_config(config)
    path = settings.table_path(settings.tables.sampled_logs)
    rows = {day: partition_rows(path, day) for day in BACKFILL_DAYS}
    assert all(rows.values()), rows
    names = [f"coldstart-sample-{d}" for d in BACKFILL_DAYS]
    apps = [a["name"] for a in spark_cluster.state()["completedapps"] if a["name"] in names]
    assert sorted(apps) == names  # one app per day, none from the re-run

    def statuses(out: str) -> list[str]:
        return re.findall(r"^2026-11-0[12]\s+sample\s+(\w+)", out, flags=re.M)

    assert statuses(first.stdout) == ["ok", "ok"], first.stdout
    assert statuses(second.stdout) == ["skipped", "skipped"], second.stdout
    assert second.stdout.count("output exists") == 2, second.stdout


# -- Delta commits: a driver killed before the commit changes nothing --------

WRITE_PROBE = """
    import os, sys
    from deltalake import DeltaTable
    import deltalake.transaction
    from configs.settings import SparkSettings
    from jobs.platform.spark import get_spark
    from jobs.platform.tables import write_partition

    path, ds, rows = sys.argv[1], sys.argv[2], int(sys.argv[3])
    spark = get_spark(SparkSettings())
    def die(*args, **kwargs):
        os._exit(137)  # the driver dies after the executors wrote their Parquet files
    DeltaTable.create_write_transaction = die
    deltalake.transaction.create_table_with_add_actions = die
    df = spark.range(0, rows, numPartitions=4).selectExpr("id", "id * 0.5 AS x")
    write_partition(df, path, ds, writer="delta-rs")
"""


def staged_files(path: Path) -> list[Path]:
    return sorted(path.glob(f"ds=*/{T.STAGING_PREFIX}*/*.parquet"))


def test_write_partition__killed_before_commit_leaves_table_unchanged(
    spark, spark_cluster: StandaloneCluster, tmp_path: Path
) -> None:
    settings = load_config(write_config(tmp_path / "cfg", tmp_path / "wh"))
    probe = write_probe(tmp_path / "probe", "write_probe", WRITE_PROBE)
    master = spark_cluster.master_url
    table, fresh = tmp_path / "wh" / "t", tmp_path / "wh" / "fresh"

    def submit_and_kill(path: Path, rows: str) -> subprocess.CompletedProcess[str]:
        return submit_probe(settings, master, probe, str(path), DS, rows)

    def write_here(path: Path, n: int) -> None:
        """A clean write of the same rows from this process (a cluster submit costs ~40 s)."""
        rows = spark.range(0, n, numPartitions=4).selectExpr("id", "id * 0.5 AS x")
        T.write_partition(rows, str(path), DS, writer="delta-rs")

    # The table before the kill: who wrote it does not matter, only the killed run does.
    write_here(table, 1000)
    version = DeltaTable(str(table)).version()
    before = sorted(T.read_table(spark, str(table), DS).collect())

    killed = submit_and_kill(table, "3000")
    assert killed.returncode == 137, killed.stderr[-3000:]
    assert staged_files(table), "the kill must come after the executors wrote Parquet"
    assert DeltaTable(str(table)).version() == version
    assert sorted(T.read_table(spark, str(table), DS).collect()) == before

    assert submit_and_kill(fresh, "1000").returncode == 137
    assert staged_files(fresh)
    assert not DeltaTable.is_deltatable(str(fresh))
    with pytest.raises(TableNotFoundError):
        T.read_table(spark, str(fresh))

    # The next run of the day replaces the partition; the orphans stay invisible.
    write_here(table, 2000)
    assert T.read_table(spark, str(table), DS).count() == 2000
    assert T.read_table(spark, str(table)).count() == 2000


# -- guards: nothing may depend on what only the driver can see --------------

DRIVER_ONLY_PROBE = """
    from pathlib import Path
    from configs.settings import SparkSettings
    from jobs.platform.spark import get_spark

    Path("driver_only.txt").write_text("only the driver's cwd has me")
    spark = get_spark(SparkSettings())
    n = spark.sparkContext.parallelize(range(4), 4).map(
        lambda _: len(open("driver_only.txt").read())
    ).sum()
    print("read", n)
"""

IMPORT_PROBE = """
    from configs.settings import SparkSettings
    from jobs.platform.spark import get_spark

    def where(_):
        import jobs
        return jobs.__file__

    spark = get_spark(SparkSettings())
    for path in sorted(set(spark.sparkContext.parallelize(range(4), 4).map(where).collect())):
        print("EXECUTOR_IMPORT", path)
"""


def test_executors__cannot_read_driver_only_paths(
    spark_cluster: StandaloneCluster, tmp_path: Path
) -> None:
    settings = load_config(write_config(tmp_path / "cfg", tmp_path / "wh"))
    probe = write_probe(tmp_path / "probe", "driver_only", DRIVER_ONLY_PROBE)
    # Control: in local mode the executors share the driver's cwd, so it "works".
    local = submit_probe(settings, "local[2]", probe)
    assert local.returncode == 0, local.stderr[-3000:]
    on_cluster = submit_probe(settings, spark_cluster.master_url, probe)
    assert on_cluster.returncode != 0
    assert "driver_only.txt" in on_cluster.stderr


def test_executors__import_project_code_only_from_artifact(
    spark_cluster: StandaloneCluster, tmp_path: Path
) -> None:
    settings = load_config(write_config(tmp_path / "cfg", tmp_path / "wh"))
    probe = write_probe(tmp_path / "probe", "imports", IMPORT_PROBE)
    shipped = submit_probe(settings, spark_cluster.master_url, probe)
    assert shipped.returncode == 0, shipped.stderr[-3000:]
    paths = [ln.split(" ", 1)[1] for ln in shipped.stdout.splitlines() if "EXECUTOR_IMPORT" in ln]
    assert paths, shipped.stdout
    shipped_zip = re.compile(r"/coldstart-[0-9.]+-[0-9a-f]{12}\.zip/jobs/__init__\.py$")
    assert all(shipped_zip.search(p) and not p.startswith(str(REPO)) for p in paths), paths
    # Without --py-files the executors cannot fall back on the checkout.
    bare = submit_probe(settings, spark_cluster.master_url, probe, py_files=False)
    assert bare.returncode != 0
    assert "No module named 'jobs'" in bare.stderr
