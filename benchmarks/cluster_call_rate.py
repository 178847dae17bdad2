"""Does the LLM call rate grow with the executors? 1 vs 2 workers on the standalone fixture.

    python benchmarks/cluster_call_rate.py --latency-ms 200 --requests 3072 --wave-size 1024

Starts the offline stand-in with a fixed latency per call, then for each
worker count in ``--workers`` (default 1,2) a standalone cluster from
``tests/cluster_fixture.py`` (1-core workers, so one 1-core executor per
worker) and spark-submits, exactly as a job is submitted (``--py-files``
zip, config by absolute path), a probe that runs
``jobs.stage1.synthesize.call_uncached``: the wave executor ``synthesize``
sends every LLM task through (waves of ``--wave-size``, each split into
``call_partitions`` mapInPandas partitions, one async pool of
``--partition-concurrency`` per partition, each wave appended to
stage.llm_responses). The requests are profile-shaped (the profile JSON
schema, answered without the stand-in's embedder), so the stand-in's CPU
per call is small.

Prints one JSON object: per worker count the executors and Spark's default
parallelism the job saw, the LLM call partitions it chose, requests/s of the
whole ``call_uncached`` (waves' Spark and Delta overhead included), the
stand-in's own view (most calls in flight at once, calls/s while calls
were arriving) and the machine's CPU use while they were; then the
2-worker / 1-worker rate ratio. The machine has 2 cores, shared with other
work, and every JVM of the cluster runs on them: the figure means something
only while the calls wait on the latency, not on CPU, which is why the
latency is fixed and large and the CPU use is reported.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import shutil
import sys
import tempfile
import textwrap
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

import psutil
import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from cluster import measure  # noqa: E402

from configs.settings import load_config  # noqa: E402
from jobs.platform.package import ensure_artifact  # noqa: E402
from jobs.platform.submit import submit_options  # noqa: E402
from llm_client.standin import standin_server  # noqa: E402
from tests.cluster_fixture import start_cluster  # noqa: E402

DS = "2026-11-23"
EXECUTOR_WAIT_S = 90.0
RATES = ("requests_per_s", "endpoint_requests_per_s", "endpoint_requests_per_s_while_calling")

PROBE = """
    import json, sys, time
    from pyspark.sql import functions as F
    from configs.settings import load_config
    from jobs.platform.common import RunLog
    from jobs.platform.spark import get_spark
    from jobs.platform.tables import read_table
    from jobs.stage1.synthesize import call_uncached
    from llm_client.endpoint import probe

    config, ds, n, wanted, template = sys.argv[1:6]
    n, wanted = int(n), int(wanted)
    settings = load_config(config)
    spark = get_spark(settings.spark)
    sc = spark.sparkContext

    def executors():
        return sc._jsc.sc().getExecutorMemoryStatus().size() - 1  # minus the driver

    # Standalone schedules as soon as one executor is up; wait for all of them,
    # as a real job has by the time it has read its inputs.
    waited = time.monotonic()
    while executors() < wanted and time.monotonic() - waited < float(sys.argv[6]):
        time.sleep(0.5)
    waited = time.monotonic() - waited
    body = F.format_string(template, F.col("id"), F.col("id"))
    plan = spark.range(n).select(
        F.sha2(body, 256).alias("request_hash"), F.lit("profile").alias("task"),
        body.alias("body"),
    )
    ep = probe(settings.llm, settings.llm.endpoint)
    cfg = ep.client_config(settings.llm, settings.llm.partition_concurrency)
    run = RunLog("bench-call-rate", ds)
    seen = {"executors": executors(), "default_parallelism": sc.defaultParallelism}
    start = time.monotonic()
    call_uncached(plan, cfg, settings, ds, run, task="profile", version="bench")
    call_s = time.monotonic() - start
    path = settings.table_path(settings.tables.llm_responses)
    rows = read_table(spark, path).where(F.col("run_id") == run.run_id)
    bad = (F.col("status") != "ok").cast("int")
    done = rows.agg(F.count("*").alias("n"), F.sum(bad).alias("bad")).first()
    parts = run.figures["profile_call_partitions"]
    print("BENCH", json.dumps({
        **seen, "executor_wait_s": round(waited, 1), "call_partitions": parts,
        "requests": done["n"], "failed": done["bad"] or 0, "call_s": round(call_s, 2),
    }))
"""


def body_template(n_rows: int = 5) -> str:
    """A profile-request body as a Spark ``format_string`` (``%d``: request id, seed)."""
    from llm_client import schemas

    schema = schemas.profile_schema(n_rows)
    doc = {
        "messages": [
            {"role": "system", "content": "Write synthetic app-store user profiles."},
            {"role": "user", "content": "benchmark request __ID__"},
        ],
        "sampling": {
            "temperature": 0.9,
            "top_p": 0.95,
            "max_tokens": schemas.max_tokens_for(schema, 2048),
            "seed": "__SEED__",
            "n": 1,
        },
        "response_format": schemas.response_format(schemas.PROFILE_SCHEMA_NAME, schema),
    }
    text = json.dumps(doc).replace("%", "%%")
    return text.replace("__ID__", "%d").replace('"__SEED__"', "%d")


def write_config(folder: Path, endpoint: str, args: argparse.Namespace) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "call-rate.yaml"
    doc = {
        "warehouse": str(folder / "warehouse"),
        "spark": {"master": "local[2]", "driver_memory": "1g", "shuffle_partitions": 4},
        "submit": {"driver_memory": "1g", "executor_memory": "1g", "executor_cores": 1},
        "llm": {
            "endpoint": endpoint,
            "concurrency": args.concurrency,
            "partition_concurrency": args.partition_concurrency,
            "wave_size": args.wave_size,
            "timeout_s": 60.0,
            "max_retries": 2,
        },
    }
    path.write_text(yaml.safe_dump(doc))
    return path


class EndpointSampler(threading.Thread):
    """Every 0.5 s: the stand-in's call count and the machine's CPU use since the last sample."""

    def __init__(self, root: str) -> None:
        super().__init__(daemon=True)
        self.root, self.samples, self.halt = root, [], threading.Event()

    def run(self) -> None:
        psutil.cpu_percent(interval=None)
        while not self.halt.wait(0.5):
            calls = stats(self.root)["calls"]
            self.samples.append((time.monotonic(), calls, psutil.cpu_percent(interval=None)))

    def summary(self) -> dict[str, Any]:
        """Calls/s and CPU busy %: over the window from the first call to the last, and over
        the 0.5 s intervals in which calls arrived (the waves' Spark and Delta work between
        them left out)."""
        total = self.samples[-1][1] if self.samples else 0
        busy = [i for i, s in enumerate(self.samples) if s[1] > 0]
        if not busy:
            return {}
        first = max(busy[0] - 1, 0)
        last = next(i for i, s in enumerate(self.samples) if s[1] == total)
        window = self.samples[first : last + 1]
        steps = [(b[0] - a[0], b[1] - a[1], b[2]) for a, b in itertools.pairwise(window)]
        calling = [s for s in steps if s[1] > 0]
        return {
            "endpoint_window_s": round(window[-1][0] - window[0][0], 1),
            "endpoint_requests_per_s": round(total / sum(s[0] for s in steps), 1),
            "cpu_busy_pct_during_window": round(sum(s[2] for s in steps) / len(steps), 1),
            "endpoint_calling_s": round(sum(s[0] for s in calling), 1),
            "endpoint_requests_per_s_while_calling": round(
                sum(s[1] for s in calling) / sum(s[0] for s in calling), 1
            ),
            "cpu_busy_pct_while_calling": round(sum(s[2] for s in calling) / len(calling), 1),
        }


def stats(root: str) -> dict[str, Any]:
    with urllib.request.urlopen(f"{root}/admin/stats", timeout=10) as resp:
        return json.loads(resp.read())


def reset(root: str) -> None:
    req = urllib.request.Request(f"{root}/admin/reset", data=b"", method="POST")
    with urllib.request.urlopen(req, timeout=10):
        pass


def one_run(workers: int, standin, args: argparse.Namespace, work: Path) -> dict[str, Any]:
    """A fresh cluster of ``workers`` 1-core workers, one probe submit, the figures."""
    settings = load_config(write_config(work / "cfg", standin.base_url, args))
    probe = work / "call_rate_probe.py"
    probe.write_text(textwrap.dedent(PROBE))
    load_before = os.getloadavg()
    cluster = start_cluster(work / "cluster", workers=workers)
    try:
        reset(standin.root)
        sampler = EndpointSampler(standin.root)
        sampler.start()
        opts = submit_options(settings, cluster.master_url, "bench-call-rate", ensure_artifact())
        argv = [str(settings.source), DS, str(args.requests), str(workers), body_template()]
        res = measure([*opts, str(probe), *argv, str(EXECUTOR_WAIT_S)], work / "cwd")
        sampler.halt.set()
        sampler.join()
    finally:
        cluster.stop()
    line = next(ln for ln in res["stdout"].splitlines() if ln.startswith("BENCH "))
    row = {"workers": workers, **json.loads(line.split(" ", 1)[1])}
    seen = stats(standin.root)
    running = min(row["call_partitions"], row["executors"])  # 1-core executors
    row.update(
        requests_per_s=round(row["requests"] / row["call_s"], 1),
        ideal_requests_per_s=round(running * args.partition_concurrency / args.latency_ms * 1e3, 1),
        endpoint_calls=seen["calls"],
        endpoint_max_in_flight=seen["max_in_flight"],
        endpoint_status=seen["by_status"],
        **sampler.summary(),
        submit_wall_s=res["wall_s"],
        loadavg_before=[round(x, 2) for x in load_before],
        loadavg_after=[round(x, 2) for x in os.getloadavg()],
    )
    print("PARTIAL", json.dumps(row), file=sys.stderr, flush=True)
    return row


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--latency-ms", type=float, default=200.0, help="stand-in latency")
    parser.add_argument("--requests", type=int, default=3072)
    parser.add_argument("--wave-size", type=int, default=1024)
    parser.add_argument("--partition-concurrency", type=int, default=4)
    parser.add_argument("--concurrency", type=int, default=64, help="job-wide cap")
    parser.add_argument("--workers", default="1,2", help="worker counts, one cluster each")
    args = parser.parse_args()
    counts = [int(w) for w in args.workers.split(",") if w]
    result: dict[str, Any] = {
        "what": "requests/s of call_uncached on a standalone cluster of 1-core workers",
        "note": (
            f"{os.cpu_count()} cores shared by master, workers, executors, driver and stand-in; "
            "a rate means something only while the calls wait on the stand-in's fixed "
            "latency, not on CPU (see cpu_busy_pct_while_calling)"
        ),
        "latency_ms": args.latency_ms,
        "requests": args.requests,
        "wave_size": args.wave_size,
        "partition_concurrency": args.partition_concurrency,
        "concurrency": args.concurrency,
        "cpu_count": os.cpu_count(),
        "loadavg_start": [round(x, 2) for x in os.getloadavg()],
    }
    started = time.monotonic()
    work = Path(tempfile.mkdtemp(prefix="bench-call-rate-"))  # kept on failure (submit logs)
    extra = ["--latency-ms", str(args.latency_ms), "--no-preload"]
    with standin_server(extra) as standin:
        runs = [one_run(w, standin, args, work / f"w{w}") for w in counts]
    shutil.rmtree(work, ignore_errors=True)
    result["runs"] = runs
    by = {r["workers"]: r for r in runs}
    if 1 in by and 2 in by:
        for rate in RATES:
            result[f"ratio_2_over_1_{rate}"] = round(by[2][rate] / by[1][rate], 2)
    result["loadavg_end"] = [round(x, 2) for x in os.getloadavg()]
    result["total_s"] = round(time.monotonic() - started, 1)
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
