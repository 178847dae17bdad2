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
        "spark.driver.extraJavaOptions": "-Dlog4j2.level=WARN",
    }
    conf.update(REQUIRED_CONF)
    conf.update(settings.conf)
    return conf


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
