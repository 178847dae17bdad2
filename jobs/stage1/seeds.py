"""Seed users: from every cluster, a share of users proportional to its size.

SampleLLM (eq. 5) puts one exemplar per cluster into each prompt so that the
exemplars cover every region of the user distribution; this module decides
how many seed users each cluster contributes and which ones.

* ``apportion`` is plain Python over the cluster sizes (at most k ~ 1,000
  numbers, bounded whatever the day's volume): largest-remainder (Hamilton)
  rounding of ``total * size / sum(sizes)``, at least one seed per non-empty
  cluster, never more seeds than users in a cluster.
* ``pick_seeds`` stays in Spark: users are ranked inside their cluster by a
  hash of (seed, user id), so the pick is reproducible on any partitioning.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from typing import TYPE_CHECKING

from jobs.platform import schema as S
from jobs.platform.hashing import uniform

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

log = logging.getLogger(__name__)

QUOTA = "_quota"


def apportion(sizes: Mapping[int, int], total: int) -> dict[int, int]:
    """Seeds per cluster: largest remainder, >= 1 per non-empty cluster, <= its size.

    Clusters whose quota is below one are pinned at one seed; the remaining
    seats are re-apportioned over the other clusters (repeated until no new
    cluster falls below one), then Hamilton rounding: floors first, leftover
    seats to the largest fractional parts. The sum is ``total`` unless it is
    below the number of non-empty clusters (one each, with a warning) or above
    the number of users (every user). Ties break by cluster id.
    """
    live = {c: int(n) for c, n in sizes.items() if n > 0}
    if not live:
        return {}
    if total >= sum(live.values()):
        return dict(live)
    if total <= len(live):
        if total < len(live):
            log.warning(
                "seeds_total %d < %d non-empty clusters: taking one seed per cluster",
                total,
                len(live),
            )
        return dict.fromkeys(live, 1)
    pinned: set[int] = set()
    while True:
        free = {c: n for c, n in live.items() if c not in pinned}
        seats, weight = total - len(pinned), sum(free.values())
        quota = {c: seats * n / weight for c, n in free.items()}
        small = {c for c, q in quota.items() if q < 1}
        if not small:
            break
        pinned |= small
    alloc = {c: min(live[c], math.floor(q)) for c, q in quota.items()}
    short = seats - sum(alloc.values())
    order = sorted(quota, key=lambda c: (-(quota[c] - alloc[c]), c))
    for c in [c for c in order if alloc[c] < live[c]][:short]:
        alloc[c] += 1
    return {**dict.fromkeys(pinned, 1), **alloc}


def cluster_sizes(assigned: DataFrame, cluster_col: str = S.CLUSTER_ID) -> dict[int, int]:
    """Users per cluster; at most k rows reach the driver."""
    rows = assigned.groupBy(cluster_col).count().collect()
    return {int(r[cluster_col]): int(r["count"]) for r in rows}


def pick_seeds(
    assigned: DataFrame,
    quotas: Mapping[int, int],
    *,
    seed: int,
    user_col: str = S.USER_ID,
    cluster_col: str = S.CLUSTER_ID,
) -> DataFrame:
    """The first ``quotas[c]`` users of each cluster ``c`` in hash order of (seed, user)."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F
    from pyspark.sql.types import IntegerType, StructField, StructType

    spark = assigned.sparkSession
    schema = StructType(
        [StructField(cluster_col, IntegerType(), False), StructField(QUOTA, IntegerType(), False)]
    )
    quota_df = spark.createDataFrame([(int(c), int(q)) for c, q in quotas.items()], schema)
    order = Window.partitionBy(cluster_col).orderBy(
        uniform(seed, "seeds.pick", F.col(user_col)), F.col(user_col)
    )
    return (
        assigned.join(F.broadcast(quota_df), cluster_col)
        .withColumn("_rank", F.row_number().over(order))
        .where(F.col("_rank") <= F.col(QUOTA))
        .drop("_rank", QUOTA)
    )


def size_figures(sizes: Mapping[int, int], k: int) -> dict[str, float | int]:
    """Cluster-size summary for the run log (sizes are at most k numbers)."""
    values = sorted(sizes.values())
    if not values:
        return {"clusters_non_empty": 0, "clusters_empty": k}
    mid = len(values) // 2
    median = values[mid] if len(values) % 2 else (values[mid - 1] + values[mid]) / 2
    return {
        "clusters_non_empty": len(values),
        "clusters_empty": k - len(values),
        "cluster_size_min": values[0],
        "cluster_size_median": median,
        "cluster_size_max": values[-1],
        "cluster_size_mean": round(sum(values) / len(values), 2),
        "singleton_clusters": sum(1 for v in values if v == 1),
    }
