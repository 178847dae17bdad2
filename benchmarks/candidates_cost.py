"""What candidates mode (ColdLLM / LLM-Ins) costs: LLM calls grow with cold apps x N.

    python benchmarks/candidates_cost.py                 # N 25,50,100,200; cold 0.1,0.2
    python benchmarks/candidates_cost.py --n 50 --cold-fractions 0.2

On one simulated world (``evaluate.cold_start`` sizes, seed 1), for every cold
share and every N (``candidates_per_app``): the content filter
(``content_candidates``) and the click judgements of the candidate pairs
(``candidate_stage1``) against the configured endpoint (the offline stand-in
by default, which is NOT an LLM). Writes ``results/candidates_cost.md`` and
prints one JSON object: per setting the cold apps, pairs, requests, calls per
cold app, rows kept and seconds, and the fit of requests ~ cold apps x
ceil(N / users per request).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shlex
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", default=None, help="config file (default: configs/local.yaml)")
    p.add_argument("--n", default="25,50,100,200", help="candidates per cold app")
    p.add_argument("--cold-fractions", default="0.1,0.2")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "candidates_cost.md"))
    return p


def main() -> int:
    from configs.settings import load_config
    from jobs.evaluation.cold_data import eval_data, load_world, split_cold
    from jobs.evaluation.cold_start import content_candidates
    from jobs.evaluation.synth import candidate_stage1
    from jobs.platform import schema as S
    from jobs.platform.common import setup_logging
    from jobs.platform.spark import get_spark
    from llm_client.endpoint import open_endpoint
    from recmodel.text_embed import description_vectors
    from recmodel.two_tower import ItemCatalog

    args = _parser().parse_args()
    setup_logging()
    settings = load_config(args.config)
    cs = settings.evaluate.cold_start
    b = cs.candidate_users_per_request
    spark = get_spark(settings.spark)
    world = load_world(spark, settings, "simulator", None, args.seed)
    emb = description_vectors(world.catalog, cs.text_table)
    num = world.num_fields
    catalog = ItemCatalog(world.catalog[[S.APP_ID, S.CATEGORY, *num]], (S.CATEGORY,), num,
                          emb.vectors)  # fmt: skip
    rows: list[dict] = []
    total = time.monotonic()
    with open_endpoint(settings.llm) as ep:
        for frac in [float(x) for x in args.cold_fractions.split(",")]:
            split = split_cold(world, args.seed, frac, cs.warm_test_fraction)
            data = eval_data(world, split)
            for n in [int(x) for x in args.n.split(",")]:
                ev = settings.evaluate.model_copy(
                    update={"cold_start": cs.model_copy(update={"candidates_per_app": n})}
                )
                s = settings.model_copy(update={"evaluate": ev})
                start = time.monotonic()
                pairs, _ = content_candidates(world, split, catalog, s, args.seed)
                filt = time.monotonic() - start
                s1 = candidate_stage1(data, s, ep, pairs, users_per_request=b, seed=args.seed)
                rows.append({
                    "cold_fraction": frac, "cold_apps": len(split.cold_apps), "n": n,
                    "pairs": s1.figures["pairs"], "requests": s1.figures["clicks_requests"],
                    "expected_requests": len(split.cold_apps) * math.ceil(n / b),
                    "calls_per_cold_app": s1.figures["calls_per_cold_app"],
                    "failed": s1.figures["clicks_failed"], "rows": s1.figures["rows"],
                    "filter_seconds": round(filt, 1),
                    "judge_seconds": round(time.monotonic() - start - filt, 1),
                })  # fmt: skip
                print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
        endpoint = f"{ep.model}" + (" (OFFLINE STAND-IN, not an LLM)" if ep.is_standin else "")
    minutes = round((time.monotonic() - total) / 60, 1)
    command = "python benchmarks/candidates_cost.py " + shlex.join(sys.argv[1:])
    exact = all(r["requests"] == r["expected_requests"] for r in rows)
    lines = [
        "# Candidates mode: LLM calls per cold app (generated)",
        "",
        f"Command: `{command}`; {minutes} min on {os.cpu_count()} CPU cores. World: "
        f"{world.source}; {len(split.train[S.USER_ID].unique())} training users. Endpoint: "
        f"{endpoint}. Users per request: {b} (one app per request). Requests = cold apps x "
        f"ceil(N / {b}) in every setting: {exact}. The filter is one content-tower fit plus a "
        "users x cold apps matrix product; it does not call the LLM.",
        "",
        "| cold share | cold apps | N | pairs | requests | calls / cold app | failed | rows "
        "| filter s | judge s |",
        "|---|---|---|---|---|---|---|---|---|---|",
        *[
            f"| {r['cold_fraction']} | {r['cold_apps']} | {r['n']} | {r['pairs']} | "
            f"{r['requests']} | {r['calls_per_cold_app']} | {r['failed']} | {r['rows']} | "
            f"{r['filter_seconds']} | {r['judge_seconds']} |"
            for r in rows
        ],
        "",
    ]
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text("\n".join(lines), encoding="utf-8")
    out = os.path.relpath(args.out, REPO)
    print(json.dumps({"minutes": minutes, "out": out, "requests_equal_apps_x_ceil_n_over_b": exact,
                      "settings": rows}))  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
