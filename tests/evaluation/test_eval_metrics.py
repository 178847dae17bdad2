"""Each evaluation metric on tiny hand-made cases whose answers are known."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from jobs.evaluation import metrics
from jobs.evaluation.data import split_811


def _frame(n: int, offset: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    return pd.DataFrame(
        {
            "color": [f"c{(i + offset) % 4}" for i in range(n)],
            "size": [f"s{(i + offset) % 3}" for i in range(n)],
            "price": rng.uniform(0, 10, n) + 100 * offset,
        }
    )


def test_auc__perfect_inverted_and_tied_rankings():
    y = np.array([0, 0, 1, 1])
    assert metrics.auc(y, np.array([0.1, 0.2, 0.8, 0.9])) == 1.0
    assert metrics.auc(y, np.array([0.9, 0.8, 0.2, 0.1])) == 0.0
    assert metrics.auc(y, np.full(4, 0.5)) == 0.5
    # one positive above one of two negatives: 1 of 2 pairs ... plus a tie counting half
    assert metrics.auc(np.array([0, 1, 0]), np.array([0.2, 0.5, 0.5])) == pytest.approx(0.75)
    assert metrics.auc(np.array([1, 1]), np.array([0.1, 0.2])) is None


def test_logloss__known_values_and_clipping():
    assert metrics.logloss(np.array([1, 0]), np.array([0.5, 0.5])) == pytest.approx(math.log(2))
    assert metrics.logloss(np.array([1]), np.array([1.0])) == pytest.approx(0.0, abs=1e-6)
    # a confident wrong answer is clipped, not infinite
    assert metrics.logloss(np.array([1]), np.array([0.0])) == pytest.approx(-math.log(1e-7))


def test_ttest_pvalue__known_samples():
    # t = -3 / sqrt(2/3) = -3.674 with 4 df -> two-sided p = 0.02131
    assert metrics.ttest_pvalue([1, 2, 3], [4, 5, 6]) == pytest.approx(0.021312, abs=1e-5)
    assert metrics.ttest_pvalue([1, 2, 3, 4], [1, 2, 3, 4]) == pytest.approx(1.0)
    assert metrics.ttest_pvalue([0.7, 0.7], [0.7, 0.7]) == 1.0
    assert metrics.ttest_pvalue([0.7, 0.7], [0.8, 0.8]) == 0.0
    assert metrics.ttest_pvalue([1.0], [2.0, 3.0]) is None


def test_mean_std__skips_missing_values():
    assert metrics.mean_std([1.0, None, 3.0]) == (2.0, pytest.approx(math.sqrt(2)))
    assert metrics.mean_std([None]) == (None, None)


def test_quality__identical_data_scores_about_one():
    real = _frame(300)
    q = metrics.quality(real, real.copy(), ["color", "size"], ["price"], max_rows=300)
    assert q.score == pytest.approx(1.0, abs=0.02)
    assert q.column_shapes == pytest.approx(1.0, abs=0.02)


def test_quality__disjoint_data_scores_zero_shapes():
    real = _frame(200)
    other = pd.DataFrame(
        {"color": ["z"] * 200, "size": ["w"] * 200, "price": np.linspace(1_000, 2_000, 200)}
    )
    q = metrics.quality(real, other, ["color", "size"], ["price"], max_rows=200)
    assert q.column_shapes == pytest.approx(0.0, abs=1e-6)
    assert q.score < 0.5


def test_privacy__copies_of_training_rows_are_all_caught():
    train = _frame(120)
    p = metrics.privacy(train, train.sample(50, random_state=1), ["color", "size"], ["price"])
    assert p.exact_copy_rate == 1.0
    assert p.dcr_mean == pytest.approx(0.0, abs=1e-12)
    assert p.dcr_zero_share == 1.0


def test_privacy__disjoint_rows_have_no_copies_and_full_distance():
    train = pd.DataFrame({"color": ["a", "b"] * 20, "size": ["s", "m"] * 20})
    syn = pd.DataFrame({"color": ["x"] * 10, "size": ["y"] * 10})
    p = metrics.privacy(train, syn, ["color", "size"])
    assert p.exact_copy_rate == 0.0
    assert p.dcr_mean == pytest.approx(1.0)  # every field mismatches the nearest row
    half = pd.DataFrame({"color": ["a"] * 10, "size": ["y"] * 10})
    assert metrics.privacy(train, half, ["color", "size"]).dcr_mean == pytest.approx(0.5)


def test_tvd__identical_disjoint_and_weighted():
    real = pd.Series(["a", "a", "b", "b"])
    assert metrics.tvd(real, real) == 0.0
    assert metrics.tvd(real, pd.Series(["c", "d"])) == 1.0
    syn = pd.Series(["a", "a", "a", "b"])
    assert metrics.tvd(real, syn) == pytest.approx(0.25)
    assert metrics.tvd(real, syn, np.array([1, 1, 1, 3])) == pytest.approx(0.0)


def test_split_811__seeded_disjoint_and_in_ratio():
    pdf = pd.DataFrame({"id": range(1_000)})
    train, val, test = split_811(pdf, seed=3)
    assert (len(train), len(val), len(test)) == (800, 100, 100)
    ids = [set(x["id"]) for x in (train, val, test)]
    assert not (ids[0] & ids[1]) and not (ids[0] & ids[2]) and not (ids[1] & ids[2])
    again = split_811(pdf, seed=3)[2]
    assert list(again["id"]) == list(test["id"])
    assert list(split_811(pdf, seed=4)[2]["id"]) != list(test["id"])
