"""A real small LLM on the CPU (endpoint local-llm) beside the stand-in. Prints JSON.

    python benchmarks/llm_local.py                    # ~4-6 min on 2 busy cores
    python benchmarks/llm_local.py --requests 2       # quicker
    python benchmarks/llm_local.py --prompts          # + prompt variants (copying)

Throughput: the same profile-synthesis requests (5 rows each, 10 exemplars,
schema-guided) at concurrency 1, 2 and 4 against llama.cpp's server with the
packaged Gemma 3 270M Q4_K_M and against the offline stand-in, then one round
of click requests (the synthetic rows). Reported per run: completion
tokens/s, requests/s, seconds per kept row (profiles: valid, new, distinct;
clicks: valid judgements), valid-JSON rate, drops by reason.

``--prompts`` measures countermeasures for verbatim copying of exemplars on
the real model (exemplar count, order, temperature, naming fields that must
differ): valid-JSON rate, rows kept, drops by reason, distinct rows.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from configs.llm import LLMSettings
from jobs.platform import schema as S
from llm_client import prompts, schemas
from llm_client.cache import request_hash
from llm_client.client import ClientConfig, LLMClient, LLMRequest
from llm_client.local_llm import local_llm_server
from llm_client.standin import standin_server

ROWS, EXEMPLARS = 5, 10
APPS = [
    {"app_id": f"app-{i:03d}", "category": c, "description": d, "price": p, "rating": r}
    for i, (c, d, p, r) in enumerate([
        ("games", "a relaxing puzzle game with daily levels", 0.0, 4.3),
        ("finance", "track spending and budgets across accounts", 2.99, 4.0),
        ("fitness", "home workouts in ten minutes a day", 0.0, 4.5),
        ("education", "learn a language with short lessons", 0.0, 4.6),
    ])
]  # fmt: skip
DIFFER = (
    "Each new profile must differ from every example user in at least three fields, "
    "including interest and age_band."
)


def seeds(n: int, rng: random.Random) -> list[dict[str, str]]:
    return [{f: rng.choice(S.VOCAB[f]) for f in S.PROFILE_FIELDS} for _ in range(n)]


def profile_reqs(
    model: str,
    n: int,
    *,
    a: int = EXEMPLARS,
    temp: float = 0.9,
    order: str = "as_is",
    differ: bool = False,
    seed: int = 1,
) -> list[tuple]:
    """(request, exemplar keys) x n: the production prompt, with one knob changed."""
    ps = prompts.load_prompts("v1")
    fmt = schemas.response_format(schemas.PROFILE_SCHEMA_NAME, schemas.profile_schema(ROWS))
    rng = random.Random(seed)
    out = []
    for i in range(n):
        ex = seeds(a, rng)
        if order == "reversed":
            ex = ex[::-1]
        msgs = prompts.profile_messages(ps, ex, ROWS)
        if differ:
            msgs[-1]["content"] += "\n" + DIFFER
        sampling = {
            "temperature": temp,
            "top_p": 0.95,
            "seed": 1000 + i,
            "n": 1,
            "max_tokens": schemas.max_tokens_for(fmt["json_schema"]["schema"], 2048),
        }
        key = request_hash(model, "bench", msgs, sampling, fmt)
        out.append((LLMRequest(key, msgs, sampling, fmt), [schemas.profile_key(e) for e in ex]))
    return out  # fmt: skip


def click_reqs(model: str, profiles: list[dict], n: int) -> list[tuple]:
    ps = prompts.load_prompts("v1")
    out = []
    for i in range(n):
        users = [{"ref": f"u{j}", **p} for j, p in enumerate(profiles[i * 3 : i * 3 + 3])]
        if not users:
            break
        refs, ids = [u["ref"] for u in users], [a["app_id"] for a in APPS]
        fmt = schemas.response_format(schemas.CLICK_SCHEMA_NAME, schemas.click_schema(refs, ids))
        msgs = prompts.click_messages(ps, APPS, users, {"base_ctr": 0.05})
        sampling = {
            "temperature": 0.3,
            "seed": i,
            "n": 1,
            "max_tokens": schemas.max_tokens_for(fmt["json_schema"]["schema"], 2048),
        }
        key = request_hash(model, "bench", msgs, sampling, fmt)
        out.append((LLMRequest(key, msgs, sampling, fmt), (refs, ids)))
    return out  # fmt: skip


async def _send(base_url: str, model: str, reqs: list, conc: int) -> tuple[list, float]:
    cfg = ClientConfig(base_url=base_url, model=model, concurrency=conc, timeout_s=900,
                       max_retries=0, dialect="auto")  # fmt: skip
    async with LLMClient(cfg) as client:
        await client.ready()
        t0 = time.monotonic()
        results = await client.run([r for r, _ in reqs], stop_on_permanent=False)
        return results, time.monotonic() - t0


def score_profiles(reqs: list, results: list, wall: float) -> tuple[dict, list[dict]]:
    drops: Counter = Counter()
    kept: list[dict] = []
    seen: set[tuple] = set()
    valid_json = 0
    for (_, keys), r in zip(reqs, results, strict=True):
        if not r.success:
            drops[schemas.TRUNCATED if r.truncated else "failed"] += 1
            continue
        valid_json += 1
        out = schemas.validate_profiles(r.parsed[0], seed_keys=keys)
        drops.update(out.dropped)
        for item in out.items:
            key = schemas.profile_key(item)
            if key in seen:
                drops["duplicate_across_requests"] += 1
                continue
            seen.add(key)
            kept.append(item)
    return _figures(results, wall, len(kept), valid_json, drops), kept


def score_clicks(reqs: list, results: list, wall: float) -> dict:
    drops: Counter = Counter()
    kept = valid_json = 0
    for (_, (refs, ids)), r in zip(reqs, results, strict=True):
        if not r.success:
            drops[schemas.TRUNCATED if r.truncated else "failed"] += 1
            continue
        valid_json += 1
        out = schemas.validate_clicks(r.parsed[0], refs, ids)
        drops.update(out.dropped)
        kept += len(out.items)
    return _figures(results, wall, kept, valid_json, drops)


def _figures(results: list, wall: float, kept: int, valid_json: int, drops: Counter) -> dict:
    tokens = sum(r.completion_tokens for r in results)
    return {
        "requests": len(results),
        "wall_s": round(wall, 2),
        "completion_tokens_per_s": round(tokens / wall, 1),
        "requests_per_s": round(len(results) / wall, 3),
        "valid_json_rate": round(valid_json / len(results), 3),
        "rows_kept": kept,
        "s_per_kept_row": round(wall / kept, 2) if kept else None,
        "drops": dict(drops),
    }


def throughput(name: str, base_url: str, model: str, n: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    profiles: list[dict] = []
    for conc in (1, 2, 4):
        reqs = profile_reqs(model, n * conc if name == "standin" else n, seed=conc)
        results, wall = asyncio.run(_send(base_url, model, reqs, conc))
        out[f"profiles_c{conc}"], kept = score_profiles(reqs, results, wall)
        profiles += kept
    creqs = click_reqs(model, profiles, n)
    results, wall = asyncio.run(_send(base_url, model, creqs, 2))
    out["clicks_c2"] = score_clicks(creqs, results, wall)
    return out


VARIANTS: dict[str, dict[str, Any]] = {
    "v1_10_exemplars_t0.9": {},
    "3_exemplars": {"a": 3},
    "reversed_order": {"order": "reversed"},
    "temperature_1.3": {"temp": 1.3},
    "differ_in_named_fields": {"differ": True},
    "3_exemplars_differ_t1.1": {"a": 3, "differ": True, "temp": 1.1},
}


def prompt_variants(base_url: str, model: str, n: int) -> dict[str, Any]:
    out = {}
    for name, knobs in VARIANTS.items():
        reqs = profile_reqs(model, n, seed=7, **knobs)
        results, wall = asyncio.run(_send(base_url, model, reqs, 2))
        figs, kept = score_profiles(reqs, results, wall)
        figs["distinct_rows"] = len({schemas.profile_key(k) for k in kept})
        figs["asked_rows"] = n * ROWS
        out[name] = figs
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--requests", type=int, default=3, help="profile requests per level")
    p.add_argument("--prompts", action="store_true", help="also measure prompt variants")
    p.add_argument("--prompt-requests", type=int, default=6)
    p.add_argument("--skip-throughput", action="store_true")
    args = p.parse_args()
    report: dict[str, Any] = {}
    llm = LLMSettings(endpoint="local-llm")
    with local_llm_server(llm) as srv, standin_server(["--no-preload"]) as stand:
        report["model"] = srv.identity
        if not args.skip_throughput:
            report["local_llm"] = throughput("local", srv.base_url, srv.model, args.requests)
            report["standin"] = throughput("standin", stand.base_url, "offline-standin",
                                           args.requests)  # fmt: skip
        if args.prompts:
            report["prompt_variants"] = prompt_variants(
                srv.base_url, srv.model, args.prompt_requests
            )
    print(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
