"""mapInPandas functions for stage 1: build requests, call the LLM, parse replies.

All three run on executors. ``call_fn`` opens ONE async pool (one HTTP client,
``partition_concurrency`` workers) per partition, so the job's call rate is
partitions x pool size and grows with the cluster; the driver never loops
over requests. Plan and parse functions are pure per row, so Spark may
recompute them freely; only ``call_fn`` has side effects, and its output is
written exactly once (see ``jobs/stage1/synthesize.py``).
"""

from __future__ import annotations

import datetime as dt
import json
import zlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd

from jobs.platform import schema as S
from llm_client import cache, prompts, schemas
from llm_client.client import ClientConfig, LLMRequest, run_batch

PandasFn = Callable[[Iterator[pd.DataFrame]], Iterator[pd.DataFrame]]
PROFILE_TASK, CLICK_TASK = "profile", "click"
# Candidates mode (jobs.stage1.candidates): click judgements of (real user, cold app) pairs.
CANDIDATE_TASK = "candidate"

REQUEST_DDL = (
    "request_hash string, request_idx long, task string, body string, "
    "exemplar_cluster_ids array<int>, context string"
)
_FIELDS_DDL = ", ".join(f"{f} string" for f in S.PROFILE_FIELDS)
PROFILE_ROWS_DDL = (
    f"request_hash string, request_idx long, profile_id string, {_FIELDS_DDL}, "
    "exemplar_cluster_ids array<int>, model string, drop_reason string, n long"
)
CLICK_ROWS_DDL = (
    f"{S.SYNTH_ID} string, {_FIELDS_DDL}, {S.APP_ID} string, {S.CLICKED} int, "
    "click_prob double, exemplar_cluster_ids array<int>, request_hash string, model string, "
    "drop_reason string, n long"
)


@dataclass(frozen=True)
class RequestSpec:
    """What every request of a run shares (model, prompts, sampling); picklable."""

    model: str
    prompts: prompts.PromptSet
    rows_per_request: int
    temperature: float
    top_p: float
    max_tokens: int
    seed: int
    ds: str

    def request_seed(self, task: str, idx: int) -> int:
        """Per-request sampling seed: replays reproduce, requests differ."""
        return zlib.crc32(f"{self.seed}|{self.ds}|{task}|{idx}".encode()) & 0x7FFFFFFF

    def sampling(self, task: str, idx: int) -> dict[str, Any]:
        return {
            "temperature": self.temperature,
            "top_p": self.top_p,
            "max_tokens": self.max_tokens,
            "seed": self.request_seed(task, idx),
            "n": 1,
        }

    def request(self, task: str, idx: int, messages: list, fmt: dict) -> tuple[str, str]:
        """(request_hash, body JSON) for one request; max_tokens sized from its schema."""
        sampling = self.sampling(task, idx)
        schema = fmt["json_schema"]["schema"]
        sampling["max_tokens"] = schemas.max_tokens_for(schema, self.max_tokens)
        version = self.prompts.prompt_version
        key = cache.request_hash(self.model, version, messages, sampling, fmt)
        body = {"messages": messages, "sampling": sampling, "response_format": fmt}
        return key, json.dumps(body)


def profile_plan_fn(spec: RequestSpec) -> PandasFn:
    """(request_idx, exemplars_json) -> one profile-synthesis request per row."""
    fmt = schemas.response_format(
        schemas.PROFILE_SCHEMA_NAME, schemas.profile_schema(spec.rows_per_request)
    )

    def fn(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        for pdf in batches:
            rows = []
            for idx, ex_json in zip(pdf["request_idx"], pdf["exemplars_json"], strict=True):
                exemplars = json.loads(ex_json)
                msgs = prompts.profile_messages(spec.prompts, exemplars, spec.rows_per_request)
                key, body = spec.request(PROFILE_TASK, int(idx), msgs, fmt)
                ids = [int(e[S.CLUSTER_ID]) for e in exemplars]
                keys = [list(schemas.profile_key(e)) for e in exemplars]
                rows.append((key, int(idx), PROFILE_TASK, body, ids, json.dumps(keys)))
            yield pd.DataFrame(rows, columns=columns(REQUEST_DDL))

    return fn


def click_plan_fn(
    spec: RequestSpec, app_batches: Sequence[Sequence[dict]], facts: dict
) -> PandasFn:
    """(request_idx, profiles_json) -> one click-judgement request per profile request."""

    def fn(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        for pdf in batches:
            rows = []
            shown = pdf["examples_json"] if "examples_json" in pdf else [None] * len(pdf)
            for idx, prof_json, ex_json in zip(
                pdf["request_idx"], pdf["profiles_json"], shown, strict=True
            ):
                profiles = sorted(json.loads(prof_json), key=lambda p: p["profile_id"])
                examples = json.loads(ex_json) if isinstance(ex_json, str) else []
                for i, p in enumerate(profiles):
                    p["ref"] = f"u{i}"
                apps = app_batches[int(idx) % len(app_batches)]
                app_ids = [a[S.APP_ID] for a in apps]
                fmt = schemas.response_format(
                    schemas.CLICK_SCHEMA_NAME,
                    schemas.click_schema([p["ref"] for p in profiles], app_ids),
                )
                msgs = prompts.click_messages(spec.prompts, apps, profiles, facts, examples)
                key, body = spec.request(CLICK_TASK, int(idx), msgs, fmt)
                context = json.dumps({"profiles": profiles, "app_ids": app_ids})
                rows.append((key, int(idx), CLICK_TASK, body, [], context))
            yield pd.DataFrame(rows, columns=columns(REQUEST_DDL))

    return fn


def call_fn(cfg: ClientConfig, ds: str, run_id: str, prompt_version: str) -> PandasFn:
    """Requests -> stage.llm_responses rows; one async pool for the whole partition."""

    def fn(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        from jobs.platform.common import setup_logging

        setup_logging()  # executors: make the pool's progress lines visible in their log
        # The whole partition at once so the pool stays full across Arrow batches;
        # partitions are sized to a wave (bounded), never to the day.
        frames = list(batches)
        # A partition can get no rows (more call partitions than a wave has requests).
        if not frames:
            return
        pdf = pd.concat(frames, ignore_index=True)
        if pdf.empty:
            return
        requests = []
        for key, body in zip(pdf["request_hash"], pdf["body"], strict=True):
            doc = json.loads(body)
            requests.append(
                LLMRequest(key, doc["messages"], doc["sampling"], doc["response_format"])
            )
        results = run_batch(cfg, requests, label=f"partition of {len(requests)}")
        now = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
        rows = [
            (
                r.request_hash, ds, run_id, task, r.model or cfg.model, prompt_version,
                _status(r),
                r.contents[0] if r.success else None, r.error, r.http_status, r.attempts,
                float(r.latency_s), int(r.prompt_tokens), int(r.completion_tokens), now,
            )
            for r, task in zip(results, pdf["task"], strict=True)
        ]  # fmt: skip
        yield pd.DataFrame(rows, columns=list(cache.RESPONSE_COLUMNS))

    return fn


def _status(r: Any) -> str:
    if r.truncated:
        return cache.STATUS_TRUNCATED
    return cache.STATUS_OK if r.success else cache.STATUS_ERROR


def columns(ddl: str) -> list[str]:
    """Column names of a DDL string (the frames a mapInPandas function yields)."""
    return [c.strip().split(" ")[0] for c in ddl.split(", ") if c.strip()]


def _drops(counter: dict[str, int], width: int, key: str = "drop_reason") -> list[tuple]:
    """Summary rows (one per reason) padded to the output width."""
    out = []
    for reason, n in counter.items():
        row = [None] * width
        row[-2], row[-1] = reason, int(n)
        out.append(tuple(row))
    return out


def profile_parse_fn() -> PandasFn:
    """Cached replies -> valid profile rows + per-reason drop rows."""
    width = len(columns(PROFILE_ROWS_DDL))

    def fn(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        for pdf in batches:
            rows: list[tuple] = []
            for rec in pdf.itertuples(index=False):
                seeds = [tuple(k) for k in json.loads(rec.context)]
                if rec.status == cache.STATUS_TRUNCATED:
                    rows += _drops({schemas.TRUNCATED: 1}, width)
                    continue
                out = schemas.validate_profiles(_load(rec.response), seed_keys=seeds)
                ids = [int(c) for c in rec.exemplar_cluster_ids]
                for i, item in enumerate(out.items):
                    pid = f"{rec.request_hash[:16]}-{i}"
                    values = [item[f] for f in S.PROFILE_FIELDS]
                    rows.append(
                        (rec.request_hash, rec.request_idx, pid, *values, ids, rec.model, None, 1)
                    )
                rows += _drops(out.dropped, width)
            yield pd.DataFrame(rows, columns=columns(PROFILE_ROWS_DDL))

    return fn


def click_parse_fn() -> PandasFn:
    """Cached click replies -> synthetic rows (one per valid judgement) + drop rows."""
    width = len(columns(CLICK_ROWS_DDL))

    def fn(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        for pdf in batches:
            rows: list[tuple] = []
            for rec in pdf.itertuples(index=False):
                if rec.status == cache.STATUS_TRUNCATED:
                    rows += _drops({schemas.TRUNCATED: 1}, width)
                    continue
                context = json.loads(rec.context)
                by_ref = {p["ref"]: p for p in context["profiles"]}
                out = schemas.validate_clicks(_load(rec.response), list(by_ref), context["app_ids"])
                for item in out.items:
                    p = by_ref[item["user"]]
                    rows.append(
                        (
                            f"{p['profile_id']}:{item['app_id']}",
                            *[p[f] for f in S.PROFILE_FIELDS],
                            item["app_id"], item["clicked"], item["click_prob"],
                            p["exemplar_cluster_ids"], rec.request_hash, rec.model, None, 1,
                        )
                    )  # fmt: skip
                rows += _drops(out.dropped, width)
            yield pd.DataFrame(rows, columns=columns(CLICK_ROWS_DDL))

    return fn


def _load(text: str | None) -> Any:
    """A cached reply as JSON (the client only caches replies that parsed)."""
    return json.loads(text) if text else None
