"""Cluster benchmark: local[2] vs a 2-worker standalone cluster, and the Delta write path.

    python benchmarks/cluster.py --rows 1000000 --write-rows 1000000,4000000 \
        > benchmarks/results/cluster.json

Prints one JSON object:

* ``stages``: each daily stage (``--stages``, default the whole chain
  simulate,sample,cluster,synthesize,weights; ``weights`` reads one
  published feature-groups row, the weekly job's product)
  submitted with ``spark-submit`` exactly as ``coldstart submit-cmd`` prints
  it, once to ``local[2]`` and once to the standalone cluster (master + two
  1-core workers from ``tests/cluster_fixture.py``): wall seconds of the
  whole submit (JVM start included, for both) and cluster / local.
* ``write_path``: for each row count, one submit per writer to the cluster:
  ``parallel`` (``jobs.platform.tables.write_partition``: executors write Parquet, the
  driver commits the files with delta-rs) and ``driver_arrow``
  (``df.toArrow()`` + ``deltalake.write_deltalake`` on the driver). Rows/s is
  measured around the write only; ``driver_peak_rss_mb`` is the peak summed
  RSS of the submitting process tree (the driver JVM and its Python),
  sampled every 50 ms. Executors are children of the workers, not of it.
* ``loadavg`` before and after: the machine (2 cores) is shared with other
  work, so absolute seconds are noisy; the ratios and the RSS are the point.

The write-path frame is generated with ``spark.range`` (the columns and types
of raw.user_logs, cheap expressions), so the figures are about writing, not
about the simulator's hashing.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any

import psutil
import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from configs.settings import Settings, load_config  # noqa: E402
from jobs.platform.package import ensure_artifact  # noqa: E402
from jobs.platform.submit import spark_submit_command, submit_options  # noqa: E402
from tests.cluster_fixture import (  # noqa: E402
    WEEKLY_FEATURE_GROUPS,
    StandaloneCluster,
    publish_feature_groups,
    start_cluster,
)

DS = "2026-11-23"
STAGE_ARGS = {
    "simulate": ["--rows"],
    "sample": [],
    "cluster": [],
    "synthesize": [],
    "weights": [],
}
STAGE_CONFIG = {
    "cluster": {"k": 100, "max_iter": 5, "seeds_total": 500},
    "synthesize": {"target_profiles": 50},
}

WRITE_PROBE = """
    import json, sys, time
    from configs.settings import SparkSettings
    from jobs.platform.spark import get_spark
    from jobs.platform import schema as S

    path, ds, rows, method = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
    spark = get_spark(SparkSettings())
    pick = lambda col, values, mod: (
        f"element_at(array({','.join(repr(v) for v in values)}), "
        f"cast(({mod}) % {len(values)} AS int) + 1) AS {col}"
    )
    exprs = [
        "id AS event_id", "format_string('u%08d', id % 50000) AS user_id",
        "format_string('app_%05d', (id * 7919) % 2000) AS app_id",
        *[pick(f, S.VOCAB[f], f"id * {i + 3} + {i}") for i, f in enumerate(S.PROFILE_FIELDS)],
        pick(S.CATEGORY, S.CATEGORIES, "id * 13"),
        "cast((id % 7) * 0.99 AS double) AS price", "2.5 + (id % 25) / 10.0 AS rating",
        "cast(id % 24 AS int) AS hour", "'mon' AS weekday", "'wifi' AS network",
        "'search' AS slot", "cast(id % 19 = 0 AS int) AS clicked",
    ]
    df = spark.range(0, rows, numPartitions=max(4, rows // 250_000)).selectExpr(*exprs)
    start = time.monotonic()
    if method == "parallel":
        from jobs.platform.tables import write_partition
        write_partition(df, path, ds, writer="delta-rs")
    else:
        from deltalake import write_deltalake
        from pyspark.sql import functions as F
        table = df.withColumn(S.DS, F.lit(ds)).toArrow()
        write_deltalake(path, table, partition_by=[S.DS], mode="overwrite")
    print("BENCH", json.dumps({"write_s": time.monotonic() - start}))
"""


def measure(cmd: list[str], cwd: Path) -> dict[str, Any]:
    """Run a submit; wall seconds, exit code, peak RSS of its process tree, stdout.

    Output goes to files, not pipes: a pipe nobody reads while the job runs
    fills up (64 KB of Spark logs) and blocks the job forever.
    """
    cwd.mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("COLDSTART_", "SPARK_"))}
    out_path, err_path = cwd / "submit.stdout", cwd / "submit.stderr"
    start = time.monotonic()
    with out_path.open("w") as out_f, err_path.open("w") as err_f:
        proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=out_f, stderr=err_f, text=True)
        peak = 0
        root = psutil.Process(proc.pid)
        while proc.poll() is None:
            try:
                tree = [root, *root.children(recursive=True)]
                peak = max(peak, sum(_rss(p) for p in tree))
            except psutil.NoSuchProcess:
                pass
            time.sleep(0.05)
    wall = time.monotonic() - start
    out, err = out_path.read_text(), err_path.read_text()
    if proc.returncode != 0:
        log = cwd / "failed-submit.log"
        log.write_text(f"{' '.join(cmd)}\n--- stdout\n{out}\n--- stderr\n{err}")
        raise RuntimeError(f"submit failed ({proc.returncode}), see {log}:\n{err[-3000:]}")
    return {"wall_s": round(wall, 2), "peak_rss_mb": round(peak / 2**20, 1), "stdout": out}


def progress(figures: dict[str, Any]) -> None:
    """One JSON line per measurement on stderr, so a cut-short run still reports."""
    print("PARTIAL", json.dumps({**figures, "loadavg": os.getloadavg()}), file=sys.stderr)


def _rss(proc: psutil.Process) -> int:
    try:
        return proc.memory_info().rss
    except psutil.NoSuchProcess:
        return 0


def write_config(folder: Path, warehouse: Path, driver_memory: str) -> Settings:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "bench.yaml"
    doc = {
        "warehouse": str(warehouse),
        "spark": {"master": "local[2]", "driver_memory": driver_memory, "shuffle_partitions": 8},
        "submit": {
            "driver_memory": driver_memory,
            "executor_memory": "1g",
            "executor_cores": 1,
            "conf": {"spark.driver.maxResultSize": "0"},
        },
        **STAGE_CONFIG,
    }
    path.write_text(yaml.safe_dump(doc))
    return load_config(path)


def stage_timings(
    cluster: StandaloneCluster, stages: list[str], rows: int, work: Path
) -> list[dict[str, Any]]:
    """Every stage on local[2] and on the cluster, each on its own warehouse."""
    results: dict[str, dict[str, Any]] = {s: {"stage": s} for s in stages}
    for where, master in (("local", "local[2]"), ("cluster", cluster.master_url)):
        settings = write_config(work / where, work / where / "warehouse", "2g")
        if "weights" in stages:  # it reads the weekly job's feature groups
            fg = settings.table_path(settings.tables.feature_groups)
            publish_feature_groups([Path(fg)], WEEKLY_FEATURE_GROUPS)
        for stage in stages:
            extra = [str(rows)] if STAGE_ARGS[stage] else []
            args = ["--ds", DS, *STAGE_ARGS[stage], *extra]
            cmd = spark_submit_command(stage, args, settings, master)
            results[stage][f"{where}_s"] = measure(cmd, work / where / "cwd")["wall_s"]
            progress(results[stage])
    for row in results.values():
        row["cluster_over_local"] = round(row["cluster_s"] / row["local_s"], 2)
    return list(results.values())


def write_path(
    cluster: StandaloneCluster, sizes: list[int], work: Path, repeats: int
) -> list[dict[str, Any]]:
    """Parallel write + delta-rs commit vs driver toArrow + write_deltalake, ``repeats`` times.

    The driver JVM grows its heap lazily (GC timing), so one submit's peak RSS
    is noisy by a few hundred MB; every repeat is reported.
    """
    probe = work / "write_probe.py"
    probe.parent.mkdir(parents=True, exist_ok=True)
    probe.write_text(textwrap.dedent(WRITE_PROBE))
    settings = write_config(work / "write", work / "write" / "warehouse", "3g")
    art = ensure_artifact()
    out = []
    for repeat, rows in ((r, n) for r in range(repeats) for n in sizes):
        for method in ("parallel", "driver_arrow"):
            table = work / "write" / "warehouse" / f"{method}_{rows}_{repeat}"
            opts = submit_options(settings, cluster.master_url, f"bench-{method}", art)
            res = measure([*opts, str(probe), str(table), DS, str(rows), method], work / "cwd")
            line = next(ln for ln in res["stdout"].splitlines() if ln.startswith("BENCH "))
            write_s = json.loads(line.split(" ", 1)[1])["write_s"]
            out.append(
                row := {
                    "method": method,
                    "rows": rows,
                    "repeat": repeat,
                    "write_s": round(write_s, 2),
                    "rows_per_s": round(rows / write_s),
                    "driver_peak_rss_mb": res["peak_rss_mb"],
                    "submit_wall_s": res["wall_s"],
                }
            )
            progress(row)
    return out


def rss_growth(rows: list[dict[str, Any]], method: str) -> float | None:
    """Largest peak RSS at the largest size over largest peak RSS at the smallest size."""
    mine = [r for r in rows if r["method"] == method]
    sizes = sorted({r["rows"] for r in mine})
    if len(sizes) < 2:
        return None

    def worst(n: int) -> float:
        return max(r["driver_peak_rss_mb"] for r in mine if r["rows"] == n)

    return round(worst(sizes[-1]) / worst(sizes[0]), 2)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="simulated day size")
    parser.add_argument("--write-rows", default="1000000,4000000", help="write-path sizes")
    parser.add_argument("--stages", default="simulate,sample,cluster,synthesize,weights")
    parser.add_argument("--skip-stages", action="store_true", help="only the write path")
    parser.add_argument("--write-repeats", type=int, default=2, help="submits per size and writer")
    args = parser.parse_args()
    sizes = [int(x) for x in args.write_rows.split(",") if x]
    stages = [s for s in args.stages.split(",") if s]
    result: dict[str, Any] = {"loadavg_start": os.getloadavg(), "cpu_count": os.cpu_count()}
    started = time.monotonic()
    # Kept on failure (submit logs inside), removed on success.
    work = Path(tempfile.mkdtemp(prefix="bench-cluster-"))
    cluster = start_cluster(work / "cluster")
    try:
        result["cluster"] = {"master": cluster.master_url, "workers": cluster.workers}
        if not args.skip_stages:
            result["rows"] = args.rows
            result["stages"] = stage_timings(cluster, stages, args.rows, work / "stages")
        result["write_path"] = write_path(cluster, sizes, work / "writes", args.write_repeats)
    finally:
        cluster.stop()
    shutil.rmtree(work, ignore_errors=True)
    result["driver_rss_growth"] = {
        m: rss_growth(result["write_path"], m) for m in ("parallel", "driver_arrow")
    }
    result["loadavg_end"] = os.getloadavg()
    result["total_s"] = round(time.monotonic() - started, 1)
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
