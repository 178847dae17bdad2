"""Open the configured endpoint for a job: the stand-in for ``local``, else a URL.

    with open_endpoint(settings.llm) as ep:   # ep.base_url, ep.model
        ...

For ``endpoint: local`` the offline stand-in is launched on 127.0.0.1 (the
executors of a local Spark reach it there) and a WARNING says that the rows
are not LLM output. For a URL, a readiness probe checks that the configured
model is served, so a typo fails in seconds, not after a wave of 404s.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterator
from dataclasses import dataclass

from configs.llm import STANDIN_MODEL, LLMSettings
from jobs.platform.errors import LLMError
from llm_client.client import ClientConfig, LLMClient

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Endpoint:
    base_url: str
    model: str

    @property
    def is_standin(self) -> bool:
        return self.model == STANDIN_MODEL


def standin_args(llm: LLMSettings) -> list[str]:
    s = llm.standin
    return [
        "--latency-ms", str(s.latency_ms), "--rate-429", str(s.rate_429),
        "--rate-500", str(s.rate_500), "--rate-timeout", str(s.rate_timeout),
        "--rate-invalid-json", str(s.rate_invalid_json),
    ]  # fmt: skip


def probe(llm: LLMSettings, base_url: str) -> Endpoint:
    """Readiness probe + model check; the stand-in's one model is accepted with a warning."""

    async def served() -> list[str]:
        async with LLMClient(ClientConfig.from_settings(llm, base_url, llm.model, 1)) as client:
            return await client.ready()

    ids = asyncio.run(served())
    if ids == [STANDIN_MODEL]:
        log.warning(
            "LLM endpoint %s is the OFFLINE STAND-IN (model %s): synthetic rows are NOT LLM "
            "output; use a real endpoint (configs/vllm/) for production data",
            base_url,
            STANDIN_MODEL,
        )
        return Endpoint(base_url, STANDIN_MODEL)
    if llm.model not in ids:
        raise LLMError(f"LLM endpoint {base_url} serves {ids}, not llm.model {llm.model!r}")
    return Endpoint(base_url, llm.model)


@contextlib.contextmanager
def open_endpoint(llm: LLMSettings) -> Iterator[Endpoint]:
    """Yield a ready endpoint; a locally started stand-in is stopped on exit."""
    if not llm.is_local:
        yield probe(llm, llm.endpoint)
        return
    from llm_client.standin import standin_server

    with standin_server(standin_args(llm), llm.standin.startup_timeout_s) as handle:
        yield probe(llm, handle.base_url)
