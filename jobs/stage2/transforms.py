"""Stage 2 transforms: feature-group frequency ratios -> importance weights.

SampleLLM (Gao et al., 2025) section 2.5.3 / Algorithm 1 lines 8-12: every
synthetic row gets

    log_w = sum_t [log P_real(z_t) - log P_syn(z_t)] + [log M_real(y|x) - log M_syn(y|x)]

where z_t is the row's value on feature group t. Everything here is a pure
transform over DataFrames (plus plain values) so that ``jobs.stage2.weights`` (the
daily job), ``jobs.stage2.align`` (any table pair) and the tests share one code path.

Why these choices:

* **Log space.** A product of a dozen ratios under- or overflows in float64
  long before the weights are wrong; sums of logs do not.
* **Additive smoothing** ``(n + alpha) / (N + alpha * K)`` with K the number of
  keys seen on either side, instead of the paper's hard 1e-20 floor that turns
  a row with one unseen category into a zero weight. Rows that hit the floor
  (their value never occurs in real data) are counted, not hidden.
* **One long frequency table** ``(group, key) -> log ratio`` built with one
  exploded ``groupBy`` per side, so T groups cost two shuffles, not 2T.
  It is joined onto the synthetic rows by broadcast when small, else by a
  sort-merge shuffle join (same numbers either way; tested).
* **Hashed keys.** A group's key is one xxhash64 of its key tokens (a
  bin index for a numeric field, the value for any other): grouping and
  joining on one long costs a fraction of building, hashing and comparing a
  concatenated string per row and group, and a single long key lets Spark's
  broadcast join use its long-keyed hash map. At 5M real x 1M synthetic rows
  a second 64-bit hash (the 128-bit key used before) cost 40% of the real
  side's frequency pass (benchmarks/weights.py). Two different values of one
  group share a key with probability below K^2 / 2^65 for K keys of that
  group (3e-11 at the benchmark's 34k keys, 1e-7 at the 2M-key broadcast
  limit); a shared key would merge two values' counts, and the alignment
  report's ``key_collision_bound`` states the bound for its run. The
  readable key (``group_key``) stays for reports.
* **Self-normalised** weights with mean 1, truncated at ``c * mean``
  (truncated importance sampling, Ionides 2008) with ``c = sqrt(N)`` by
  default: the cap grows with N, so the bias it adds vanishes while no single
  row can carry more than ~1/sqrt(N) of the total weight (the variance bound
  of the truncated estimator). The effective sample size
  ``(sum w)^2 / sum w^2`` is reported before and after.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from jobs.platform.errors import InputError, ValidationFailedError

if TYPE_CHECKING:
    import pandas as pd
    from pyspark.sql import Column, DataFrame

log = logging.getLogger(__name__)

SEP = "\x1f"
NULL_TOKEN = "<null>"
NULL_BIN = -1
LOG_W = "__log_w"
GROUP, KEY = "_group", "_key"
# Seed of the hash that makes a group key (any fixed value).
KEY_SEED = 0x5EED0001


def group_col(t: int) -> str:
    """Name of the key column of feature group ``t`` on a keyed DataFrame."""
    return f"__g{t}"


# -- binning and keys ---------------------------------------------------------


def fit_bins(
    real: DataFrame, numeric: list[str], n_bins: int, max_rows: int = 200_000, seed: int = 0
) -> dict[str, list[float]]:
    """Quantile cut points per numeric field, fitted on real data only.

    Both sides are bucketized with these cut points (stored with the run), so a
    synthetic value is compared with the real mass of the same interval. The
    quantiles are exact on a bounded sample chosen by a hash of each row's
    values: unlike ``approxQuantile`` (whose sketch depends on how rows are
    ordered and partitioned) the bins - hence the weights - are the same for
    any row order.
    """
    import numpy as np
    from pyspark.sql import functions as F

    if not numeric:
        return {}
    total = real.count()
    frac = min(1.0, max_rows / max(total, 1))
    h = F.xxhash64(F.lit(seed), *[F.col(c) for c in real.columns])
    u = h.bitwiseAND(F.lit((1 << 53) - 1)).cast("double") / float(1 << 53)
    picked = real.where(u < frac) if frac < 1.0 else real
    pdf = picked.select(*[F.col(c).cast("double").alias(c) for c in numeric]).toPandas()
    probs = [i / n_bins for i in range(1, n_bins)]
    bins = {}
    for c in numeric:
        values = pdf[c].to_numpy(dtype=float)
        values = values[np.isfinite(values)]
        cuts = np.quantile(values, probs) if len(values) else []
        bins[c] = sorted({float(x) for x in cuts})
    return bins


def token(name: str, bins: dict[str, list[float]]) -> Column:
    """A field's value as a string token: its bin (``b3``) if numeric, else itself."""
    from pyspark.sql import functions as F

    if name in bins:
        missing, idx = _bin_index(name, bins[name])
        return F.when(missing, F.lit(NULL_TOKEN)).otherwise(
            F.concat(F.lit("b"), idx.cast("string"))
        )
    return F.coalesce(F.col(name).cast("string"), F.lit(NULL_TOKEN))


def _bin_index(name: str, cuts: list[float]) -> tuple[Column, Column]:
    """(null-or-NaN flag, number of cut points below the value) of a numeric field."""
    from pyspark.sql import functions as F

    x = F.col(name).cast("double")
    idx = sum((x > F.lit(c)).cast("int") for c in cuts) if cuts else F.lit(0)
    return x.isNull() | F.isnan(x), idx


def group_key(fields: list[str] | tuple[str, ...], bins: dict[str, list[float]]) -> Column:
    """The joint value of a feature group as one readable string key (reports)."""
    from pyspark.sql import functions as F

    tokens = [token(f, bins) for f in fields]
    return tokens[0] if len(tokens) == 1 else F.concat_ws(SEP, *tokens)


def key_token(name: str, bins: dict[str, list[float]]) -> Column:
    """What :func:`token` says, in the cheapest type to hash: a numeric field's bin as an int
    (``NULL_BIN`` for null/NaN), any other field as its string (``NULL_TOKEN`` if null).

    Two values get the same key token exactly when they get the same token.
    """
    from pyspark.sql import functions as F

    if name not in bins:
        return token(name, bins)
    missing, idx = _bin_index(name, bins[name])
    return F.when(missing, F.lit(NULL_BIN)).otherwise(idx)


def hashed_key(fields: list[str] | tuple[str, ...], bins: dict[str, list[float]]) -> Column:
    """The joint value of a feature group as a 64-bit key: one xxhash64 of its key tokens."""
    from pyspark.sql import functions as F

    return F.xxhash64(F.lit(KEY_SEED), *[key_token(f, bins) for f in fields])


def add_group_keys(
    df: DataFrame, groups: list[list[str]], bins: dict[str, list[float]]
) -> DataFrame:
    """Add the key column ``__g<t>`` of every feature group."""
    return df.withColumns({group_col(t): hashed_key(g, bins) for t, g in enumerate(groups)})


def check_groups(groups: list[list[str]], columns: list[str]) -> list[list[str]]:
    """Groups restricted to available columns; empty groups dropped; names checked."""
    if not groups:
        raise InputError("feature groups: none given (expected a list of lists of columns)")
    out = [[f for f in g if f in columns] for g in groups]
    out = [g for g in out if g]
    if not out:
        raise InputError(f"feature groups {groups}: none of their fields are columns {columns}")
    return out


# -- frequency tables and log ratios -----------------------------------------


def _long_keys(df: DataFrame, n_groups: int, weight: Column) -> DataFrame:
    """One row per (row, group): ``_group`` (the group's index), its key ``_key`` and ``_w``.

    ``posexplode`` of an array of longs: no struct per row and group to build.
    """
    from pyspark.sql import functions as F

    keys = F.array(*[F.col(group_col(t)) for t in range(n_groups)])
    return df.select(F.posexplode(keys).alias(GROUP, KEY), weight.alias("_w"))


def frequency_table(
    real_keyed: DataFrame,
    syn_keyed: DataFrame,
    n_groups: int,
    alpha: float,
    real_weight: str | None = None,
) -> DataFrame:
    """``(group, key)`` -> smoothed ``log P_real - log P_syn`` for every key of either side.

    ``real_weight`` (e.g. ``sample_weight``) undoes a down-sampling of the real
    side: counts are sums of weights. Columns: _group, _key, n_real,
    n_syn, log_p_real, log_p_syn, log_ratio, real_seen.
    """
    from pyspark.sql import functions as F

    rw = F.col(real_weight).cast("double") if real_weight else F.lit(1.0)
    # One aggregation per side, each fused with its scan, then a join of the two
    # small count tables. One aggregation over the union of both sides saves a
    # shuffle but cost 5-30% more CPU at 5M x 1M rows: a union ends the generated
    # code, so every exploded row is copied from one operator to the next.
    real = _long_keys(real_keyed, n_groups, rw).groupBy(GROUP, KEY).agg(F.sum("_w").alias("n_real"))
    syn = (
        _long_keys(syn_keyed, n_groups, F.lit(1.0))
        .groupBy(GROUP, KEY)
        .agg(F.sum("_w").alias("n_syn"))
    )
    counts = real.join(syn, [GROUP, KEY], "full").fillna(0.0, subset=["n_real", "n_syn"])
    totals = counts.groupBy(GROUP).agg(
        F.sum("n_real").alias("tot_real"),
        F.sum("n_syn").alias("tot_syn"),
        F.count("*").alias("n_keys"),
    )
    a = F.lit(float(alpha))
    log_p_real = F.log((F.col("n_real") + a) / (F.col("tot_real") + a * F.col("n_keys")))
    log_p_syn = F.log((F.col("n_syn") + a) / (F.col("tot_syn") + a * F.col("n_keys")))
    return (
        counts.join(F.broadcast(totals), GROUP)
        .withColumn("log_p_real", log_p_real)
        .withColumn("log_p_syn", log_p_syn)
        .withColumn("log_ratio", F.col("log_p_real") - F.col("log_p_syn"))
        .withColumn("real_seen", F.col("n_real") > 0)
        .select(
            GROUP,
            KEY,
            "n_real",
            "n_syn",
            "log_p_real",
            "log_p_syn",
            "log_ratio",
            "real_seen",
        )
    )


def choose_join(n_keys: int, strategy: str, broadcast_max_keys: int) -> str:
    """``broadcast`` for small frequency tables (no shuffle of synthetic rows), else ``shuffle``."""
    if strategy in ("broadcast", "shuffle"):
        return strategy
    if strategy != "auto":
        raise InputError(f"join strategy {strategy!r}: expected auto, broadcast or shuffle")
    return "broadcast" if n_keys <= broadcast_max_keys else "shuffle"


def join_ratios(syn_keyed: DataFrame, freq: DataFrame, n_groups: int, how: str) -> DataFrame:
    """Attach ``__lr<t>`` (log ratio) and ``__floor<t>`` (1 if unseen in real) per group."""
    from pyspark.sql import functions as F

    out = syn_keyed
    for t in range(n_groups):
        col = group_col(t)
        tab = freq.where(F.col(GROUP) == t).select(
            F.col(KEY).alias(col),
            F.col("log_ratio").alias(f"__lr{t}"),
            (~F.col("real_seen")).cast("int").alias(f"__floor{t}"),
        )
        # A merge hint keeps the shuffle path a real shuffle even when Spark's
        # own size estimate would have broadcast the table.
        tab = F.broadcast(tab) if how == "broadcast" else tab.hint("merge")
        out = out.join(tab, col, "left")
    return out


def log_weight_column(n_groups: int, label_term: Column | None = None) -> Column:
    """sum_t __lr<t> (+ the label term): the unnormalised log importance weight."""
    from pyspark.sql import functions as F

    total = F.lit(0.0)
    for t in range(n_groups):
        total = total + F.col(f"__lr{t}")
    return total + label_term if label_term is not None else total


def floor_hits(df: DataFrame, groups: list[list[str]]) -> dict[str, int]:
    """Rows whose value of each group never occurs in real data (smoothing floor)."""
    from pyspark.sql import functions as F

    if not groups:
        return {}
    aggs = [F.sum(f"__floor{t}").alias(f"t{t}") for t in range(len(groups))]
    aggs.append(F.sum(F.greatest(*[F.col(f"__floor{t}") for t in range(len(groups))], F.lit(0))))
    row = df.agg(*aggs).first()
    out = {"+".join(g): int(row[t] or 0) for t, g in enumerate(groups)}
    out["any_group"] = int(row[len(groups)] or 0)
    return out


# -- normalisation, truncation, ESS ------------------------------------------


@dataclass(frozen=True)
class WeightStats:
    """Figures of one normalisation: rows, drops, ESS before/after truncation."""

    rows: int
    rows_weighted: int
    nonfinite_dropped: int
    ess_before: float
    ess_after: float
    truncated_rows: int
    truncate_c: float | None
    max_weight: float
    truncate_rule: float | str | None = None
    extra: dict[str, float] = field(default_factory=dict)

    @property
    def ess_fraction(self) -> float:
        return self.ess_after / self.rows_weighted if self.rows_weighted else 0.0


def _finite(col: Column) -> Column:
    from pyspark.sql import functions as F

    return col.isNotNull() & ~F.isnan(col) & (F.abs(col) < F.lit(float("inf")))


SQRT_N = "sqrt_n"
MIN_ESS = "min_ess"
# Caps the min_ess rule tries: a geometric grid from sqrt(N) down to this.
MIN_ESS_GRID, MIN_ESS_FLOOR = 24, 1.25


def truncation_c(rule: float | str | None, n: int) -> float | None:
    """The ``c`` of truncation at ``c * mean``: a number, ``sqrt_n`` (Ionides 2008), or None.

    ``min_ess`` is resolved by :func:`min_ess_c` (it needs the weights).
    """
    if rule is None:
        return None
    if rule == SQRT_N:
        return max(math.sqrt(n), 1.0)
    if isinstance(rule, str):
        raise InputError(
            f"truncate_c {rule!r}: expected a number > 1, {SQRT_N!r}, {MIN_ESS!r} or null"
        )
    return float(rule)


def min_ess_c(rel: Column, kept: DataFrame, s1: float, n: int, min_ess: float) -> float:
    """The loosest cap ``c`` on a grid from sqrt(N) down to 1.25 with ESS >= ``min_ess`` x N.

    Why: one fixed cap cannot suit every day. A cap tight enough for a day
    with a heavy tail throws away what a well-behaved day's weights correct
    (issue 19: c = 3 met the ESS floor on every alignment case but undid none
    of MovieLens's label damage, which sqrt(N) undid at ESS 23%). The ESS of
    every grid cap comes from one aggregation; without a cap that reaches the
    floor, the tightest is taken (the report shows the ESS it reached).
    """
    from pyspark.sql import functions as F

    hi = max(math.sqrt(n), MIN_ESS_FLOOR)
    grid = [hi * (MIN_ESS_FLOOR / hi) ** (k / (MIN_ESS_GRID - 1)) for k in range(MIN_ESS_GRID)]
    sums = []
    for c in grid:
        capped = F.least(rel, F.lit(math.log(c * s1 / n)))
        sums += [F.sum(F.exp(capped)), F.sum(F.exp(2 * capped))]
    row = kept.agg(*sums).first()
    for k, c in enumerate(grid):
        a, b = float(row[2 * k]), float(row[2 * k + 1])
        if b > 0 and a * a / b >= min_ess * n:
            return c
    return grid[-1]


# |largest log weight| up to which sum(exp(lw)) and sum(exp(2 lw)) are taken
# unshifted: e^(2 * 300) is far from float64's overflow (e^709) and underflow
# (e^-708), so the top row's terms stay normal and shifting afterwards is exact
# to rounding; rows that underflow weigh < e^-100 of the top one.
UNSHIFTED_MAX_LOG = 300.0


def _shifted_sums(
    s1: float | None, s2: float | None, top: float
) -> tuple[float, float] | tuple[None, None]:
    """``sum exp(lw - top)`` and ``sum exp(2 (lw - top))`` from the unshifted sums.

    ``(None, None)`` when ``top`` is out of the safe range or a sum is not a
    positive finite number: the caller then sums the shifted terms itself.
    """
    if abs(top) > UNSHIFTED_MAX_LOG or s1 is None or s2 is None:
        return None, None
    if not (0 < s1 < math.inf and 0 < s2 < math.inf):
        return None, None
    return s1 * math.exp(-top), s2 * math.exp(-2 * top)


def normalise(
    df: DataFrame,
    truncate_c: float | str | None = None,
    log_col: str = LOG_W,
    min_ess: float = 0.2,
) -> tuple[DataFrame, WeightStats]:
    """Self-normalise to mean 1, truncate at ``c * mean``; add weight, log_weight.

    ``truncate_c``: a number, ``"sqrt_n"`` (c = sqrt of the rows weighted),
    ``"min_ess"`` (the loosest cap keeping ESS >= ``min_ess`` x rows, one
    more aggregation) or None (no truncation).

    Rows with a NaN/inf log weight are dropped and counted; if no row is left
    the run fails loudly (``ValidationFailedError``): a table of zero weights
    would silently train on nothing. One aggregation finds the rows, the
    largest log weight and the sums for the ESS (a second one only when the
    log weights are too large for the sums to be taken unshifted; a third with
    truncation), so ``df`` should be persisted by the caller when it is
    expensive to recompute.
    """
    from pyspark.sql import functions as F

    lw = F.col(log_col)
    ok = _finite(lw)
    okw = F.when(ok, lw)
    first = df.agg(
        F.count("*"),
        F.sum(ok.cast("long")),
        F.max(okw),
        F.sum(F.exp(okw)),
        F.sum(F.exp(2 * okw)),
    ).first()
    rows, n, top = int(first[0]), int(first[1] or 0), first[2]
    if n == 0 or top is None:
        raise ValidationFailedError(
            f"importance weights: all {rows} log weights are NaN/inf (nothing to weight)"
        )
    rel = lw - F.lit(float(top))
    kept = df.where(ok)
    s1, s2 = _shifted_sums(first[3], first[4], float(top))
    if s1 is None:
        s1, s2 = kept.agg(F.sum(F.exp(rel)), F.sum(F.exp(2 * rel))).first()
    ess_before = float(s1) ** 2 / float(s2)
    log_thr, truncated = float("inf"), 0
    rule = truncate_c
    if rule == MIN_ESS:
        truncate_c = min_ess_c(rel, kept, float(s1), n, min_ess)
    else:
        truncate_c = truncation_c(rule, n)
    if truncate_c is not None:
        log_thr = math.log(truncate_c * float(s1) / n)
        capped = F.least(rel, F.lit(log_thr))
        s1, s2, truncated = kept.agg(
            F.sum(F.exp(capped)), F.sum(F.exp(2 * capped)), F.sum((rel > log_thr).cast("long"))
        ).first()
    ess_after = float(s1) ** 2 / float(s2)
    if not (math.isfinite(s1) and s1 > 0):
        raise ValidationFailedError(f"importance weights: sum of weights is {s1} (zero/NaN)")
    shift = math.log(n / float(s1))
    log_weight = F.least(rel, F.lit(log_thr)) + F.lit(shift)
    out = kept.withColumn("log_weight", log_weight).withColumn("weight", F.exp("log_weight"))
    stats = WeightStats(
        rows=rows,
        rows_weighted=n,
        nonfinite_dropped=rows - n,
        ess_before=ess_before,
        ess_after=ess_after,
        truncated_rows=int(truncated or 0),
        truncate_c=truncate_c,
        max_weight=math.exp(min(0.0, log_thr) + shift),
        truncate_rule=rule,
    )
    return out, stats


# -- the whole of stage 2 (group part) ----------------------------------------


@dataclass(frozen=True)
class GroupWeights:
    """Result of :func:`group_log_weights`: keyed synthetic rows with ``__log_w``."""

    df: DataFrame
    freq: DataFrame
    join: str
    keys: int


def collision_bound(keys: int | None) -> float:
    """``keys^2 / 2^65``: a bound on the chance that any two values of one group share a
    :func:`hashed_key`, for ``keys`` keys over all groups (birthday bound, summed)."""
    return float(keys or 0) ** 2 / 2.0**65


def group_log_weights(
    real: DataFrame,
    syn: DataFrame,
    groups: list[list[str]],
    bins: dict[str, list[float]],
    *,
    alpha: float,
    join_strategy: str = "auto",
    broadcast_max_keys: int = 2_000_000,
    real_weight: str | None = None,
    label_term: Column | None = None,
) -> GroupWeights:
    """Keys, frequency table, join and ``__log_w`` on the synthetic rows.

    The frequency table is persisted: it is read once per group by the join
    and once to count its keys.
    """
    real_k = add_group_keys(real, groups, bins)
    syn_k = add_group_keys(syn, groups, bins)
    freq = frequency_table(real_k, syn_k, len(groups), alpha, real_weight).persist()
    keys = freq.count()
    how = choose_join(keys, join_strategy, broadcast_max_keys)
    joined = join_ratios(syn_k, freq, len(groups), how)
    out = joined.withColumn(LOG_W, log_weight_column(len(groups), label_term))
    log.info("stage2 groups=%d keys=%d join=%s", len(groups), keys, how)
    return GroupWeights(out, freq, how, keys)


def internal_columns(df: DataFrame) -> list[str]:
    """Helper columns this module adds (dropped before anything is written)."""
    return [c for c in df.columns if c.startswith("__")]


# -- importance resampling ------------------------------------------------------


def importance_resample(
    df: DataFrame, n: int, seed: int, key_cols: list[str], log_weight: str = "log_weight"
) -> DataFrame:
    """N rows without replacement, inclusion proportional to weight (seeded).

    Efraimidis-Spirakis: keep the N smallest ``E_i / w_i`` with ``E_i ~ Exp(1)``,
    computed in log space. ``E_i`` comes from a hash of (seed, key columns), so
    the draw does not depend on partitioning or row order.
    """
    from pyspark.sql import functions as F

    from jobs.platform.hashing import uniform

    u = uniform(seed, "stage2.resample", *[F.col(c) for c in key_cols])
    key = F.log(-F.log(u)) - F.col(log_weight)
    return df.withColumn("__u_key", key).orderBy("__u_key").limit(n).drop("__u_key")


# -- distances (report) ----------------------------------------------------------


def tvd_before_after(
    real: DataFrame,
    syn: DataFrame,
    dims: dict[str, Column],
    real_weight: str | None = None,
    weight: str = "weight",
) -> dict[str, dict[str, float]]:
    """Total variation distance real vs synthetic per dimension, unweighted and weighted.

    ``dims`` maps a name (a group or a column) to its key expression. One
    exploded aggregation per side; only one row per dimension reaches the driver.
    """
    from pyspark.sql import functions as F

    names = list(dims)

    def long(df: DataFrame, cols: list[Column]) -> DataFrame:
        arr = F.array(
            *[F.struct(F.lit(i).alias("d"), e.alias("k")) for i, e in enumerate(dims.values())]
        )
        return df.select(F.explode(arr).alias("p"), *cols).select("p.d", "p.k", "*").drop("p")

    rw = F.col(real_weight).cast("double") if real_weight else F.lit(1.0)
    r = long(real, [rw.alias("rw")]).groupBy("d", "k").agg(F.sum("rw").alias("r"))
    s = (
        long(syn, [F.col(weight).cast("double").alias("sw")])
        .groupBy("d", "k")
        .agg(F.count("*").cast("double").alias("s0"), F.sum("sw").alias("s1"))
    )
    j = r.join(s, ["d", "k"], "full").fillna(0.0, subset=["r", "s0", "s1"])
    tot = j.groupBy("d").agg(*[F.sum(c).alias(f"T{c}") for c in ("r", "s0", "s1")])
    j = j.join(F.broadcast(tot), "d")
    rows = (
        j.groupBy("d")
        .agg(
            (0.5 * F.sum(F.abs(F.col("r") / F.col("Tr") - F.col("s0") / F.col("Ts0")))).alias("b"),
            (0.5 * F.sum(F.abs(F.col("r") / F.col("Tr") - F.col("s1") / F.col("Ts1")))).alias("a"),
        )
        .collect()
    )
    return {names[row["d"]]: {"before": float(row["b"]), "after": float(row["a"])} for row in rows}


# -- dependence grouping (beyond the paper) --------------------------------------


def cramers_v(pdf: pd.DataFrame, a: str, b: str) -> float:
    """Bias-corrected Cramer's V of two categorical columns of a bounded sample."""
    import numpy as np
    import pandas as pd

    table = pd.crosstab(pdf[a], pdf[b]).to_numpy(dtype=float)
    n = table.sum()
    r, k = table.shape
    if n == 0 or r < 2 or k < 2:
        return 0.0
    expected = table.sum(1, keepdims=True) @ table.sum(0, keepdims=True) / n
    chi2 = float(((table - expected) ** 2 / np.where(expected > 0, expected, 1)).sum())
    phi2 = max(0.0, chi2 / n - (k - 1) * (r - 1) / (n - 1))
    rc, kc = r - (r - 1) ** 2 / (n - 1), k - (k - 1) ** 2 / (n - 1)
    denom = min(rc - 1, kc - 1)
    return float(math.sqrt(phi2 / denom)) if denom > 0 else 0.0


def dependent_pairs(pdf: pd.DataFrame, fields: list[str], threshold: float) -> list[tuple]:
    """Pairs of (tokenised) fields with Cramer's V >= threshold, strongest first."""
    pairs = []
    for i, a in enumerate(fields):
        for b in fields[i + 1 :]:
            v = cramers_v(pdf, a, b)
            if v >= threshold:
                pairs.append((a, b, round(v, 4)))
    return sorted(pairs, key=lambda p: -p[2])


def merge_groups(groups: list[list[str]], pairs: list[tuple], max_fields: int) -> list[list[str]]:
    """Union the groups of each dependent pair unless the result exceeds ``max_fields``.

    The cap keeps joint tables dense enough to estimate: one big group of
    chained dependencies would make every key rare on both sides.
    """
    merged = [list(g) for g in groups]
    where = {f: i for i, g in enumerate(merged) for f in g}
    for a, b, _ in pairs:
        if a not in where or b not in where or where[a] == where[b]:
            continue
        ia, ib = where[a], where[b]
        if len(merged[ia]) + len(merged[ib]) > max_fields:
            continue
        merged[ia].extend(merged[ib])
        for f in merged[ib]:
            where[f] = ia
        merged[ib] = []
    return [g for g in merged if g]
