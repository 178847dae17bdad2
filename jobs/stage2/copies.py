"""Copies of real rows, judged the way privacy evaluations judge synthetic data.

With coarse categorical profiles some synthetic rows coincide with real ones
by chance, so "no exact copy" would be the wrong bar. The bar is the DCR
baseline: split the day's real rows by a hash into *train* and *held-out*;
real held-out rows are what an honest generator's rows look like next to the
train rows. A synthetic day passes when its rows are no closer to train than
the held-out rows are:

* **exact-match rate**: share of rows equal to some train row on every field;
* **distance to closest record** (DCR): Hamming distance (fields that differ)
  to the nearest train row, capped at 2 - so each row is 0 (copy), 1 (one
  field from a real row) or 2 (further).

Both are equi-joins in Spark, never driver sets: every distinct row tuple is
exploded into its full key and the F keys with one field masked; the train
side likewise (distinct); one join on (mask, key) finds for each tuple
whether a train row matches exactly (mask -1) or on all but one field.

Synthetic rows beyond the baseline are dropped and counted: when the share
with DCR 0 exceeds the held-out share, the excess is dropped from the DCR-0
rows; then likewise for DCR <= 1 (from the DCR-1 rows). Which rows go is a
hash draw of the row (same on any partitioning).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from jobs.platform.hashing import uniform

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame

SEP = "\x1f"
NULL = "\x00null"
DCR = "__dcr"
FULL = "__full"
CAP = 2


@dataclass
class CopyCheck:
    """Synthetic rows after the check, and the figures of the report."""

    df: DataFrame
    figures: dict = field(default_factory=dict)
    dropped: int = 0


def _tokens(fields: list[str]) -> list[Column]:
    from pyspark.sql import functions as F

    return [F.coalesce(F.col(f).cast("string"), F.lit(NULL)) for f in fields]


def _exploded(df: DataFrame, fields: list[str]) -> DataFrame:
    """Distinct tuples as (full key, mask, key): mask -1 = all fields, i = field i left out."""
    from pyspark.sql import functions as F

    toks = _tokens(fields)
    keys = [F.struct(F.lit(-1).alias("m"), F.concat_ws(SEP, *toks).alias("k"))]
    for i in range(len(fields)):
        rest = [t for j, t in enumerate(toks) if j != i]
        keys.append(F.struct(F.lit(i).alias("m"), F.concat_ws(SEP, *rest).alias("k")))
    full = F.concat_ws(SEP, *toks).alias(FULL)
    return (
        df.select(full, F.explode(F.array(*keys)).alias("p")).select(FULL, "p.m", "p.k").distinct()
    )


def with_dcr(df: DataFrame, train: DataFrame, fields: list[str]) -> DataFrame:
    """``df`` plus ``__dcr``: Hamming distance to the closest ``train`` row, capped at 2."""
    from pyspark.sql import functions as F

    train_keys = _exploded(train, fields).select("m", "k").distinct()
    matched = _exploded(df, fields).join(train_keys, ["m", "k"], "inner")
    dcr = matched.groupBy(FULL).agg(F.min(F.when(F.col("m") == -1, 0).otherwise(1)).alias(DCR))
    keyed = df.withColumn(FULL, F.concat_ws(SEP, *_tokens(fields)))
    out = keyed.join(dcr, FULL, "left").fillna(CAP, subset=[DCR])
    return out.drop(FULL)


def _shares(df: DataFrame) -> tuple[int, float, float]:
    """(rows, share with DCR 0, share with DCR <= 1): one aggregation."""
    from pyspark.sql import functions as F

    row = df.agg(
        F.count(F.lit(1)),
        F.sum((F.col(DCR) == 0).cast("long")),
        F.sum((F.col(DCR) <= 1).cast("long")),
    ).first()
    n = int(row[0])
    return n, (row[1] or 0) / max(n, 1), (row[2] or 0) / max(n, 1)


def check_copies(
    real: DataFrame,
    syn: DataFrame,
    fields: list[str],
    *,
    holdout_fraction: float,
    seed: int,
    key_cols: list[str],
) -> CopyCheck:
    """Drop synthetic rows closer to the real train rows than real held-out rows are."""
    from pyspark.sql import functions as F

    u = uniform(seed, "stage2.dcr_holdout", *[F.col(c) for c in real.columns])
    real_u = real.withColumn("__u", u)
    train = real_u.where(F.col("__u") >= holdout_fraction)
    held = real_u.where(F.col("__u") < holdout_fraction)
    n_held, h0, h1 = _shares(with_dcr(held, train, fields))
    syn_d = with_dcr(syn, train, fields).persist()
    n, s0, s1 = _shares(syn_d)
    # Level 0: excess copies; level <= 1: excess near-copies (after level 0's drop).
    n0, n1 = s0 * n, (s1 - s0) * n
    excess0 = max(0.0, n0 - h0 * n)
    excess1 = max(0.0, (n0 - excess0) + n1 - h1 * n)
    p0 = excess0 / n0 if n0 else 0.0
    p1 = min(1.0, excess1 / n1) if n1 else 0.0
    draw = uniform(seed, "stage2.dcr_drop", *[F.col(c) for c in key_cols])
    drop = ((F.col(DCR) == 0) & (draw < p0)) | ((F.col(DCR) == 1) & (draw < p1))
    marked = syn_d.withColumn("__drop", drop)
    dropped = marked.where("__drop").count()
    kept = marked.where(~F.col("__drop")).drop("__drop")
    _, k0, k1 = _shares(kept)
    figures = {
        "fields": fields,
        "holdout_rows": n_held,
        "holdout_exact_match_rate": round(h0, 5),
        "holdout_dcr_le1_rate": round(h1, 5),
        "synthetic_rows": n,
        "synthetic_exact_match_rate": round(s0, 5),
        "synthetic_dcr_le1_rate": round(s1, 5),
        "kept_exact_match_rate": round(k0, 5),
        "kept_dcr_le1_rate": round(k1, 5),
        "dropped": int(dropped),
    }
    return CopyCheck(kept.drop(DCR), figures, int(dropped))
