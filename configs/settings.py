"""Typed configuration: YAML in, validated pydantic models out.

Loaded once at start-up, before any Spark work, so that a typo in a key or a
wrong type fails in a second with the file and key named, not twenty minutes
into a run. Every model forbids unknown keys. Jobs receive only the
sub-model they need (``settings.sample``, ``settings.spark`` ...).
"""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from configs.evaluation import EvaluateSettings
from configs.llm import LLMSettings, SynthesizeSettings
from configs.orchestration import OrchestrationSettings
from configs.recmodel import InteractionSettings, RecmodelSettings
from configs.stage1 import ClusterSettings, SampleSettings
from configs.submit import SubmitSettings
from configs.weights import AlignSettings, WeightsSettings
from jobs.platform.errors import ConfigError

WAREHOUSE_ENV = "COLDSTART_WAREHOUSE"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SparkSettings(_Strict):
    """Session settings for local runs; under spark-submit the cluster's win."""

    master: str = "local[*]"
    app_name: str = "coldstart"
    driver_memory: str = "4g"
    # None: 2 x the local cores (small, so tiny test days do not pay for 200 tasks).
    shuffle_partitions: int | None = Field(default=None, ge=1)
    conf: dict[str, str] = Field(default_factory=dict)


class S3Settings(_Strict):
    """S3 service of an ``s3://`` / ``s3a://`` warehouse, for the Python-side file access.

    None: ``$AWS_ENDPOINT_URL`` / ``$AWS_REGION``, else the AWS defaults. Keys
    never live here: ``AWS_ACCESS_KEY_ID`` / ``AWS_SECRET_ACCESS_KEY`` from the
    environment, or the instance's role. Spark's s3a settings are
    ``spark.hadoop.fs.s3a.*`` under ``spark.conf`` (docs/cluster.md).
    """

    endpoint_url: str | None = None  # e.g. http://minio.internal:9000
    region: str | None = None


class IOSettings(_Strict):
    """How Delta tables are written and read.

    ``auto`` uses Spark's native Delta when the extension is on the session's
    classpath (a real cluster) and delta-rs otherwise (this machine, CI).
    """

    delta_writer: Literal["auto", "native", "delta-rs"] = "auto"
    s3: S3Settings = S3Settings()


class TableSettings(_Strict):
    """Logical table names (``layer.name``) for every table of DESIGN.md."""

    user_logs: str = "raw.user_logs"
    apps: str = "ref.apps"
    sampled_logs: str = "stage.sampled_logs"
    user_clusters: str = "stage.user_clusters"
    seeds: str = "stage.seeds"
    llm_responses: str = "stage.llm_responses"
    synthetic_raw: str = "stage.synthetic_raw"
    feature_groups: str = "model.feature_groups"
    weighted_synthetic: str = "gold.weighted_synthetic"

    @field_validator("*")
    @classmethod
    def _layer_dot_name(cls, value: str) -> str:
        parts = value.split(".")
        if len(parts) != 2 or not all(p.isidentifier() for p in parts):
            raise ValueError(f"expected 'layer.name' (e.g. raw.user_logs), got {value!r}")
        return value


class SimulateSettings(_Strict):
    """The app-store log simulator (ground truth with planted interactions)."""

    rows: int = Field(default=100_000, ge=1)
    # Users and apps; None derives users from rows (rows / rows_per_user).
    users: int | None = Field(default=None, ge=10)
    rows_per_user: float = Field(default=20.0, gt=0)
    apps: int = Field(default=2_000, ge=20)
    cold_start_fraction: float = Field(default=0.03, gt=0, lt=0.5)
    # Share of impressions that go to cold-start apps (they are rarely shown).
    cold_start_impression_share: float = Field(default=0.002, ge=0, lt=0.5)
    bot_user_fraction: float = Field(default=0.001, ge=0, lt=0.1)
    bot_impression_share: float = Field(default=0.01, ge=0, lt=0.5)
    base_ctr: float = Field(default=0.05, gt=0, lt=1)
    interaction_strength: float = Field(default=1.0, ge=0)
    # Simulator v2 latents (jobs/sources/themes.py): themes per app, weight of
    # taste . themes in the logit, sd of the per-user taste noise and of the
    # app quality, share of an app's themes its description mentions, chance
    # of a decoy theme phrase in a description.
    themes_per_app: int = Field(default=3, ge=1, le=6)
    theme_weight: float = Field(default=0.8, ge=0)
    taste_sd: float = Field(default=0.8, ge=0)
    quality_sd: float = Field(default=0.5, ge=0)
    theme_mention_rate: float = Field(default=0.6, ge=0, le=1)
    theme_decoy_rate: float = Field(default=0.3, ge=0, le=1)
    seed: int = 42
    partitions: int | None = Field(default=None, ge=1)


class Settings(_Strict):
    """The whole configuration of one deployment."""

    warehouse: str = "./warehouse"
    spark: SparkSettings = SparkSettings()
    io: IOSettings = IOSettings()
    tables: TableSettings = TableSettings()
    simulate: SimulateSettings = SimulateSettings()
    recmodel: RecmodelSettings = RecmodelSettings()
    interactions: InteractionSettings = InteractionSettings()
    llm: LLMSettings = LLMSettings()
    synthesize: SynthesizeSettings = SynthesizeSettings()
    weights: WeightsSettings = WeightsSettings()
    align: AlignSettings = AlignSettings()
    sample: SampleSettings = SampleSettings()
    cluster: ClusterSettings = ClusterSettings()
    submit: SubmitSettings = SubmitSettings()
    evaluate: EvaluateSettings = EvaluateSettings()
    orchestration: OrchestrationSettings = OrchestrationSettings()
    # Where the file came from, for messages; not a YAML key.
    source: str = Field(default="<defaults>", exclude=True)

    def table_path(self, table: str) -> str:
        """``raw.user_logs`` -> ``<warehouse>/raw/user_logs`` (DESIGN.md contract)."""
        layer, name = table.split(".")
        return f"{self.warehouse.rstrip('/')}/{layer}/{name}"


def default_config_path() -> Path:
    """The packaged ``configs/local.yaml`` (used when no ``--config`` is given)."""
    return Path(str(resources.files("configs") / "local.yaml"))


def _format_errors(path: str, err: ValidationError) -> str:
    first = err.errors()[0]
    key = ".".join(str(p) for p in first["loc"]) or "<root>"
    reason = first["msg"]
    if first["type"] == "extra_forbidden":
        reason = "unknown key"
    more = f" (+{err.error_count() - 1} more)" if err.error_count() > 1 else ""
    return f"config {path}: key '{key}': {reason}{more}"


def _resolve_warehouse(raw: str) -> str:
    override = os.environ.get(WAREHOUSE_ENV)
    value = override if override else raw
    if "://" in value:
        return value
    path = Path(value).expanduser()
    # Relative paths in a file are relative to the working directory, which is
    # what a user running ``coldstart`` from a checkout expects.
    return str(path if path.is_absolute() else (Path.cwd() / path).resolve())


def load_config(path: str | os.PathLike[str] | None = None) -> Settings:
    """Load and validate a YAML config; raise ``ConfigError`` naming file and key.

    Without ``path`` the packaged ``configs/local.yaml`` is read through
    ``importlib.resources``, so it also loads when ``configs`` is imported from
    the ``--py-files`` zip (a spark-submitted driver), where it is no file.
    """
    cfg_file = Path(path) if path is not None else resources.files("configs") / "local.yaml"
    cfg_path = str(cfg_file)
    if not cfg_file.is_file():
        raise ConfigError(f"config {cfg_path}: file not found")
    try:
        data = yaml.safe_load(cfg_file.read_text()) or {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"config {cfg_path}:{where} is not valid YAML") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"config {cfg_path}: expected a mapping at the top level")
    try:
        settings = Settings.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_format_errors(cfg_path, exc)) from exc
    from jobs.platform import fs

    fs.configure(settings.io.s3.endpoint_url, settings.io.s3.region)
    warehouse = _resolve_warehouse(settings.warehouse)
    return settings.model_copy(update={"warehouse": warehouse, "source": cfg_path})
