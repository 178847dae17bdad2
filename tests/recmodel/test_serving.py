"""Serving vectors of the two-tower model: the factorised score is the model's score."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from configs.recmodel import ModelSettings
from jobs.platform.errors import InputError
from recmodel.features import FeatureEncoder, FeatureSpec
from recmodel.model import build_model
from recmodel.serving import rank_apps, with_vectors

SPEC = FeatureSpec(("age", "category"), ("price", "hour"))
CFG = ModelSettings(architecture="two_tower", user_fields=("age", "hour"), hidden=(8,))


def _rows(n: int = 64, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({
        "app_id": [f"a{i % 7}" for i in range(n)],
        "age": rng.choice(["18-24", "25-34", "35-44"], n),
        "category": rng.choice(["game", "tool", "social"], n),
        "price": rng.gamma(2.0, 1.0, n),
        "hour": rng.integers(0, 24, n).astype(float),
    })  # fmt: skip


def _model():
    enc = FeatureEncoder.fit(_rows(), SPEC)
    model = build_model(enc, CFG, seed=0)
    # First-order tables and the global bias start at zero: give them values.
    with torch.no_grad():
        for table in [*model.cat_bias, *model.num_bias]:
            table.weight.normal_(std=0.5)
        model.bias.fill_(0.3)
    return model.eval(), enc


def test_towers__score_decomposes_exactly_into_user_and_item_sides():
    model, enc = _model()
    cat, num = enc.transform(_rows(200, seed=1))
    u, b_user, v, b_item = model.towers(cat, num)
    with torch.no_grad():
        logit = model(cat, num)
    torch.testing.assert_close((u * v).sum(-1) + b_user + b_item, logit)
    assert b_item.abs().sum() > 0 and (b_user - 0.3).abs().sum() > 0
    dnn = build_model(enc, ModelSettings(hidden=(8,)), seed=0)
    with pytest.raises(ValueError, match="not two_tower"):
        dnn.towers(cat, num)


def test_with_vectors__item_side_reads_only_item_fields_and_ranks_like_the_model():
    model, enc = _model()
    rows = _rows(200, seed=2)
    apps = rows.drop_duplicates("app_id")[["app_id", "category", "price"]]
    items = with_vectors(model, enc, apps, "item", ["app_id"], "apps")
    users = with_vectors(model, enc, rows.head(5), "user", ["age"], "users")
    assert len(items) == len(apps) and len(items.vector[0]) == CFG.tower_dim
    # The index's scores equal the model's logits minus the per-user constant.
    pairs = rows.head(5)[["age", "hour"]].merge(apps, how="cross")
    with torch.no_grad():
        logit = model(*enc.transform(pairs)).numpy().reshape(5, len(apps))
    index = np.stack(users.vector) @ np.stack(items.vector).T + items.bias.to_numpy()
    np.testing.assert_allclose(index + users.bias.to_numpy()[:, None], logit, atol=1e-5)
    top = rank_apps(users, items, 3)
    np.testing.assert_array_equal(top, np.argsort(-logit, axis=1, kind="stable")[:, :3])
    with pytest.raises(InputError, match="column 'price' missing"):
        with_vectors(model, enc, apps.drop(columns="price"), "item", ["app_id"], "apps")
