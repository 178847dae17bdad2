"""Config of the LLM endpoint (``llm:``) and of stage-1 synthesis (``synthesize:``).

Kept apart from ``settings.py`` so the LLM area owns its keys. ``endpoint:
local`` makes the pipeline start the offline stand-in server on localhost
(not an LLM; see ``llm_client/standin.py``); any other value is the base URL
of an OpenAI-compatible server (vLLM in production, see ``configs/vllm/``).
The API key is never a config value: only the *name* of the environment
variable that holds it, so a key cannot leak through a config dump or a log.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator

LOCAL_ENDPOINT = "local"
STANDIN_MODEL = "offline-standin"


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


class LLMSettings(_Strict):
    """Where the OpenAI-compatible endpoint is and how hard to call it."""

    endpoint: str = LOCAL_ENDPOINT
    # Model id sent in every request; ignored (forced to offline-standin) for local.
    model: str = "Qwen/Qwen2.5-7B-Instruct"
    api_key_env: str = "COLDSTART_LLM_API_KEY"
    # Total in-flight requests over the whole job, and per executor partition.
    concurrency: int = Field(default=32, ge=1)
    partition_concurrency: int = Field(default=16, ge=1)
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
    standin: StandinSettings = StandinSettings()

    @property
    def is_local(self) -> bool:
        return self.endpoint == LOCAL_ENDPOINT

    @model_validator(mode="after")
    def _pool_fits(self) -> LLMSettings:
        if self.partition_concurrency > self.concurrency:
            raise ValueError(
                f"partition_concurrency {self.partition_concurrency} exceeds "
                f"concurrency {self.concurrency}"
            )
        if not self.is_local and "://" not in self.endpoint:
            raise ValueError(
                f"endpoint {self.endpoint!r}: expected 'local' or a URL such as http://host:8000/v1"
            )
        return self


class SynthesizeSettings(_Strict):
    """SampleLLM stage 1: exemplars per request (a), rows per request (b), Q."""

    prompt_version: str = "v1"
    exemplars_per_request: int = Field(default=10, ge=1, le=50)
    rows_per_request: int = Field(default=5, ge=1, le=50)
    # Q: profile requests per day; None derives it from target_profiles / b.
    requests: int | None = Field(default=None, ge=1)
    target_profiles: int = Field(default=500, ge=1)
    # Click judgement: the profiles of one profile request x this many cold apps.
    apps_per_click_request: int = Field(default=8, ge=1, le=50)
    refine_rounds: int = Field(default=3, ge=1, le=5)
    refine_samples: int = Field(default=20, ge=1, le=200)
    seed: int = 7
