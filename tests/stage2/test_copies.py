"""Copies of real rows: DCR by joins equals the brute-force distance; excess copies dropped."""

from __future__ import annotations

import numpy as np
import pandas as pd

from jobs.stage2.copies import DCR, check_copies, with_dcr

FIELDS = ["a", "b", "c"]


def _rows(rng: np.random.Generator, n: int, values: int, fields: int = 3) -> pd.DataFrame:
    return pd.DataFrame({f: rng.integers(0, values, n).astype(str) for f in "abcd"[:fields]})


def test_with_dcr__equals_brute_force_hamming_capped_at_two(spark):
    # Setup: small value sets so distances 0, 1 and 2+ all occur; a null too
    rng = np.random.default_rng(0)
    train, query = _rows(rng, 30, 6), _rows(rng, 80, 6)
    train.loc[0, "a"], query.loc[0, "a"] = None, None
    query = query.assign(id=np.arange(len(query)))
    # Run
    got = with_dcr(spark.createDataFrame(query), spark.createDataFrame(train), FIELDS)
    got = got.toPandas().sort_values("id")[DCR].to_numpy()
    # Assert: per row, min over train rows of fields that differ, capped at 2
    q, t = query[FIELDS].fillna("<n>").to_numpy(), train[FIELDS].fillna("<n>").to_numpy()
    expected = np.minimum((q[:, None, :] != t[None, :, :]).sum(-1).min(1), 2)
    np.testing.assert_array_equal(got, expected)
    assert set(expected) == {0, 1, 2}


def test_check_copies__excess_copies_dropped_to_the_holdout_baseline(spark):
    # Setup: real rows from a space where chance matches happen; synthetic rows
    # are fresh draws of the same distribution plus 300 verbatim real rows.
    rng = np.random.default_rng(1)
    real = _rows(rng, 3000, 12, fields=4)
    syn = pd.concat([_rows(rng, 1000, 12, fields=4), real.iloc[:300]], ignore_index=True)
    syn = syn.assign(sid=[f"s{i}" for i in range(len(syn))])
    # Run
    out = check_copies(
        spark.createDataFrame(real),
        spark.createDataFrame(syn),
        list("abcd"),
        holdout_fraction=0.2,
        seed=3,
        key_cols=["sid"],
    )
    f = out.figures
    kept = out.df.toPandas()
    # Assert: raw synthetic rows were far closer than held-out real rows; after
    # the drop they are no closer (up to the hash draw's noise), and only the
    # excess went: fresh rows are almost all kept.
    assert f["synthetic_exact_match_rate"] > f["holdout_exact_match_rate"] + 0.1
    assert f["kept_exact_match_rate"] <= f["holdout_exact_match_rate"] + 0.03
    assert f["kept_dcr_le1_rate"] <= f["holdout_dcr_le1_rate"] + 0.03
    assert out.dropped == len(syn) - len(kept) == f["dropped"]
    fresh_kept = kept["sid"].str[1:].astype(int).lt(1000).sum()
    assert fresh_kept > 0.75 * 1000
    assert out.dropped < 0.5 * len(syn)
