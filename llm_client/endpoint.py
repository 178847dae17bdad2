"""Open the configured endpoint for a job: the stand-in, a local llama.cpp, or a URL.

    with open_endpoint(settings.llm) as ep:   # ep.base_url, ep.model, ep.dialect
        ...

For ``endpoint: local`` the offline stand-in is launched on 127.0.0.1 (the
executors of a local Spark reach it there) and a WARNING says that the rows
are not LLM output. ``endpoint: local-llm`` starts llama.cpp's server with a
real small model (``llm_client/local_llm.py``). For a URL, a readiness probe
checks that the configured model is served, so a typo fails in seconds, not
after a wave of 404s. With ``llm.dialect: auto`` each client pool learns the
``response_format`` shape from the server's first answer (a rejection that
names json_object costs one validation error, no generation).
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
    # response_format shape the server takes (json_schema | json_object | auto).
    dialect: str = "json_schema"
    # What the response cache keys on: the model id, plus its file hash when known.
    identity: str = ""

    @property
    def is_standin(self) -> bool:
        return self.model == STANDIN_MODEL

    @property
    def cache_model(self) -> str:
        return self.identity or self.model

    def client_config(self, llm: LLMSettings, concurrency: int | None = None) -> ClientConfig:
        return ClientConfig.from_settings(
            llm, self.base_url, self.model, concurrency, dialect=self.dialect
        )


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
    dialect = llm.dialect  # auto: each client learns it from the server's first answer
    if ids == [STANDIN_MODEL]:
        log.warning(
            "LLM endpoint %s is the OFFLINE STAND-IN (model %s): synthetic rows are NOT LLM "
            "output; use a real endpoint (configs/vllm/) for production data",
            base_url,
            STANDIN_MODEL,
        )
        return Endpoint(base_url, STANDIN_MODEL, dialect)
    if llm.model not in ids:
        raise LLMError(f"LLM endpoint {base_url} serves {ids}, not llm.model {llm.model!r}")
    return Endpoint(base_url, llm.model, dialect)


@contextlib.contextmanager
def open_endpoint(llm: LLMSettings) -> Iterator[Endpoint]:
    """Yield a ready endpoint; a locally started server is stopped on exit."""
    if llm.is_local_llm:
        from llm_client.local_llm import local_llm_server

        with local_llm_server(llm) as srv:
            yield Endpoint(srv.base_url, srv.model, "json_object", srv.identity)
        return
    if not llm.is_local:
        yield probe(llm, llm.endpoint)
        return
    from llm_client.standin import standin_server

    with standin_server(standin_args(llm), llm.standin.startup_timeout_s) as handle:
        yield probe(llm, handle.base_url)
