"""The one SparkSession factory for local runs, tests and spark-submit.

Locally (``python -m`` / ``coldstart``) it builds ``local[*]`` with defaults
sized to this machine. Under spark-submit the launcher already decided the
master, memory and resources; we only add settings the jobs depend on for
correctness (UTC, Arrow, Parquet timestamp type) and only if the cluster did
not set them, so nothing here fights a cluster's config.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import TYPE_CHECKING

from configs.settings import SparkSettings

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

log = logging.getLogger(__name__)

# Settings every job relies on for correct results, not for speed.
REQUIRED_CONF: dict[str, str] = {
    "spark.sql.session.timeZone": "UTC",
    "spark.sql.execution.arrow.pyspark.enabled": "true",
    # delta-rs and every Delta reader expect INT64 micros, not legacy INT96.
    "spark.sql.parquet.outputTimestampType": "TIMESTAMP_MICROS",
    # Partition overwrite is ours to do (via the Delta log), never Spark's.
    "spark.sql.sources.partitionOverwriteMode": "static",
}


def under_spark_submit() -> bool:
    """True when the JVM launched this Python driver (spark-submit / pyspark shell)."""
    return "PYSPARK_GATEWAY_PORT" in os.environ


def local_conf(settings: SparkSettings) -> dict[str, str]:
    """Conf for a local session: shuffle partitions sized to the cores."""
    cores = os.cpu_count() or 2
    conf = {
        "spark.driver.memory": settings.driver_memory,
        "spark.sql.shuffle.partitions": str(settings.shuffle_partitions or 2 * cores),
        "spark.default.parallelism": str(2 * cores),
        "spark.ui.showConsoleProgress": "false",
        "spark.ui.enabled": "false",
        # Tiny local days should not pay for adaptive re-planning of 2 tasks.
        "spark.sql.adaptive.coalescePartitions.enabled": "true",
        "spark.driver.extraJavaOptions": f"-Dlog4j2.configurationFile={jvm_log_config()}",
    }
    conf.update(REQUIRED_CONF)
    conf.update(settings.conf)
    return conf


_LOG4J2 = """\
status = error
rootLogger.level = warn
rootLogger.appenderRef.file.ref = file
appender.file.type = File
appender.file.name = file
appender.file.fileName = {path}
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = %d{{yy/MM/dd HH:mm:ss}} %p %c{{1}}: %m%n%ex
"""
_LOG4J2_CONSOLE = """\
rootLogger.appenderRef.console.ref = console
appender.console.type = Console
appender.console.name = console
appender.console.target = SYSTEM_ERR
appender.console.layout.type = PatternLayout
appender.console.layout.pattern = %d{yy/MM/dd HH:mm:ss} %p %c{1}: %m%n%ex
"""


def jvm_log_config() -> str:
    """A log4j2 file that sends the local JVM's WARN+ log to ``<log dir>/spark-<pid>.log``.

    Why: a failing task logs its Java stack trace (hundreds of lines) before
    Python sees the error; the CLI reports one line and points at the files.
    ``--verbose`` (``COLDSTART_VERBOSE=1``) keeps the console too.
    """
    from jobs.platform.common import log_dir

    folder = log_dir()
    text = _LOG4J2.format(path=os.path.join(folder, f"spark-{os.getpid()}.log"))
    if os.environ.get("COLDSTART_VERBOSE") == "1":
        text += _LOG4J2_CONSOLE
    path = os.path.join(folder, f"log4j2-{os.getpid()}.properties")
    with open(path, "w", encoding="utf-8") as fh:
        fh.write(text)
    return path


def get_spark(settings: SparkSettings) -> SparkSession:
    """Return the active session or build one (local or under spark-submit)."""
    from pyspark.sql import SparkSession

    active = SparkSession.getActiveSession()
    if active is not None:
        return active
    if under_spark_submit():
        # No appName here: it would replace spark-submit's --name
        # (coldstart-<job>-<ds>), which is what operators see in YARN / the UI.
        spark = SparkSession.builder.getOrCreate()
        explicit = spark.sparkContext.getConf()
        for key, value in {**REQUIRED_CONF, **settings.conf}.items():
            # What the submitter set with --conf wins; we only fill the gaps.
            if not explicit.contains(key):
                spark.conf.set(key, value)
        return spark
    # Executors must run this interpreter (pandas UDFs need this venv's
    # packages), even when the venv was not activated.
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    builder = SparkSession.builder.appName(settings.app_name).master(settings.master)
    for key, value in local_conf(settings).items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("WARN")
    log.info("spark session master=%s", spark.sparkContext.master)
    return spark


def spark_failure(exc: BaseException) -> str | None:
    """``"<JavaClass>: <first line of its message>"`` of a Spark failure's root cause.

    None when ``exc`` did not come from Spark (py4j / pyspark). The root is the
    innermost ``getCause()`` of the Java throwable, so "Job aborted due to
    stage failure" becomes the executor's actual exception.
    """
    module = type(exc).__module__
    if not module.startswith(("pyspark", "py4j")):
        return None
    java = getattr(exc, "java_exception", None) or getattr(exc, "_origin", None)
    if java is None:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        return f"{type(exc).__name__}: {first}"
    try:
        for _ in range(50):  # a cause chain is short; never loop on a cycle
            cause = java.getCause()
            if cause is None or cause.equals(java):
                break
            java = cause
        message = str(java.getMessage() or "").strip().splitlines()
        return f"{java.getClass().getName()}: {message[0] if message else ''}".rstrip(": ")
    except Exception:  # the JVM may be gone; the Python side still has a message
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        return f"{type(exc).__name__}: {first}"
