"""Daily synthesis DAG: one day of logs -> validated, published weighted synthetic rows.

    wait_for_logs >> sample >> cluster >> synthesize >> weights >> validate >> publish
    wait_for_logs >> interactions >> weights

* ``wait_for_logs``: sensor on the Delta partition ``raw.user_logs[ds]``
  (reschedule mode: no worker slot held while waiting).
* ``sample``, ``cluster``, ``synthesize``, ``weights``: spark-submit of the
  job modules with ``--config`` and ``--ds {{ ds }}``; weights writes the
  candidate table, not gold.
* ``interactions``: reuse the feature groups the weekly DAG published
  (``model.feature_groups``); bootstrap them once on a fresh warehouse.
* ``validate``: row counts, ESS, alignment-report thresholds
  (``orchestration.validation``); no retries (it is deterministic); a
  violation fails the run and ``publish`` never runs.
* ``publish``: copies the validated partition to ``gold.weighted_synthetic[ds]``.

Catchup is off on purpose: turning the DAG on must not start months of LLM
calls; history goes through ``coldstart backfill`` or ``airflow dags backfill``.
Local test run: ``airflow dags test daily_synthesis 2026-11-23``.
"""

from __future__ import annotations

import datetime as dt

from airflow.sdk import DAG, CronDataIntervalTimetable

from airflow_dags._common import (
    ColdstartStageOperator,
    DeltaPartitionSensor,
    default_args,
    load_settings,
    start_date,
    timeout,
)
from configs.orchestration import DAILY_STAGES

SETTINGS = load_settings()
ORCH = SETTINGS.orchestration

with DAG(
    dag_id="daily_synthesis",
    description="SampleLLM daily: sample, cluster, synthesize, weight, validate, publish",
    # Data interval [D, D+1): ds is the day whose logs are complete when it runs.
    schedule=CronDataIntervalTimetable(ORCH.daily_schedule, timezone=ORCH.timezone),
    start_date=start_date(SETTINGS),
    catchup=ORCH.catchup,
    max_active_runs=ORCH.max_active_runs,
    dagrun_timeout=dt.timedelta(seconds=ORCH.dagrun_timeout_s),
    default_args=default_args(SETTINGS),
    tags=["coldstart", "daily", "llm", "spark"],
    doc_md=__doc__,
) as dag:
    wait_for_logs = DeltaPartitionSensor(
        task_id="wait_for_logs",
        table=SETTINGS.tables.user_logs,
        mode="reschedule",
        poke_interval=ORCH.sensor_poke_s,
        timeout=ORCH.sensor_timeout_s,
        execution_timeout=dt.timedelta(seconds=ORCH.sensor_timeout_s + 60),
    )
    stages = {
        name: ColdstartStageOperator(
            task_id=name,
            stage=name,
            execution_timeout=timeout(SETTINGS, name),
            **({"retries": 0} if name == "validate" else {}),
        )
        for name in DAILY_STAGES
    }
    wait_for_logs >> stages["sample"] >> stages["cluster"] >> stages["synthesize"]
    wait_for_logs >> stages["interactions"]
    [stages["synthesize"], stages["interactions"]] >> stages["weights"]
    stages["weights"] >> stages["validate"] >> stages["publish"]
