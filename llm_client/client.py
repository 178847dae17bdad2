"""Async OpenAI-compatible client: bounded pool, timeouts, retries, usage.

Shaped after vLLM's serving-benchmark client, with its gaps closed:

* requests and results are small dataclasses; a failed request is a result
  with ``success=False`` and an error, so one failure never breaks a batch;
* one shared HTTP session (aiohttp, as vLLM's benchmark client) whose
  connection limit equals the concurrency, and a fixed pool of that many
  workers pulling from a queue (not a task per row);
* a readiness probe (``GET /models``) before a batch;
* retries with exponential backoff and full jitter on 429, 5xx, timeouts,
  connection errors and replies that are not valid JSON; other 4xx cannot
  succeed on retry and fail at once (and, by default, stop the pool: a wrong
  model name or schema would otherwise burn the whole batch);
* the API key comes from an environment variable only and is never logged.

Why aiohttp and not the ``openai`` SDK: the SDK re-walks every request's
messages and JSON schema against its TypedDicts and runs httpx's pure-Python
HTTP stack; that cost 2-4 ms of CPU per request, so at concurrency 32 and
200 ms latency the one event loop fell to 0.75-0.85 of the ideal rate. The
wire protocol is plain JSON over HTTP; aiohttp speaks it for about 0.5 ms
per request (``benchmarks/llm_client.py``).

Only the chat-completions protocol is assumed (``response_format`` with a
JSON schema, ``seed``, ``n``). Servers differ in how they take the schema
(the *dialect*): OpenAI and vLLM take ``{"type": "json_schema", ...}``,
llama-cpp-python's server only ``{"type": "json_object", "schema": ...}``.
Requests carry the OpenAI form (what the cache hashes); the client rewrites it
for the endpoint. With ``dialect="auto"`` a rejection that names
``json_object`` switches the client to that dialect and resends at once.

A reply cut at ``max_tokens`` (``finish_reason: length``) is not a transient
fault: the same seed would write the same prefix again. It comes back as a
``truncated`` result, never retried and never stopping the pool; the job
counts it as a drop.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import random
import time
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import aiohttp

from configs.llm import LLMSettings
from jobs.platform.errors import LLMError
from llm_client.schemas import for_dialect, kept_rows

log = logging.getLogger(__name__)

# Sent with every call so servers (and the stand-in's call counter) can trace it.
REQUEST_ID_HEADER = "X-Coldstart-Request-Id"
NO_KEY = "EMPTY"  # what vLLM expects when it runs without --api-key


@dataclass(frozen=True)
class ClientConfig:
    """Everything a worker needs to call the endpoint; picklable for executors."""

    base_url: str
    model: str
    api_key_env: str = "COLDSTART_LLM_API_KEY"
    concurrency: int = 16
    timeout_s: float = 120.0
    max_retries: int = 4
    backoff_base_s: float = 0.5
    backoff_max_s: float = 20.0
    ready_timeout_s: float = 60.0
    progress_every_s: float = 10.0
    # json_schema (OpenAI, vLLM) | json_object (llama-cpp-python) | auto.
    dialect: str = "auto"
    # Driver's progress counter (llm_client/progress.py); None: log per pool only.
    progress_url: str | None = None

    @classmethod
    def from_settings(
        cls,
        llm: LLMSettings,
        base_url: str,
        model: str,
        concurrency: int | None = None,
        *,
        dialect: str | None = None,
    ) -> ClientConfig:
        """Call settings (CPU-sized ones for local-llm) for one endpoint."""
        llm = llm.effective()
        return cls(
            base_url=base_url,
            model=model,
            api_key_env=llm.api_key_env,
            concurrency=concurrency or llm.concurrency,
            timeout_s=llm.timeout_s,
            max_retries=llm.max_retries,
            backoff_base_s=llm.backoff_base_s,
            backoff_max_s=llm.backoff_max_s,
            ready_timeout_s=llm.ready_timeout_s,
            dialect=dialect or llm.dialect,
        )


@dataclass(frozen=True)
class LLMRequest:
    """One chat-completions call; ``request_hash`` is its cache key."""

    request_hash: str
    messages: Sequence[dict[str, str]]
    sampling: dict[str, Any]
    response_format: dict[str, Any] | None = None


@dataclass
class LLMResult:
    """The outcome of one request after retries: never an exception."""

    request_hash: str
    success: bool
    contents: list[str] = field(default_factory=list)
    parsed: list[Any] = field(default_factory=list)
    error: str | None = None
    http_status: int | None = None
    retryable: bool = False
    attempts: int = 0
    latency_s: float = 0.0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    model: str | None = None
    truncated: bool = False  # finish_reason "length": a drop, not a failure


class StatusError(Exception):
    """A reply with a non-2xx HTTP status; ``message`` is the server's own."""

    def __init__(self, status_code: int, message: str, body: str) -> None:
        super().__init__(f"HTTP {status_code}: {message}")
        self.status_code, self.message, self.body = status_code, message, body

    @classmethod
    def from_reply(cls, status_code: int, raw: bytes) -> StatusError:
        """OpenAI's ``{"error": {"message": ...}}``, vLLM's ``{"message": ...}`` or text."""
        body = raw.decode("utf-8", "replace")
        try:
            doc = json.loads(body)
        except json.JSONDecodeError:
            return cls(status_code, body[:500], body)
        err = doc.get("error", doc) if isinstance(doc, dict) else doc
        message = err.get("message") if isinstance(err, dict) else err
        return cls(status_code, str(message or body[:500]), body)


class InvalidJSONError(ValueError):
    """A 200 reply whose content is not JSON (unguided output)."""


class TruncatedError(ValueError):
    """A 200 reply cut at max_tokens: retrying the same seed writes it again."""

    def __init__(self, prompt_tokens: int, completion_tokens: int, model: str | None) -> None:
        super().__init__(f"reply truncated at max_tokens ({completion_tokens} tokens)")
        self.prompt_tokens, self.completion_tokens, self.model = (
            prompt_tokens,
            completion_tokens,
            model,
        )


# What one attempt may raise; everything else is a bug and propagates.
ATTEMPT_ERRORS = (
    StatusError,
    InvalidJSONError,
    TruncatedError,
    TimeoutError,
    aiohttp.ClientConnectionError,
    aiohttp.ClientPayloadError,
)


def names_json_object(exc: Exception) -> bool:
    """A rejection of the json_schema type by a server that takes json_object."""
    return isinstance(exc, StatusError) and "json_object" in exc.message + exc.body


def backoff_s(attempt: int, base: float, cap: float, rng: random.Random) -> float:
    """Full-jitter exponential backoff: U(0, min(cap, base * 2**(attempt-1)))."""
    return rng.uniform(0.0, min(cap, base * 2 ** (attempt - 1)))


def rows_in(doc: Any) -> int:
    """Items in the first list of a reply object (profiles / judgements)."""
    if isinstance(doc, dict):
        for value in doc.values():
            if isinstance(value, list):
                return len(value)
    return 0


class Progress:
    """Counts for the progress log line: requests, rows/s, tokens/s, failures."""

    def __init__(self, total: int, every_s: float, label: str, sink: Any = None) -> None:
        self.total, self.every_s, self.label = total, every_s, label
        self.done = self.failed = self.rows = self.tokens = 0
        self.started = self._last = time.monotonic()
        self.sink = sink  # progress.Reporter: the job-wide counter on the driver

    def update(self, result: LLMResult, rows: int | None = None) -> None:
        """Count one result; ``rows``: its valid items (default: items in its replies)."""
        self.done += 1
        self.failed += not result.success
        rows = sum(rows_in(doc) for doc in result.parsed) if rows is None else rows
        self.rows += rows
        self.tokens += result.prompt_tokens + result.completion_tokens
        if self.sink is not None:
            self.sink.add(
                done=1,
                failed=int(not result.success and not result.truncated),
                truncated=int(result.truncated),
                rows=rows,
                completion_tokens=result.completion_tokens,
            )
        self.tick(final=self.done == self.total)

    def tick(self, final: bool = False) -> None:
        """Log the line if ``every_s`` passed since the last one (or ``final``)."""
        now = time.monotonic()
        if final or now - self._last >= self.every_s:
            self._last = now
            log.info("%s", self.line())

    def line(self) -> str:
        secs = max(time.monotonic() - self.started, 1e-9)
        left = self.total - self.done
        eta = "?" if not self.done else f"{secs / self.done * left:.0f}s"
        return (
            f"llm {self.label}: requests {self.done}/{self.total} "
            f"rows/s {self.rows / secs:.1f} tokens/s {self.tokens / secs:.0f} "
            f"req/s {self.done / secs:.1f} failures {self.failed} "
            f"elapsed {secs:.0f}s ETA {eta}"
        )


def _classify(exc: Exception) -> tuple[bool, int | None, str]:
    """(retryable, http status, message) of an exception from one attempt."""
    if isinstance(exc, TimeoutError):  # before ClientConnectionError: aiohttp's are both
        return True, None, "timeout"
    if isinstance(exc, aiohttp.ClientConnectionError | aiohttp.ClientPayloadError):
        return True, None, f"connection error: {type(exc).__name__}"
    if names_json_object(exc):
        return (
            False,
            exc.status_code,
            (
                f"HTTP {exc.status_code}: endpoint takes response_format json_object, not "
                "json_schema; set llm.dialect: json_object (or auto)"
            ),
        )
    if isinstance(exc, StatusError):
        code = exc.status_code
        return code in (408, 409, 429) or code >= 500, code, f"HTTP {code}: {exc.message}"
    if isinstance(exc, InvalidJSONError):
        return True, 200, str(exc)
    if isinstance(exc, TruncatedError):
        return False, 200, str(exc)
    raise exc


class LLMClient:
    """``async with LLMClient(cfg) as c: await c.ready(); await c.run(reqs)``."""

    def __init__(self, cfg: ClientConfig, *, seed: int = 0) -> None:
        self.cfg = cfg
        self._rng = random.Random(seed)
        self._session: aiohttp.ClientSession | None = None
        self.dialect = cfg.dialect
        base = cfg.base_url.rstrip("/")
        self._chat_url, self._models_url = f"{base}/chat/completions", f"{base}/models"

    async def __aenter__(self) -> LLMClient:
        key = os.environ.get(self.cfg.api_key_env) or NO_KEY
        self._session = aiohttp.ClientSession(
            # One connection per worker, kept alive across requests.
            connector=aiohttp.TCPConnector(limit=self.cfg.concurrency),
            timeout=aiohttp.ClientTimeout(total=self.cfg.timeout_s),  # per attempt
            headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
        )
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        if self._session is not None:
            await self._session.close()

    async def ready(self) -> list[str]:
        """Wait until ``GET /models`` answers; return the served model ids."""
        deadline = time.monotonic() + self.cfg.ready_timeout_s
        last = "no answer"
        while time.monotonic() < deadline:
            try:
                async with self._session.get(self._models_url) as resp:
                    status, raw = resp.status, await resp.read()
            except (TimeoutError, aiohttp.ClientConnectionError) as exc:
                last = type(exc).__name__
            else:
                if status == 200:
                    try:
                        return [m["id"] for m in json.loads(raw)["data"]]
                    except (ValueError, KeyError, TypeError):
                        last = "reply is not a model list"
                else:
                    last = f"HTTP {status}"
            await asyncio.sleep(0.25)
        raise LLMError(
            f"LLM endpoint {self.cfg.base_url} not ready after {self.cfg.ready_timeout_s:.0f}s "
            f"({last}); check llm.endpoint"
        )

    def _body(self, req: LLMRequest) -> bytes:
        body: dict[str, Any] = {"model": self.cfg.model, "messages": req.messages, **req.sampling}
        if req.response_format is not None:
            body["response_format"] = for_dialect(req.response_format, self.dialect)
        return json.dumps(body).encode()

    async def _attempt(self, req: LLMRequest) -> LLMResult:
        headers = {REQUEST_ID_HEADER: req.request_hash}
        async with self._session.post(self._chat_url, data=self._body(req), headers=headers) as r:
            status, raw = r.status, await r.read()
        if not 200 <= status < 300:
            raise StatusError.from_reply(status, raw)
        try:
            resp = json.loads(raw)
            choices = resp["choices"]
        except (ValueError, KeyError, TypeError):
            raise InvalidJSONError("response body is not a chat completion") from None
        usage = resp.get("usage") or {}
        tokens = int(usage.get("prompt_tokens") or 0), int(usage.get("completion_tokens") or 0)
        contents, parsed = [], []
        for choice in choices:
            if choice.get("finish_reason") == "length":
                raise TruncatedError(*tokens, resp.get("model"))
            text = (choice.get("message") or {}).get("content") or ""
            try:
                parsed.append(json.loads(text))
            except json.JSONDecodeError as exc:
                finish = choice.get("finish_reason")
                raise InvalidJSONError(
                    f"reply is not valid JSON (finish_reason={finish}): {exc.msg}"
                ) from None
            contents.append(text)
        return LLMResult(
            req.request_hash,
            True,
            contents,
            parsed,
            http_status=200,
            prompt_tokens=tokens[0],
            completion_tokens=tokens[1],
            model=resp.get("model"),
        )

    async def complete(self, req: LLMRequest) -> LLMResult:
        """One request with bounded retries; always returns a result."""
        started = time.monotonic()
        attempt = 0
        switched = False
        while True:
            attempt += 1
            try:
                result = await self._attempt(req)
            except ATTEMPT_ERRORS as exc:
                if self.cfg.dialect == "auto" and not switched and names_json_object(exc):
                    if self.dialect != "json_object":
                        log.info("endpoint %s takes response_format json_object", self.cfg.base_url)
                    self.dialect, switched = "json_object", True
                    attempt -= 1  # a dialect switch (once per request), not a failed attempt
                    continue
                if isinstance(exc, TruncatedError):
                    return LLMResult(
                        req.request_hash,
                        False,
                        error=str(exc),
                        http_status=200,
                        attempts=attempt,
                        latency_s=time.monotonic() - started,
                        prompt_tokens=exc.prompt_tokens,
                        completion_tokens=exc.completion_tokens,
                        model=exc.model,
                        truncated=True,
                    )
                retryable, status, message = _classify(exc)
                if retryable and attempt <= self.cfg.max_retries:
                    log.debug("request %s attempt %d: %s", req.request_hash[:12], attempt, message)
                    cfg = self.cfg
                    await asyncio.sleep(
                        backoff_s(attempt, cfg.backoff_base_s, cfg.backoff_max_s, self._rng)
                    )
                    continue
                return LLMResult(
                    req.request_hash,
                    False,
                    error=message,
                    http_status=status,
                    retryable=retryable,
                    attempts=attempt,
                    latency_s=time.monotonic() - started,
                )
            if self.dialect == "auto" and req.response_format is not None:
                self.dialect = "json_schema"
            return replace(result, attempts=attempt, latency_s=time.monotonic() - started)

    async def run(
        self,
        requests: Sequence[LLMRequest],
        *,
        label: str = "batch",
        stop_on_permanent: bool = True,
        on_result: Callable[[LLMResult], None] | None = None,
    ) -> list[LLMResult]:
        """All requests through ``concurrency`` workers; results in request order."""
        results: list[LLMResult | None] = [None] * len(requests)
        queue: asyncio.Queue[int] = asyncio.Queue()
        for i in range(len(requests)):
            queue.put_nowait(i)
        from llm_client.progress import Reporter

        sink = Reporter(self.cfg.progress_url) if self.cfg.progress_url else None
        progress = Progress(len(requests), self.cfg.progress_every_s, label, sink)
        stop: list[str] = []

        async def worker() -> None:
            while not queue.empty():
                i = queue.get_nowait()
                if stop:
                    results[i] = LLMResult(requests[i].request_hash, False, error=stop[0])
                else:
                    results[i] = await self.complete(requests[i])
                    r = results[i]
                    if stop_on_permanent and not (r.success or r.retryable or r.truncated):
                        stop.append(f"not sent: batch stopped after {r.error}")
                fmt = requests[i].response_format
                progress.update(results[i], sum(kept_rows(d, fmt) for d in results[i].parsed))
                if on_result is not None:
                    on_result(results[i])

        async def heartbeat() -> None:
            # A CPU model can take minutes per request: say so while nothing completes.
            while True:
                await asyncio.sleep(self.cfg.progress_every_s)
                progress.tick()

        # With a sink the driver's ProgressServer logs for the whole job.
        beat = asyncio.create_task(heartbeat()) if sink is None and requests else None
        try:
            await asyncio.gather(
                *(worker() for _ in range(min(self.cfg.concurrency, len(requests))))
            )
        finally:
            if beat is not None:
                beat.cancel()
            if sink is not None:
                sink.flush()
        return [r for r in results if r is not None]


def run_batch(cfg: ClientConfig, requests: Sequence[LLMRequest], *, label: str = "batch") -> list:
    """Synchronous wrapper for executors: one event loop, one pool, one HTTP client."""

    async def go() -> list[LLMResult]:
        async with LLMClient(cfg, seed=zlib.crc32(label.encode())) as client:
            await client.ready()
            return await client.run(requests, label=label)

    return asyncio.run(go())
