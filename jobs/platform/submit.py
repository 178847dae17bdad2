"""Print (or build) the exact spark-submit command that runs one coldstart job.

    coldstart submit-cmd simulate --ds 2026-11-23 --master spark://127.0.0.1:7077 --rows 100000
    coldstart submit-cmd sample --ds 2026-11-23 --config configs/cluster.example.yaml

Unknown options after the job name go to the job unchanged (``--rows`` above).
The command never relies on the submitter's working directory or on files
only the driver can see:

* project code travels as the ``--py-files`` zip built by ``jobs.platform.package``
  (rebuilt here when the sources changed);
* the config travels with ``--files`` in cluster deploy mode (the driver then
  finds it in its own working directory), or by absolute path in client mode;
* the warehouse root is resolved once, here, and handed to the driver through
  the launcher's ``--env COLDSTART_WAREHOUSE=...``: a relative ``./warehouse``
  means the same folder wherever the driver starts. Executors only ever get
  absolute table paths or URIs from the driver.

``spark_submit_command`` is the function other code (the Airflow worker)
calls; ``main`` is the CLI around it.
"""

from __future__ import annotations

import os
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path

from configs.settings import WAREHOUSE_ENV, Settings
from jobs.platform.errors import ConfigError, InputError
from jobs.platform.package import Artifact, ensure_artifact
from jobs.platform.tables import validate_ds

NOT_SUBMITTABLE = frozenset({"submit-cmd"})


def spark_submit_binary(configured: str | None) -> str:
    """The configured spark-submit, else ``$SPARK_HOME``'s, else the pyspark wheel's."""
    if configured:
        return configured
    home = os.environ.get("SPARK_HOME")
    if home:
        return str(Path(home) / "bin" / "spark-submit")
    import pyspark

    return str(Path(pyspark.__file__).resolve().parent / "bin" / "spark-submit")


def _check_job(job: str, job_args: Sequence[str]) -> None:
    from jobs.cli import COMMANDS

    if job not in COMMANDS or job in NOT_SUBMITTABLE:
        allowed = ", ".join(c for c in COMMANDS if c not in NOT_SUBMITTABLE)
        raise InputError(f"job {job!r}: not a coldstart job (choose from {allowed})")
    if any(a == "--config" or a.startswith("--config=") for a in job_args):
        raise InputError("job arguments: --config is set from the settings; do not pass it")


def _config_file(settings: Settings) -> Path:
    path = Path(settings.source)
    if not path.is_file():
        raise ConfigError(
            f"config {settings.source}: spark-submit needs settings loaded from a file "
            "(load_config(path)); it travels with the job"
        )
    return path.resolve()


def _resource_options(settings: Settings, cluster_mode: bool) -> list[str]:
    sub = settings.submit
    opts = ["--driver-memory", sub.driver_memory or settings.spark.driver_memory]
    opts += ["--executor-memory", sub.executor_memory]
    if sub.executor_cores is not None:
        opts += ["--executor-cores", str(sub.executor_cores)]
    if sub.num_executors is not None:
        opts += ["--num-executors", str(sub.num_executors)]
    python = sub.python or sys.executable
    driver_python = python if cluster_mode else sys.executable
    conf = {"spark.pyspark.python": python, "spark.pyspark.driver.python": driver_python}
    if settings.spark.shuffle_partitions is not None:
        conf["spark.sql.shuffle.partitions"] = str(settings.spark.shuffle_partitions)
    conf.update(settings.spark.conf)
    conf.update(sub.conf)
    for key, value in conf.items():
        opts += ["--conf", f"{key}={value}"]
    return opts


def submit_options(
    settings: Settings, master: str | None, name: str, artifact: Artifact
) -> list[str]:
    """spark-submit and its options up to (not including) the primary resource."""
    sub = settings.submit
    cluster_mode = sub.deploy_mode == "cluster"
    cmd = [spark_submit_binary(sub.spark_submit)]
    cmd += ["--master", master or sub.master or settings.spark.master]
    cmd += ["--deploy-mode", sub.deploy_mode, "--name", name]
    cmd += _resource_options(settings, cluster_mode)
    cmd += ["--py-files", str(artifact.zip_path)]
    config = [str(_config_file(settings))] if cluster_mode else []
    for flag, values in (
        ("--files", [*sub.files, *config]),
        ("--archives", sub.archives),
        ("--packages", sub.packages),
        ("--jars", sub.jars),
    ):
        if values:
            cmd += [flag, ",".join(values)]
    return cmd


def spark_submit_command(
    job: str,
    job_args: Sequence[str],
    settings: Settings,
    master: str | None = None,
    *,
    artifact: Artifact | None = None,
) -> list[str]:
    """argv of spark-submit running ``coldstart <job> <job_args>`` with ``settings``.

    ``settings`` must come from ``load_config(path)``: that file is the
    config the job reads. ``master`` overrides ``submit.master`` (which
    defaults to ``spark.master``). ``artifact`` defaults to the checkout's
    ``dist/`` zip, rebuilt if stale. Raises ``InputError`` for an unknown job
    and ``ConfigError`` for settings without a file.
    """
    _check_job(job, job_args)
    config = _config_file(settings)
    art = artifact or ensure_artifact()
    ds = _arg_value(job_args, "--ds")
    name = f"coldstart-{job}" + (f"-{ds}" if ds else "")
    cmd = submit_options(settings, master, name, art)
    cmd += [str(art.launcher), "--env", f"{WAREHOUSE_ENV}={settings.warehouse}"]
    in_cluster = settings.submit.deploy_mode == "cluster"
    cmd += [job, "--config", config.name if in_cluster else str(config), *job_args]
    return cmd


def _arg_value(args: Sequence[str], flag: str) -> str | None:
    for i, arg in enumerate(args):
        if arg == flag and i + 1 < len(args):
            return args[i + 1]
        if arg.startswith(f"{flag}="):
            return arg.split("=", 1)[1]
    return None


def main(argv: Sequence[str] | None = None) -> int:
    """``coldstart submit-cmd <job> [--ds D] [--config P] [--master URL] [job options]``."""
    from configs.settings import load_config
    from jobs.platform.common import OneLineParser

    parser = OneLineParser(
        prog="coldstart submit-cmd",
        description="Print the spark-submit command for a job; other options go to the job.",
    )
    parser.add_argument("job", help="coldstart subcommand to run (simulate, sample, ...)")
    parser.add_argument("--ds", default=None, help="partition date YYYY-MM-DD (daily jobs)")
    parser.add_argument("--config", default=None, help="YAML config the job runs with")
    parser.add_argument("--master", default=None, help="override submit.master")
    args, rest = parser.parse_known_args(argv)
    if args.ds is not None:
        validate_ds(args.ds)
    job_args = [*(["--ds", args.ds] if args.ds else []), *rest]
    settings = load_config(args.config)
    cmd = spark_submit_command(args.job, job_args, settings, args.master)
    print(shlex.join(cmd))
    return 0


if __name__ == "__main__":
    from jobs.cli import main as cli_main

    sys.exit(cli_main(["submit-cmd", *sys.argv[1:]]))
