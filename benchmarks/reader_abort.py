"""Count interpreter aborts at exit: delta-rs's own readers vs ``recmodel.reader``.

    python benchmarks/reader_abort.py --runs 10 > benchmarks/results/reader_abort.json
    python benchmarks/reader_abort.py --table warehouse/gold/weighted_synthetic --runs 10
    python benchmarks/reader_abort.py --python /tmp/clean/bin/python --runs 20

``--python`` runs the snippets in another interpreter, e.g. a clean
virtualenv with only ``deltalake`` and ``pyarrow`` (the issue's setting; the
reader needs nothing else).

Each snippet runs in ``--runs`` fresh interpreters (the abort happens at exit,
"terminate called without an active exception", exit code 134), the same
harness as tests/recmodel/test_reader.py. Without ``--table`` a Delta table of
``--days`` x ``--rows`` rows partitioned by ``ds`` is written first with
deltalake (the columns of gold.weighted_synthetic that matter here). Prints
one JSON object: per snippet the exit codes and how many were non-zero, plus
the deltalake / pyarrow versions and the load average (the machine is shared,
and whether the race fires may depend on load).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from collections import Counter

SNIPPETS = {
    "deltalake.to_pyarrow_table": (
        "from deltalake import DeltaTable\n"
        "print(DeltaTable({path!r}).to_pyarrow_table().num_rows)\n"
    ),
    "deltalake.to_pyarrow_dataset.to_table": (
        "from deltalake import DeltaTable\n"
        "print(DeltaTable({path!r}).to_pyarrow_dataset().to_table().num_rows)\n"
    ),
    "deltalake.to_pandas": (
        "from deltalake import DeltaTable\nprint(len(DeltaTable({path!r}).to_pandas()))\n"
    ),
    "pyarrow.dataset(file_uris)": (
        "import pyarrow.dataset as ds\nfrom deltalake import DeltaTable\n"
        "print(ds.dataset(DeltaTable({path!r}).file_uris(), format='parquet')"
        ".to_table().num_rows)\n"
    ),
    "recmodel.reader.read_table": (
        "from recmodel.reader import read_table\nprint(read_table({path!r}).num_rows)\n"
    ),
}


def make_table(path: str, days: int, rows: int) -> None:
    """A ds-partitioned Delta table, one append per day (deltalake writer)."""
    import numpy as np
    import pyarrow as pa
    from deltalake import write_deltalake

    rng = np.random.default_rng(0)
    for d in range(days):
        table = pa.table(
            {
                "synth_id": [f"{d}-{i}" for i in range(rows)],
                "app_id": [f"app_{i % 500}" for i in range(rows)],
                "clicked": rng.integers(0, 2, rows).astype("int32"),
                "weight": rng.random(rows),
                "ds": [f"2026-11-{17 + d:02d}"] * rows,
            }
        )
        write_deltalake(path, table, partition_by=["ds"], mode="append")


def exit_codes(code: str, runs: int, python: str = sys.executable) -> list[int]:
    """Exit codes of ``runs`` fresh interpreters running ``code``."""
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = {**os.environ, "PYTHONPATH": repo}
    out = []
    for _ in range(runs):
        proc = subprocess.run(
            [python, "-c", code], capture_output=True, text=True, env=env, timeout=300
        )
        out.append(proc.returncode)
    return out


def main() -> None:
    import deltalake
    import pyarrow

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--table", default=None, help="an existing Delta table (default: write one)"
    )
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--days", type=int, default=3)
    parser.add_argument("--rows", type=int, default=200_000, help="rows per day")
    parser.add_argument("--only", default=None, help="comma-separated snippet names")
    parser.add_argument("--python", default=sys.executable, help="interpreter for the snippets")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = args.table or os.path.join(tmp, "weighted_synthetic")
        if args.table is None:
            make_table(path, args.days, args.rows)
        names = args.only.split(",") if args.only else list(SNIPPETS)
        load_before = os.getloadavg()[0]
        results = {}
        for name in names:
            codes = exit_codes(SNIPPETS[name].format(path=path), args.runs, args.python)
            results[name] = {
                "nonzero": sum(c != 0 for c in codes),
                "runs": len(codes),
                "exit_codes": dict(Counter(codes)),
            }
    doc = {
        "deltalake": deltalake.__version__,
        "pyarrow": pyarrow.__version__,
        "python": args.python,
        "table": args.table or f"generated: {args.days} days x {args.rows} rows",
        "loadavg_before": load_before,
        "loadavg_after": os.getloadavg()[0],
        "snippets": results,
    }
    print(json.dumps(doc, indent=1))


if __name__ == "__main__":
    main()
