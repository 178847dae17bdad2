"""Hash-based random draws: the same value for a row on any partitioning.

Every random choice in the jobs (simulation, sampling, seed picks, bounded
samples) is a function of (seed, salt, row columns) instead of ``rand()``,
whose value depends on the partition a row lands in; that is what makes a
local run and a cluster run produce the same tables.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pyspark.sql import Column

_MASK53 = (1 << 53) - 1


def uniform(seed: int, salt: str, *cols: Column) -> Column:
    """A U[0, 1) draw that depends only on (seed, salt, cols): reproducible anywhere."""
    from pyspark.sql import functions as F

    h = F.xxhash64(F.lit(seed), F.lit(salt), *cols)
    return h.bitwiseAND(F.lit(_MASK53)).cast("double") / float(1 << 53)
