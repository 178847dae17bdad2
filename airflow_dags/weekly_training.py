"""Weekly training DAG: recall model on a week of real logs + weighted synthetic rows.

    maintain = MaintainOperator(
        task_id="maintain",
        execution_timeout=timeout(SETTINGS, "maintain"),
    )
    wait_for_logs >> train >> gate >> interactions >> publish_model
    maintain  (independent)

* ``wait_for_logs``: sensor on ``raw.user_logs`` of the Sunday before the run
  (the last day of the window).
* ``train``: spark-submit ``coldstart train --weeks-ending <Sunday>`` (real
  logs of the 7 days ending that Sunday plus the published
  ``gold.weighted_synthetic``); reports AUC/logloss on held-out real rows,
  overall and on cold-start apps. XCom: the model version it wrote.
* ``gate``: compares those metrics with the currently published model
  (``orchestration.gate``: no regression beyond tolerance); fails the run,
  so nothing below runs and the published model stays.
* ``interactions``: spark-submit ``coldstart interactions --model <version>``:
  the Hessian map and feature groups of the new model into
  ``model.feature_groups`` (what the daily DAG reuses).
* ``publish_model``: moves the published-model pointer to the new version.
* ``maintain``: ``coldstart maintain`` in-process (delta-rs): retention window,
  compaction and vacuum of ``stage.llm_responses``
  (``orchestration.maintenance``), in the Monday slot when no daily
  ``synthesize`` appends.

Catchup off: one training per week, never a pile of catch-up trainings.
"""

from __future__ import annotations

import datetime as dt

from airflow.sdk import DAG, CronTriggerTimetable

from airflow_dags._common import (
    ColdstartJobOperator,
    DeltaPartitionSensor,
    MaintainOperator,
    ModelGateOperator,
    PublishModelOperator,
    default_args,
    load_settings,
    start_date,
    timeout,
)

SETTINGS = load_settings()
ORCH = SETTINGS.orchestration
VERSION = "{{ ti.xcom_pull(task_ids='train')['model_version'] }}"
# Runs on Monday; the training window ends on the Sunday before (a complete day).
WEEK_ENDING = "{{ macros.ds_add(ds, -1) }}"

with DAG(
    dag_id="weekly_training",
    description="Recall model on real + weighted synthetic rows; gated publish",
    schedule=CronTriggerTimetable(ORCH.weekly_schedule, timezone=ORCH.timezone),
    start_date=start_date(SETTINGS),
    catchup=ORCH.catchup,
    max_active_runs=1,
    dagrun_timeout=dt.timedelta(seconds=ORCH.dagrun_timeout_s),
    default_args=default_args(SETTINGS),
    tags=["coldstart", "weekly", "training", "torch"],
    doc_md=__doc__,
) as dag:
    wait_for_logs = DeltaPartitionSensor(
        task_id="wait_for_logs",
        table=SETTINGS.tables.user_logs,
        ds=WEEK_ENDING,
        mode="reschedule",
        poke_interval=ORCH.sensor_poke_s,
        timeout=ORCH.sensor_timeout_s,
        execution_timeout=dt.timedelta(seconds=ORCH.sensor_timeout_s + 60),
    )
    train = ColdstartJobOperator(
        task_id="train",
        job="train",
        job_args=["--weeks-ending", WEEK_ENDING],
        capture_model_version=True,
        # The weekly model learns from the published weighted synthetic rows too.
        config_overrides={"recmodel.use_synthetic": True},
        execution_timeout=timeout(SETTINGS, "train"),
    )
    gate = ModelGateOperator(
        task_id="gate",
        model_version=VERSION,
        retries=0,
        execution_timeout=timeout(SETTINGS, "gate"),
    )
    interactions = ColdstartJobOperator(
        task_id="interactions",
        job="interactions",
        job_args=["--model", VERSION],
        execution_timeout=timeout(SETTINGS, "interactions"),
    )
    publish_model = PublishModelOperator(
        task_id="publish_model",
        model_version=VERSION,
        execution_timeout=timeout(SETTINGS, "publish_model"),
    )
    maintain = MaintainOperator(
        task_id="maintain",
        execution_timeout=timeout(SETTINGS, "maintain"),
    )
    wait_for_logs >> train >> gate >> interactions >> publish_model
