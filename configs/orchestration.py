"""``orchestration:`` - Airflow DAGs, the publish gate, backfills and run-daily.

Its own module so the orchestration area owns its keys; ``Settings`` gains one
field (``orchestration: OrchestrationSettings``). Nothing secret lives here:
the LLM endpoint and key come from the Airflow connection named by
``llm_conn_id`` (or the ``llm:`` section and the environment), the Spark master
from the Airflow connection named by ``spark_conn_id`` (or ``submit.master`` /
``spark.master``).

Defaults make a laptop run work: validation thresholds a tiny simulated day
passes, catchup off (a fresh deployment must not launch months of LLM calls;
history goes through ``coldstart backfill``), retries with a delay because the
steps that fail transiently (LLM endpoint, cluster) are idempotent per ``ds``.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

DAILY_STAGES: tuple[str, ...] = (
    "sample",
    "cluster",
    "synthesize",
    "interactions",
    "weights",
    "validate",
    "publish",
)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ValidationSettings(_Strict):
    """The publish gate: a day that violates any of these is not published."""

    # Rows of stage.synthetic_raw[ds] and of the weighted candidate partition.
    min_synthetic_rows: int = Field(default=10, ge=1)
    min_weighted_rows: int = Field(default=10, ge=1)
    # Share of synthetic rows the weights step may drop (non-finite weights).
    max_dropped_share: float = Field(default=0.2, ge=0, le=1)
    # Effective sample size (sum w)^2 / sum w^2 as a share of weighted rows.
    min_ess_fraction: float = Field(default=0.05, gt=0, le=1)
    # Largest single weight (weights are self-normalised to mean 1). "sqrt_n"
    # (default): 2 * sqrt(N) for N weighted rows - the weights step truncates at
    # sqrt(N) * mean (Ionides 2008); renormalising after the cap lifts it by
    # mean_before / mean_after, which exceeds 2 only when truncation removed
    # over half the weight mass, i.e. a few rows dominated the day. A number:
    # a fixed cap; None: off.
    max_weight: Annotated[float, Field(gt=1)] | Literal["sqrt_n"] | None = "sqrt_n"
    # Alignment report of the weights run: mean TVD over dimensions after
    # weighting may be at most this times the TVD before; None: not checked.
    max_tvd_ratio: float | None = Field(default=1.05, gt=0)
    # Fail when the weights run wrote no alignment report (else only warn).
    require_report: bool = False
    # Accept days whose synthetic rows came from the offline stand-in (model
    # llm.STANDIN_MODEL). True for a laptop; false in production so test rows
    # never reach gold.
    allow_standin: bool = True


class GateSettings(_Strict):
    """Weekly publish gate: no regression beyond tolerance vs the published model."""

    metric: Literal["auc", "logloss"] = "auc"
    # Allowed drop of AUC (or rise of logloss) vs the published model, overall ...
    tolerance: float = Field(default=0.005, ge=0)
    # ... and on cold-start apps (noisier: few impressions).
    cold_start_tolerance: float = Field(default=0.02, ge=0)
    # Absolute floor of the overall AUC for the first model (nothing to compare with).
    min_auc: float = Field(default=0.55, ge=0, le=1)
    # A cold-start comparison that cannot be made (metric missing on either
    # side) fails the gate; false lets it pass, recorded as "not evaluated".
    require_cold_start: bool = True


class MaintenanceSettings(_Strict):
    """``coldstart maintain`` (weekly DAG task ``maintain``): retention and compaction."""

    # Append-only tables to maintain (logical names); they need a ``ds`` column
    # when keep_days is set.
    tables: tuple[str, ...] = ("stage.llm_responses",)
    # Rows whose ds is older than this many days are deleted; None: keep all.
    keep_days: int | None = Field(default=90, ge=1)
    # Small files are rewritten into files of about this size.
    target_file_mb: int = Field(default=128, ge=1)
    # Unreferenced files older than this are removed from storage (readers of
    # an older snapshot may need them until then: keep it above the longest job).
    vacuum_retention_hours: int = Field(default=168, ge=0)


class OrchestrationSettings(_Strict):
    """Airflow DAGs (``airflow_dags/``), ``coldstart run-daily`` and ``backfill``."""

    timezone: str = "UTC"
    start_date: dt.date = dt.date(2026, 11, 1)
    # Daily: a data-interval cron, so the run for day D starts once D is over and
    # its logical date (ds) is D itself; the sensor then waits for D's logs.
    daily_schedule: str = "0 0 * * *"
    # Weekly: a trigger cron (Mondays 04:00); it trains on the week ending the day before.
    weekly_schedule: str = "0 4 * * 1"
    catchup: bool = False
    max_active_runs: int = Field(default=1, ge=1)
    retries: int = Field(default=2, ge=0)
    retry_delay_s: int = Field(default=300, ge=0)
    # execution_timeout of every task, with overrides per task id.
    task_timeout_s: int = Field(default=3_600, ge=60)
    task_timeouts_s: dict[str, int] = Field(
        default_factory=lambda: {"synthesize": 4 * 3_600, "train": 4 * 3_600}
    )
    dagrun_timeout_s: int = Field(default=12 * 3_600, ge=60)
    # Sensor on raw.user_logs[ds]: reschedule mode frees the worker slot between pokes.
    sensor_poke_s: int = Field(default=300, ge=1)
    sensor_timeout_s: int = Field(default=6 * 3_600, ge=1)
    # Airflow connection whose host is the Spark master (e.g. yarn, spark://h:7077,
    # local[*]); when absent, submit.master / spark.master of this config.
    spark_conn_id: str = "spark_default"
    # Airflow connection of the LLM endpoint (host: base URL, password: API key);
    # when absent, llm.endpoint and the environment variable llm.api_key_env.
    llm_conn_id: str = "coldstart_llm"
    # The weights step writes here; ``publish`` copies a validated day to
    # tables.weighted_synthetic, so a day that fails the gate is never published.
    candidate_table: str = "stage.weighted_candidate"
    # Alignment report of a weights run, relative to the warehouse ({ds} filled in).
    report_dir: str = "reports/weights/ds={ds}"
    # Backfill: spark-submit per (day, stage), or in-process with one session.
    backfill_via: Literal["spark-submit", "in-process"] = "spark-submit"
    validation: ValidationSettings = ValidationSettings()
    gate: GateSettings = GateSettings()
    maintenance: MaintenanceSettings = MaintenanceSettings()

    @field_validator("candidate_table")
    @classmethod
    def _layer_dot_name(cls, value: str) -> str:
        parts = value.split(".")
        if len(parts) != 2 or not all(p.isidentifier() for p in parts):
            raise ValueError(f"expected 'layer.name' (e.g. stage.candidate), got {value!r}")
        return value

    def timeout_s(self, task_id: str) -> int:
        """execution_timeout of ``task_id`` in seconds."""
        return self.task_timeouts_s.get(task_id, self.task_timeout_s)
