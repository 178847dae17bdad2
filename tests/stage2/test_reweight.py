"""Stage 2 estimators end to end on small DataFrames: cross-fitting, down-sampling."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from pyspark.sql import functions as F

from configs.weights import ClassifierSettings, WeightsSettings
from jobs.stage2.reweight import Stage2Inputs, label_fold, label_models, run_stage2


def _noise(n: int, seed: int, values: int = 150) -> pd.DataFrame:
    """Labels independent of the features: the true label term is 0 for every row."""
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "k": rng.integers(0, values, n).astype(str),
            "x": rng.normal(size=n),
            "y": (rng.random(n) < 0.5).astype(int),
        }
    )


def test_label_models__no_row_scored_by_a_model_that_saw_it(spark):
    # Setup: an id-like column ``uid`` makes each row recognisable in a model's
    # vocabulary; 100 synthetic rows are copies of real rows (same values).
    real_pdf = _noise(600, 1).assign(uid=[f"r{i}" for i in range(600)])
    syn_pdf = pd.concat(
        [_noise(500, 2).assign(uid=[f"s{i}" for i in range(500)]), real_pdf.iloc[:100]],
        ignore_index=True,
    )
    real = spark.createDataFrame(real_pdf)
    syn = spark.createDataFrame(syn_pdf).repartition(3)
    inputs = Stage2Inputs(real, syn, ["k", "uid"], ["x"], "y", [["k"], ["x"]])
    cfg = WeightsSettings(label_model_max_rows=5000, label_model_folds=2)
    # Run
    m_real, m_syn = label_models(inputs, cfg, [])
    fold = label_fold(cfg.seed, ["k", "uid", "x", "y"], 2)
    scored = syn.select("uid", fold.alias("f")).toPandas()
    # Assert: a synthetic row's scoring models (those of its fold) never saw it;
    # the other folds' M_syn did (it is a training row, just not theirs to score).
    for side, m in (("syn", m_syn), ("real", m_real)):
        vocab = [set(model.encoder.vocab["uid"]) for model in m.models]
        assert len(vocab) == 2
        seen_by_scorer = [u for u, f in scored.values if u in vocab[f]]
        assert seen_by_scorer == [], (side, seen_by_scorer[:5])
    others = [u in m_syn.models[1 - f].encoder.vocab["uid"] for u, f in scored.values]
    assert all(others)
    assert set(scored["f"]) == {0, 1}


def test_label_fold__content_hash_same_on_both_sides_and_any_partitioning(spark):
    # Setup: the same rows as int (real) and bigint (synthetic) columns, repartitioned.
    pdf = pd.DataFrame({"a": np.arange(200) % 7, "y": np.arange(200) % 2})
    real = spark.createDataFrame(pdf).withColumn("a", F.col("a").cast("int"))
    syn = spark.createDataFrame(pdf).withColumn("a", F.col("a").cast("bigint")).repartition(4)
    # Run
    fold = label_fold(7, ["a", "y"], 3)
    r = real.select("a", "y", fold.alias("f")).toPandas().sort_values(["a", "y"])
    s = syn.select("a", "y", fold.alias("f")).toPandas().sort_values(["a", "y"])
    # Assert: identical rows share a fold; all folds used
    np.testing.assert_array_equal(r["f"].to_numpy(), s["f"].to_numpy())
    assert set(r["f"]) == {0, 1, 2}


def _downsampled(n: int, seed: int) -> tuple[pd.DataFrame, pd.DataFrame, float]:
    """A day with CTR ~0.2; the real sample keeps 1/4 of non-clicks (sample_weight 4)."""
    rng = np.random.default_rng(seed)
    a = rng.choice(["p", "q", "r"], size=2 * n)
    y = (rng.random(2 * n) < np.where(a == "p", 0.3, 0.15)).astype(int)
    day = pd.DataFrame({"a": a, "b": rng.choice(["u", "v"], size=2 * n), "y": y})
    real, syn = day.iloc[:n], day.iloc[n:].reset_index(drop=True)
    keep = (real["y"] == 1) | (rng.random(n) < 0.25)
    real = real[keep].assign(sample_weight=np.where(real["y"][keep] == 1, 1.0, 4.0))
    return real, syn.assign(id=np.arange(len(syn))), float(day["y"].mean())


def _downsampled_inputs(spark, real: pd.DataFrame, syn: pd.DataFrame) -> Stage2Inputs:
    """:func:`_downsampled`'s frames as stage-2 inputs: groups (a), (b); label y."""
    return Stage2Inputs(
        spark.createDataFrame(real),
        spark.createDataFrame(syn),
        ["a", "b"],
        [],
        "y",
        [["a"], ["b"]],
        real_weight="sample_weight",
        syn_key=["id"],
    )


@pytest.mark.parametrize("method", ["classifier", "hybrid"])
def test_run_stage2__classifier_methods_undo_down_sampling(spark, method):
    # Setup: synthetic rows ARE the day's distribution; the real side is a
    # down-sampled sample whose click share is ~2.5x the day's.
    real, syn, ctr = _downsampled(2000, 3)
    inputs = _downsampled_inputs(spark, real, syn)
    cfg = WeightsSettings(
        label_term=False, truncate_c=None, classifier=ClassifierSettings(max_iter=30)
    )
    # Run
    out = run_stage2(inputs, cfg, method)
    got = out.df.select("y", "weight").toPandas()
    # Assert: the weighted synthetic CTR stays the day's CTR (no click up-weighting)
    weighted_ctr = np.average(got["y"], weights=got["weight"])
    assert abs(weighted_ctr - ctr) < 0.03, (weighted_ctr, ctr)


def test_run_stage2__hybrid_weights_do_not_depend_on_how_group_keys_are_encoded(spark, monkeypatch):
    # Setup: the down-sampled day; the hybrid's classifier sees a capped sample
    # (500 of 2000 synthetic rows), drawn from a frame that carries group keys.
    real, syn, _ = _downsampled(2000, 5)
    inputs = _downsampled_inputs(spark, real, syn)
    cfg = WeightsSettings(
        label_term=False,
        truncate_c=None,
        classifier=ClassifierSettings(max_iter=30, max_rows=500),
    )

    def weights() -> pd.Series:
        got = run_stage2(inputs, cfg, "hybrid").df.select("id", "weight").toPandas()
        return got.set_index("id")["weight"].sort_index()

    # Run: the same day with two seeds of the group-key hash (same groups, same counts)
    first = weights()
    monkeypatch.setattr("jobs.stage2.transforms.KEY_SEED", 12345)
    second = weights()
    # Assert: the same weight for every row (the sample is drawn on the rows' own data)
    pd.testing.assert_series_equal(first, second, rtol=1e-9)


def test_sdmetrics_scores__raw_sample_same_whatever_the_weights_and_run_id(spark):
    # Setup: one set of synthetic rows under two runs with different weights and run ids
    from jobs.stage2.report import sdmetrics_scores

    real, syn, _ = _downsampled(3000, 7)
    rng = np.random.default_rng(0)
    runs = []
    for run in ("run-a", "run-b"):
        w = rng.lognormal(size=len(syn))
        runs.append(
            spark.createDataFrame(syn.assign(weight=w, log_weight=np.log(w))).withColumn(
                "run_id", F.lit(run)
            )
        )
    real_df = spark.createDataFrame(real)
    # Run: a sample of 300 of the 3000 synthetic rows in each report
    raw = [
        sdmetrics_scores(real_df, df, ["a", "b", "y"], ["a", "b", "y"], 300, 1, ["id"])["raw"]
        for df in runs
    ]
    # Assert: the raw (unweighted) scores are those of the same rows
    assert raw[0] == raw[1]
