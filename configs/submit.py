"""``submit:`` - how ``coldstart submit-cmd`` builds a spark-submit command.

Only the submitter reads these; inside a running job the cluster's own
settings win (``jobs.platform.spark`` never overrides what spark-submit decided).
Defaults submit to ``spark.master`` in client mode with this interpreter as
the executors' Python, which is right for a laptop or the CI standalone
cluster; ``configs/cluster.example.yaml`` shows YARN and Kubernetes.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class SubmitSettings(BaseModel):
    """Options of the spark-submit command line (see docs/cluster.md)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    # spark-submit binary; None: $SPARK_HOME/bin/spark-submit, else the pyspark wheel's.
    spark_submit: str | None = None
    # None: spark.master of this config.
    master: str | None = None
    deploy_mode: Literal["client", "cluster"] = "client"
    # None: spark.driver_memory of this config.
    driver_memory: str | None = None
    executor_memory: str = "2g"
    executor_cores: int | None = Field(default=1, ge=1)
    num_executors: int | None = Field(default=None, ge=1)
    # Python on the executors (and the driver in cluster mode), e.g.
    # ./environment/bin/python with a packed venv in `archives`. None: this interpreter.
    python: str | None = None
    archives: tuple[str, ...] = ()
    # Maven coordinates, e.g. io.delta:delta-spark_2.13:4.4.1 (needs Maven access).
    packages: tuple[str, ...] = ()
    jars: tuple[str, ...] = ()
    files: tuple[str, ...] = ()
    conf: dict[str, str] = Field(default_factory=dict)
