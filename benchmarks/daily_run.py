"""Benchmark ``coldstart run-daily`` on a simulated 1M-row day with the offline stand-in.

    python benchmarks/daily_run.py                  # 1M rows, packaged config
    python benchmarks/daily_run.py --rows 200000    # a smaller day

Three measured processes on one fresh temp warehouse, with the packaged
``configs/local.yaml`` (k=1000 clusters, 500 target profiles, stand-in LLM):

1. ``coldstart simulate`` (the input day; not part of the target);
2. ``coldstart run-daily --stages interactions`` on the fresh warehouse: the
   one-off bootstrap (train the recall model on the day, Hessian
   interactions) that a deployment pays once, before the weekly DAG publishes;
3. ``coldstart run-daily`` (every stage; ``interactions`` now reuses the
   published feature groups): the daily cost. Target: under 15 minutes.

Prints one JSON object: wall seconds per stage (from ``--summary-json``) and
in total, peak RSS of the process tree (Python driver + JVM + stand-in), and
the load average (the machine is shared; figures under load are pessimistic).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _harness import machine, run_measured

TARGET_S = 15 * 60


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "jobs.cli", *args]


def _stages(path: Path) -> dict[str, dict]:
    rows = json.loads(path.read_text())
    return {
        r["stage"]: {"seconds": r["seconds"], "rows": r["rows"], "status": r["status"]}
        for r in rows
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--ds", default="2026-11-23")
    parser.add_argument("--config", default=None, help="default: the packaged local.yaml")
    args = parser.parse_args()
    cfg = ["--config", args.config] if args.config else []
    load_start = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        env = {
            "COLDSTART_WAREHOUSE": str(Path(tmp) / "wh"),
            "COLDSTART_LOG_LEVEL": "WARNING",
            "HF_HUB_OFFLINE": "1",
        }
        sim = run_measured(
            _cli("simulate", *cfg, "--ds", args.ds, "--rows", str(args.rows)), env=env
        )
        boot_json, daily_json = Path(tmp) / "boot.json", Path(tmp) / "daily.json"
        boot = run_measured(
            _cli(
                "run-daily",
                *cfg,
                "--ds",
                args.ds,
                "--stages",
                "interactions",
                "--summary-json",
                str(boot_json),
            ),
            env=env,
        )
        daily = run_measured(
            _cli("run-daily", *cfg, "--ds", args.ds, "--summary-json", str(daily_json)),
            env=env,
        )
        stages = _stages(daily_json)
        boot_stages = _stages(boot_json)
    out = {
        "benchmark": "daily_run",
        "rows": args.rows,
        "ds": args.ds,
        "simulate": {"seconds": sim["seconds"], "peak_rss_mb": sim["peak_rss_mb"]},
        "bootstrap_feature_groups": {
            "seconds": boot["seconds"],
            "peak_rss_mb": boot["peak_rss_mb"],
            "stages": boot_stages,
        },
        "run_daily": {
            "seconds_total": daily["seconds"],
            "peak_rss_mb": daily["peak_rss_mb"],
            "stages": stages,
            "within_target": daily["seconds"] < TARGET_S,
        },
        "target_seconds": TARGET_S,
        "loadavg_1m_at_start": round(load_start, 2),
        "loadavg": [round(x, 2) for x in os.getloadavg()],
        "machine": machine(),
    }
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
