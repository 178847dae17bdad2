"""The two-tower model: synthetic rows train a cold app's embedding; OOV and bad input."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest
import torch

from jobs.platform import schema as S
from jobs.platform.errors import ConfigError, InputError
from recmodel.two_tower import ItemCatalog, TwoTowerConfig, TwoTowerModel, soft_labels

FIELDS = (S.INTEREST, S.AGE_BAND)
CFG = TwoTowerConfig(dim=8, epochs=6, batch_size=64, lr=1e-2, id_dropout=0.2, seed=3)


def _world(seed: int = 0) -> tuple[ItemCatalog, pd.DataFrame]:
    """20 warm apps: interest ``a`` clicks apps 0-9, ``b`` apps 10-19; app_cold is unseen."""
    rng = np.random.default_rng(seed)
    ids = [f"app_{i:02d}" for i in range(20)] + ["app_cold", "app_cold2"]
    items = pd.DataFrame({S.APP_ID: ids, S.CATEGORY: "games", S.PRICE: 0.0, S.RATING: 4.0})
    n = 1_500
    interest = rng.choice(["a", "b"], n)
    app = np.where(interest == "a", rng.integers(0, 10, n), rng.integers(10, 20, n))
    rows = pd.DataFrame({S.INTEREST: interest, S.AGE_BAND: rng.choice(["x", "y"], n),
                         S.APP_ID: [ids[i] for i in app], S.CLICKED: 1})  # fmt: skip
    return ItemCatalog(items, (S.CATEGORY,), (S.PRICE, S.RATING)), rows


def _synthetic(n: int = 150) -> pd.DataFrame:
    """LLM-style rows: users of interest ``b`` click the cold app."""
    return pd.DataFrame({S.INTEREST: "b", S.AGE_BAND: ["x", "y"] * (n // 2),
                         S.APP_ID: "app_cold", S.CLICKED: 1})  # fmt: skip


def _rank_of_cold(model: TwoTowerModel, interest: str) -> int:
    u = model.user_vectors(pd.DataFrame({S.INTEREST: [interest], S.AGE_BAND: ["x"]}))
    scores = model.item_vectors() @ u[0]
    cold = model.catalog.index.get_loc("app_cold")
    return int((scores > scores[cold]).sum())


def test_fit__synthetic_rows_move_a_cold_apps_embedding_and_raise_its_rank() -> None:
    catalog, rows = _world()
    base = TwoTowerModel(catalog, FIELDS, CFG).fit(rows)
    syn = _synthetic()
    aug = TwoTowerModel(catalog, FIELDS, CFG).fit(pd.concat([rows, syn], ignore_index=True))

    before = base.item_vectors(pd.Series(["app_cold"]))[0]
    after = aug.item_vectors(pd.Series(["app_cold"]))[0]
    assert np.linalg.norm(after - before) > 0.3
    assert aug.seen[catalog.index.get_loc("app_cold")]
    assert _rank_of_cold(aug, "b") < 3 <= _rank_of_cold(base, "b")
    assert _rank_of_cold(aug, "b") < _rank_of_cold(aug, "a")  # for the users who click it


def test_fit__zero_weights_make_synthetic_rows_count_for_nothing() -> None:
    catalog, rows = _world()
    syn = _synthetic()
    both = pd.concat([rows, syn], ignore_index=True)
    w = np.r_[np.ones(len(rows)), np.zeros(len(syn))]
    base = TwoTowerModel(catalog, FIELDS, CFG).fit(rows)
    zero = TwoTowerModel(catalog, FIELDS, CFG).fit(both, w)
    np.testing.assert_allclose(zero.item_vectors(), base.item_vectors(), atol=1e-6)


def test_fit__soft_labels_train_on_the_judged_probability_not_its_coin_flip() -> None:
    """The judge says b-users click the cold app (0.9), a-users do not (0.05); the coin
    flips came out the other way round. Soft labels follow the probability."""
    catalog, rows = _world()
    n = 150
    syn = pd.DataFrame({S.INTEREST: ["a", "b"] * (n // 2), S.AGE_BAND: "x",
                        S.APP_ID: "app_cold"})  # fmt: skip
    syn[S.CLICKED] = (syn[S.INTEREST] == "a").astype(int)
    syn["click_prob"] = np.where(syn[S.INTEREST] == "b", 0.9, 0.05)
    both = pd.concat([rows, syn], ignore_index=True)
    y = soft_labels(both)
    np.testing.assert_array_equal(y[: len(rows)], 1.0)  # real rows keep their click
    np.testing.assert_array_equal(y[len(rows) :], syn["click_prob"])
    soft = TwoTowerModel(catalog, FIELDS, CFG).fit(both, labels=y)
    flips = TwoTowerModel(catalog, FIELDS, CFG).fit(both)
    assert _rank_of_cold(soft, "b") < _rank_of_cold(soft, "a")
    assert _rank_of_cold(flips, "a") < _rank_of_cold(flips, "b")


def test_soft_labels__out_of_range_probability_and_bad_labels_are_one_line_errors() -> None:
    catalog, rows = _world()
    bad = rows.head(3).assign(click_prob=[0.2, 1.5, np.nan])
    with pytest.raises(InputError, match=r"column click_prob: 1 values outside \[0, 1\]"):
        soft_labels(bad)
    with pytest.raises(InputError, match="two-tower labels"):
        TwoTowerModel(catalog, FIELDS, CFG).fit(rows, labels=np.full(len(rows), 2.0))


def test_item_vectors__unseen_apps_share_the_oov_slot_unknown_ids_are_errors() -> None:
    catalog, rows = _world()
    model = TwoTowerModel(catalog, FIELDS, CFG).fit(rows)
    v = model.item_vectors(pd.Series(["app_cold", "app_cold2"]))
    np.testing.assert_allclose(v[0], v[1], atol=1e-6)  # same attributes, both OOV
    with pytest.raises(InputError, match="app_nope"):
        model.item_vectors(pd.Series(["app_nope"]))
    bad = rows.assign(**{S.APP_ID: "app_nope"})
    with pytest.raises(InputError, match="not in the item catalogue"):
        TwoTowerModel(catalog, FIELDS, CFG).fit(bad)
    with pytest.raises(InputError, match="weights"):
        TwoTowerModel(catalog, FIELDS, CFG).fit(rows, np.full(len(rows), np.nan))


def test_keep_mask__drops_the_highest_loss_synthetic_rows_never_real_ones() -> None:
    from recmodel.prune import keep_mask, pruned_mean

    loss = torch.tensor([9.0, 1.0, 5.0, 3.0, 8.0, 2.0])
    syn = torch.tensor([False, True, True, True, True, False])
    keep = keep_mask(loss, syn, 0.5)  # 4 synthetic rows -> the 2 worst go: 8.0 and 5.0
    assert keep.tolist() == [True, True, False, True, False, True]
    assert keep_mask(loss, syn, 0.0).all()
    mean, dropped = pruned_mean(loss, syn, 0.5)
    assert dropped == 2 and float(mean) == pytest.approx((9 + 1 + 3 + 2) / 4)


def test_fit__pruning_drops_implausible_synthetic_rows_after_warm_up() -> None:
    """The judge says b-users click the cold app; a minority of its rows say a-users do
    (noise: a-users click apps 0-9 only). Pruning the highest-loss synthetic rows per
    batch keeps the noise out, so the cold app moves further towards b than a."""
    catalog, rows = _world()
    noise = pd.DataFrame({S.INTEREST: "a", S.AGE_BAND: ["x", "y"] * 30,
                          S.APP_ID: "app_cold", S.CLICKED: 1})  # fmt: skip
    syn = pd.concat([_synthetic(120), noise], ignore_index=True)
    both = pd.concat([rows, syn], ignore_index=True)
    flags = np.arange(len(both)) >= len(rows)

    def gap(model: TwoTowerModel) -> float:
        users = pd.DataFrame({S.INTEREST: ["a", "b"], S.AGE_BAND: ["x", "x"]})
        s = model.user_vectors(users) @ model.item_vectors(pd.Series(["app_cold"]))[0]
        return float(s[1] - s[0])

    cfg = dataclasses.replace(CFG, prune_share=0.4, prune_warmup=2)
    plain = TwoTowerModel(catalog, FIELDS, CFG).fit(both, synthetic=flags)
    pruned = TwoTowerModel(catalog, FIELDS, cfg).fit(both, synthetic=flags)
    assert plain.pruned == 0 and pruned.pruned > 0
    assert gap(pruned) > gap(plain) + 0.1
    with pytest.raises(InputError, match="pass synthetic="):
        TwoTowerModel(catalog, FIELDS, cfg).fit(both)
    with pytest.raises(ConfigError, match=r"prune_share: 1\.0 is not in"):
        TwoTowerModel(catalog, FIELDS, dataclasses.replace(CFG, prune_share=1.0)).fit(rows)
