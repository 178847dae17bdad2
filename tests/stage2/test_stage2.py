"""Stage 2 transforms on small hand-made DataFrames (no models, no tables)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from pyspark.sql import functions as F

from jobs.platform.errors import ValidationFailedError
from jobs.stage2 import transforms as stage2

GROUPS = [["a", "b"], ["c"]]


def _frames(spark, real: pd.DataFrame, syn: pd.DataFrame):
    return spark.createDataFrame(real), spark.createDataFrame(syn)


def _draw(rng: np.random.Generator, n: int, p_a: tuple[float, float, float]) -> pd.DataFrame:
    a = rng.choice(["x", "y", "z"], size=n, p=p_a)
    b = np.where(rng.random(n) < 0.7, a, rng.choice(["x", "y", "z"], size=n))
    c = rng.normal(size=n)
    return pd.DataFrame({"a": a, "b": b, "c": c})


def _weights(spark, real, syn, groups=GROUPS, **kw) -> tuple[pd.DataFrame, stage2.WeightStats]:
    bins = stage2.fit_bins(real, ["c"], 4)
    gw = stage2.group_log_weights(real, syn, groups, bins, alpha=kw.pop("alpha", 1.0), **kw)
    cached = gw.df.persist()
    out, stats = stage2.normalise(cached, kw.get("truncate_c"))
    pdf = out.select("id", "weight", "log_weight").toPandas().sort_values("id")
    # Unpersist: a cached plan would stand in for the join tree of later, equal queries.
    cached.unpersist()
    gw.freq.unpersist()
    return pdf, stats


@pytest.fixture(scope="module")
def same_dist(spark):
    rng = np.random.default_rng(1)
    real = _draw(rng, 20_000, (0.5, 0.3, 0.2))
    syn = _draw(rng, 5_000, (0.5, 0.3, 0.2)).assign(id=np.arange(5_000))
    return _frames(spark, real, syn)


@pytest.fixture(scope="module")
def skewed(spark):
    """Synthetic rows over-represent the region a == 'z' about 3x."""
    rng = np.random.default_rng(2)
    real = _draw(rng, 20_000, (0.5, 0.3, 0.2))
    syn = _draw(rng, 5_000, (0.3, 0.2, 0.5)).assign(id=np.arange(5_000))
    return _frames(spark, real, syn)


def test_group_log_weights__log_space_equals_direct_product(spark):
    # Setup: 2 groups, hand-countable tables, a per-row label term
    real = pd.DataFrame({"a": list("xxxyyz"), "b": list("pqpqpp"), "c": [1.0] * 6})
    syn = pd.DataFrame(
        {"a": list("xyzw"), "b": list("ppqp"), "c": [1.0] * 4, "lt": [0.1, -0.2, 0.0, 0.3]}
    )
    syn["id"] = range(4)
    r, s = _frames(spark, real, syn)
    alpha = 0.5
    # Run
    gw = stage2.group_log_weights(r, s, [["a"], ["b"]], {}, alpha=alpha, label_term=F.col("lt"))
    got = gw.df.select("id", stage2.LOG_W).toPandas().sort_values("id")[stage2.LOG_W]
    # Assert: the direct product of smoothed ratios times exp(label term)
    expected = []
    for _, row in syn.iterrows():
        w = math.exp(row["lt"])
        for f in ("a", "b"):
            keys = set(real[f]) | set(syn[f])
            p_r = ((real[f] == row[f]).sum() + alpha) / (len(real) + alpha * len(keys))
            p_s = ((syn[f] == row[f]).sum() + alpha) / (len(syn) + alpha * len(keys))
            w *= p_r / p_s
        expected.append(w)
    np.testing.assert_allclose(np.exp(got.to_numpy()), expected, rtol=1e-9)


def test_normalise__weights_invariant_to_row_order(spark, skewed):
    real, syn = skewed
    shuffled = syn.orderBy(F.rand(5)).repartition(3)
    w1, _ = _weights(spark, real, syn)
    w2, _ = _weights(spark, real.orderBy(F.rand(9)), shuffled)
    np.testing.assert_allclose(w1["weight"].to_numpy(), w2["weight"].to_numpy(), rtol=1e-9)


def test_normalise__same_distribution_gives_weights_near_one(spark, same_dist):
    real, syn = same_dist
    w, stats = _weights(spark, real, syn)
    assert abs(w["weight"].mean() - 1.0) < 1e-9
    assert stats.ess_after / stats.rows_weighted > 0.9
    assert np.median(np.abs(w["weight"] - 1.0)) < 0.15


def test_normalise__over_represented_region_is_down_weighted(spark, skewed):
    real, syn = skewed
    w, _ = _weights(spark, real, syn)
    region = syn.select("id", "a").toPandas().set_index("id").loc[w["id"], "a"].to_numpy()
    assert w["weight"][region == "z"].mean() < 0.6
    assert w["weight"][region == "x"].mean() > 1.3
    weighted = syn.join(spark.createDataFrame(w), "id")
    dims = {"a+b": stage2.group_key(["a", "b"], {}), "a": stage2.token("a", {})}
    tvd = stage2.tvd_before_after(real, weighted, dims)
    assert tvd["a"]["before"] > 0.2
    assert tvd["a"]["after"] < 0.25 * tvd["a"]["before"]
    assert tvd["a+b"]["after"] < 0.5 * tvd["a+b"]["before"]


def test_join_ratios__broadcast_and_shuffle_give_same_weights(spark, skewed):
    real, syn = skewed
    wb, _ = _weights(spark, real, syn, join_strategy="broadcast")
    ws, _ = _weights(spark, real, syn, join_strategy="shuffle")
    np.testing.assert_allclose(wb["weight"].to_numpy(), ws["weight"].to_numpy(), rtol=1e-12)
    bins = stage2.fit_bins(real, ["c"], 4)
    plans = {
        how: stage2.group_log_weights(real, syn, GROUPS, bins, alpha=1.0, join_strategy=how)
        for how in ("broadcast", "shuffle")
    }
    hints = {
        how: gw.df._jdf.queryExecution().optimizedPlan().toString().count("strategy=merge")
        for how, gw in plans.items()
    }
    # The shuffle path asks for a sort-merge join of every group's table onto
    # the synthetic rows (so Spark cannot quietly broadcast it); broadcast never.
    assert plans["shuffle"].join == "shuffle"
    assert hints == {"broadcast": 0, "shuffle": len(GROUPS)}


def test_choose_join__by_number_of_keys():
    assert stage2.choose_join(10, "auto", 100) == "broadcast"
    assert stage2.choose_join(1000, "auto", 100) == "shuffle"
    assert stage2.choose_join(10, "shuffle", 100) == "shuffle"


def test_frequency_table__unseen_category_gets_floor_and_is_counted(spark):
    real = pd.DataFrame({"a": ["x", "y"] * 50, "b": ["p"] * 100})
    syn = pd.DataFrame({"a": ["x"] * 8 + ["new", "new"], "b": ["p"] * 10, "id": range(10)})
    r, s = _frames(spark, real, syn)
    gw = stage2.group_log_weights(r, s, [["a"], ["b"]], {}, alpha=1.0)
    hits = stage2.floor_hits(gw.df, [["a"], ["b"]])
    out, stats = stage2.normalise(gw.df)
    w = out.select("id", "weight").toPandas().sort_values("id")["weight"].to_numpy()
    assert hits == {"a": 2, "b": 0, "any_group": 2}
    assert stats.rows_weighted == 10
    assert 0 < w[-1] < 0.1 * w[0]


def test_normalise__all_nan_weights_fail_loudly(spark):
    df = spark.createDataFrame(pd.DataFrame({"id": [1, 2], stage2.LOG_W: [np.nan, np.inf]}))
    with pytest.raises(ValidationFailedError, match="all 2 log weights are NaN/inf"):
        stage2.normalise(df)


def test_normalise__nonfinite_rows_dropped_and_counted(spark):
    df = spark.createDataFrame(
        pd.DataFrame({"id": [1, 2, 3], stage2.LOG_W: [0.0, np.nan, math.log(3.0)]})
    )
    out, stats = stage2.normalise(df)
    w = out.toPandas().sort_values("id")["weight"].to_numpy()
    assert stats.nonfinite_dropped == 1
    np.testing.assert_allclose(w, [0.5, 1.5])
    assert stats.ess_before == pytest.approx(4.0**2 / (1 + 9))


def test_normalise__truncation_caps_at_c_times_mean(spark):
    lw = np.log(np.array([1.0] * 9 + [91.0]))
    df = spark.createDataFrame(pd.DataFrame({"id": range(10), stage2.LOG_W: lw}))
    out, stats = stage2.normalise(df, truncate_c=2.0)
    w = out.toPandas().sort_values("id")["weight"].to_numpy()
    # mean of raw weights is 10, cap 20: weights 1 x 9 and 20, renormalised to mean 1
    np.testing.assert_allclose(w, np.array([1.0] * 9 + [20.0]) * 10 / 29)
    assert stats.truncated_rows == 1
    assert stats.ess_after > stats.ess_before


def test_normalise__sqrt_n_rule_truncates_at_sqrt_n_times_mean(spark):
    # Setup: 100 rows, one of them carries ~99% of the raw weight
    from configs.weights import WeightsSettings

    lw = np.log(np.array([1.0] * 99 + [10_000.0]))
    df = spark.createDataFrame(pd.DataFrame({"id": range(100), stage2.LOG_W: lw}))
    assert WeightsSettings().truncate_c == "min_ess"  # the measured default (alignment.md)
    # Run: Ionides' rule
    out, stats = stage2.normalise(df, "sqrt_n")
    w = out.toPandas().sort_values("id")["weight"].to_numpy()
    # Assert: capped at sqrt(100) * mean = 10 * 100.99 before renormalising
    cap = 10 * (99 + 10_000) / 100
    np.testing.assert_allclose(w, np.array([1.0] * 99 + [cap]) * 100 / (99 + cap))
    assert stats.truncate_rule == "sqrt_n" and stats.truncate_c == pytest.approx(10.0)
    assert stats.truncated_rows == 1


def test_normalise__min_ess_rule_takes_the_loosest_cap_that_keeps_the_ess_floor(spark):
    # Setup: 400 rows, 4 of them heavy; at sqrt(N) = 20 the ESS is 1.5%.
    lw = np.log(np.array([1.0] * 396 + [2_000.0] * 4))
    df = spark.createDataFrame(pd.DataFrame({"id": range(400), stage2.LOG_W: lw}))
    grid = [20 * (1.25 / 20) ** (k / 23) for k in range(24)]

    def ess(c: float) -> float:
        w = np.minimum(np.exp(lw), c * np.exp(lw).mean())
        return w.sum() ** 2 / (w**2).sum() / len(w)

    # Run
    out, stats = stage2.normalise(df, "min_ess", min_ess=0.1)
    _, loose = stage2.normalise(df, "min_ess", min_ess=0.01)
    # Assert: the first grid cap (from sqrt(N) down) whose ESS reaches 10%, applied.
    expect = next(c for c in grid if ess(c) >= 0.1)
    assert ess(grid[0]) < 0.1 and expect < grid[0]
    assert stats.truncate_rule == "min_ess" and stats.truncate_c == pytest.approx(expect)
    assert stats.ess_fraction == pytest.approx(ess(expect)) and stats.ess_fraction >= 0.1
    w = out.toPandas()["weight"].to_numpy()
    assert w.mean() == pytest.approx(1.0) and stats.truncated_rows == 4
    assert loose.truncate_c == pytest.approx(20.0) and loose.ess_after < stats.ess_after


def test_importance_resample__seeded_without_replacement_by_weight(spark):
    lw = np.log(np.array([10.0] * 50 + [0.1] * 950))
    df = spark.createDataFrame(pd.DataFrame({"id": range(1000), "log_weight": lw}))
    a = stage2.importance_resample(df, 60, 3, ["id"]).toPandas()["id"]
    b = stage2.importance_resample(df.orderBy(F.rand(1)), 60, 3, ["id"]).toPandas()["id"]
    assert len(a) == 60 and a.is_unique
    assert sorted(a) == sorted(b)
    assert (a < 50).sum() >= 40


def test_merge_groups__dependent_pairs_merged_under_cap():
    rng = np.random.default_rng(0)
    a = rng.choice(list("xyz"), 5000)
    pdf = pd.DataFrame({"a": a, "b": a, "c": rng.choice(list("pq"), 5000), "d": a})
    pairs = stage2.dependent_pairs(pdf, ["a", "b", "c", "d"], 0.3)
    assert {(p[0], p[1]) for p in pairs} == {("a", "b"), ("a", "d"), ("b", "d")}
    assert stage2.cramers_v(pdf, "a", "c") < 0.05
    merged = stage2.merge_groups([["a"], ["b"], ["c"], ["d"]], pairs, max_fields=2)
    assert sorted(map(sorted, merged)) == [["a", "b"], ["c"], ["d"]]


def test_bounded_sample__same_rows_in_same_order_for_any_partitioning(spark, skewed):
    # Setup: one frame, laid out as 1, 3 and 7 partitions in different row orders
    from jobs.stage2.reweight import bounded_sample

    real, _ = skewed
    layouts = [real.coalesce(1), real.repartition(3, "a"), real.orderBy(F.rand(5)).repartition(7)]
    # Run: a capped sample (Bernoulli draw + top-n), and a whole-frame "sample"
    capped = [bounded_sample(df, 3_000, 11, ["a", "c"]) for df in layouts]
    whole = [bounded_sample(df, 50_000, 11, ["a", "b", "c"]) for df in layouts]
    # Assert: identical frames, row order included (models fitted on them see the same rows)
    assert len(capped[0]) == 3_000 and len(whole[0]) == 20_000
    for got in capped[1:]:
        pd.testing.assert_frame_equal(got, capped[0])
    for got in whole[1:]:
        pd.testing.assert_frame_equal(got, whole[0])
    # A different seed draws different rows.
    other = bounded_sample(layouts[0], 3_000, 12, ["a", "c"])
    assert not other["c"].reset_index(drop=True).equals(capped[0]["c"])


def test_group_log_weights__values_containing_the_separator_stay_apart(spark):
    # Setup: ("p<SEP>q", "r") and ("p", "q<SEP>r") are different values of group (a, b)
    # whose tokens, joined by the separator, read the same
    sep = stage2.SEP
    real = pd.DataFrame({"a": [f"p{sep}q"] * 9 + ["p"], "b": ["r"] * 9 + [f"q{sep}r"]})
    syn = pd.DataFrame({"a": [f"p{sep}q", "p"], "b": ["r", f"q{sep}r"], "id": [0, 1]})
    r, s = _frames(spark, real, syn)
    # Run
    gw = stage2.group_log_weights(r, s, [["a", "b"]], {}, alpha=1.0)
    got = gw.df.select("id", stage2.LOG_W).toPandas().sort_values("id")[stage2.LOG_W]
    # Assert: two keys, each with its own real frequency (9 of 10 vs 1 of 10)
    assert gw.keys == 2
    p_real = np.array([(9 + 1) / (10 + 2), (1 + 1) / (10 + 2)])
    np.testing.assert_allclose(np.exp(got.to_numpy()), p_real / 0.5, rtol=1e-12)


def _jobs_of(spark, fn):
    """(result of fn(), number of Spark jobs it ran)."""
    import uuid

    sc = spark.sparkContext
    group = f"count-jobs-{uuid.uuid4().hex}"
    sc.setJobGroup(group, "count jobs")
    try:
        out = fn()
    finally:
        sc.setLocalProperty("spark.jobGroup.id", None)
    return out, len(sc.statusTracker().getJobIdsForGroup(group))


def test_normalise__one_aggregation_reads_the_rows(spark):
    # Setup: plain log weights, then ones far outside exp()'s range
    lw = np.log(np.array([1.0, 3.0, 4.0]))
    df = spark.createDataFrame(pd.DataFrame({"id": range(3), stage2.LOG_W: lw}))
    huge = spark.createDataFrame(pd.DataFrame({"id": range(3), stage2.LOG_W: lw + 1000.0}))
    tiny = spark.createDataFrame(pd.DataFrame({"id": range(3), stage2.LOG_W: lw - 1000.0}))
    # Run
    (out, stats), jobs = _jobs_of(spark, lambda: stage2.normalise(df))
    (_, trunc), jobs_truncated = _jobs_of(spark, lambda: stage2.normalise(df, 1.2))
    results = [stage2.normalise(d) for d in (huge, tiny)]
    # Assert: one pass (two with truncation: each a map and a result job under AQE);
    # the same weights and ESS at any scale
    assert (jobs, jobs_truncated) == (2, 4)
    expected = np.array([1.0, 3.0, 4.0]) * 3 / 8
    for o, st in [(out, stats), *results]:
        w = o.toPandas().sort_values("id")["weight"].to_numpy()
        np.testing.assert_allclose(w, expected, rtol=1e-12)
        assert st.ess_before == pytest.approx(8.0**2 / 26, rel=1e-12)
    assert trunc.truncated_rows == 1
