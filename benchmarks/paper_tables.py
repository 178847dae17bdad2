"""Regenerate the paper-style results tables on the simulator and MovieLens-100K.

    python benchmarks/paper_tables.py                       # 10 repeats per arm
    python benchmarks/paper_tables.py --repeats 3 --sim-rows 20000

Runs ``coldstart evaluate`` in-process (one Spark session) on both data sets
with the packaged config plus the overrides below, writes the Markdown tables
to ``benchmarks/results/paper_tables.md`` (tables only; the full run folders
with figures go to ``--runs-dir``, outside the repo by default) and prints one
JSON object: seconds per data set and the SampleLLM / Original AUCs. The
MovieLens files are read from ``--movielens`` (never copied). With the default
``llm.endpoint: local`` every LLM arm measures the offline stand-in, not an
LLM; the Markdown says so in its header.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from _harness import portable  # noqa: E402


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", default=None, help="config file (default: configs/local.yaml)")
    p.add_argument("--repeats", type=int, default=10)
    p.add_argument("--datasets", default="simulator,movielens")
    p.add_argument("--movielens", default=str(REPO.parent / "shared" / "data" / "ml-100k"))
    p.add_argument("--sim-rows", type=int, default=None, help="evaluate.sim_rows override")
    p.add_argument(
        "--sim-cold-share", type=float, default=None, help="evaluate.sim_cold_impression_share"
    )
    p.add_argument("--max-rows", type=int, default=None, help="evaluate.max_rows override")
    p.add_argument("--sdv-epochs", type=int, default=None, help="evaluate.sdv_epochs override")
    p.add_argument("--epochs", type=int, default=None, help="evaluate.epochs override")
    p.add_argument("--batch-size", type=int, default=None, help="evaluate.batch_size override")
    p.add_argument("--arms", default=None, help="comma list (default: every arm)")
    p.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "paper_tables.md"))
    p.add_argument("--runs-dir", default=None, help="run folders (default: a temp dir)")
    return p


def _settings(args: argparse.Namespace):
    from configs.settings import load_config

    settings = load_config(args.config)
    overrides = {
        "sim_rows": args.sim_rows,
        "sim_cold_impression_share": args.sim_cold_share,
        "max_rows": args.max_rows,
        "sdv_epochs": args.sdv_epochs,
        "epochs": args.epochs,
        "batch_size": args.batch_size,
    }
    ev = settings.evaluate.model_copy(update={k: v for k, v in overrides.items() if v is not None})
    return settings.model_copy(update={"evaluate": ev})


def _tables(markdown: str) -> str:
    """The report's sections up to the figures (tables, header; no images)."""
    return markdown.split("## Figures")[0].strip()


def main() -> int:
    from jobs.evaluation.evaluate import evaluate, parse_arms
    from jobs.platform.common import setup_logging

    args = _parser().parse_args()
    setup_logging()
    settings = _settings(args)
    arms = parse_arms(args.arms, settings.evaluate.arms)
    runs = Path(args.runs_dir or tempfile.mkdtemp(prefix="paper_tables_"))
    command = "python benchmarks/paper_tables.py " + shlex.join(sys.argv[1:])
    sections, figures, total = [], {}, time.monotonic()
    for dataset in [d.strip() for d in args.datasets.split(",") if d.strip()]:
        start = time.monotonic()
        path = args.movielens if dataset == "movielens" else None
        summary = evaluate(settings, dataset, path, runs / dataset, arms, args.repeats, command)
        seconds = round(time.monotonic() - start, 1)
        md = Path(summary["files"]["markdown"]).read_text(encoding="utf-8")
        sections.append(portable(_tables(md)) + f"\n\nWall time for this data set: {seconds} s.")
        aug = summary["utility"]["augment"]
        figures[dataset] = {
            "seconds": seconds,
            "auc": {a: aug[a]["auc"][0] for a in aug},
            "cold_auc": {a: aug[a]["cold_auc"][0] for a in aug},
        }
        if args.runs_dir:  # a folder the user chose; a temporary one means nothing elsewhere
            figures[dataset]["run_folder"] = portable(runs / dataset)
    minutes = round((time.monotonic() - total) / 60, 1)
    head = (
        "# Paper tables (generated)\n\n"
        f"Command: `{command}` (repeats {args.repeats}); {minutes} min on "
        f"{os.cpu_count()} CPU cores (a shared machine: timings are upper bounds). "
        "Regenerate with the same command; nothing here is edited by hand.\n"
    )
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(head + "\n\n" + "\n\n".join(sections) + "\n", encoding="utf-8")
    tables = portable(out.resolve())
    print(json.dumps({"minutes": minutes, "repeats": args.repeats, "tables": tables, **figures}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
