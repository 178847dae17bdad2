"""Instruction refinement (SampleLLM eq. 4) and the stored instruction.

    coldstart synthesize --ds D --refine-instruction

runs I_{t+1} = LLM(I_t, docs, samples) for ``synthesize.refine_rounds``
rounds (at most 5). The request asks for reasoning first (chain of thought)
and keeps only the final ``instruction``. Every round is stored with its
SHA-256 in ``<warehouse>/stage/instructions/<prompt_version>.json``; daily
runs read the last stored instruction and never refine on their own, so a
day's prompt only changes when someone asked for it.
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
    """The template prompts with the last stored refined instruction, if any."""
    base = prompts.load_prompts(version)
    stored = load_stored(warehouse, version)
    if not stored or not stored.get("rounds"):
        log.info("instruction: template %s (no stored refinement)", version)
        return base
    last = stored["rounds"][-1]
    if prompts.text_hash(last["instruction"]) != last["hash"]:
        raise LLMError(f"{store_path(warehouse, version)}: round {last['round']} hash mismatch")
    log.info("instruction: stored refinement round %d hash %s", last["round"], last["hash"][:12])
    return base.with_instruction(last["instruction"])


def _save(warehouse: str, version: str, doc: Mapping[str, Any]) -> None:
    fs.write_json(store_path(warehouse, version), doc, indent=1, sort_keys=False)


def refine(
    cfg: ClientConfig,
    base: prompts.PromptSet,
    samples: Sequence[Mapping[str, Any]],
    rounds: int,
    warehouse: str,
    seed: int,
) -> prompts.PromptSet:
    """Run the rounds one after another (each needs the previous); store them all."""
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

    asyncio.run(go())
    now = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    _save(warehouse, base.version, {"model": cfg.model, "created_at": now, "rounds": history})
    log.info("instruction refined: %d rounds, final hash %s", rounds, history[-1]["hash"][:12])
    return base.with_instruction(current)
