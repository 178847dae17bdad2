"""Instruction refinement (SampleLLM eq. 4) and the stored instruction.

    coldstart synthesize --ds D --refine-instruction

runs I_{t+1} = LLM(I_t, docs, samples) for ``synthesize.refine_rounds``
rounds (at most 5). The request asks for reasoning first (chain of thought)
and keeps only the final ``instruction``. Then every candidate I_0..I_T is
scored by a small augmentation (paper section 2.3's selection): the same
``synthesize.select_requests`` profile requests (same exemplars, same seeds)
under each instruction, scored by ``augmentation_score``; the best one is in
force, ties going to the later round. Every round is stored with its SHA-256
and score in ``<warehouse>/stage/instructions/<prompt_version>.json``; daily
runs read the selected instruction and never refine on their own, so a day's
prompt only changes when someone asked for it.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Mapping, Sequence
from typing import Any

from jobs.platform import fs
from jobs.platform.errors import LLMError
from llm_client import cache, prompts, schemas
from llm_client.client import ClientConfig, LLMClient, LLMRequest

log = logging.getLogger(__name__)


def store_path(warehouse: str, version: str) -> str:
    return f"{warehouse.rstrip('/')}/stage/instructions/{version}.json"


def load_stored(warehouse: str, version: str) -> dict[str, Any] | None:
    return fs.read_json(store_path(warehouse, version))


def prompts_in_force(warehouse: str, version: str) -> prompts.PromptSet:
    """The template prompts with the selected stored instruction (the last round when
    the store predates selection), if any."""
    base = prompts.load_prompts(version)
    stored = load_stored(warehouse, version)
    if not stored or not stored.get("rounds"):
        log.info("instruction: template %s (no stored refinement)", version)
        return base
    chosen = stored.get("selected", stored["rounds"][-1]["round"])
    by_round = {r["round"]: r for r in stored["rounds"]}
    if chosen not in by_round:
        raise LLMError(f"{store_path(warehouse, version)}: selected round {chosen} not stored")
    pick = by_round[chosen]
    if prompts.text_hash(pick["instruction"]) != pick["hash"]:
        raise LLMError(f"{store_path(warehouse, version)}: round {pick['round']} hash mismatch")
    log.info("instruction: stored round %d hash %s", pick["round"], pick["hash"][:12])
    return base.with_instruction(pick["instruction"])


def augmentation_score(
    docs: Sequence[Any], asked: int, samples: Sequence[Mapping[str, Any]],
    exemplars: Sequence[Sequence[Mapping[str, Any]]],
) -> dict[str, float]:  # fmt: skip
    """Kept share x (1 - mean total-variation distance of the profile-field marginals
    between the kept profiles and the real ``samples``).

    A candidate instruction must make the model write profiles that pass
    validation (not copies of the exemplars shown) and look drawn from the same
    population; 0 when nothing is kept.
    """
    from collections import Counter

    from jobs.platform import schema as S

    kept: list[dict[str, Any]] = []
    for doc, shown in zip(docs, exemplars, strict=True):
        keys = [schemas.profile_key(e) for e in shown]
        kept += schemas.validate_profiles(doc, seed_keys=keys).items if doc is not None else []
    if not kept or not samples:
        return {"score": 0.0, "kept_share": 0.0, "tvd": 1.0}
    tvds = []
    for f in S.PROFILE_FIELDS:
        real, syn = Counter(str(x[f]) for x in samples), Counter(str(x[f]) for x in kept)
        tvds.append(0.5 * sum(abs(real[v] / len(samples) - syn[v] / len(kept))
                              for v in set(real) | set(syn)))  # fmt: skip
    share, tvd = min(1.0, len(kept) / max(asked, 1)), sum(tvds) / len(tvds)
    return {"score": round(share * (1 - tvd), 6), "kept_share": round(share, 6),
            "tvd": round(tvd, 6)}  # fmt: skip


def select_round(history: Sequence[Mapping[str, Any]]) -> int:
    """The round with the best ``score``; ties go to the later (more refined) round."""
    return max(history, key=lambda r: (r.get("score", 0.0), r["round"]))["round"]


def _save(warehouse: str, version: str, doc: Mapping[str, Any]) -> None:
    fs.write_json(store_path(warehouse, version), doc, indent=1, sort_keys=False)


def refine(
    cfg: ClientConfig,
    base: prompts.PromptSet,
    samples: Sequence[Mapping[str, Any]],
    rounds: int,
    warehouse: str,
    seed: int,
    *,
    select_requests: int = 0,
    exemplars_per_request: int = 10,
    rows_per_request: int = 5,
) -> prompts.PromptSet:
    """Run the rounds one after another (each needs the previous), score every round
    with ``select_requests`` profile requests (0: no selection, the last round is in
    force), store them all with the selected round."""
    fmt = schemas.response_format(schemas.REFINE_SCHEMA_NAME, schemas.refine_schema())
    # Bounded schema, so max_tokens from it: decoding ends before the cap.
    cap = schemas.max_tokens_for(schemas.refine_schema(), 4096)
    current = base.instruction
    history = [{"round": 0, "instruction": current, "hash": prompts.text_hash(current)}]

    async def go() -> None:
        nonlocal current
        async with LLMClient(cfg, seed=seed) as client:
            await client.ready()
            for t in range(1, rounds + 1):
                msgs = prompts.refine_messages(base, current, samples)
                sampling = {"temperature": 0.2, "seed": seed + t, "n": 1, "max_tokens": cap}
                key = cache.request_hash(cfg.model, base.version, msgs, sampling, fmt)
                result = await client.complete(LLMRequest(key, msgs, sampling, fmt))
                if not result.success:
                    raise LLMError(f"instruction refinement round {t} failed: {result.error}")
                doc = result.parsed[0]
                if not isinstance(doc, dict) or not isinstance(doc.get("instruction"), str):
                    raise LLMError(f"instruction refinement round {t}: reply lacks 'instruction'")
                current = doc["instruction"].strip()
                history.append(
                    {"round": t, "instruction": current, "hash": prompts.text_hash(current)}
                )

    async def score() -> None:
        shown = [
            [samples[(r * exemplars_per_request + j) % len(samples)]
             for j in range(min(exemplars_per_request, len(samples)))]
            for r in range(select_requests)
        ]  # fmt: skip
        pfmt = schemas.response_format(
            schemas.PROFILE_SCHEMA_NAME, schemas.profile_schema(rows_per_request)
        )
        requests = []
        for h in history:
            pset = base.with_instruction(h["instruction"])
            for r, ex in enumerate(shown):
                msgs = prompts.profile_messages(pset, ex, rows_per_request)
                sampling = {"temperature": 0.9, "seed": seed + 1000 + r, "n": 1}
                key = cache.request_hash(cfg.model, pset.prompt_version, msgs, sampling, pfmt)
                requests.append(LLMRequest(key, msgs, sampling, pfmt))
        async with LLMClient(cfg, seed=seed) as client:
            results = await client.run(requests, label="instruction selection")
        for i, h in enumerate(history):
            part = results[i * len(shown) : (i + 1) * len(shown)]
            docs = [r.parsed[0] if r.success and r.parsed else None for r in part]
            h.update(augmentation_score(docs, rows_per_request * len(shown), samples, shown))

    asyncio.run(go())
    doc: dict[str, Any] = {"model": cfg.model, "rounds": history}
    if select_requests > 0:
        asyncio.run(score())
        doc["selected"] = select_round(history)
        doc["selection"] = {"requests_per_round": select_requests, "rule": "max score, "
                            "ties to the later round", "score": augmentation_score.__doc__
                            .split(".")[0].strip()}  # fmt: skip
    doc["created_at"] = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    _save(warehouse, base.version, doc)
    chosen = {h["round"]: h for h in history}[doc.get("selected", rounds)]
    log.info("instruction refined: %d rounds, round %d in force (hash %s)", rounds,
             chosen["round"], chosen["hash"][:12])  # fmt: skip
    return base.with_instruction(chosen["instruction"])
