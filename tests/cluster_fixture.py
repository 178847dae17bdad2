"""A real Spark standalone cluster for tests: one master + two 1-core workers.

Started from the pyspark wheel's own ``bin/spark-class`` on 127.0.0.1, so CI
needs nothing but the wheel and a JDK. Every daemon binds port 0 and the
fixture reads the master's bound ports from its log: a port picked "free"
beforehand can be taken by another process (a second xdist worker's JVMs)
before the master binds it, and Spark then quietly moves to the next port.
The workers are deliberately *not* a copy of the driver's world, so that a job which
only works because the driver can see something fails here, as it would on
YARN or Kubernetes:

* each worker (and so each executor) runs in its own working directory with
  its own ``HOME``; relative paths resolved by the driver mean nothing there;
* ``COLDSTART_*`` variables and ``PYTHONPATH`` of the test process are not
  passed on;
* the executors' Python drops the checkout from ``sys.path`` and disables the
  editable install of ``coldstart`` (``sitecustomize`` below), so project code
  is importable on executors only from the artifact shipped with
  ``--py-files``.

Teardown stops workers, then the master, by process group, and fails the
session if any JVM it started (executors included) is still alive.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import psutil
import pytest

REPO = Path(__file__).resolve().parents[1]
T = TypeVar("T")
WORKERS = 2
WORKER_CORES = 1
WORKER_MEMORY = "1536m"
DAEMON_MEMORY = "256m"
START_TIMEOUT_S = 120.0
STOP_TIMEOUT_S = 20.0

# Runs first in every executor-side Python (PYTHONPATH points at its folder):
# removes the checkout and the editable-install finder, so `import jobs` on an
# executor works only from the shipped artifact.
SITECUSTOMIZE = f"""
import sys
_repo = {str(REPO)!r}
sys.path[:] = [p for p in sys.path if p not in ("", ".") and not p.startswith(_repo + "/jobs")
               and p != _repo]
sys.meta_path[:] = [f for f in sys.meta_path
                    if "__editable__" not in getattr(f, "__module__", "")
                    and "__editable__" not in type(f).__module__]
"""


def spark_home() -> Path:
    """The pyspark wheel's install folder (it carries bin/, jars/, sbin/)."""
    import pyspark

    return Path(pyspark.__file__).resolve().parent


def isolated_env(home: Path, python_path: Path) -> dict[str, str]:
    """Environment for a worker: no COLDSTART_*, own HOME, executor-side isolation."""
    keep = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("COLDSTART_", "PYSPARK_", "SPARK_", "PYTHON"))
    }
    keep.update(
        HOME=str(home),
        SPARK_HOME=str(spark_home()),
        SPARK_LOCAL_IP="127.0.0.1",
        SPARK_DAEMON_MEMORY=DAEMON_MEMORY,
        SPARK_LOG_DIR=str(home / "logs"),
        SPARK_NO_DAEMONIZE="1",
        PYTHONPATH=str(python_path),
    )
    return keep


@dataclass
class StandaloneCluster:
    """Master + workers as child process groups of the test process."""

    root: Path
    workers: int = WORKERS
    master_port: int = 0  # the bound ports, read from the master's log by start()
    ui_port: int = 0
    procs: list[subprocess.Popen] = field(default_factory=list)
    started_pids: set[int] = field(default_factory=set)

    @property
    def master_url(self) -> str:
        return f"spark://127.0.0.1:{self.master_port}"

    @property
    def ui_url(self) -> str:
        return f"http://127.0.0.1:{self.ui_port}"

    def _spawn(self, name: str, args: list[str], env: dict[str, str], cwd: Path) -> None:
        cwd.mkdir(parents=True, exist_ok=True)
        log = (self.root / f"{name}.log").open("wb")
        cmd = [str(spark_home() / "bin" / "spark-class"), *args]
        proc = subprocess.Popen(
            cmd,
            cwd=cwd,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=_die_with_parent,
        )
        self.procs.append(proc)
        self.started_pids.add(proc.pid)

    def start(self) -> StandaloneCluster:
        """Start master and workers; return once every worker is registered ALIVE."""
        isolate = self.root / "executor-python"
        isolate.mkdir(parents=True, exist_ok=True)
        (isolate / "sitecustomize.py").write_text(SITECUSTOMIZE)
        master_home = self.root / "master"
        master_env = isolated_env(master_home, isolate)
        master_args = ["org.apache.spark.deploy.master.Master", "--host", "127.0.0.1"]
        master_args += ["--port", "0", "--webui-port", "0"]
        # The REST submission server (6066 by default) is not used by the tests;
        # a second cluster on the machine would only collide with it.
        master_env["SPARK_MASTER_OPTS"] = "-Dspark.master.rest.enabled=false"
        self._spawn("master", master_args, master_env, master_home)
        self.master_port, self.ui_port = self._wait_master_ports()
        for i in range(self.workers):
            home = self.root / f"worker{i}"
            worker_args = ["org.apache.spark.deploy.worker.Worker", "--host", "127.0.0.1"]
            worker_args += ["--cores", str(WORKER_CORES), "--memory", WORKER_MEMORY]
            worker_args += ["--webui-port", "0", "--work-dir", str(home / "work")]
            worker_args.append(self.master_url)
            self._spawn(f"worker{i}", worker_args, isolated_env(home, isolate), home)
        self._wait_registered()
        return self

    def _wait_master_ports(self) -> tuple[int, int]:
        """The master's RPC and web UI ports, as its log reports them once bound."""
        log = self.root / "master.log"

        def bound() -> tuple[int, int] | None:
            text = log.read_text(errors="replace") if log.exists() else ""
            rpc = re.search(r"Starting Spark master at spark://127\.0\.0\.1:(\d+)", text)
            ui = re.search(r"service 'MasterUI' on port (\d+)", text)
            return (int(rpc.group(1)), int(ui.group(1))) if rpc and ui else None

        return self._wait_for(bound, "master ports not in its log")

    def _wait_for(self, probe: Callable[[], T | None], missing: str) -> T:
        """``probe()``'s first non-None value; RuntimeError if a daemon dies or time runs out."""
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            dead = [p.args[1] for p in self.procs if p.poll() is not None]
            if dead:
                raise RuntimeError(f"cluster process exited early: {dead}\n{self.log_tail()}")
            found = probe()
            if found is not None:
                return found
            time.sleep(0.25)
        raise RuntimeError(f"{missing} after {START_TIMEOUT_S}s\n{self.log_tail()}")

    def state(self) -> dict:
        """The master's JSON status page (workers, apps); checks it is this master's."""
        with urllib.request.urlopen(f"{self.ui_url}/json/", timeout=5) as resp:
            body = resp.read()
        try:
            state = json.loads(body)
        except ValueError:
            state = None
        if not isinstance(state, dict) or state.get("url") != self.master_url:
            raise RuntimeError(
                f"{self.ui_url}/json/ is not the status page of {self.master_url}: {body[:120]!r}"
            )
        return state

    def alive_workers(self) -> int:
        try:
            state = self.state()
        except OSError:
            return 0
        return sum(1 for w in state.get("workers", []) if w.get("state") == "ALIVE")

    def _wait_registered(self) -> None:
        self._wait_for(
            lambda: True if self.alive_workers() == self.workers else None,
            f"{self.workers} workers not registered",
        )

    def log_tail(self, lines: int = 15) -> str:
        out = []
        for log in sorted(self.root.glob("*.log")):
            tail = log.read_text(errors="replace").splitlines()[-lines:]
            out.append(f"== {log.name}\n" + "\n".join(tail))
        return "\n".join(out)

    def descendants(self) -> list[psutil.Process]:
        """Every live process this cluster started (JVMs, executors, Python workers)."""
        found: dict[int, psutil.Process] = {}
        for pid in self.started_pids:
            try:
                proc = psutil.Process(pid)
                found[pid] = proc
                found.update({c.pid: c for c in proc.children(recursive=True)})
            except psutil.NoSuchProcess:
                continue
        return [p for p in found.values() if _alive(p)]

    def stop(self) -> list[int]:
        """Stop workers, then master; return PIDs that had to be SIGKILLed or survived."""
        tree = self.descendants()
        self.started_pids.update(p.pid for p in tree)
        for proc in reversed(self.procs):  # workers first: they stop their executors
            _signal_group(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                _signal_group(proc.pid, signal.SIGKILL)
                proc.wait(timeout=STOP_TIMEOUT_S)
        _, alive = psutil.wait_procs(tree, timeout=STOP_TIMEOUT_S)
        for proc in alive:
            proc.kill()
        return [p.pid for p in alive]

    def stray_pids(self) -> list[int]:
        """PIDs started by this cluster that are still running."""
        return [pid for pid in self.started_pids if _pid_alive(pid)]


def _die_with_parent() -> None:
    """SIGTERM the daemon if the test process dies without tearing down (Linux).

    spark-class ends in ``exec java``, and the death signal survives exec; a
    worker's shutdown hook then stops its executors.
    """
    import ctypes

    pr_set_pdeathsig = 1
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)


def _alive(proc: psutil.Process) -> bool:
    try:
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _pid_alive(pid: int) -> bool:
    try:
        return _alive(psutil.Process(pid))
    except psutil.NoSuchProcess:
        return False


def _signal_group(pid: int, sig: signal.Signals) -> None:
    try:
        os.killpg(pid, sig)
    except ProcessLookupError:
        return


def start_cluster(root: Path, workers: int = WORKERS) -> StandaloneCluster:
    """Start a cluster under ``root``; stop what was started if start-up fails."""
    cluster = StandaloneCluster(root=root, workers=workers)
    try:
        return cluster.start()
    except BaseException:
        cluster.stop()
        raise


@pytest.fixture(scope="session")
def spark_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StandaloneCluster]:
    """A standalone master + 2 workers for the ``cluster`` tests (one per session)."""
    cluster = start_cluster(tmp_path_factory.mktemp("spark-cluster"))
    yield cluster
    killed = cluster.stop()
    stray = cluster.stray_pids()
    if killed or stray:
        pytest.fail(f"cluster teardown: killed {killed}, still running {stray}", pytrace=False)


def python_executable() -> str:
    """The interpreter drivers and executors run (the venv's)."""
    return sys.executable


# The weekly job's product the daily `weights` stage reads. The chain test and
# benchmarks/cluster.py publish this one row in every warehouse they compare.
WEEKLY_FEATURE_GROUPS = [["age_band", "category"], ["interest", "category"], ["device", "price"]]


def publish_feature_groups(table_paths: list[Path], groups: list[list[str]]) -> None:
    """Write one identical ``model.feature_groups`` row (the contract columns) to each path.

    delta-rs on the driver is fine here: it is one row, the output of a weekly
    job the daily chain only reads.
    """
    import datetime as dt

    import pyarrow as pa
    from deltalake import write_deltalake

    from jobs.platform import schema as S

    fields = list(S.LOG_FEATURE_FIELDS)
    zeros = [[0.0] * len(fields) for _ in fields]
    created = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    values = ["weekly-fixture", 0.5, fields, groups, zeros, created]
    names = ["model_version", "gamma", "fields", "groups", "interaction_matrix", "created_at"]
    schema = pa.schema(
        [pa.field(n, pa.float64() if n == "gamma" else pa.string(), False) for n in names]
    )
    row = [
        v if n in ("model_version", "gamma", "created_at") else json.dumps(v)
        for n, v in zip(names, values, strict=True)
    ]
    table = pa.table({n: [v] for n, v in zip(names, row, strict=True)}, schema=schema)
    for path in table_paths:
        write_deltalake(str(path), table, mode="overwrite")
