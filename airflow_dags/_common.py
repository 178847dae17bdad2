"""Shared pieces of the coldstart DAGs: config, defaults, a stage operator, a Delta sensor.

The scheduler parses DAG files constantly, so this module imports only
Airflow and the typed config (pydantic + YAML, ~0.1 s); Spark, delta-rs,
pandas and torch are imported inside ``execute``/``poke`` on the worker.

Where things come from (never from a DAG file):

* the config file: ``$COLDSTART_CONFIG`` on scheduler and workers, else the
  packaged ``configs/local.yaml``;
* the Spark master: the Airflow connection ``orchestration.spark_conn_id``
  (its host, e.g. ``yarn``, ``spark://host:7077``, ``local[*]``), else the
  config's ``submit.master`` / ``spark.master``;
* the LLM endpoint and key: the Airflow connection ``orchestration.llm_conn_id``
  (host = base URL, password = key), else ``llm.endpoint`` and the environment
  variable ``llm.api_key_env``.

Tasks are transactions keyed on ``{{ ds }}``: each one replaces exactly one
``ds`` partition through a spark-submit of our job modules, and returns
(XCom) only the table name and partition key it wrote.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator
from airflow.sdk.bases.sensor import BaseSensorOperator
from airflow.sdk.exceptions import AirflowException, AirflowNotFoundException

if TYPE_CHECKING:
    from configs.settings import Settings

CONFIG_ENV = "COLDSTART_CONFIG"


def load_settings() -> Settings:
    """The config the DAGs and their tasks run with (``$COLDSTART_CONFIG`` or the default)."""
    from configs.settings import load_config

    return load_config(os.environ.get(CONFIG_ENV) or None)


def default_args(settings: Settings) -> dict[str, Any]:
    """Retries with a delay for every task: each one is idempotent per ``ds``."""
    orch = settings.orchestration
    return {
        "owner": "data-platform",
        "retries": orch.retries,
        "retry_delay": dt.timedelta(seconds=orch.retry_delay_s),
        "retry_exponential_backoff": 2.0,
        "execution_timeout": dt.timedelta(seconds=orch.task_timeout_s),
        "depends_on_past": False,
    }


def start_date(settings: Settings) -> dt.datetime:
    """Timezone-aware start date from ``orchestration.start_date`` / ``timezone``."""
    from zoneinfo import ZoneInfo

    orch = settings.orchestration
    day = orch.start_date
    return dt.datetime(day.year, day.month, day.day, tzinfo=ZoneInfo(orch.timezone))


def timeout(settings: Settings, task_id: str) -> dt.timedelta:
    """execution_timeout of one task (``orchestration.task_timeouts_s`` overrides)."""
    return dt.timedelta(seconds=settings.orchestration.timeout_s(task_id))


def _connection(conn_id: str) -> Any | None:
    from airflow.sdk import Connection

    try:
        return Connection.get(conn_id)
    except AirflowNotFoundException:
        return None


def spark_master(settings: Settings) -> str | None:
    """Master URL from the Spark connection (e.g. ``spark://h`` + port 7077), else None."""
    conn = _connection(settings.orchestration.spark_conn_id)
    if conn is None or not conn.host:
        return None
    # As the Spark provider's hook reads it: host (with its scheme) plus port.
    return f"{conn.host}:{conn.port}" if conn.port else conn.host


def llm_overrides(settings: Settings) -> tuple[dict[str, Any], dict[str, str]]:
    """(config overrides, environment) from the LLM connection; empty if it is undefined."""
    conn = _connection(settings.orchestration.llm_conn_id)
    if conn is None:
        return {}, {}
    overrides = {"llm.endpoint": conn.host} if conn.host else {}
    env = {settings.llm.api_key_env: conn.password} if conn.password else {}
    return overrides, env


def run_streaming(cmd: Sequence[str], env: dict[str, str], logger: Any, owner: Any = None) -> int:
    """Run ``cmd``, copying its output line by line into the task log; its exit code.

    ``owner._proc`` holds the child while it runs, so ``on_kill`` (timeout,
    a user marking the task failed) can stop spark-submit instead of orphaning it.
    """
    import subprocess

    proc = subprocess.Popen(
        list(cmd),
        env={**os.environ, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        bufsize=1,
    )
    if owner is not None:
        owner._proc = proc
    assert proc.stdout is not None
    for line in proc.stdout:
        logger.info("%s", line.rstrip())
    return proc.wait()


class _SubprocessMixin:
    """Terminates the running spark-submit when Airflow kills the task."""

    _proc: Any = None

    def on_kill(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.terminate()


class ColdstartStageOperator(_SubprocessMixin, BaseOperator):
    """spark-submit one daily stage of ``jobs/orchestration/daily.py`` for one ``ds``.

    The command comes from ``jobs.orchestration.daily.stage_command`` (built on
    ``jobs.platform.submit.spark_submit_command``: the ``--py-files`` artifact, the
    config file, the resolved warehouse). Returns (XCom) the table name and
    partition key it wrote, never data.
    """

    template_fields: Sequence[str] = ("ds",)
    ui_color = "#e8f0fe"

    def __init__(self, *, stage: str, ds: str = "{{ ds }}", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.stage = stage
        self.ds = ds

    def execute(self, context: Any) -> dict[str, str]:
        from configs.settings import load_config
        from jobs.orchestration.daily import derived_config, stage_command, stage_output

        settings = load_settings()
        env: dict[str, str] = {}
        if self.stage == "synthesize":
            overrides, env = llm_overrides(settings)
            if overrides:
                settings = load_config(derived_config(settings, overrides))
        cmd = stage_command(self.stage, self.ds, settings, spark_master(settings))
        # The key (if any) travels in the environment, never on the command line.
        self.log.info("running: %s", " ".join(cmd))
        code = run_streaming(cmd, env, self.log, owner=self)
        if code != 0:
            raise AirflowException(f"stage {self.stage} ds={self.ds}: spark-submit exited {code}")
        return {"table": stage_output(self.stage, settings), "ds": self.ds}


class DeltaPartitionSensor(BaseSensorOperator):
    """Wait until partition ``ds`` of a Delta table is committed (delta-rs, no Spark).

    Reads only the Delta log, so a poke costs milliseconds; a partition being
    written but not yet committed is invisible, as for any reader.
    """

    template_fields: Sequence[str] = ("ds",)

    def __init__(self, *, table: str, ds: str = "{{ ds }}", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.table = table
        self.ds = ds

    def poke(self, context: Any) -> bool:
        from jobs.orchestration.publish import partition_rows

        settings = load_settings()
        path = settings.table_path(self.table)
        rows = partition_rows(path, self.ds)
        self.log.info("%s (%s) ds=%s: %s rows", self.table, path, self.ds, rows)
        return rows is not None


class ColdstartJobOperator(_SubprocessMixin, BaseOperator):
    """spark-submit any ``coldstart <job> <args>`` (templated args), e.g. the weekly train.

    ``config_overrides`` (dotted keys) run it on a derived config file. With
    ``capture_model_version`` it returns (XCom) the model version the job
    added under ``<warehouse>/model/recall/`` (listing before vs after).
    """

    template_fields: Sequence[str] = ("job_args",)

    def __init__(
        self,
        *,
        job: str,
        job_args: Sequence[str] = (),
        capture_model_version: bool = False,
        config_overrides: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.job = job
        self.job_args = list(job_args)
        self.capture_model_version = capture_model_version
        self.config_overrides = dict(config_overrides or {})

    def execute(self, context: Any) -> dict[str, str]:
        from configs.settings import load_config
        from jobs.orchestration import weekly
        from jobs.orchestration.daily import derived_config, pinned_artifact
        from jobs.platform.submit import spark_submit_command

        settings = load_settings()
        if self.config_overrides:
            settings = load_config(derived_config(settings, self.config_overrides))
        before = weekly.versions(settings) if self.capture_model_version else set()
        master, art = spark_master(settings), pinned_artifact()
        cmd = spark_submit_command(self.job, self.job_args, settings, master, artifact=art)
        self.log.info("running: %s", " ".join(cmd))
        code = run_streaming(cmd, {}, self.log, owner=self)
        if code != 0:
            raise AirflowException(f"job {self.job} {self.job_args}: spark-submit exited {code}")
        if self.capture_model_version:
            version = weekly.new_version(before, weekly.versions(settings))
            return {"table": f"model/{weekly.MODEL_NAME}", "model_version": version}
        return {"job": self.job}


class ModelGateOperator(BaseOperator):
    """Fail (no retry helps) unless the new model passes ``orchestration.gate``."""

    template_fields: Sequence[str] = ("model_version",)

    def __init__(self, *, model_version: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.model_version = model_version

    def execute(self, context: Any) -> dict[str, Any]:
        from airflow.sdk.exceptions import AirflowFailException

        from jobs.orchestration import weekly
        from jobs.platform.errors import ValidationFailedError

        try:
            result = weekly.check_gate(load_settings(), self.model_version)
        except ValidationFailedError as exc:
            raise AirflowFailException(str(exc)) from exc
        self.log.info("gate passed: %s", result)
        return {"model_version": self.model_version}


class MaintainOperator(BaseOperator):
    """``coldstart maintain`` in-process: delta-rs retention, compaction, vacuum (no Spark)."""

    template_fields: Sequence[str] = ("today",)

    def __init__(self, *, today: str = "{{ ds }}", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.today = today

    def execute(self, context: Any) -> list[dict[str, Any]]:
        import datetime as dt

        from jobs.orchestration.maintain import maintain

        results = maintain(load_settings(), dt.date.fromisoformat(self.today))
        self.log.info("maintain: %s", results)
        return results


class PublishModelOperator(BaseOperator):
    """Move the published-model pointer to the gated version."""

    template_fields: Sequence[str] = ("model_version",)

    def __init__(self, *, model_version: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.model_version = model_version

    def execute(self, context: Any) -> dict[str, str]:
        from jobs.orchestration import weekly

        path = weekly.publish(load_settings(), self.model_version)
        self.log.info("published model %s (%s)", self.model_version, path)
        return {"model_version": self.model_version}
