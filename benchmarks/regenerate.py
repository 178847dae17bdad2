"""Regenerate ``benchmarks/results/`` with one command.

    python benchmarks/regenerate.py                  # every benchmark (hours on 2 cores)
    python benchmarks/regenerate.py --only stage1,alignment
    python benchmarks/regenerate.py --stale          # which results no longer match the code
    make bench                                       # the same, every benchmark

Each benchmark is a script that prints one JSON object on stdout. This runs
the registered ones in turn with the arguments below (the sizes the results
were taken at), and writes ``benchmarks/results/<name>.json`` holding that
object plus the commit it ran on, the command, the wall time, the load
average before and after (this is a shared 2-core machine: a figure taken at
load 10 is not a figure taken at load 1) and the environment: Python, Java and
the versions of the packages the figures rest on (most are unpinned ranges, so a
fresh install can move a figure that no commit touched). Benchmarks that also render a
Markdown table (paper_tables, cold_start, alignment, ...) write it next to the
JSON themselves. A benchmark that fails leaves its previous result in place and
makes the exit code non-zero; the others still run.

``--stale`` lists the results whose code moved on: for every registered
benchmark, the commits since the one its result records that touch the paths
it measures (``DEPENDS``). It runs nothing and exits 0; a result measured on a
dirty tree, or with no result file, is stale too.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"

# name -> arguments of benchmarks/<script>.py (script defaults to the name).
REGISTRY: dict[str, dict[str, object]] = {
    "simulate": {"args": []},
    "stage1": {
        "args": [
            "--rows",
            "300000",
            "--scale-rows",
            "1000000",
            "--skip-variants",
            "--driver-memory",
            "2g",
        ]
    },
    # Spark then DuckDB twice: the first (cold JVM) pair is the headline, the second warm.
    "weights": {"args": ["--repeats", "2"]},
    # How the Spark / DuckDB ratio moves at 4x the rows (no pandas reference loop).
    "weights_scale": {
        "script": "weights",
        "args": ["--real-rows", "20000000", "--syn-rows", "4000000", "--skip-reference"],
    },
    "interactions": {"args": []},
    "llm_client": {"args": ["--quick"]},
    "alignment": {"args": ["--markdown", "benchmarks/results/alignment.md"]},
    "daily_run": {"args": []},
    # Every default arm plus samplellm_local (the real model at evaluate.local_rows).
    "paper_tables": {
        "args": [
            "--arms",
            "original,samplellm,no_cs,no_is,no_llm,gaussian_copula,ctgan,tvae,samplellm_local",
        ]
    },
    "judge_quality": {"args": []},
    "cold_start": {
        "args": ["--datasets", "simulator,movielens", "--seeds", "1,2", "--repeats", "3"]
    },
    # The real model (llama.cpp + Gemma 3 270M) against the stand-in at the same small budget.
    "cold_start_local": {
        "script": "cold_start",
        "args": [
            "--datasets",
            "simulator",
            "--seeds",
            "1,2",
            "--repeats",
            "3",
            "--arms",
            "original,samplellm_budget,samplellm_local",
            "--out",
            "benchmarks/results/cold_start_local.md",
        ],
    },
    "llm_local": {"args": ["--prompts"]},
    "candidates_cost": {"args": []},
    "cluster_call_rate": {"args": ["--latency-ms", "200", "--requests", "3072"]},
}


# name -> the paths whose change makes its result stale (the script itself always does).
# configs/local.yaml counts only for the whole-pipeline entries (_PIPE).
_PIPE = ["jobs", "llm_client", "recmodel", "spark_udfs", "configs"]
_MODEL = ["recmodel", "jobs/model", "configs/recmodel.py"]
DEPENDS: dict[str, list[str]] = {
    "simulate": ["jobs/sources", "jobs/platform", "configs/settings.py"],
    "stage1": ["jobs/stage1", "jobs/sources", "jobs/platform", "llm_client", "configs/stage1.py"],
    "weights": ["jobs/stage2", "jobs/platform", "configs/weights.py"],
    "weights_scale": ["jobs/stage2", "jobs/platform", "configs/weights.py"],
    "interactions": _MODEL,
    "llm_client": ["llm_client"],
    "alignment": ["jobs/stage2", "jobs/sources", "configs/weights.py", *_MODEL,
                  "benchmarks/_alignment_cases.py"],
    "daily_run": _PIPE,
    "paper_tables": _PIPE,
    "judge_quality": ["jobs/evaluation", "jobs/sources", "llm_client/standin_logic.py",
                      "configs/evaluation.py", *_MODEL],
    "cold_start": _PIPE,
    "cold_start_local": _PIPE,
    "llm_local": ["llm_client", "configs/prompts", "configs/llm.py"],
    "candidates_cost": ["jobs/stage1", "llm_client", "configs/stage1.py", "configs/llm.py"],
    "cluster_call_rate": ["jobs/stage1", "jobs/platform", "llm_client", "tests/cluster_fixture.py"],
}  # fmt: skip


def _git(*args: str) -> str:
    out = subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True)
    return out.stdout.strip() if out.returncode == 0 else ""


def stale(name: str) -> dict[str, object] | None:
    """Why ``name``'s result no longer measures the code at HEAD (None when it does)."""
    spec = REGISTRY[name]
    path = RESULTS / f"{name}.json"
    if not path.exists():
        return {"why": "no result file"}
    recorded = str(json.loads(path.read_text()).get("commit") or "")
    commit = recorded.split()[0].removesuffix("-dirty") if recorded else ""
    if not commit or not _git("rev-parse", "--verify", "--quiet", f"{commit}^{{commit}}"):
        return {"why": f"recorded commit {recorded!r} is not in this repository"}
    paths = [f"benchmarks/{spec.get('script', name)}.py", *DEPENDS[name]]
    log = _git("log", "--format=%h", f"{commit}..HEAD", "--", *paths).split()
    if recorded != commit and not log:
        return {"why": f"measured on a changed tree ({recorded})", "commit": recorded}
    if not log:
        return None
    files = _git("diff", "--name-only", commit, "HEAD", "--", *paths).split()
    return {"why": f"{len(log)} commit(s) since {commit} touch what it measures",
            "commit": commit, "commits": log[:5], "files": files[:8]}  # fmt: skip


def _head() -> str:
    """The commit measured; ``-dirty`` when code differs from it (results files do not count:
    the benchmarks write them)."""
    dirty = _git("status", "--porcelain", "--", ".", ":(exclude)benchmarks/results")
    return _git("rev-parse", "--short", "HEAD") + ("-dirty" if dirty else "")


DOCS = [":(exclude)benchmarks/results", ":(exclude)README.md", ":(exclude)docs"]


def _code_changed(before: str) -> bool:
    """Whether code differs between ``before`` (a ``_head()``) and now. A commit of
    results files or docs alone (one benchmark's, while the next runs) is no change."""
    now = _head()
    if now == before:
        return False
    if before.endswith("-dirty") or now.endswith("-dirty"):
        return True
    diff = subprocess.run(
        ["git", "diff", "--quiet", before, "HEAD", "--", ".", *DOCS],
        cwd=REPO,
    )
    return diff.returncode != 0


# Packages whose version can move a figure (numerics, engines, models' runtimes).
PACKAGES: tuple[str, ...] = (
    "torch", "numpy", "pandas", "scipy", "scikit-learn", "pyspark", "pyarrow", "deltalake",
    "duckdb", "sentence-transformers", "transformers", "sdmetrics", "llama_cpp_python",
)  # fmt: skip


def environment() -> dict[str, object]:
    """Python, Java and :data:`PACKAGES` versions (None: not installed) of this run."""
    from importlib import metadata

    packages: dict[str, str | None] = {}
    for name in PACKAGES:
        try:
            packages[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            packages[name] = None
    try:
        out = subprocess.run(["java", "-version"], capture_output=True, text=True, timeout=30)
        java = (out.stderr or out.stdout).splitlines()[0].strip() if out.returncode == 0 else None
    except (OSError, subprocess.TimeoutExpired, IndexError):
        java = None
    return {
        "python": platform.python_version(),
        "machine": platform.machine(),
        "java": java,
        "packages": packages,
    }


def run_one(name: str, spec: dict[str, object]) -> bool:
    """Run one benchmark; write its result file only when it succeeded."""
    script = REPO / "benchmarks" / f"{spec.get('script', name)}.py"
    cmd = [sys.executable, str(script), *[str(a) for a in spec["args"]]]  # type: ignore[union-attr]
    load_before, start, head = os.getloadavg(), time.monotonic(), _head()
    print(f"[regenerate] {name}: {' '.join(cmd[1:])}", file=sys.stderr, flush=True)
    proc = subprocess.run(cmd, cwd=REPO, stdout=subprocess.PIPE, text=True)
    if proc.returncode != 0:
        print(f"[regenerate] {name}: exit {proc.returncode}; result kept", file=sys.stderr)
        return False
    text = proc.stdout.strip()
    try:
        result = json.loads(text[text.index("{") :])
    except ValueError:
        print(f"[regenerate] {name}: stdout is not one JSON object", file=sys.stderr)
        return False
    doc = {
        "benchmark": name,
        "commit": f"{head} (code changed while it ran)" if _code_changed(head) else head,
        "command": "python " + " ".join([f"benchmarks/{script.name}", *cmd[2:]]),
        "wall_s": round(time.monotonic() - start, 1),
        "loadavg_before": [round(x, 2) for x in load_before],
        "loadavg_after": [round(x, 2) for x in os.getloadavg()],
        "environment": environment(),
        "result": result,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    tmp = RESULTS / f".{name}.json.tmp"
    tmp.write_text(json.dumps(doc, indent=1) + "\n")
    tmp.replace(RESULTS / f"{name}.json")
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default=None, help="comma-separated names (default: all)")
    parser.add_argument("--list", action="store_true", help="print the registry and exit")
    parser.add_argument(
        "--stale", action="store_true", help="list results older than the code they measure"
    )
    args = parser.parse_args(argv)
    if args.list:
        print(json.dumps(REGISTRY, indent=1))
        return 0
    if args.stale:
        report = {n: why for n in REGISTRY if (why := stale(n)) is not None}
        print(json.dumps({"stale": report, "current": [n for n in REGISTRY if n not in report]},
                         indent=1))  # fmt: skip
        return 0
    names = args.only.split(",") if args.only else list(REGISTRY)
    unknown = [n for n in names if n not in REGISTRY]
    if unknown:
        parser.error(f"unknown benchmark(s) {unknown}; choose from {sorted(REGISTRY)}")
    failed = [n for n in names if not run_one(n, REGISTRY[n])]
    print(json.dumps({"ran": names, "failed": failed}))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
