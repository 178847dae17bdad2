"""Offline stand-in for an OpenAI-compatible LLM server (NOT an LLM).

    python -m llm_client.standin --port 0 --latency-ms 200

Serves ``GET /v1/models`` (one model: ``offline-standin``), ``POST
/v1/chat/completions`` and ``GET /health`` over real HTTP (aiohttp), so the
pipeline, the tests and the benchmark exercise the same client code they use
against vLLM. What it answers is in ``standin_logic``. On start it prints
``STANDIN READY <base_url>`` on stdout; ``standin_server()`` launches it as a
subprocess and waits for that line, which is how ``endpoint: local`` works.

Dialect (``--dialect`` or the ``dialect`` key of ``/admin/faults``): which
``response_format`` shape it takes, as the real servers do. ``json_schema``
(default, like vLLM/OpenAI) takes ``{"type": "json_schema", ...}`` and treats
``json_object`` as unguided JSON; ``json_object`` (like llama-cpp-python's
server) takes ``{"type": "json_object", "schema": ...}`` and answers the
json_schema type with HTTP 500 "Input should be 'text' or 'json_object'",
as that server does. Replies longer than the request's ``max_tokens``
(~4 characters a token) are cut and end with ``finish_reason: length``.

Fault injection, from CLI flags or ``POST /admin/faults`` (JSON, same keys):
random rates (``rate_429`` ...) for benchmarks, and ``fail_first`` +
``fail_kind`` (every distinct request fails its first N attempts) for tests.
``GET /admin/stats`` counts calls per request id so tests can prove that a
re-run repeats no cached request; ``POST /admin/reset`` zeroes the counts.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import hashlib
import json
import logging
import os
import random
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from llm_client import standin_logic as logic
from llm_client.client import REQUEST_ID_HEADER

log = logging.getLogger(__name__)
READY_PREFIX = "STANDIN READY "
ERROR_TYPES = {"429": "rate_limit_error", "500": "server_error", "400": "invalid_request_error"}
FAULT_KINDS = ("429", "500", "timeout", "invalid_json", "truncated", "400")
DIALECTS = ("json_schema", "json_object")
# What llama-cpp-python's server (pydantic) answers for {"type": "json_schema"}.
JSON_OBJECT_ONLY = "response_format.type: Input should be 'text' or 'json_object'"


@dataclass
class Faults:
    """Injected latency and faults; all off by default."""

    latency_ms: float = 0.0
    rate_429: float = 0.0
    rate_500: float = 0.0
    rate_timeout: float = 0.0
    rate_invalid_json: float = 0.0
    rate_truncated: float = 0.0
    fail_first: int = 0
    fail_kind: str = "429"
    corrupt: list[str] = field(default_factory=list)
    timeout_sleep_s: float = 30.0
    require_key_env: str | None = None
    dialect: str = "json_schema"  # not a fault: the response_format shape it takes

    @classmethod
    def from_dict(cls, doc: dict[str, Any]) -> Faults:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(doc) - known)
        if unknown:
            raise ValueError(f"unknown fault keys {unknown}; known: {sorted(known)}")
        faults = cls(**doc)
        if faults.fail_kind not in FAULT_KINDS:
            raise ValueError(f"fail_kind {faults.fail_kind!r}: expected one of {FAULT_KINDS}")
        if faults.dialect not in DIALECTS:
            raise ValueError(f"dialect {faults.dialect!r}: expected one of {DIALECTS}")
        return faults


@dataclass
class Stats:
    calls: int = 0
    in_flight: int = 0
    max_in_flight: int = 0
    by_status: Counter = field(default_factory=Counter)
    attempts: Counter = field(default_factory=Counter)
    ok: Counter = field(default_factory=Counter)

    def doc(self) -> dict[str, Any]:
        return {
            "calls": self.calls,
            "max_in_flight": self.max_in_flight,
            "by_status": dict(self.by_status),
            "attempts_by_request": dict(self.attempts),
            "ok_by_request": dict(self.ok),
        }


def _error(status: int, message: str, kind: str) -> web.Response:
    body = {"error": {"message": message, "type": kind, "code": status}}
    return web.json_response(body, status=status)


class StandinServer:
    """The aiohttp app and its state (faults, counters, embedder)."""

    def __init__(self, faults: Faults, seed: int = 0) -> None:
        self.faults = faults
        self.stats = Stats()
        self.rng = random.Random(seed)
        self.embedder = logic.Embedder()

    def app(self) -> web.Application:
        app = web.Application(client_max_size=32 * 1024 * 1024)
        app.router.add_get("/health", self.health)
        app.router.add_get("/v1/models", self.models)
        app.router.add_post("/v1/chat/completions", self.chat)
        app.router.add_get("/admin/stats", self.get_stats)
        app.router.add_post("/admin/faults", self.set_faults)
        app.router.add_post("/admin/reset", self.reset)
        return app

    async def health(self, _: web.Request) -> web.Response:
        embedder = "loaded" if self.embedder.loaded else "loading"
        return web.json_response(
            {"status": "ok", "model": logic.STANDIN_MODEL, "embedder": embedder}
        )

    async def models(self, _: web.Request) -> web.Response:
        card = {"id": logic.STANDIN_MODEL, "object": "model", "owned_by": logic.NOT_AN_LLM}
        return web.json_response({"object": "list", "data": [card]})

    async def get_stats(self, _: web.Request) -> web.Response:
        return web.json_response(self.stats.doc())

    async def set_faults(self, request: web.Request) -> web.Response:
        try:
            self.faults = Faults.from_dict(await request.json())
        except (ValueError, TypeError) as exc:
            return _error(400, str(exc), "invalid_request_error")
        return web.json_response(dataclasses.asdict(self.faults))

    async def reset(self, _: web.Request) -> web.Response:
        self.stats = Stats()
        return web.json_response({"reset": True})

    def _fault(self, request_id: str) -> str | None:
        f = self.faults
        if f.fail_first and self.stats.attempts[request_id] <= f.fail_first:
            return f.fail_kind
        u = self.rng.random()
        for kind, rate in (
            ("429", f.rate_429),
            ("500", f.rate_500),
            ("timeout", f.rate_timeout),
            ("invalid_json", f.rate_invalid_json),
            ("truncated", f.rate_truncated),
        ):
            if u < rate:
                return kind
            u -= rate
        return None

    def _authorised(self, request: web.Request) -> bool:
        env = self.faults.require_key_env
        if not env:
            return True
        return request.headers.get("Authorization", "") == f"Bearer {os.environ.get(env, '')}"

    async def chat(self, request: web.Request) -> web.Response:
        raw = await request.read()
        request_id = request.headers.get(REQUEST_ID_HEADER) or hashlib.sha256(raw).hexdigest()
        self.stats.calls += 1
        self.stats.attempts[request_id] += 1
        stats = self.stats  # a reset during the call must not skew the new counters
        stats.in_flight += 1
        stats.max_in_flight = max(stats.max_in_flight, stats.in_flight)
        try:
            response = await self._chat(request, raw, request_id)
        finally:
            stats.in_flight -= 1
        self.stats.by_status[str(response.status)] += 1
        if response.status == 200:
            self.stats.ok[request_id] += 1
        return response

    async def _chat(self, request: web.Request, raw: bytes, request_id: str) -> web.Response:
        if not self._authorised(request):
            return _error(401, "invalid API key", "authentication_error")
        try:
            body = json.loads(raw)
        except json.JSONDecodeError:
            return _error(400, "request body is not JSON", "invalid_request_error")
        if not isinstance(body, dict) or not isinstance(body.get("messages"), list):
            return _error(400, "'messages' must be a list", "invalid_request_error")
        fmt_type = (body.get("response_format") or {}).get("type")
        if self.faults.dialect == "json_object" and fmt_type not in (None, "text", "json_object"):
            return _error(500, JSON_OBJECT_ONLY, "internal_server_error")
        if body.get("model") != logic.STANDIN_MODEL:
            msg = f"model {body.get('model')!r} not served; served: {logic.STANDIN_MODEL}"
            return _error(404, msg, "not_found_error")
        if self.faults.latency_ms:
            await asyncio.sleep(self.faults.latency_ms / 1000)
        fault = self._fault(request_id)
        if fault in ("429", "500", "400"):
            return _error(int(fault), f"stand-in injected fault {fault}", ERROR_TYPES[fault])
        if fault == "timeout":
            await asyncio.sleep(self.faults.timeout_sleep_s)
        return await self._complete(body, fault)

    async def _complete(self, body: dict[str, Any], fault: str | None) -> web.Response:
        seed = body.get("seed")
        if seed is None:
            digest = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()
            seed = int(digest[:8], 16)
        rng = random.Random(int(seed))
        user = "\n".join(m.get("content", "") for m in body["messages"] if m.get("role") == "user")
        choices, completion_chars = [], 0
        guided = logic.guided_schema(body.get("response_format"), self.faults.dialect)
        budget = int(body.get("max_tokens") or 1 << 30) * 4  # ~4 characters a token
        for i in range(max(1, int(body.get("n") or 1))):
            doc = await asyncio.to_thread(logic.answer, body, rng, self.embedder, guided)
            if self.faults.corrupt and isinstance(doc, dict):
                doc = logic.corrupt(doc, self.faults.corrupt, user)
            text, finish = (doc, "stop") if isinstance(doc, str) else (json.dumps(doc), "stop")
            if fault == "invalid_json":
                text = "Sure! Here are the rows: " + text.replace('"', "'")
            elif fault == "truncated":
                text, finish = text[: len(text) // 2], "length"
            if len(text) > budget:
                text, finish = text[:budget], "length"
            completion_chars += len(text)
            message = {"role": "assistant", "content": text}
            choices.append({"index": i, "message": message, "finish_reason": finish})
        prompt_chars = sum(len(m.get("content", "")) for m in body["messages"])
        usage = {
            "prompt_tokens": logic.approx_tokens("x" * prompt_chars),
            "completion_tokens": logic.approx_tokens("x" * completion_chars),
        }
        usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
        return web.json_response(
            {
                "id": f"chatcmpl-{uuid.uuid4().hex[:16]}",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": logic.STANDIN_MODEL,
                "system_fingerprint": logic.NOT_AN_LLM,
                "choices": choices,
                "usage": usage,
            }
        )


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m llm_client.standin", description=__doc__)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0, help="0: any free port (printed on stdout)")
    p.add_argument("--seed", type=int, default=0, help="seed of the random fault draws")
    p.add_argument("--no-preload", action="store_true", help="load the embedder on first use")
    for f in dataclasses.fields(Faults):
        if f.name in ("corrupt", "require_key_env", "fail_kind", "dialect"):
            continue
        p.add_argument(f"--{f.name.replace('_', '-')}", type=type(f.default), default=f.default)
    p.add_argument("--fail-kind", default="429", choices=FAULT_KINDS)
    p.add_argument("--dialect", default="json_schema", choices=DIALECTS)
    p.add_argument("--corrupt", default="", help="comma list: wrong_type,bad_vocab,...")
    p.add_argument("--require-key-env", default=None, help="401 unless Bearer == $VAR")
    return p


async def _serve(args: argparse.Namespace) -> None:
    names = {f.name for f in dataclasses.fields(Faults)}
    values = {k: v for k, v in vars(args).items() if k in names}
    values["corrupt"] = [c for c in args.corrupt.split(",") if c]
    server = StandinServer(Faults.from_dict(values), seed=args.seed)
    if not args.no_preload:
        threading.Thread(target=server.embedder.load, daemon=True).start()
    runner = web.AppRunner(server.app(), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, args.host, args.port, backlog=4096)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]
    log.warning("%s listening on %s:%d", logic.NOT_AN_LLM, args.host, port)
    print(f"{READY_PREFIX}http://{args.host}:{port}/v1", flush=True)
    await asyncio.Event().wait()


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(_parser().parse_args(argv)))
    return 0


@dataclass
class StandinHandle:
    """A running stand-in subprocess: its base URL and pid."""

    base_url: str
    process: subprocess.Popen

    @property
    def root(self) -> str:
        return self.base_url.rsplit("/v1", 1)[0]


@contextlib.contextmanager
def standin_server(
    extra_args: list[str] | None = None, startup_timeout_s: float = 60.0
) -> Iterator[StandinHandle]:
    """Launch ``python -m llm_client.standin --port 0`` and wait for its ready line."""
    from jobs.platform.errors import LLMError

    cmd = [sys.executable, "-m", "llm_client.standin", "--port", "0", *(extra_args or [])]
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, env=env)
    try:
        url = _await_ready(proc, startup_timeout_s)
        log.warning("LLM endpoint is the offline stand-in at %s: %s", url, logic.NOT_AN_LLM)
        yield StandinHandle(url, proc)
    except TimeoutError:
        raise LLMError(f"offline stand-in did not start within {startup_timeout_s:.0f}s") from None
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _await_ready(proc: subprocess.Popen, timeout_s: float) -> str:
    result: list[str] = []

    def read() -> None:
        for line in proc.stdout:
            if line.startswith(READY_PREFIX):
                result.append(line[len(READY_PREFIX) :].strip())
                return

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    reader.join(timeout_s)
    if not result:
        raise TimeoutError
    return result[0]


if __name__ == "__main__":
    sys.exit(main())
