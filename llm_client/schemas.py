"""JSON Schemas sent as ``response_format`` and the validation applied on receipt.

Guided decoding (vLLM's structured outputs) makes a well-behaved server emit
schema-valid JSON, but the pipeline does not trust that: a server without
guided decoding, a truncated reply or a prompt-injected description can still
yield wrong types, values outside the vocabularies, unknown app ids or copies
of real users. Every item is therefore checked again here; bad items are
dropped and counted by reason, never repaired silently.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from jobs.platform import schema as S

PROFILE_SCHEMA_NAME = "synthetic_profiles"
CLICK_SCHEMA_NAME = "click_judgements"
REFINE_SCHEMA_NAME = "instruction_refinement"

# Drop reasons (stable strings: they are run-log keys).
NOT_AN_OBJECT = "not_an_object"
MISSING_FIELD = "missing_field"
EXTRA_FIELD = "extra_field"
WRONG_TYPE = "wrong_type"
BAD_VALUE = "value_not_in_vocabulary"
OUT_OF_RANGE = "out_of_range"
UNKNOWN_APP = "unknown_app_id"
UNKNOWN_USER = "unknown_user_ref"
DUPLICATE = "duplicate_item"
SEED_COPY = "copy_of_seed"
BAD_ENVELOPE = "bad_envelope"
MISSING_JUDGEMENT = "missing_judgement"
TRUNCATED = "truncated_reply"  # finish_reason "length": counted, never retried

# Bounds that make constrained decoding terminate: every string and array has one.
REASONING_MAX_CHARS = 800
INSTRUCTION_MAX_CHARS = 1200
# Characters per token assumed when sizing max_tokens from a schema: JSON
# punctuation, ids and enum values tokenise short, and a grammar lets the model
# put whitespace between tokens. At 2.0 Gemma 3 270M ran out of tokens: a
# 40-pair click reply (compact bound 2,818 characters, so 1,473 tokens) took
# 1,408 to 1,463 tokens on the v1 prompt and was cut at 1,473 on v2's.
CHARS_PER_TOKEN = 1.5


def profile_schema(rows: int, fields: Sequence[str] = S.PROFILE_FIELDS) -> dict[str, Any]:
    """``{"profiles": [ {field: enum...} x rows ]}`` - exactly the profile columns."""
    item = {
        "type": "object",
        "properties": {f: {"type": "string", "enum": list(S.VOCAB[f])} for f in fields},
        "required": list(fields),
        "additionalProperties": False,
    }
    return {
        "type": "object",
        "properties": {
            "profiles": {"type": "array", "items": item, "minItems": rows, "maxItems": rows}
        },
        "required": ["profiles"],
        "additionalProperties": False,
    }


# click_prob as an enum of two-decimal values: constrained decoding honours an
# enum everywhere (llama.cpp's JSON-schema grammar ignores minimum/maximum of a
# "number", and a small model then writes probabilities above 1).
CLICK_PROB_GRID: tuple[float, ...] = tuple(round(i / 100, 2) for i in range(101))


def click_schema(user_refs: Sequence[str], app_ids: Sequence[str]) -> dict[str, Any]:
    """``{"judgements": [{user, app_id, clicked, click_prob}]}``: one fixed slot per pair.

    The array is a tuple (``prefixItems``): slot k holds (user, app) pair k as
    ``const`` values, users outer and apps inner, so constrained decoding
    writes every asked pair exactly once and the model only chooses
    ``clicked`` and ``click_prob``. With an open ``items`` schema Gemma 270M
    repeated pairs and skipped others (19 duplicates and 19 missing of 36 in
    ``benchmarks/results/llm_local.md``). llama.cpp's grammar, vLLM's
    xgrammar and llguidance honour ``prefixItems``; a server that ignores it
    still meets the validator, which drops duplicates and counts gaps.
    """
    slots = [
        {
            "type": "object",
            "properties": {
                "user": {"type": "string", "const": str(u)},
                "app_id": {"type": "string", "const": str(a)},
                "clicked": {"type": "boolean"},
                "click_prob": {"type": "number", "enum": list(CLICK_PROB_GRID)},
            },
            "required": ["user", "app_id", "clicked", "click_prob"],
            "additionalProperties": False,
        }
        for u in user_refs
        for a in app_ids
    ]
    n = len(slots)
    tuple_ = {"type": "array", "prefixItems": slots, "items": False, "minItems": n, "maxItems": n}
    return {
        "type": "object",
        "properties": {"judgements": tuple_},
        "required": ["judgements"],
        "additionalProperties": False,
    }


def click_pairs(schema: dict[str, Any]) -> list[tuple[str, str]]:
    """The (user, app_id) pairs a click schema asks for, in slot order."""
    slots = schema["properties"]["judgements"]["prefixItems"]
    return [(s["properties"]["user"]["const"], s["properties"]["app_id"]["const"]) for s in slots]


def click_ids(schema: dict[str, Any]) -> tuple[list[str], list[str]]:
    """(user refs, app ids) of a click schema, each once, in slot order."""
    pairs = click_pairs(schema)
    return list(dict.fromkeys(u for u, _ in pairs)), list(dict.fromkeys(a for _, a in pairs))


def refine_schema() -> dict[str, Any]:
    """Chain of thought in ``reasoning``; only ``instruction`` is kept."""
    return {
        "type": "object",
        "properties": {
            "reasoning": {"type": "string", "maxLength": REASONING_MAX_CHARS},
            "instruction": {
                "type": "string",
                "minLength": 20,
                "maxLength": INSTRUCTION_MAX_CHARS,
            },
        },
        "required": ["reasoning", "instruction"],
        "additionalProperties": False,
    }


def response_format(name: str, schema: dict[str, Any]) -> dict[str, Any]:
    """The OpenAI ``response_format`` envelope (honoured by vLLM guided decoding).

    This canonical form is what requests carry and what the cache hashes; the
    client rewrites it per endpoint dialect on the wire (``for_dialect``).
    """
    return {"type": "json_schema", "json_schema": {"name": name, "schema": schema, "strict": True}}


def for_dialect(fmt: dict[str, Any] | None, dialect: str) -> dict[str, Any] | None:
    """``response_format`` as the endpoint takes it.

    json_schema (OpenAI, vLLM): unchanged. json_object (llama-cpp-python's
    server, which rejects the json_schema type with "Input should be 'text' or
    'json_object'"): ``{"type": "json_object", "schema": ...}``.
    """
    if fmt is None or dialect != "json_object" or fmt.get("type") != "json_schema":
        return fmt
    return {"type": "json_object", "schema": fmt["json_schema"]["schema"]}


def max_chars(schema: dict[str, Any]) -> int:
    """Upper bound of the compact JSON text of any instance of ``schema``.

    Raises ValueError naming an unbounded string or array: such a schema lets
    constrained decoding run until max_tokens (a truncated, dropped reply).
    """
    kind = schema.get("type")
    if "const" in schema:
        return len(_json(schema["const"]))
    if "enum" in schema:
        return max(len(_json(v)) for v in schema["enum"])
    if kind == "boolean":
        return 5
    if kind in ("number", "integer"):
        return 52  # llama.cpp's grammar: -, 16 digits, ".", 16 digits, e+, 16 digits
    if kind == "string":
        if "maxLength" not in schema:
            raise ValueError("string without maxLength or enum")
        return 2 + 2 * int(schema["maxLength"])  # escapes may double a character
    if kind == "array" and "prefixItems" in schema:
        slots = schema["prefixItems"]
        if schema.get("items", True) is not False:
            raise ValueError("array with prefixItems but open items")
        return 2 + sum(max_chars(s) + 1 for s in slots)
    if kind == "array":
        if "maxItems" not in schema:
            raise ValueError("array without maxItems")
        n = int(schema["maxItems"])
        return 2 + n * (max_chars(schema["items"]) + 1)
    if kind == "object":
        props = schema.get("properties", {})
        return 2 + sum(len(_json(k)) + 2 + max_chars(v) for k, v in props.items())
    raise ValueError(f"type {kind!r} not bounded")


def max_tokens_for(schema: dict[str, Any], cap: int) -> int:
    """max_tokens for a reply under ``schema``: its bound in tokens plus slack, at most cap."""
    return min(cap, int(max_chars(schema) / CHARS_PER_TOKEN) + 64)


def _json(value: Any) -> str:
    import json

    return json.dumps(value)


@dataclass
class Validated:
    """Items that passed, and how many were dropped for which reason."""

    items: list[dict[str, Any]] = field(default_factory=list)
    dropped: Counter = field(default_factory=Counter)


def _envelope(doc: Any, key: str, out: Validated) -> list[Any]:
    if not isinstance(doc, dict) or not isinstance(doc.get(key), list):
        out.dropped[BAD_ENVELOPE] += 1
        return []
    return doc[key]


def _check_keys(item: Any, fields: Sequence[str]) -> str | None:
    if not isinstance(item, dict):
        return NOT_AN_OBJECT
    if any(f not in item for f in fields):
        return MISSING_FIELD
    if any(k not in fields for k in item):
        return EXTRA_FIELD
    return None


def profile_problem(item: Any, fields: Sequence[str] = S.PROFILE_FIELDS) -> str | None:
    """The drop reason of one profile item, or None when it is valid."""
    problem = _check_keys(item, fields)
    if problem:
        return problem
    for f in fields:
        if not isinstance(item[f], str):
            return WRONG_TYPE
        if item[f] not in S.VOCAB[f]:
            return BAD_VALUE
    return None


def profile_key(item: dict[str, Any], fields: Sequence[str] = S.PROFILE_FIELDS) -> tuple:
    return tuple(item[f] for f in fields)


def validate_profiles(
    doc: Any, *, seed_keys: Iterable[tuple] = (), fields: Sequence[str] = S.PROFILE_FIELDS
) -> Validated:
    """Keep schema-valid, new, non-duplicate profiles; count the rest by reason."""
    out = Validated()
    seeds = set(seed_keys)
    seen: set[tuple] = set()
    for item in _envelope(doc, "profiles", out):
        problem = profile_problem(item, fields)
        if problem is None:
            key = profile_key(item, fields)
            problem = SEED_COPY if key in seeds else DUPLICATE if key in seen else None
            seen.add(key)
        if problem:
            out.dropped[problem] += 1
        else:
            out.items.append({f: item[f] for f in fields})
    return out


def _click_problem(item: Any, users: set[str], apps: set[str]) -> str | None:
    problem = _check_keys(item, ("user", "app_id", "clicked", "click_prob"))
    if problem:
        return problem
    prob = item["click_prob"]
    if not isinstance(item["user"], str) or not isinstance(item["app_id"], str):
        return WRONG_TYPE
    if not isinstance(item["clicked"], bool):
        return WRONG_TYPE
    if isinstance(prob, bool) or not isinstance(prob, int | float):
        return WRONG_TYPE
    if not math.isfinite(prob) or not 0.0 <= prob <= 1.0:
        return OUT_OF_RANGE
    if item["user"] not in users:
        return UNKNOWN_USER
    if item["app_id"] not in apps:
        return UNKNOWN_APP
    return None


def validate_clicks(doc: Any, user_refs: Sequence[str], app_ids: Sequence[str]) -> Validated:
    """Keep one valid judgement per asked (user, app) pair; count the rest and the gaps."""
    out = Validated()
    users, apps = set(user_refs), set(app_ids)
    seen: set[tuple[str, str]] = set()
    for item in _envelope(doc, "judgements", out):
        problem = _click_problem(item, users, apps)
        if problem is None and (item["user"], item["app_id"]) in seen:
            problem = DUPLICATE
        if problem:
            out.dropped[problem] += 1
            continue
        seen.add((item["user"], item["app_id"]))
        out.items.append(
            {
                "user": item["user"],
                "app_id": item["app_id"],
                "clicked": int(item["clicked"]),
                "click_prob": float(item["click_prob"]),
            }
        )
    missing = len(users) * len(apps) - len(seen)
    if missing > 0:
        out.dropped[MISSING_JUDGEMENT] += missing
    return out


def kept_rows(doc: Any, fmt: dict[str, Any] | None) -> int:
    """Items of a reply that pass validation (for progress; seed copies checked later)."""
    schema = ((fmt or {}).get("json_schema") or {}).get("schema") or {}
    props = schema.get("properties") or {}
    if "profiles" in props:
        return len(validate_profiles(doc).items)
    if "judgements" in props:
        return len(validate_clicks(doc, *click_ids(schema)).items)
    return 0
