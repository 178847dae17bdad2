"""The cold-start protocol: split, metrics, bad input and a tiny end-to-end run."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import yaml

from jobs.evaluation import cold_metrics as M
from jobs.evaluation.cold_data import World, split_cold
from jobs.platform import schema as S
from jobs.platform.errors import EmptyInputError, InputError


def _world(n_apps: int = 10, clicks: bool = True) -> World:
    rng = np.random.default_rng(0)
    n = 400
    rows = pd.DataFrame({
        S.USER_ID: [f"u{i % 40}" for i in range(n)], S.APP_ID: [f"a{i % n_apps}" for i in range(n)],
        S.INTEREST: "games", S.CATEGORY: "games", S.PRICE: 0.0, S.RATING: 4.0,
        S.CLICKED: (rng.random(n) < 0.3).astype(int) if clicks else 0,
    })  # fmt: skip
    cat = rows.drop_duplicates(S.APP_ID)[[S.APP_ID, S.CATEGORY, S.PRICE, S.RATING]]
    return World("toy", rows, cat.assign(**{S.DESCRIPTION: "x"}), (S.INTEREST,),
                 (S.PRICE, S.RATING), S.CATEGORIES, "toy")  # fmt: skip


def test_split_cold__holds_out_whole_apps_with_all_their_impressions() -> None:
    split = split_cold(_world(), seed=1, cold_fraction=0.2, warm_test=0.1)
    assert len(split.cold_apps) == 2
    assert not split.train[S.APP_ID].isin(split.cold_apps).any()
    assert not split.test_warm[S.APP_ID].isin(split.cold_apps).any()
    assert set(split.test_cold[S.APP_ID]) == set(split.cold_apps)
    assert len(split.train) + len(split.test_warm) + len(split.test_cold) == 400
    again = split_cold(_world(), seed=1, cold_fraction=0.2, warm_test=0.1)
    assert again.cold_apps == split.cold_apps


def test_split_cold__no_cold_apps_or_no_cold_clicks_is_a_one_line_error() -> None:
    with pytest.raises(EmptyInputError, match="give 0 cold apps; need 1"):
        split_cold(_world(n_apps=2), seed=1, cold_fraction=0.2, warm_test=0.1)
    with pytest.raises(EmptyInputError, match="no clicks"):
        split_cold(_world(clicks=False), seed=1, cold_fraction=0.2, warm_test=0.1)


def test_training_rows__soft_labels_take_click_prob_of_synthetic_rows_only() -> None:
    from jobs.evaluation.arms import ArmData
    from jobs.evaluation.cold_start import _training_rows
    from jobs.platform.errors import InputError

    split = split_cold(_world(), seed=1, cold_fraction=0.2, warm_test=0.1)
    syn = pd.DataFrame({S.INTEREST: "games", S.APP_ID: split.cold_apps[0], S.CLICKED: [0, 1, 0],
                        "click_prob": [0.4, 0.2, 0.0]})  # fmt: skip
    arm = ArmData("samplellm", syn, np.array([1.0, 2.0, 3.0]), "standin")
    rows, w, y = _training_rows(split, arm, True, (S.INTEREST,), soft=True)
    n = len(split.train)
    assert len(rows) == n + 3
    np.testing.assert_array_equal(y[:n], split.train[S.CLICKED])
    np.testing.assert_allclose(y[n:], [0.4, 0.2, 0.0])
    np.testing.assert_allclose(w[n:], [0.5, 1.0, 1.5])  # normalised to mean 1
    _, _, hard = _training_rows(split, arm, True, (S.INTEREST,), soft=False)
    np.testing.assert_array_equal(hard[n:], [0, 1, 0])
    no_prob = ArmData("samplellm", syn.drop(columns="click_prob"), None, "standin")
    with pytest.raises(InputError, match="samplellm synthetic rows: no click_prob column"):
        _training_rows(split, no_prob, True, (S.INTEREST,), soft=True)


def test_rank_scores__recall_ndcg_by_hand_and_users_without_clicks_are_counted() -> None:
    scores = np.array([[3.0, 2.0, 1.0, 0.0], [0.0, 1.0, 2.0, 3.0], [1.0, 1.0, 1.0, 1.0]])
    rel = np.array([[1, 0, 0, 1], [1, 0, 0, 0], [0, 0, 0, 0]], dtype=bool)
    got = M.rank_scores(scores, rel, k=3)
    # user 0: top3 = {0, 1, 2}: 1 of 2 relevant; user 1: top3 = {3, 2, 1}: 0 of 1
    assert got.recall == pytest.approx((0.5 + 0.0) / 2)
    assert got.ndcg == pytest.approx((1.0 / (1 + 1 / np.log2(3)) + 0.0) / 2)
    assert (got.users, got.users_without_clicks) == (2, 1)
    assert M.rank_scores(scores, np.zeros_like(rel), 2).recall is None


def test_exposure__coverage_and_gini_of_cold_items() -> None:
    scores = np.array([[5.0, 4.0, 0.0, 0.0], [5.0, 0.0, 4.0, 0.0]])
    coverage, gini = M.exposure(scores, np.array([1, 2, 3]), k=2)
    assert coverage == pytest.approx(2 / 3)
    assert 0 < gini < 1
    assert M.gini(np.array([1.0, 1.0, 1.0])) == pytest.approx(0.0)
    assert M.gini(np.array([0.0, 0.0, 9.0])) == pytest.approx(2 / 3)


def test_description_vectors__missing_text_is_zero_and_recorded_cache_is_reused(tmp_path):
    from recmodel.text_embed import description_vectors

    apps = pd.DataFrame({S.APP_ID: ["a", "b", "c"],
                         S.DESCRIPTION: ["A chess app", None, "A chess app"]})  # fmt: skip
    table = tmp_path / "emb"
    first = description_vectors(apps, table)
    assert first.missing_text == ["b"] and first.computed == 2
    assert np.allclose(first.vectors[1], 0) and np.linalg.norm(first.vectors[0]) > 0.99
    again = description_vectors(apps, table)
    assert again.computed == 0
    np.testing.assert_allclose(again.vectors, first.vectors)
    changed = description_vectors(apps.assign(**{S.DESCRIPTION: ["A chess app", "New", None]}),
                                  table)  # fmt: skip
    assert changed.computed == 1 and changed.missing_text == ["c"]


TINY = {
    "cluster_k": 4, "exemplars_per_request": 3, "threads": 1,
    "cold_start": {"sim_rows": 8_000, "sim_users": 300, "sim_apps": 60, "epochs": 2,
                   "dim": 8, "text_table": None, "k": 5, "candidates_per_app": 6,
                   "candidate_users_per_request": 4},
}  # fmt: skip


def test_evaluate_cold_start__tiny_simulator_run_writes_the_contract(spark, tmp_path, warehouse):
    from jobs.evaluation.evaluate import main

    cfg = tmp_path / "cs.yaml"
    # samplellm_local through the stand-in here (the real model is benchmarks' work).
    tiny = {**TINY, "local_endpoint": "local", "local_rows": 20}
    doc = {"warehouse": str(warehouse), "spark": {"master": "local[2]", "shuffle_partitions": 4},
           "evaluate": tiny}  # fmt: skip
    cfg.write_text(yaml.safe_dump(doc))
    out = tmp_path / "cs"
    arms = (
        "original,content,samplellm,coldllm,samplellm_resampled,samplellm_local,"
        "coldllm_prune,oracle"
    )
    code = main(["--config", str(cfg), "--dataset", "simulator", "--protocol", "cold-start",
                 "--seed", "3", "--repeats", "2", "--arms", arms, "--out", str(out)])  # fmt: skip

    assert code == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["seed"] == 3 and summary["endpoint"]["standin"] is True
    for arm in arms.split(","):
        for metric in ("recall@5", "ndcg@5", "all_recall@5", "auc", "coverage@5", "gini@5"):
            values = summary["cold_start"][arm][metric]
            assert len(values) == 2 and all(v is None or 0 <= v <= 1 for v in values), (arm, metric)
    table = summary["cold_recall_summary"]
    assert table["oracle"]["mean"] > summary["random_recall"]
    assert summary["synthetic"]["samplellm"]["rows"] > 0
    assert "gap_closed" in table["samplellm"]
    # candidates mode: 6 users per cold app in requests of 4 -> 2 calls per cold app
    coldllm = summary["synthetic"]["coldllm"]
    n_cold = summary["facts"]["cold_apps"]
    assert coldllm["stage1"]["pairs"] == 6 * n_cold and coldllm["stage1"]["cold_apps"] == n_cold
    assert coldllm["stage1"]["clicks_requests"] == 2 * n_cold
    assert coldllm["stage1"]["calls_per_cold_app"] == 2.0
    assert coldllm["rows"] > 0 and coldllm["stage2"]["ess_fraction"] > 0
    assert "coldllm_prune" in table
    syn = summary["synthetic"]
    # D_s' -> D_s: the budget drawn from a pool of resample_pool (3) x it, unweighted.
    res = syn["samplellm_resampled"]
    assert res["stage1"]["pool_rows"] > res["rows"] and res["stage2"]["resampled_from"] > 0
    # The local arm: its own endpoint, its own (small) budget, its drops in the report.
    local = syn["samplellm_local"]
    assert local["stage1"]["endpoint"]["standin"] is True and "dropped" in local["stage1"]
    # 20 rows ask for the minimum of 2 profile requests: at most 2 x 5 profiles x 8 apps.
    assert 0 < local["rows"] <= 80 < syn["samplellm"]["rows"]


def test_content_candidates__top_n_distinct_training_users_per_cold_app() -> None:
    from configs.settings import load_config
    from jobs.evaluation.cold_start import content_candidates
    from recmodel.two_tower import ItemCatalog

    world = _world(n_apps=10)
    split = split_cold(world, 0, 0.3, 0.1)
    text = np.random.default_rng(1).normal(size=(len(world.catalog), 4))
    catalog = ItemCatalog(world.catalog[[S.APP_ID, S.CATEGORY, S.PRICE, S.RATING]],
                          (S.CATEGORY,), (S.PRICE, S.RATING), text)  # fmt: skip
    settings = load_config(None)
    cs = settings.evaluate.cold_start.model_copy(update={"candidates_per_app": 7, "epochs": 1})
    settings = settings.model_copy(update={"evaluate": settings.evaluate.model_copy(
        update={"cold_start": cs})})  # fmt: skip
    pairs, facts = content_candidates(world, split, catalog, settings, seed=0)

    assert facts == {"candidate_users": split.train[S.USER_ID].nunique(), "candidates_per_app": 7}
    assert sorted(pairs[S.APP_ID].unique()) == split.cold_apps
    assert (pairs.groupby(S.APP_ID)[S.USER_ID].nunique() == 7).all()
    assert set(pairs[S.USER_ID]) <= set(split.train[S.USER_ID])
    assert list(pairs.columns) == [S.USER_ID, S.INTEREST, S.APP_ID]


def test_candidate_stage1__pairs_of_unknown_apps_or_without_profiles_are_errors() -> None:
    from configs.settings import load_config
    from jobs.evaluation.cold_data import eval_data
    from jobs.evaluation.synth import candidate_stage1

    world = _world(n_apps=10)
    split = split_cold(world, 0, 0.3, 0.1)
    data = eval_data(world, split)
    pairs = pd.DataFrame({S.USER_ID: ["u1"], S.INTEREST: ["games"], S.APP_ID: ["a-new"]})
    with pytest.raises(InputError, match=r"app_id \['a-new'\] not among the cold items"):
        candidate_stage1(data, load_config(None), None, pairs, users_per_request=4, seed=0)
    with pytest.raises(InputError, match=r"missing columns \['interest'\]"):
        candidate_stage1(data, load_config(None), None, pairs.drop(columns=S.INTEREST),
                         users_per_request=4, seed=0)  # fmt: skip


def test_request_examples__users_own_warm_rows_interleaved_with_descriptions() -> None:
    from jobs.evaluation.cold_data import eval_data
    from jobs.evaluation.synth import request_examples

    world = _world(n_apps=10)
    world.catalog[S.DESCRIPTION] = "about " + world.catalog[S.APP_ID]
    split = split_cold(world, 0, 0.3, 0.1)
    data = eval_data(world, split)
    train = data.train
    shown = request_examples(data, [["u1", "u2"], ["u3"], ["nobody"]], 5, seed=0)
    assert shown[2] == [] and request_examples(data, [["u1"]], 0, seed=0) == [[]]
    for users, examples in zip([["u1", "u2"], ["u3"]], shown[:2], strict=True):
        rows = train[train[S.USER_ID].isin(users)]
        n_pos, n_neg = int(rows[S.CLICKED].sum()), int((rows[S.CLICKED] == 0).sum())
        labels = [e[S.CLICKED] for e in examples]
        pos = [(2 * r, True) for r in range(1, min(n_pos, 5) + 1)]
        merged = sorted(pos + [(2 * r + 1, False) for r in range(1, min(n_neg, 5) + 1)])[:5]
        assert labels == [y for _, y in merged]
        for e in examples:  # a real warm row of one of the users, with its description
            assert e[S.DESCRIPTION].removeprefix("about ") not in split.cold_apps
            match = rows[(rows[S.APP_ID] == e[S.DESCRIPTION].removeprefix("about "))
                         & (rows[S.CLICKED] == int(e[S.CLICKED]))]  # fmt: skip
            assert len(match) and S.USER_ID not in e and S.APP_ID not in e


def test_resampled_arm__draws_the_budget_from_the_pool_in_proportion_to_weight() -> None:
    from jobs.evaluation.arms import ArmData
    from jobs.evaluation.cold_start import resampled_arm

    pool = pd.DataFrame({S.APP_ID: [f"a{i}" for i in range(400)], S.CLICKED: 0})
    w = np.where(np.arange(400) < 100, 5.0, 1.0)
    w[300:] = 0.0  # never drawn

    class Pool:
        def build(self, name: str) -> ArmData:
            arm = ArmData(name, pool, None, "llm:x:cluster", figures={"requests": 9})
            arm.weights, arm.stage2 = w, {"ess_fraction": 0.5}
            return arm

    arm = resampled_arm(Pool(), 150, seed=0)
    picked = arm.syn[S.APP_ID].str[1:].astype(int)
    assert len(arm.syn) == 150 and picked.is_unique and (picked < 300).all()
    assert arm.weights is None and arm.figures["pool_rows"] == 400
    # 100 rows at weight 5 vs 200 at weight 1: the heavy ones are drawn far more often.
    assert (picked < 100).mean() > 0.5, (picked < 100).mean()
    with pytest.raises(InputError, match="resample_pool"):
        resampled_arm(Pool(), 401, seed=0)


def test_with_context__real_context_of_the_request_users_with_the_same_label() -> None:
    from jobs.evaluation.cold_data import eval_data
    from jobs.evaluation.synth import with_context

    world = _world(n_apps=10)
    world.rows[S.HOUR] = np.arange(len(world.rows)) % 24
    world.rows[S.NETWORK] = np.where(np.arange(len(world.rows)) % 3, "wifi", "4g")
    split = split_cold(world, 0, 0.3, 0.1)
    data = eval_data(world, split)
    data.categorical = (*data.categorical, S.NETWORK)
    data.numeric = (*data.numeric, S.HOUR)
    train = data.train
    rows = pd.DataFrame({S.INTEREST: "games", S.APP_ID: "a1", S.CLICKED: [True, False, True],
                         "_req": [0, 1, 1]})  # fmt: skip
    figures: dict = {}
    out = with_context(data, rows, [["u1"], ["u2", "u3"]], seed=0, figures=figures)
    assert "_req" not in out and list(out[S.CLICKED]) == [True, False, True]
    for (_, r), users in zip(out.iterrows(), [["u1"], ["u2", "u3"], ["u2", "u3"]], strict=True):
        same = train[train[S.USER_ID].isin(users) & (train[S.CLICKED] == int(r[S.CLICKED]))]
        assert ((same[S.HOUR] == r[S.HOUR]) & (same[S.NETWORK] == r[S.NETWORK])).any()
    assert figures["context_fallback_rows"] == 0
    # A row's own user (candidates mode) wins; a user without such rows falls back, counted.
    own = rows.assign(**{S.USER_ID: ["u7", "nobody", None]})
    out = with_context(data, own, [["u1"], ["u2"]], seed=0, figures=figures)
    mine = train[(train[S.USER_ID] == "u7") & (train[S.CLICKED] == 1)]
    assert (mine[S.HOUR] == out[S.HOUR][0]).any() and figures["context_fallback_rows"] == 1


def test_requests__sampling_is_the_llm_settings_and_max_tokens_follows_the_schema():
    # Setup: a bounded click schema (2 users x 3 apps) and a CPU endpoint's settings.
    from configs.llm import LLMSettings
    from jobs.evaluation.synth import _requests
    from llm_client import schemas

    fmt = schemas.response_format(
        schemas.CLICK_SCHEMA_NAME, schemas.click_schema(["u0", "u1"], ["a", "b", "c"])
    )
    msgs = [[{"role": "user", "content": "judge"}]]
    bound = schemas.max_tokens_for(fmt["json_schema"]["schema"], 1 << 20)
    # Run
    (wide,) = _requests(LLMSettings(temperature=0.4, top_p=0.8), "m", "v", "clicks", msgs,
                        [fmt], seed=1)  # fmt: skip
    capped = LLMSettings(endpoint="local-llm", local_llm={"max_tokens": 64})
    (cpu,) = _requests(capped, "m", "v", "clicks", msgs, [fmt], seed=1)
    # Assert: the reply's bound, not a fixed 4,096; the CPU cap where it is lower.
    assert wide.sampling["max_tokens"] == bound < 4096
    assert (wide.sampling["temperature"], wide.sampling["top_p"]) == (0.4, 0.8)
    assert cpu.sampling["max_tokens"] == 64
    assert wide.request_hash != cpu.request_hash
