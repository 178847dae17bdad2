"""Benchmark ``coldstart simulate`` (generation + Delta write) at 1M and 4M rows.

    python benchmarks/simulate.py            # 1M and 4M rows
    python benchmarks/simulate.py --rows 1000000

Prints one JSON object: seconds, rows/s and peak driver RSS (Python + JVM) per
size, and the 4M/1M time ratio. Targets (issue 2): 1M < 60 s, ratio <= 4.5,
RSS < 3 GB. Each size runs in a fresh process and a fresh temp warehouse, so
JVM start-up (~5 s) is included, as a user would pay it.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _harness import machine, run_measured


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[1_000_000, 4_000_000])
    parser.add_argument("--ds", default="2026-11-23")
    args = parser.parse_args()
    results = {}
    for rows in args.rows:
        with tempfile.TemporaryDirectory() as tmp:
            m = run_measured(
                [
                    sys.executable,
                    "-m",
                    "jobs.cli",
                    "simulate",
                    "--ds",
                    args.ds,
                    "--rows",
                    str(rows),
                ],
                env={
                    "COLDSTART_WAREHOUSE": str(Path(tmp) / "wh"),
                    "COLDSTART_LOG_LEVEL": "WARNING",
                },
            )
        results[str(rows)] = {
            "seconds": m["seconds"],
            "rows_per_s": round(rows / m["seconds"]),
            "peak_driver_rss_mb": m["peak_rss_mb"],
        }
    out: dict[str, object] = {"benchmark": "simulate", "sizes": results, "machine": machine()}
    if "1000000" in results and "4000000" in results:
        out["ratio_4m_over_1m"] = round(
            results["4000000"]["seconds"] / results["1000000"]["seconds"], 2
        )
    out["targets"] = {"1m_seconds": 60, "ratio_4m_over_1m": 4.5, "peak_driver_rss_mb": 3072}
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
