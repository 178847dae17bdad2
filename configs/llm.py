"""Config of the LLM endpoint (``llm:``) and of stage-1 synthesis (``synthesize:``).

Kept apart from ``settings.py`` so the LLM area owns its keys. ``endpoint:
local`` makes the pipeline start the offline stand-in server on localhost
(not an LLM; see ``llm_client/standin.py``); ``endpoint: local-llm`` starts a
real small LLM on the CPU (llama.cpp's OpenAI-compatible server with the
packaged Gemma 3 270M GGUF, or ``local_model_path``; ``llm_client/local_llm.py``);
any other value is the base URL of an OpenAI-compatible server (vLLM in
production, see ``configs/vllm/``). The environment variable
``COLDSTART_LLM_ENDPOINT`` overrides ``endpoint`` for any of these values.
The API key is never a config value: only the *name* of the environment
variable that holds it, so a key cannot leak through a config dump or a log.
"""

from __future__ import annotations

import os
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

LOCAL_ENDPOINT = "local"
LOCAL_LLM_ENDPOINT = "local-llm"
ENDPOINT_ENV = "COLDSTART_LLM_ENDPOINT"
STANDIN_MODEL = "offline-standin"
# How a server takes a JSON schema in ``response_format`` (see llm_client/client.py):
# json_schema = OpenAI / vLLM; json_object = llama-cpp-python ({"type": "json_object",
# "schema": ...}); auto = learn it from the server's answer.
Dialect = Literal["auto", "json_schema", "json_object"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class StandinSettings(_Strict):
    """Knobs of the offline stand-in when ``endpoint: local`` (tests, benchmarks)."""

    latency_ms: float = Field(default=0.0, ge=0)
    # Random fault rates per call (0..1): for benchmarks and chaos runs.
    rate_429: float = Field(default=0.0, ge=0, le=1)
    rate_500: float = Field(default=0.0, ge=0, le=1)
    rate_timeout: float = Field(default=0.0, ge=0, le=1)
    rate_invalid_json: float = Field(default=0.0, ge=0, le=1)
    startup_timeout_s: float = Field(default=60.0, gt=0)


class LocalLLMSettings(_Strict):
    """The llama.cpp server started for ``endpoint: local-llm`` (a real LLM on the CPU).

    The call settings replace the top-level ones for this endpoint: a CPU model
    writes ~20 tokens/s, so a 2-core box serves few requests at once and a slow
    reply is not a fault.
    """

    n_ctx: int = Field(default=8192, ge=512)
    n_threads: int = Field(default=2, ge=1)
    # Model load on a busy box: the readiness wait covers it.
    startup_timeout_s: float = Field(default=180.0, gt=0)
    # 0: any free loopback port (a start that loses it to another process is retried)
    port: int = Field(default=0, ge=0, le=65535)
    concurrency: int = Field(default=2, ge=1)
    partition_concurrency: int = Field(default=2, ge=1)
    # Per attempt, queueing included: llama.cpp serves one request at a time, so a
    # request may wait behind concurrency - 1 replies of up to max_tokens at ~5-20
    # tokens/s under a grammar (a 40-pair click request: 130-220 s on 2 idle cores).
    timeout_s: float = Field(default=1200.0, gt=0)
    max_retries: int = Field(default=2, ge=0, le=10)
    max_tokens: int = Field(default=2048, ge=16)
    wave_size: int = Field(default=32, ge=1)


class LLMSettings(_Strict):
    """Where the OpenAI-compatible endpoint is and how hard to call it."""

    endpoint: str = LOCAL_ENDPOINT
    # Model id sent in every request; ignored (forced to offline-standin) for local.
    model: str = "Qwen/Qwen2.5-7B-Instruct"
    api_key_env: str = "COLDSTART_LLM_API_KEY"
    # Total in-flight requests over the whole job (the cap the endpoint sustains),
    # and per executor partition (one async pool each).
    concurrency: int = Field(default=32, ge=1)
    partition_concurrency: int = Field(default=16, ge=1)
    # LLM call partitions per wave; null: the executors' cores (Spark's default
    # parallelism), so the call rate grows with the cluster up to the cap
    # concurrency // partition_concurrency.
    partitions: int | None = Field(default=None, ge=1)
    timeout_s: float = Field(default=120.0, gt=0)
    max_retries: int = Field(default=4, ge=0, le=10)
    backoff_base_s: float = Field(default=0.5, ge=0)
    backoff_max_s: float = Field(default=20.0, ge=0)
    ready_timeout_s: float = Field(default=60.0, gt=0)
    temperature: float = Field(default=0.9, ge=0, le=2)
    top_p: float = Field(default=0.95, gt=0, le=1)
    max_tokens: int = Field(default=2048, ge=16)
    # A run aborts when more than this share of its requests failed for good.
    max_failure_share: float = Field(default=0.05, ge=0, le=1)
    # Requests per committed wave: a crash loses at most one wave of calls.
    wave_size: int = Field(default=256, ge=1)
    # response_format shape the endpoint takes; auto: detected (llama.cpp: json_object).
    dialect: Dialect = "auto"
    # Any GGUF file for endpoint: local-llm; None: the packaged Gemma 3 270M (extra local-llm).
    local_model_path: str | None = None
    standin: StandinSettings = StandinSettings()
    local_llm: LocalLLMSettings = LocalLLMSettings()

    @model_validator(mode="before")
    @classmethod
    def _endpoint_from_env(cls, data: Any) -> Any:
        """COLDSTART_LLM_ENDPOINT beats the file, for any value (URL, local, local-llm)."""
        override = os.environ.get(ENDPOINT_ENV)
        if override and isinstance(data, dict):
            return {**data, "endpoint": override.strip()}
        return data

    @property
    def is_local(self) -> bool:
        return self.endpoint == LOCAL_ENDPOINT

    @property
    def is_local_llm(self) -> bool:
        return self.endpoint == LOCAL_LLM_ENDPOINT

    def effective(self) -> LLMSettings:
        """The settings calls run with: the CPU-sized ones for local-llm, else self."""
        if not self.is_local_llm:
            return self
        ll = self.local_llm
        return self.model_copy(
            update={
                "concurrency": ll.concurrency,
                "partition_concurrency": ll.partition_concurrency,
                "timeout_s": ll.timeout_s,
                "max_retries": ll.max_retries,
                "max_tokens": ll.max_tokens,
                "wave_size": ll.wave_size,
                "ready_timeout_s": ll.startup_timeout_s,
                "dialect": "json_object",
            }
        )

    @model_validator(mode="after")
    def _pool_fits(self) -> LLMSettings:
        if self.partition_concurrency > self.concurrency:
            raise ValueError(
                f"partition_concurrency {self.partition_concurrency} exceeds "
                f"concurrency {self.concurrency}"
            )
        if self.local_llm.partition_concurrency > self.local_llm.concurrency:
            raise ValueError(
                f"local_llm.partition_concurrency {self.local_llm.partition_concurrency} "
                f"exceeds local_llm.concurrency {self.local_llm.concurrency}"
            )
        if not (self.is_local or self.is_local_llm) and "://" not in self.endpoint:
            raise ValueError(
                f"endpoint {self.endpoint!r}: expected 'local', 'local-llm' or a URL such as "
                "http://host:8000/v1"
            )
        return self


class SynthesizeSettings(_Strict):
    """SampleLLM stage 1: exemplars per request (a), rows per request (b), Q."""

    # v2 = v1 + labelled examples in the click prompt (configs/prompts/v2/BASE).
    prompt_version: str = "v2"
    exemplars_per_request: int = Field(default=10, ge=1, le=50)
    # Labelled real impressions (seed users' own, on warm apps, half clicked) shown in
    # each click request; 0: zero-shot (the only choice for a version without $examples).
    click_exemplars: int = Field(default=4, ge=0, le=20)
    rows_per_request: int = Field(default=5, ge=1, le=50)
    # Q: profile requests per day; None derives it from target_profiles / b.
    requests: int | None = Field(default=None, ge=1)
    target_profiles: int = Field(default=500, ge=1)
    # Click judgement: the profiles of one profile request x this many cold apps.
    apps_per_click_request: int = Field(default=8, ge=1, le=50)
    # Per-domain budgets (jobs/stage1/budgets.py): click requests split across the
    # cold apps' categories in proportion to their cold apps ("equal": the same per
    # category; "none": one pooled list), each category at least domain_min_requests.
    domain_budget: Literal["proportional", "equal", "none"] = "proportional"
    domain_min_requests: int = Field(default=1, ge=0)
    # profiles: SampleLLM (invented users); candidates: ColdLLM / LLM-Ins (the LLM judges
    # the content filter's top candidates_per_app real users of each cold app,
    # candidate_users_per_request per request); both: the two row sets.
    mode: Literal["profiles", "candidates", "both"] = "profiles"
    candidates_per_app: int = Field(default=50, ge=1)
    candidate_users_per_request: int = Field(default=10, ge=1, le=50)
    # Delta table caching the apps' description vectors of the content filter; null: none.
    text_table: str | None = None
    refine_rounds: int = Field(default=3, ge=1, le=5)
    refine_samples: int = Field(default=20, ge=1, le=200)
    # Instruction selection (paper 2.3): profile requests per candidate instruction
    # (every refinement round, the template included) to score it; 0: the last round.
    select_requests: int = Field(default=2, ge=0, le=20)
    seed: int = 7
