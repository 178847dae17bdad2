"""The response cache ``stage.llm_responses``: pay for every LLM call once.

A request is identified by the SHA-256 of (model, prompt_version, messages,
sampling params incl. the per-request seed) in canonical JSON, where *model*
is the endpoint's cache identity: for a local GGUF the model id plus the
file's sha256, so a stand-in answer (or another file's) is never reused.
Every result, successful or not, is appended with that hash; lookups use
only ``status`` ok or truncated rows, so failures are retried by the next run
and successes (and replies cut at max_tokens, which would be cut again) never
are.
Appends happen per wave (see ``jobs/stage1/synthesize.py``), so a run killed
half-way keeps every wave it finished.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

STATUS_OK = "ok"
STATUS_ERROR = "error"
# Cut at max_tokens: kept like ok (the same seed would be cut again), parsed as a drop.
STATUS_TRUNCATED = "truncated"

# stage.llm_responses columns (unpartitioned; appended once per wave).
RESPONSE_DDL = (
    "request_hash string, ds string, run_id string, task string, model string, "
    "prompt_version string, status string, response string, error string, "
    "http_status int, attempts int, latency_s double, prompt_tokens long, "
    "completion_tokens long, created_at string"
)
RESPONSE_COLUMNS: tuple[str, ...] = tuple(c.strip().split(" ")[0] for c in RESPONSE_DDL.split(","))


def canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True)


def request_hash(
    model: str,
    prompt_version: str,
    messages: Sequence[Mapping[str, str]],
    sampling: Mapping[str, Any],
    response_format: Mapping[str, Any] | None = None,
) -> str:
    """Cache key: identical inputs (seed included) give an identical reply, so pay once."""
    doc = {
        "model": model,
        "prompt_version": prompt_version,
        "messages": list(messages),
        "sampling": dict(sampling),
        "response_format": response_format,
    }
    return hashlib.sha256(canonical_json(doc).encode("utf-8")).hexdigest()


def cached_ok(spark: SparkSession, path: str, writer: str = "auto") -> DataFrame | None:
    """``request_hash, response, model, status`` of every final cached call, or None."""
    from pyspark.sql import functions as F

    from jobs.platform.tables import read_table, table_exists

    if not table_exists(spark, path, writer):
        return None
    ok = read_table(spark, path, writer=writer).where(
        F.col("status").isin(STATUS_OK, STATUS_TRUNCATED)
    )
    return ok.select("request_hash", "response", "model", "status").dropDuplicates(["request_hash"])
