"""``coldstart evaluate``: the paper's evaluation on the simulator or MovieLens-100K.

    coldstart evaluate --dataset simulator --out runs/eval-sim --repeats 10
    coldstart evaluate --dataset movielens --path ../shared/data/ml-100k
    coldstart evaluate --dataset simulator --path ./warehouse --arms original,samplellm,no_is

Splits the data 8:1:1 (seeded), builds every arm's synthetic rows (stage 1 by
the configured LLM endpoint or an SDV synthesizer; stage 2 by the pipeline's
weighting), trains the recmodel DNN ``--repeats`` times per arm with
different seeds and writes a run folder: ``report.md`` / ``report.html``
(results in the paper's layout with t-tests against the best baseline,
similarity, privacy, cold-start lift, figures) and ``summary.json``.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from configs.evaluation import ALL_ARMS, ARMS, COLD_ARMS
from jobs.platform.errors import InputError

if TYPE_CHECKING:
    from configs.settings import Settings
    from jobs.evaluation.arms import ArmBuilder, ArmData
    from jobs.evaluation.data import EvalData
    from llm_client.endpoint import Endpoint

log = logging.getLogger(__name__)
SETTINGS = ("augment", "mle")
SCORE_KEYS = ("auc", "logloss", "cold_auc", "cold_logloss")
LOWER_IS_BETTER = {"logloss", "cold_logloss"}


def parse_arms(text: str | None, default: Sequence[str]) -> tuple[str, ...]:
    """``a,b,c`` -> arms in canonical order; InputError naming unknown ones."""
    if not text:
        return tuple(a for a in ARMS if a in default)
    asked = [a.strip() for a in text.split(",") if a.strip()]
    bad = [a for a in asked if a not in ALL_ARMS]
    if bad or not asked:
        raise InputError(f"--arms {text!r}: unknown {bad}; choose from {', '.join(ALL_ARMS)}")
    return tuple(a for a in ALL_ARMS if a in asked)


def summarise(scores: dict[str, list[Any]], baselines: Sequence[str]) -> dict[str, dict]:
    """Mean/std per arm and metric; two-sided t-test p against the best baseline.

    The best baseline is chosen per metric (highest mean AUC, lowest mean
    logloss) among ``baselines`` other than the arm itself, as in the paper.
    """
    from jobs.evaluation import metrics

    values = {a: {k: [getattr(s, k) for s in ss] for k in SCORE_KEYS} for a, ss in scores.items()}
    table: dict[str, dict] = {
        a: {k: metrics.mean_std(v[k]) for k in SCORE_KEYS} for a, v in values.items()
    }
    for a, v in values.items():  # repeats behind each mean: a non-finite one is not hidden
        table[a].update({f"n_{k}": metrics.finite_count(v[k]) for k in SCORE_KEYS})
        table[a]["repeats"] = len(scores[a])
    for key in SCORE_KEYS:
        sign = 1 if key in LOWER_IS_BETTER else -1
        for arm in table:
            cands = [
                b for b in baselines if b in table and b != arm and table[b][key][0] is not None
            ]
            if not cands:
                continue
            best = min(cands, key=lambda b: sign * table[b][key][0])
            clean = [[x for x in values[a][key] if x is not None] for a in (arm, best)]
            table[arm][f"p_{key}"] = metrics.ttest_pvalue(*clean)
            table[arm][f"best_{key}"] = best
    return table


def run_utility(
    data: EvalData, built: dict[str, ArmData], repeats: int, settings: Settings
) -> dict[str, dict[str, list[Any]]]:
    """Augmentation (real + synthetic) and MLE (synthetic only) scores per arm and seed."""
    from jobs.evaluation.downstream import fit_encoder, train_and_score, training_frame

    cfg = settings.evaluate
    encoder = fit_encoder(data)
    out: dict[str, dict[str, list[Any]]] = {s: {} for s in SETTINGS}
    for name, arm in built.items():
        frames = {"augment": training_frame(data, data.train, arm.syn, arm.weights)}
        if arm.syn is not None:
            frames["mle"] = training_frame(data, None, arm.syn, arm.weights)
        for setting, frame in frames.items():
            start = time.monotonic()
            out[setting][name] = [
                train_and_score(data, encoder, frame, cfg, cfg.seed + 1_000 * i)
                for i in range(repeats)
            ]
            log.info(
                "evaluate %s %s: %d runs in %.1fs", name, setting, repeats, time.monotonic() - start
            )
    return out


def similarity_privacy(data: EvalData, built: dict[str, ArmData], settings: Settings) -> dict:
    """SDMetrics quality and DCR / exact copies per synthetic arm (what the model sees)."""
    from jobs.evaluation import metrics
    from jobs.evaluation.arms import present_fields
    from jobs.evaluation.data import LABEL

    cfg, out = settings.evaluate, {}
    for name, arm in built.items():
        if arm.syn is None:
            continue
        rows = arm.resampled(cfg.seed)
        cat, num = present_fields(data, rows)
        q = metrics.quality(
            data.train, rows, [*cat, LABEL], num, max_rows=cfg.quality_max_rows, seed=cfg.seed
        )
        p = metrics.privacy(data.train, rows, cat, num, max_rows=cfg.dcr_max_rows, seed=cfg.seed)
        out[name] = {"quality": q.__dict__, "privacy": p.__dict__, "fields": [*cat, *num]}
    return out


def header_blocks(
    data: EvalData, endpoint: Endpoint | None, arms: Sequence[str], args: dict
) -> list:
    from jobs.evaluation.report import Block

    blocks = [Block("h1", f"coldstart evaluation: {data.name}")]
    if endpoint is None:
        who = "Stage 1 endpoint: none (no LLM arm in this run)."
    elif endpoint.is_standin:
        who = (
            f"Stage 1 endpoint: {endpoint.base_url}, model {endpoint.model} - the OFFLINE "
            "STAND-IN, NOT AN LLM. Every LLM arm here (SampleLLM, -CS, -IS) and the -LLM/LLM "
            "comparison measure the deterministic stand-in (exemplar recombination + "
            "sentence-embedding click judgements), not a language model."
        )
    else:
        who = f"Stage 1 endpoint: {endpoint.base_url}, model {endpoint.model}."
    blocks.append(Block("p", who))
    facts = ", ".join(f"{k} {v}" for k, v in data.facts.items())
    blocks.append(Block("p", f"Data: {data.source}; {facts}. Split 8:1:1 (seed {args['seed']})."))
    blocks.append(
        Block(
            "p",
            f"Command: {args['command']}. Arms: {', '.join(arms)}. Repeats per arm: "
            f"{args['repeats']} (recmodel DNN, different seeds). Written {args['when']}.",
        )
    )
    return blocks


def table_blocks(utility: dict, arms: Sequence[str]) -> list:
    from jobs.evaluation.report import Block, results_rows

    head = ["Arm", "AUC (mean ± std)", "p (AUC)", "Logloss (mean ± std)", "p (logloss)"]
    blocks = [Block("h2", "Augmentation utility: real + synthetic (paper Table 2)")]
    blocks.append(
        Block("table", header=head, rows=results_rows(arms, utility["augment"], "auc", "logloss"))
    )
    blocks.append(
        Block("h2", "Cold-start items: held-out impressions, with vs without augmentation")
    )
    blocks.append(
        Block(
            "table",
            header=head,
            rows=results_rows(arms, utility["augment"], "cold_auc", "cold_logloss"),
        )
    )
    blocks.append(Block("h2", "MLE utility: synthetic only (paper Table 3)"))
    blocks.append(
        Block("table", header=head, rows=results_rows(arms, utility["mle"], "auc", "logloss"))
    )
    blocks.append(
        Block("p", "p: two-sided t-test (pooled variance) against the best baseline per metric "
              "(augmentation: Original, GaussianCopula, CTGAN, TVAE; MLE: the SDV synthesizers).")
    )  # fmt: skip
    return blocks


def quality_blocks(sim: dict, built: dict[str, ArmData]) -> list:
    from jobs.evaluation.report import Block

    rows, undefined_pairs = [], False
    for name, s in sim.items():
        q, p = s["quality"], s["privacy"]
        undefined_pairs |= q["column_pair_trends"] is None
        pairs = "n/a" if q["column_pair_trends"] is None else f"{q['column_pair_trends']:.4f}"
        rows.append(
            [
                built[name].label,
                f"{q['score']:.4f}",
                f"{q['column_shapes']:.4f}",
                pairs,
                f"{p['dcr_mean']:.4f}",
                f"{p['exact_copy_rate']:.4f}",
                str(len(built[name].syn)),
                ", ".join(s["fields"]),
            ]
        )
    head = [
        "Arm",
        "SDV quality",
        "Column shapes",
        "Column pair trends",
        "DCR mean",
        "Exact copies",
        "Rows",
        "Fields (DCR, copies, quality)",
    ]
    text = (
        "On the fields each generator writes (last column: arms that write different fields "
        "are compared on different columns), against real training rows; weighted arms are "
        "importance-resampled first. DCR: Gower distance to the closest training row "
        "(0 = identical). Exact copies: share of synthetic rows equal to a training row."
    )
    if undefined_pairs:
        text += (
            " Column pair trends n/a: no column pair of the real sample reaches SDMetrics' "
            "association threshold, so that property is undefined (the score is the shapes)."
        )
    return [
        Block("h2", "Similarity (SDMetrics QualityReport, paper Tables 4/6) and privacy"),
        Block("p", text),
        Block("table", header=head, rows=rows),
    ]  # fmt: skip


def stage1_blocks(built: dict[str, ArmData]) -> list:
    """Requests sent, failed for good and items dropped per LLM arm: fewer rows, said so."""
    from jobs.evaluation.report import Block

    rows = []
    for arm in built.values():
        f = arm.figures
        tasks = sorted(k[: -len("_requests")] for k in f if k.endswith("_requests"))
        if not tasks:
            continue
        sent = "; ".join(f"{t} {f[f'{t}_requests']} (failed {f.get(f'{t}_failed', 0)})"
                         for t in tasks)  # fmt: skip
        drops = ", ".join(f"{k} {v}" for k, v in sorted((f.get("dropped") or {}).items()))
        rows.append([arm.label, sent, drops or "none", str(f.get("rows", ""))])
    if not rows:
        return []
    return [
        Block("h2", "Stage 1 requests per LLM arm"),
        Block(
            "p",
            "Failed: requests that failed for good after retries (their rows are missing "
            "from the arm; the run aborts above llm.max_failure_share). Drops: items of "
            "answered requests that validation removed.",
        ),
        Block("table", header=["Arm", "Requests (failed)", "Drops", "Rows"], rows=rows),
    ]


def figure_blocks(
    data: EvalData, built: dict[str, ArmData], builder: ArmBuilder, out: Path, seed: int
) -> list:
    from jobs.evaluation import report
    from jobs.evaluation.arms import present_fields
    from jobs.evaluation.report import Block

    cfg_points = builder.settings.evaluate.tsne_points
    blocks: list = [Block("h2", "Figures")]
    for i, fg in enumerate(builder.groups.values()):
        name = f"heatmap_{i}.png"
        merged = [g for g in fg.groups if len(g) > 1]
        report.heatmap(fg.matrix, fg.fields, out / name, f"merged groups: {merged}")
        blocks.append(
            Block("img", "Interaction heatmap of the real-data DNN (stage 2 groups)", (name,))
        )
    syn_arms = [
        (a.label, a.resampled(seed), *present_fields(data, a.syn))
        for a in built.values()
        if a.syn is not None
    ]
    if syn_arms:
        report.tsne_grid(data.train, syn_arms, out / "tsne.png", points=cfg_points, seed=seed)
        blocks.append(
            Block(
                "img", "t-SNE of real vs synthetic rows per arm (paper Figures 5/7)", ("tsne.png",)
            )
        )
    weighted = [a for a in built.values() if a.weights is not None]
    if weighted:
        report.weight_histogram(weighted, out / "weights.png")
        blocks.append(Block("img", "Stage-2 importance weights", ("weights.png",)))
    for a in weighted:
        rows = report.alignment_table(data.train, a, a.stage2["fields"], data.numeric)
        name = f"alignment_{a.name}.png"
        report.alignment_figure(rows, out / name, f"{a.label}: marginals before/after stage 2")
        blocks.append(
            Block(
                "img",
                f"{a.label}: alignment before/after (ESS share {a.stage2['ess_fraction']})",
                (name,),
            )
        )
        blocks.append(Block("table", header=["Field", "TVD before", "TVD after"],
                            rows=[[f, f"{b:.4f}", f"{w:.4f}"] for f, b, w in rows]))  # fmt: skip
    return blocks


def arm_summary(arm: ArmData) -> dict[str, Any]:
    rows = None if arm.syn is None else len(arm.syn)
    return {"generator": arm.generator, "rows": rows, "stage1": arm.figures, "stage2": arm.stage2}


def evaluate(
    settings: Settings,
    dataset: str,
    path: str | None,
    out: Path,
    arms: tuple[str, ...],
    repeats: int,
    command: str,
) -> dict[str, Any]:
    """The whole evaluation; returns the summary written to ``out/summary.json``."""
    from jobs.evaluation import data as D
    from jobs.evaluation import report
    from jobs.evaluation.arms import BASELINES, ArmBuilder, local_arm, maybe_endpoint
    from jobs.platform.spark import get_spark

    spark = get_spark(settings.spark)
    cfg = settings.evaluate
    if cfg.threads:
        import torch

        # Every model here is small (label models, the Hessian DNN, the downstream DNN).
        torch.set_num_threads(cfg.threads)
    start = time.monotonic()
    data = D.load(spark, settings, dataset, path)
    log.info("evaluate: %s loaded in %.1fs: %s", dataset, time.monotonic() - start, data.facts)
    n_syn = max(10, round(cfg.synthetic_fraction * len(data.train)))
    with maybe_endpoint(settings, arms) as endpoint:
        builder = ArmBuilder(spark, data, settings, endpoint, n_syn)
        built = {}
        for a in arms:
            start = time.monotonic()
            if a == "samplellm_local":  # its own endpoint (a real model) and budget
                built[a] = local_arm(spark, data, settings, min(cfg.local_rows, n_syn))
            else:
                built[a] = builder.build(a)
            built[a].figures["build_seconds"] = round(time.monotonic() - start, 1)
            log.info("evaluate: arm %s built in %.1fs", a, time.monotonic() - start)
    out.mkdir(parents=True, exist_ok=True)
    raw = run_utility(data, built, repeats, settings)
    utility = {
        "augment": summarise(raw["augment"], BASELINES),
        "mle": summarise(raw["mle"], [b for b in BASELINES if b != "original"]),
    }
    sim = similarity_privacy(data, built, settings)
    when = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    args = {"seed": cfg.seed, "command": command, "repeats": repeats, "when": when}
    blocks = header_blocks(data, endpoint, arms, args) + table_blocks(utility, arms)
    blocks += stage1_blocks(built) + quality_blocks(sim, built)
    blocks += figure_blocks(data, built, builder, out, cfg.seed)
    ep = None
    if endpoint is not None:
        ep = {"base_url": endpoint.base_url, "model": endpoint.model}
        ep["standin"] = endpoint.is_standin
    summary = {
        "dataset": data.name,
        "source": data.source,
        "facts": data.facts,
        "endpoint": ep,
        "arms": {a: arm_summary(b) for a, b in built.items()},
        "utility": utility,
        "runs": {s: {a: [x.__dict__ for x in v] for a, v in d.items()} for s, d in raw.items()},
        "similarity_privacy": sim,
        "repeats": repeats,
    }
    summary["files"] = report.write(out, blocks, summary, f"coldstart evaluation: {data.name}")
    return summary


def main(argv: Sequence[str] | None = None) -> int:
    """``coldstart evaluate``: write a report run folder; print its path."""
    import shlex
    import sys

    from configs.settings import load_config
    from jobs.platform.common import RunLog, job_parser

    parser = job_parser(
        "evaluate", "Paper-style evaluation report of the synthetic data.", with_ds=False
    )
    parser.add_argument("--dataset", required=True, choices=("simulator", "movielens"))
    parser.add_argument(
        "--path", default=None, help="simulator: a warehouse; movielens: the ml-100k directory"
    )
    parser.add_argument(
        "--out", default=None, help="run folder (default: evaluate.runs_dir/<dataset>-<time>)"
    )
    parser.add_argument(
        "--repeats", type=int, default=None, help="trainings per arm (default: evaluate.repeats)"
    )
    parser.add_argument(
        "--arms",
        default=None,
        help=f"comma list; paper: {','.join(ARMS)}; cold-start: {','.join(COLD_ARMS)}",
    )
    parser.add_argument(
        "--protocol",
        choices=("paper", "cold-start"),
        default="paper",
        help="paper: 8:1:1 split, AUC tables; cold-start: 20%% of apps held out, Recall@20",
    )
    parser.add_argument(
        "--seed", type=int, default=None, help="every seed of the run (default: evaluate.seed)"
    )
    args = parser.parse_args(argv)
    settings = load_config(args.config)
    if args.seed is not None:
        settings = settings.model_copy(
            update={"evaluate": settings.evaluate.model_copy(update={"seed": args.seed})}
        )
    cfg = settings.evaluate
    repeats = cfg.repeats if args.repeats is None else args.repeats
    if repeats < 2:
        parser.error(f"--repeats {repeats}: need at least 2 for a std and a t-test")
    if args.protocol == "cold-start":
        return _cold_start_main(args, settings, repeats, argv)
    arms = parse_arms(args.arms, cfg.arms)
    if args.path and not Path(args.path).exists():
        raise InputError(f"--path {args.path}: no such directory")
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S")
    out = Path(args.out) if args.out else Path(cfg.runs_dir) / f"{args.dataset}-{stamp}"
    run = RunLog("evaluate")
    command = "coldstart evaluate " + shlex.join(sys.argv[2:] if argv is None else list(argv))
    summary = evaluate(settings, args.dataset, args.path, out, arms, repeats, command)
    run.add(
        dataset=args.dataset, arms=list(arms), repeats=repeats, report=summary["files"]["markdown"]
    )
    run.emit()
    print(f"evaluation report: {summary['files']['markdown']} ({summary['files']['html']})")
    return 0


def parse_cold_arms(text: str | None, dataset: str) -> tuple[str, ...]:
    """Cold-start arms in canonical order (default: all; oracle on the simulator only)."""
    if not text:
        return tuple(a for a in COLD_ARMS if dataset == "simulator" or a != "oracle")
    asked = [a.strip() for a in text.split(",") if a.strip()]
    bad = [a for a in asked if a not in COLD_ARMS]
    if bad or not asked:
        raise InputError(f"--arms {text!r}: unknown {bad}; choose from {', '.join(COLD_ARMS)}")
    return tuple(a for a in COLD_ARMS if a in asked)


def _cold_start_main(args: Any, settings: Settings, repeats: int, argv: Sequence[str] | None):
    import shlex
    import sys

    from jobs.evaluation.cold_start import evaluate_cold_start
    from jobs.platform.common import RunLog

    arms = parse_cold_arms(args.arms, args.dataset)
    if args.path and not Path(args.path).exists():
        raise InputError(f"--path {args.path}: no such directory")
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S")
    out = (
        Path(args.out)
        if args.out
        else Path(settings.evaluate.runs_dir) / (f"{args.dataset}-cold-{stamp}")
    )
    run = RunLog("evaluate")
    command = "coldstart evaluate " + shlex.join(sys.argv[2:] if argv is None else list(argv))
    seed = settings.evaluate.seed
    summary = evaluate_cold_start(
        settings, args.dataset, args.path, out, arms, repeats, seed, command
    )
    run.add(dataset=args.dataset, protocol="cold-start", arms=list(arms), repeats=repeats)
    run.emit()
    k = summary["k"]
    for arm, row in summary["cold_recall_summary"].items():
        print(f"{arm}: cold recall@{k} {row['mean']:.4f} +- {row['sd']:.4f}")
    print(f"cold-start summary: {out / 'summary.json'}")
    return 0


if __name__ == "__main__":
    import sys

    from jobs.cli import main as cli_main

    sys.exit(cli_main(["evaluate", *sys.argv[1:]]))
