"""Label models (eq. 13): P(y_i | x_i) of each row's OWN label; bad labels fail."""

from __future__ import annotations

import pickle

import numpy as np
import pandas as pd
import pytest

from configs.recmodel import ModelSettings, TrainSettings
from jobs.platform.errors import EmptyInputError, InputError
from recmodel.features import FeatureSpec
from recmodel.label_models import LabelModel

SPEC = FeatureSpec(("color", "size"), ("score",))
FAST = TrainSettings(epochs=6, batch_size=128, lr=0.02, patience=6)
SMALL = ModelSettings(embedding_dim=4, hidden=(16,))


def _frame(n: int, seed: int) -> pd.DataFrame:
    """Clicks depend strongly on color: red ~ 0.9, blue ~ 0.1."""
    rng = np.random.default_rng(seed)
    color = rng.choice(["red", "blue"], size=n)
    p = np.where(color == "red", 0.9, 0.1)
    return pd.DataFrame(
        {
            "color": color,
            "size": rng.choice(["s", "m", "l"], size=n),
            "score": rng.normal(size=n),
            "clicked": (rng.random(n) < p).astype(int),
        }
    )


@pytest.fixture(scope="module")
def fitted() -> LabelModel:
    return LabelModel.fit(
        _frame(3_000, 0), SPEC, "clicked", seed=1, model_cfg=SMALL, train_cfg=FAST
    )


def test_prob_of_label__is_probability_of_the_rows_own_label(fitted):
    # Setup: the same features, once with label 1 and once with label 0.
    rows = pd.DataFrame(
        {
            "color": ["red", "red", "blue", "blue"],
            "size": ["s"] * 4,
            "score": [0.0] * 4,
            "clicked": [1, 0, 1, 0],
        }
    )
    # Run
    p = fitted.prob_of_label(rows)
    # Assert: P(y=1|red) high, P(y=0|red) = 1 - it, and the reverse for blue.
    assert p[0] > 0.8 and p[1] < 0.2 and p[2] < 0.2 and p[3] > 0.8
    np.testing.assert_allclose(p[0] + p[1], 1.0, atol=1e-9)
    np.testing.assert_allclose(p[2] + p[3], 1.0, atol=1e-9)
    np.testing.assert_allclose(np.log(p), fitted.log_prob_of_label(rows), atol=1e-12)


def test_label_model__pickles_with_identical_scores(fitted):
    rows = _frame(200, 5)
    clone = pickle.loads(pickle.dumps(fitted))
    np.testing.assert_array_equal(clone.prob_of_label(rows), fitted.prob_of_label(rows))


def test_prob_of_label__unseen_category_and_nan_are_scored(fitted):
    rows = pd.DataFrame({"color": ["green"], "size": [None], "score": [np.nan], "clicked": [1]})
    p = fitted.prob_of_label(rows)
    assert np.isfinite(p).all() and 0 < p[0] < 1
    assert fitted.encoder.nan_counts["score"] >= 1


def test_label_model__one_class_and_empty_and_bad_labels_fail():
    rows = _frame(100, 1)
    with pytest.raises(InputError, match="only class 0"):
        LabelModel.fit(rows.assign(clicked=0), SPEC, "clicked", seed=1)
    with pytest.raises(EmptyInputError, match="no rows"):
        LabelModel.fit(rows.iloc[:0], SPEC, "clicked", seed=1)
    with pytest.raises(InputError, match="must be 0/1"):
        LabelModel.fit(rows.assign(clicked=2), SPEC, "clicked", seed=1)
    with pytest.raises(InputError, match="missing column"):
        LabelModel.fit(rows.drop(columns="size"), SPEC, "clicked", seed=1)


def test_click_logits__a_rows_score_does_not_depend_on_its_batch():
    # Setup: a wider model (float32 GEMMs of a 256-wide layer change their
    # reduction order with the batch shape) and rows scored three ways
    model = LabelModel.fit(
        _frame(2_000, 0),
        SPEC,
        "clicked",
        seed=1,
        model_cfg=ModelSettings(embedding_dim=16, hidden=(256, 128)),
        train_cfg=TrainSettings(epochs=2, batch_size=256, lr=0.02, patience=2),
    )
    rows = _frame(600, 5)
    # Run: all at once, in batches of 7 (Arrow batches of another partitioning), one by one
    whole = model.click_logits(rows)
    sevens = np.concatenate([model.click_logits(rows.iloc[i : i + 7]) for i in range(0, 600, 7)])
    ones = np.concatenate([model.click_logits(rows.iloc[i : i + 1]) for i in range(100)])
    # Assert: the same logit to float64 precision (weights are compared at 1e-9)
    assert whole.dtype == np.float64
    np.testing.assert_allclose(sevens, whole, rtol=0, atol=1e-12)
    np.testing.assert_allclose(ones, whole[:100], rtol=0, atol=1e-12)
