"""The Airflow DAG files: they import cleanly, fast, without heavy modules, wired as designed.

The DagBag is filled in a fresh interpreter with its own AIRFLOW_HOME, as the
scheduler's DAG processor would, so the parse time and the set of imported
modules are those of a real parse, not of this test process.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
HEAVY = ("pyspark", "pandas", "deltalake", "torch", "pyarrow", "sklearn", "openai")

PROBE = r"""
import json, sys
from airflow.dag_processing.dagbag import DagBag
bag = DagBag(dag_folder=sys.argv[1])
out = {
    "import_errors": {k: str(v)[-500:] for k, v in bag.import_errors.items()},
    "stats": {s.file: s.duration.total_seconds() for s in bag.dagbag_stats},
    "heavy": [m for m in sys.argv[2].split(",") if m in sys.modules],
    "dags": {},
}
for dag_id, dag in bag.dags.items():
    out["dags"][dag_id] = {
        "catchup": dag.catchup,
        "tags": sorted(dag.tags),
        "tz": str(dag.start_date.tzinfo) if dag.start_date else None,
        "timetable": type(dag.timetable).__name__,
        "tasks": {
            t.task_id: {
                "upstream": sorted(t.upstream_task_ids),
                "retries": t.retries,
                "retry_delay": t.retry_delay.total_seconds(),
                "timeout": t.execution_timeout.total_seconds() if t.execution_timeout else None,
            }
            for t in dag.tasks
        },
    }
print("PROBE" + json.dumps(out))
"""

DAILY = {
    "wait_for_logs": [],
    "sample": ["wait_for_logs"],
    "cluster": ["sample"],
    "synthesize": ["cluster"],
    "interactions": ["wait_for_logs"],
    "weights": ["interactions", "synthesize"],
    "validate": ["weights"],
    "publish": ["validate"],
}
WEEKLY = {
    "wait_for_logs": [],
    "train": ["wait_for_logs"],
    "gate": ["train"],
    "interactions": ["gate"],
    "publish_model": ["interactions"],
    "maintain": [],
}


@pytest.fixture(scope="module")
def dagbag(tmp_path_factory: pytest.TempPathFactory) -> dict:
    home = tmp_path_factory.mktemp("airflow_home")
    env = {
        **os.environ,
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__UNIT_TEST_MODE": "True",
    }
    env.pop("COLDSTART_CONFIG", None)
    proc = subprocess.run(
        [sys.executable, "-c", PROBE, str(REPO / "airflow_dags"), ",".join(HEAVY)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        cwd=REPO,
    )
    line = [x for x in proc.stdout.splitlines() if x.startswith("PROBE")]
    assert proc.returncode == 0 and line, proc.stderr[-3000:]
    return json.loads(line[-1][len("PROBE") :])


def _acyclic(tasks: dict[str, dict]) -> bool:
    """Kahn's algorithm over the upstream lists."""
    indeg = {t: len(v["upstream"]) for t, v in tasks.items()}
    ready = [t for t, n in indeg.items() if n == 0]
    seen = 0
    while ready:
        node = ready.pop()
        seen += 1
        for t, v in tasks.items():
            if node in v["upstream"]:
                indeg[t] -= 1
                if indeg[t] == 0:
                    ready.append(t)
    return seen == len(tasks)


def test_dagbag__no_import_errors_and_both_dags(dagbag: dict) -> None:
    assert dagbag["import_errors"] == {}
    assert set(dagbag["dags"]) == {"daily_synthesis", "weekly_training"}


def test_dagbag__parse_time_per_file_under_2s(dagbag: dict) -> None:
    assert set(dagbag["stats"]) == {"daily_synthesis.py", "weekly_training.py"}
    for file, seconds in dagbag["stats"].items():
        assert seconds < 2.0, f"{file} took {seconds:.2f} s to parse"


def test_dagbag__dag_files_import_nothing_heavy(dagbag: dict) -> None:
    assert dagbag["heavy"] == []


@pytest.mark.parametrize(
    ("dag_id", "expected"), [("daily_synthesis", DAILY), ("weekly_training", WEEKLY)]
)
def test_dag__task_ids_and_dependencies(dagbag: dict, dag_id: str, expected: dict) -> None:
    tasks = dagbag["dags"][dag_id]["tasks"]
    assert {t: v["upstream"] for t, v in tasks.items()} == expected
    assert _acyclic(tasks)


@pytest.mark.parametrize("dag_id", ["daily_synthesis", "weekly_training"])
def test_dag__scheduling_policy_is_explicit(dagbag: dict, dag_id: str) -> None:
    dag = dagbag["dags"][dag_id]
    assert dag["catchup"] is False
    assert "coldstart" in dag["tags"]
    assert dag["tz"] == "UTC"
    assert dag["timetable"] in ("CronDataIntervalTimetable", "CronTriggerTimetable")
    for task_id, task in dag["tasks"].items():
        assert task["timeout"] is not None, f"{task_id} has no execution_timeout"
        gates = ("validate", "gate")
        assert task["retries"] == (0 if task_id in gates else 2), task_id
        assert task["retry_delay"] == 300


def test_daily_dag__interval_timetable_gives_ds_of_a_complete_day(dagbag: dict) -> None:
    assert dagbag["dags"]["daily_synthesis"]["timetable"] == "CronDataIntervalTimetable"
