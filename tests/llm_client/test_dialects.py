"""Endpoint dialects, bounded schemas, truncation and job-wide progress (real HTTP).

The stand-in takes one ``response_format`` shape at a time, as real servers
do: json_schema (vLLM, OpenAI) or json_object + schema (llama-cpp-python,
which answers the json_schema type with HTTP 500). The real llama.cpp server
is exercised in tests/llm_client/test_local_llm.py.
"""

from __future__ import annotations

import asyncio
import json
import logging

import pytest

from configs.llm import LLMSettings
from jobs.platform import schema as S
from llm_client import schemas
from llm_client.client import ClientConfig, LLMClient, LLMRequest
from llm_client.progress import ProgressServer
from llm_client.standin import standin_server
from tests.llm_client.test_llm_client import MODEL, click_request, profile_request
from tests.llm_helpers import admin, reset


@pytest.fixture(scope="module")
def standin():
    with standin_server(["--no-preload"]) as handle:
        yield handle


def _run(standin, requests, **kw):
    base = {"concurrency": 2, "timeout_s": 30.0, "max_retries": 2, "backoff_base_s": 0.01}
    cfg = ClientConfig(base_url=standin.base_url, model=MODEL, **{**base, **kw})

    async def go():
        async with LLMClient(cfg) as client:
            await client.ready()
            return await client.run(requests), client.dialect

    return asyncio.run(go())


def test_for_dialect__json_object_shape_carries_the_schema():
    schema = schemas.profile_schema(3)
    fmt = schemas.response_format(schemas.PROFILE_SCHEMA_NAME, schema)
    assert schemas.for_dialect(fmt, "json_schema") is fmt
    assert schemas.for_dialect(fmt, "json_object") == {"type": "json_object", "schema": schema}


@pytest.mark.parametrize("server", ["json_schema", "json_object"])
def test_client__auto_dialect_learns_what_the_server_takes(standin, server):
    reset(standin, dialect=server)
    results, learned = _run(standin, [profile_request(i) for i in range(3)], dialect="auto")
    assert learned == server
    assert all(r.success for r in results)
    for r in results:
        assert len(schemas.validate_profiles(r.parsed[0]).items) == 3
    stats = admin(standin, "/admin/stats")
    # A json_object server rejects at most one call per worker before the switch.
    assert stats["by_status"].get("500", 0) <= (2 if server == "json_object" else 0)


def test_client__json_schema_to_a_json_object_server_is_one_permanent_error(standin):
    reset(standin, dialect="json_object")
    results, _ = _run(standin, [profile_request(i) for i in range(4)], dialect="json_schema")
    first = next(r for r in results if r.attempts)
    assert not first.success and not first.retryable and first.attempts == 1
    assert "llm.dialect: json_object" in first.error
    assert admin(standin, "/admin/stats")["calls"] <= 2  # pool stopped, nothing retried


def test_client__json_object_dialect_guides_the_click_schema(standin):
    reset(standin, dialect="json_object")
    req, refs, ids = click_request()
    (result,), _ = _run(standin, [req], dialect="json_object")
    assert result.success
    assert len(schemas.validate_clicks(result.parsed[0], refs, ids).items) == len(refs) * len(ids)


def test_schemas__every_string_and_array_bounded():
    for schema in (
        schemas.profile_schema(5),
        schemas.click_schema(["u0", "u1"], ["a1", "a2", "a3"]),
        schemas.refine_schema(),
    ):
        assert 0 < schemas.max_chars(schema) < 20_000
    with pytest.raises(ValueError, match="maxLength"):
        schemas.max_chars({"type": "object", "properties": {"x": {"type": "string"}}})
    with pytest.raises(ValueError, match="maxItems"):
        schemas.max_chars({"type": "array", "items": {"type": "boolean"}})


def _numbers(schema: dict, path: str = "") -> list[tuple[str, dict]]:
    if schema.get("type") in ("number", "integer"):
        return [(path, schema)]
    subs = list(schema.get("properties", {}).items())
    if isinstance(schema.get("items"), dict):
        subs.append(("[]", schema["items"]))
    subs += [(f"[{i}]", slot) for i, slot in enumerate(schema.get("prefixItems", []))]
    return [n for key, sub in subs for n in _numbers(sub, f"{path}.{key}")]


def test_schemas__every_number_is_an_enum_so_grammars_bound_it():
    """llama.cpp's JSON-schema grammar ignores minimum/maximum; an enum it honours."""
    found = [n for schema in (schemas.profile_schema(5), schemas.click_schema(["u0"], ["a1"]),
                              schemas.refine_schema()) for n in _numbers(schema)]  # fmt: skip
    assert [p for p, _ in found] == [".judgements.[0].click_prob"]
    for _, spec in found:
        assert spec.get("enum"), spec
        assert min(spec["enum"]) == 0 and max(spec["enum"]) == 1
    assert schemas.max_chars(found[0][1]) == 4  # "0.05": a tight max_tokens


def test_click_schema__one_fixed_slot_per_pair_so_no_pair_repeats_or_goes_missing():
    """A tuple of (user, app) slots with const ids: the model writes each pair once."""
    schema = schemas.click_schema(["u0", "u1"], ["a1", "a2", "a3"])
    array = schema["properties"]["judgements"]
    assert array["items"] is False and array["minItems"] == array["maxItems"] == 6
    assert schemas.click_pairs(schema) == [(u, a) for u in ("u0", "u1") for a in ("a1", "a2", "a3")]
    assert schemas.click_ids(schema) == (["u0", "u1"], ["a1", "a2", "a3"])
    longest = {"judgements": [{"user": u, "app_id": a, "clicked": False, "click_prob": 0.55}
                              for u, a in schemas.click_pairs(schema)]}  # fmt: skip
    assert schemas.max_chars(schema) >= len(json.dumps(longest, separators=(",", ":")))
    assert schemas.max_chars(schema) < 2 * len(json.dumps(longest, separators=(",", ":")))
    with pytest.raises(ValueError, match="open items"):
        schemas.max_chars({**array, "items": {"type": "boolean"}})


def test_schemas__max_tokens_covers_the_longest_reply():
    schema = schemas.profile_schema(5)
    longest = {
        "profiles": [{f: max(S.VOCAB[f], key=len) for f in S.PROFILE_FIELDS} for _ in range(5)]
    }
    chars = len(json.dumps(longest, separators=(",", ":")))
    assert schemas.max_chars(schema) >= chars
    assert schemas.max_tokens_for(schema, 10_000) * schemas.CHARS_PER_TOKEN >= chars
    assert schemas.max_tokens_for(schema, 100) == 100  # the configured cap wins
    # Measured on Gemma 3 270M: a 40-pair click reply ran past 1,473 tokens (cut there).
    clicks = schemas.click_schema([f"u{i}" for i in range(5)], [f"app-{i:05d}" for i in range(8)])
    assert schemas.max_tokens_for(clicks, 10_000) >= 1.25 * 1_473


def test_client__truncated_reply_is_not_retried_nor_stops_the_pool(standin):
    reset(standin)
    short = profile_request(1, rows=5)
    short = LLMRequest(short.request_hash, short.messages, {**short.sampling, "max_tokens": 20},
                       short.response_format)  # fmt: skip
    results, _ = _run(standin, [short, profile_request(2), profile_request(3)])
    assert results[0].truncated and not results[0].success and results[0].attempts == 1
    assert all(r.success for r in results[1:])
    assert admin(standin, "/admin/stats")["attempts_by_request"][short.request_hash] == 1


def test_progress__job_wide_line_from_pool_reports(standin, caplog):
    reset(standin)
    requests = [profile_request(i) for i in range(4)]
    with caplog.at_level(logging.INFO), ProgressServer("profile", 4, every_s=60) as server:
        _run(standin, requests, progress_url=server.url)
        line = server.line()
    assert "requests 4/4 (100%)" in line and "rows kept 12" in line
    assert "truncated 0, failed 0" in line and "ETA 0s" in line
    assert any("requests 4/4" in m for m in caplog.messages)  # logged on exit


def test_settings__env_overrides_endpoint_for_any_value(monkeypatch):
    for value in ("local-llm", "local", "http://gpu:8000/v1"):
        monkeypatch.setenv("COLDSTART_LLM_ENDPOINT", value)
        assert LLMSettings(endpoint="http://elsewhere/v1").endpoint == value
    monkeypatch.setenv("COLDSTART_LLM_ENDPOINT", "local-llm")
    eff = LLMSettings().effective()
    assert eff.dialect == "json_object" and eff.concurrency == 2 and eff.timeout_s == 1200
    monkeypatch.delenv("COLDSTART_LLM_ENDPOINT")
    assert LLMSettings().effective() == LLMSettings()
