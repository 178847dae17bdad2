"""Regenerate ``benchmarks/results/cold_start.md``: cold-app recall per arm, two seeds.

    python benchmarks/cold_start.py                      # simulator + MovieLens, 5 repeats
    python benchmarks/cold_start.py --datasets simulator --repeats 3 --seeds 1

Runs the cold-start protocol (``jobs.evaluation.cold_start.run_seed``) in one
Spark session for every data set and seed, with the packaged config (sizes in
``evaluate.cold_start``); the LLM arms use whatever ``llm:`` configures (the
offline stand-in by default, which is NOT an LLM and the tables say so).
Prints one JSON object (seconds and pooled cold Recall@20 per arm).
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from _harness import portable  # noqa: E402

ARMS = (
    "original,content,samplellm,samplellm_content,no_is,no_cs,coldllm,both,samplellm_resampled,"
    "samplellm_prune,coldllm_prune,both_prune,oracle,attributes"
)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", default=None, help="config file (default: configs/local.yaml)")
    p.add_argument("--datasets", default="simulator,movielens")
    p.add_argument("--seeds", default="1,2")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--arms", default=ARMS)
    p.add_argument("--movielens", default=str(REPO.parent / "shared" / "data" / "ml-100k"))
    p.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "cold_start.md"))
    return p


def _fmt(x: float | None, spec: str = ".4f") -> str:
    return "" if x is None else format(x, spec)


def _mean(values: list) -> float | None:
    v = [x for x in values if x is not None]
    return float(np.mean(v)) if v else None


def section(dataset: str, runs: list[dict], arms: tuple[str, ...], k: int) -> str:
    """One data set's table: per-seed and pooled cold Recall@k, Welch p, gap closed."""
    from jobs.evaluation.cold_start import summarise

    pooled = summarise(runs, arms, k)
    per_seed = [summarise([r], arms, k)[f"recall@{k}"] for r in runs]
    head = [f"seed {r['seed']}: cold R@{k}" for r in runs]
    lines = [
        f"| Arm | {' | '.join(head)} | pooled cold R@{k} | x original | Welch p vs original "
        f"| gap closed | cold NDCG@{k} | all R@{k} | AUC (cold) | coverage@{k} | gini@{k} |",
        "|---" * (len(head) + 10) + "|",
    ]
    for a in arms:
        row, lists = pooled[f"recall@{k}"][a], pooled["lists"][a]
        seeds = [f"{s[a]['mean']:.4f} ± {s[a]['sd']:.4f}" for s in per_seed]
        cells = [
            a,
            *seeds,
            f"{row['mean']:.4f} ± {row['sd']:.4f}",
            _fmt(row.get("ratio_vs_original"), ".2f"),
            _fmt(row.get("welch_p_vs_original"), ".3g"),
            _fmt(row.get("gap_closed"), ".2f"),
            *[
                _fmt(_mean(lists[m]))
                for m in (f"ndcg@{k}", f"all_recall@{k}", "auc", f"coverage@{k}", f"gini@{k}")
            ],
        ]
        lines.append("| " + " | ".join(cells) + " |")
    facts = "; ".join(
        f"seed {r['seed']}: {json.dumps(r['facts'])}, random cold R@{k} "
        f"{r['random_recall']:.4f}, stage 1+2 {r['stage_seconds']} s"
        for r in runs
    )
    syn = "; ".join(
        f"seed {r['seed']} {n} ({s['generator']}): {s['rows']} rows, {s['clicks']} clicks, "
        f"ESS share {s['stage2'].get('ess_fraction')}"
        + (f", dropped {json.dumps(s['stage1']['dropped'])}" if s["stage1"].get("dropped") else "")
        + (
            f", {s['stage1']['pairs']} candidate pairs, {s['stage1']['calls_per_cold_app']} "
            "calls per cold app"
            if "pairs" in s["stage1"]
            else ""
        )
        for r in runs
        for n, s in r["synthetic"].items()
    )
    signal = "; ".join(
        f"seed {r['seed']} {n}: corr {_fmt(v['corr'], '.3f')}, within app "
        f"{_fmt(v['corr_within_app'], '.3f')}"
        for r in runs
        for n, v in r.get("standin_signal", {}).items()
    )
    warn = sorted({w for r in runs for w in r["warnings"]})
    return "\n".join(
        [
            f"## {dataset}",
            "",
            f"Source: {portable(runs[0]['source'])}. Endpoint: {_endpoint(runs[0]['endpoint'])}.",
            "",
            *lines,
            "",
            f"Split: {facts}.",
            "",
            f"Synthetic rows: {syn}.",
            *(
                [
                    "",
                    "What stage 1 supplies: Pearson correlation of the synthetic rows' click_prob "
                    "with the true logit expected for their profile and app (the taste given the "
                    f"profile; quality included), overall and within app: {signal}.",
                ]
                if signal
                else []
            ),
            *([""] + [f"Warning: {w}" for w in warn] if warn else []),
        ]
    )


def _endpoint(ep: dict | None) -> str:
    """Model and stand-in flag; not the loopback URL, which changes every run."""
    if not ep:
        return "none"
    return f"model {ep['model']}" + (" (OFFLINE STAND-IN, not an LLM)" if ep.get("standin") else "")


def _write(out: Path, command: str, minutes: float, done: dict[str, str], todo: list) -> None:
    """The Markdown so far (rewritten after every seed, so a cut run leaves its results)."""
    head = (
        "# Cold-start protocol (generated)\n\n"
        f"Command: `{command}`; {minutes} min on {os.cpu_count()} CPU cores (a shared, "
        "loaded machine: timings are upper bounds). Regenerate with the same command; nothing "
        "here is edited by hand. Repeats retrain the two-tower model with another seed on the "
        "same split and synthetic rows; each seed re-draws the world (simulator), the cold split, "
        "the exemplars and stage 2. Welch p and the pooled columns use all seeds x repeats. "
        "Gap closed = (arm - original) / (oracle - original) on pooled cold Recall@20. With "
        "`llm.endpoint: local` the LLM arms measure the OFFLINE STAND-IN (profile and "
        "description sentence embeddings compared by cosine), NOT an LLM.\n"
    )
    if todo:
        head += f"\nNOT FINISHED when this file was written: {'; '.join(todo)}.\n"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(head + "\n" + "\n\n".join(done.values()) + "\n", encoding="utf-8")


def main() -> int:
    from configs.settings import load_config
    from jobs.evaluation.cold_start import run_seed
    from jobs.evaluation.evaluate import parse_cold_arms
    from jobs.platform.common import setup_logging
    from jobs.platform.spark import get_spark

    args = _parser().parse_args()
    setup_logging()
    settings = load_config(args.config)
    spark = get_spark(settings.spark)
    if settings.evaluate.threads:
        import torch

        torch.set_num_threads(settings.evaluate.threads)
    k = settings.evaluate.cold_start.k
    command = "python benchmarks/cold_start.py " + shlex.join(sys.argv[1:])
    seeds = [int(s) for s in args.seeds.split(",")]
    datasets = [d.strip() for d in args.datasets.split(",") if d.strip()]
    done: dict[str, str] = {}
    figures: dict[str, dict] = {}
    total = time.monotonic()
    for n, dataset in enumerate(datasets):
        arms = parse_cold_arms(
            ",".join(a for a in args.arms.split(",") if dataset == "simulator" or a != "oracle"),
            dataset,
        )
        path = args.movielens if dataset == "movielens" else None
        start, runs = time.monotonic(), []
        for seed in seeds:
            runs.append(run_seed(spark, settings, dataset, path, seed, args.repeats, arms))
            seconds = round(time.monotonic() - start, 1)
            done[dataset] = section(dataset, runs, arms, k) + f"\n\nWall time: {seconds} s."
            figures[dataset] = {
                "seconds": seconds,
                f"cold_recall@{k}": {
                    a: _mean([x[f"recall@{k}"] for r in runs for x in r["results"][a]])
                    for a in arms
                },
            }
            todo = [f"{dataset} seeds {seeds[len(runs) :]}"] if len(runs) < len(seeds) else []
            todo += datasets[n + 1 :]
            minutes = round((time.monotonic() - total) / 60, 1)
            _write(Path(args.out), command, minutes, done, todo)
    minutes = round((time.monotonic() - total) / 60, 1)
    out = os.path.relpath(args.out, REPO)  # the repository-relative path, not this machine's
    print(json.dumps({"minutes": minutes, "repeats": args.repeats, "out": out, **figures}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
