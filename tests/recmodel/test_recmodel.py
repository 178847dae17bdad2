"""Recall model: encoder, weighted loss, metrics, streaming, artifacts, train job."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F

from configs.recmodel import ModelSettings
from jobs.platform import schema as S
from jobs.platform.errors import EmptyInputError, InputError
from recmodel.artifacts import latest_version, load_artifact, model_root, save_artifact
from recmodel.features import FeatureEncoder, FeatureSpec
from recmodel.model import build_model
from recmodel.train import MetricAccumulator, weighted_bce

SPEC = FeatureSpec(("color",), ("price",))


def _rows() -> pd.DataFrame:
    return pd.DataFrame({"color": ["red", "blue", "red", None], "price": [1.0, np.nan, 3.0, 5.0]})


def test_encoder__unseen_category_is_oov_and_nan_is_imputed_and_counted():
    # Setup
    enc = FeatureEncoder.fit(_rows(), SPEC)
    new = pd.DataFrame({"color": ["green", "red", None], "price": [np.nan, 2.0, np.inf]})
    # Run
    cat, num = enc.transform(new)
    # Assert
    assert cat[:, 0].tolist() == [0, enc.vocab["color"].index("red") + 1, 0]
    assert torch.isfinite(num).all()
    median_z = (enc.medians["price"] - enc.means["price"]) / enc.stds["price"]
    assert num[0, 0].item() == pytest.approx(median_z) and num[2, 0].item() == pytest.approx(
        median_z
    )
    assert enc.nan_counts == {"price": 2}
    assert enc.oov_counts["color"] == 2
    clone = FeatureEncoder.from_dict(json.loads(json.dumps(enc.to_dict())))
    assert torch.equal(clone.transform(new)[0], cat)


def test_encoder__hashed_id_has_a_stable_slot_without_vocabulary_and_starts_at_zero():
    # Setup: app_id hashed into 64 slots; "a9" never occurs in the sample fitted on.
    from recmodel.features import hash_slots

    spec = FeatureSpec(("color", "app_id"), ("price",), hashed=("app_id",), hash_buckets=64)
    rows = _rows().assign(app_id=["a1", "a2", "a1", None])
    # Run
    enc = FeatureEncoder.fit(rows, spec)
    cat, _ = enc.transform(pd.DataFrame({"color": ["red"] * 3, "price": [1.0] * 3,
                                         "app_id": ["a9", "a1", None]}))  # fmt: skip
    model = build_model(enc, ModelSettings(), seed=0)
    # Assert: the unseen id has its own slot (not OOV), equal across calls and a JSON
    # round trip; null is slot 0; the id table is 65 rows and all zeros before training.
    slots = hash_slots(pd.Series(["a9", "a1"]), 64)
    assert cat[:, 1].tolist() == [*slots.tolist(), 0] and (slots >= 1).all()
    assert enc.vocab["app_id"] == [] and enc.cardinalities()[1] == 65
    clone = FeatureEncoder.from_dict(json.loads(json.dumps(enc.to_dict())))
    assert clone.spec == spec and torch.equal(clone.transform(rows)[0], enc.transform(rows)[0])
    assert model.cat_emb[1].weight.shape == (65, 8)
    assert not model.cat_emb[1].weight.any() and model.cat_emb[0].weight.any()
    one_slot = FeatureEncoder.fit(rows, FeatureSpec(("app_id",), hashed=("app_id",),
                                                    hash_buckets=1))  # fmt: skip
    assert one_slot.collisions(rows)["app_id"] == {"values": 2, "slots": 1,
                                                   "values_sharing_a_slot": 2}  # fmt: skip
    with pytest.raises(InputError, match=r"hashed columns \['app_id'\]"):
        FeatureSpec(("color",), hashed=("app_id",))


def test_aligned_fields__identities_never_reach_the_feature_groups():
    # Setup: app_id has the strongest pair of the map.
    from jobs.model.interactions import aligned_fields
    from recmodel.groups import feature_groups

    fields = ["age", "app_id", "category", "slot"]
    m = np.array([[0, 9, 2, 0], [9, 0, 8, 0], [2, 8, 0, 0.1], [0, 0, 0.1, 0]], float)
    # Run
    kept, sub = aligned_fields(fields, m, ("app_id",))
    groups = feature_groups(sub, kept, 0.45)
    # Assert: the threshold is relative to the largest remaining pair (age x category).
    assert kept == ["age", "category", "slot"] and sub.tolist() == [[0, 2, 0], [2, 0, 0.1],
                                                                     [0, 0.1, 0]]  # fmt: skip
    assert sorted(map(sorted, groups)) == [["age", "category"], ["slot"]]


def test_weighted_bce__all_ones_equals_unweighted():
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(257, generator=gen)
    y = (torch.rand(257, generator=gen) < 0.3).float()
    plain = F.binary_cross_entropy_with_logits(logits, y)
    torch.testing.assert_close(weighted_bce(logits, y, torch.ones(257)), plain)
    # A weight of 2 on a row is the same as the row appearing twice.
    w = torch.ones(257)
    w[0] = 2.0
    dup = F.binary_cross_entropy_with_logits(torch.cat([logits, logits[:1]]), torch.cat([y, y[:1]]))
    torch.testing.assert_close(weighted_bce(logits, y, w), dup)


def test_metric_accumulator__auc_and_logloss_match_sklearn():
    from sklearn.metrics import log_loss, roc_auc_score

    rng = np.random.default_rng(1)
    y = (rng.random(5_000) < 0.1).astype(np.float32)
    logits = (rng.normal(size=5_000) + 1.5 * y).astype(np.float32)
    acc = MetricAccumulator()
    for part in np.array_split(np.arange(5_000), 7):  # streamed in pieces
        acc.add(torch.from_numpy(logits[part]), torch.from_numpy(y[part]), torch.ones(len(part)))
    m = acc.result()
    assert m.auc == pytest.approx(roc_auc_score(y, logits), abs=2e-4)
    assert m.logloss == pytest.approx(
        log_loss(y, 1 / (1 + np.exp(-logits.astype(float)))), rel=1e-6
    )
    assert (m.rows, m.positives) == (5_000, int(y.sum()))


def test_artifacts__roundtrip_gives_identical_logits(tmp_path):
    enc = FeatureEncoder.fit(_rows(), SPEC)
    for mode in ("bucket", "linear"):
        model = build_model(enc, ModelSettings(numeric_mode=mode, hidden=(8,)), seed=3)
        root = model_root(str(tmp_path / mode))
        save_artifact(root, "v1", model, enc, {"days": []})
        art = load_artifact(root, latest_version(root))
        cat, num = enc.transform(_rows())
        torch.testing.assert_close(art.model(cat, num), model(cat, num).detach())
        with pytest.raises(InputError, match="already exists"):
            save_artifact(root, "v1", model, enc, {})
    with pytest.raises(InputError, match="no trained model"):
        latest_version(str(tmp_path / "nothing"))


def test_two_tower__scores_and_splits_fields():
    enc = FeatureEncoder.fit(_rows(), SPEC)
    cfg = ModelSettings(architecture="two_tower", user_fields=("color",), hidden=(8,))
    model = build_model(enc, cfg, seed=0)
    cat, num = enc.transform(_rows())
    assert model(cat, num).shape == (4,)
    assert model.linear_split() is None
    with pytest.raises(ValueError, match="must be non-empty"):
        build_model(enc, cfg.model_copy(update={"user_fields": ()}), seed=0)


def test_window__empty_and_one_class_fail(spark, settings, warehouse):
    from jobs.model.train import check_window, main
    from jobs.platform.tables import write_partition

    rows = [(i, "u1", "app_1", "games", 0.0, 0) for i in range(20)]
    df = spark.createDataFrame(
        rows,
        f"{S.EVENT_ID} long, {S.USER_ID} string, {S.APP_ID} string, "
        f"{S.CATEGORY} string, {S.PRICE} double, {S.CLICKED} int",
    )
    path = settings.table_path(settings.tables.user_logs)
    write_partition(df, path, "2026-11-20")
    with pytest.raises(InputError, match="only class 0"):
        check_window(path, ["2026-11-20"])
    with pytest.raises(
        EmptyInputError, match=r"no partitions in the window 2026-12-04\.\.2026-12-10"
    ):
        main(["--weeks-ending", "2026-12-10"])


# -- end to end on simulated logs: train job, interactions job, planted pairs --

SIM_DAYS = ("2026-11-21", "2026-11-22")
SIM_ROWS = 50_000  # per day


@pytest.fixture(scope="module")
def sim_warehouse(spark, tmp_path_factory):
    """Two simulated days (default simulator: bots, cold-start apps, planted pairs)."""
    from jobs.sources import simulate

    root = tmp_path_factory.mktemp("recmodel") / "warehouse"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("COLDSTART_WAREHOUSE", str(root))
        for ds in SIM_DAYS:
            assert simulate.main(["--ds", ds, "--rows", str(SIM_ROWS)]) == 0
        yield root


def _planted(root) -> set[frozenset[str]]:
    truth = json.loads((root / "ref" / "simulator_truth.json").read_text())
    return {frozenset(p) for p in truth["planted_pairs"]}


def _expected_groups(fields: list[str], planted: set[frozenset[str]]) -> list[list[str]]:
    from recmodel.groups import UnionFind

    uf = UnionFind(len(fields))
    for a, b in map(tuple, planted):
        uf.union(fields.index(a), fields.index(b))
    return [[fields[i] for i in g] for g in uf.sets()]


def test_train_and_interactions_jobs__recover_planted_pairs(sim_warehouse, capsys):
    # Setup: a week ending on the second simulated day (5 of its days are missing).
    from jobs.model import interactions, train
    from recmodel.groups import top_pairs
    from recmodel.reader import read_pandas, table_version

    # Run
    assert train.main(["--weeks-ending", "2026-11-25"]) == 0
    out = capsys.readouterr().out
    assert interactions.main([]) == 0
    # Assert: the artifact's meta and the printed report.
    root = model_root(str(sim_warehouse))
    art = load_artifact(root, latest_version(root))
    assert art.meta["days"] == list(SIM_DAYS)
    assert art.meta["test"]["auc"] > 0.7 and art.meta["test"]["rows"] > 5_000
    assert art.meta["test_cold_start"]["rows"] > 0
    assert "test (held-out real): auc=0." in out and "cold-start apps" in out
    assert art.meta["embeddings"]["written"] is False  # a DNN head has no towers
    assert "serving vectors: none (architecture 'dnn'" in out
    # Lineage: the Delta version of every table read.
    logs_path = str(sim_warehouse / "raw" / "user_logs")
    assert art.meta["inputs"]["raw.user_logs"] == {
        "path": logs_path,
        "version": table_version(logs_path),
        "days": list(SIM_DAYS),
    }
    assert set(art.meta["inputs"]) == {"raw.user_logs", "ref.apps"}
    # Assert: one model.feature_groups row with the contract and the planted pairs.
    fg = read_pandas(str(sim_warehouse / "model" / "feature_groups"))
    assert len(fg) == 1 and fg.model_version[0] == art.version
    fields = json.loads(fg.fields[0])
    matrix = np.array(json.loads(fg.interaction_matrix[0]))
    assert S.APP_ID not in art.model.fields and art.meta["id_collisions"] == {}
    planted = _planted(sim_warehouse)
    top = {frozenset((a, b)) for a, b, _ in top_pairs(matrix, fields, len(planted))}
    assert top == planted
    assert json.loads(fg.groups[0]) == _expected_groups(fields, planted)
    assert (
        sim_warehouse / "model" / "recall" / art.version / "interactions.png"
    ).stat().st_size > 5_000
    # Re-running the same version replaces its row (one row per model version).
    assert interactions.main(["--model", art.version]) == 0
    assert len(read_pandas(str(sim_warehouse / "model" / "feature_groups"))) == 1


def test_train_job__two_tower_writes_app_and_user_vectors_that_rank_like_the_model(
    sim_warehouse, tmp_path, capsys
):
    # Setup: the same window, a two-tower head.
    import pyarrow.parquet as pq
    import yaml

    from jobs.model import train
    from recmodel.reader import read_pandas
    from recmodel.serving import VECTOR

    config = tmp_path / "two_tower.yaml"
    config.write_text(yaml.safe_dump({"recmodel": {"model": {"architecture": "two_tower"}}}))
    # Run
    assert train.main(["--config", str(config), "--weeks-ending", "2026-11-25"]) == 0
    # Assert: every app of ref.apps (cold ones too) and every user of the window.
    root = model_root(str(sim_warehouse))
    art = load_artifact(root, latest_version(root))
    emb = art.meta["embeddings"]
    apps_ref = read_pandas(str(sim_warehouse / "ref" / "apps"))
    logs = read_pandas(str(sim_warehouse / "raw" / "user_logs"))
    version_dir = sim_warehouse / "model" / "recall" / art.version
    apps = pq.read_table(version_dir / "embeddings" / "apps.parquet").to_pandas()
    users = pq.read_table(version_dir / "embeddings" / "users").to_pandas()
    assert emb["written"] and emb["apps"]["rows"] == len(apps) == len(apps_ref)
    # A two-tower model has an identity by default (hashed app_id, counted for collisions).
    assert S.APP_ID in art.model.fields and S.APP_ID in art.encoder.spec.hashed
    assert art.meta["id_collisions"][S.APP_ID]["values"] > 0
    assert emb["apps"]["cold_start"] == int(apps_ref[S.IS_COLD_START].sum()) > 0
    assert emb["users"]["rows"] == len(users) == logs[S.USER_ID].nunique()
    assert f"{len(users)} users" in capsys.readouterr().out
    # A user's row is their latest impression of the window.
    some = users.sample(40, random_state=0).reset_index(drop=True)
    latest = logs.sort_values([S.DS, S.EVENT_ID]).groupby(S.USER_ID).tail(1)
    ctx = some[[S.USER_ID]].merge(latest, on=S.USER_ID)
    assert (ctx[[S.DS, S.EVENT_ID]].to_numpy() == some[[S.DS, S.EVENT_ID]].to_numpy()).all()
    # The index's score (u . v + b_app) is the trained model's logit minus a per-user constant.
    user_cols = [f for f in art.model.fields if f in art.model.cfg.user_fields]
    app_cols = [f for f in art.model.fields if f not in art.model.cfg.user_fields]
    pairs = ctx[user_cols].merge(apps_ref[list(dict.fromkeys([S.APP_ID, *app_cols]))], how="cross")
    with torch.no_grad():
        logit = art.model(*art.encoder.transform(pairs)).numpy().reshape(len(ctx), -1)
    order = apps.set_index(S.APP_ID).loc[apps_ref[S.APP_ID]]
    index = np.stack(some[VECTOR]) @ np.stack(order[VECTOR]).T + order["bias"].to_numpy()
    np.testing.assert_allclose(index + some["bias"].to_numpy()[:, None], logit, atol=1e-4)


def test_fit_feature_groups__planted_pairs_on_simulated_logs(sim_warehouse):
    from recmodel.groups import top_pairs
    from recmodel.pipeline import fit_feature_groups
    from recmodel.reader import read_pandas

    logs = read_pandas(str(sim_warehouse / "raw" / "user_logs"))
    spec = FeatureSpec(
        tuple(f for f in S.LOG_FEATURE_FIELDS if f not in S.NUMERIC_FIELDS), S.NUMERIC_FIELDS
    )
    result = fit_feature_groups(logs, spec, S.CLICKED, gamma=0.45, seed=3, max_rows=100_000)
    planted = _planted(sim_warehouse)
    top = {frozenset((a, b)) for a, b, _ in top_pairs(result.matrix, result.fields, 3)}
    assert top == planted
    assert result.groups == _expected_groups(result.fields, planted)


def test_interleave__alternates_sources_until_all_are_exhausted():
    from recmodel.dataset import interleave

    frames = [pd.DataFrame({"x": [i]}) for i in range(5)]
    out = interleave(iter(frames[:3]), iter(frames[3:]))
    assert [int(f.x[0]) for f in out] == [0, 3, 1, 4, 2]


def test_train_model__pruning_keeps_contradicting_synthetic_rows_out_of_the_loss():
    """Real rows: red clicks 80%, blue 20%. Synthetic rows: half agree (red, click), half
    are noise (blue, click). Pruning half of each batch's synthetic rows by loss after one
    warm-up epoch drops the noise, so P(click | blue) stays near the real 20%."""
    from configs.recmodel import TrainSettings
    from recmodel.data import SYNTHETIC, encode_frame
    from recmodel.prune import check_share
    from recmodel.train import fit_in_memory

    rng = np.random.default_rng(0)
    color = rng.choice(["red", "blue"], 2_000)
    clicked = rng.random(2_000) < np.where(color == "red", 0.8, 0.2)
    real = pd.DataFrame({"color": color, "price": 1.0, S.CLICKED: clicked})
    syn = pd.DataFrame({"color": ["red", "blue"] * 300, "price": 1.0, S.CLICKED: 1})
    frame = pd.concat([real.assign(**{SYNTHETIC: False}), syn.assign(**{SYNTHETIC: True})],
                      ignore_index=True).astype({S.CLICKED: int})  # fmt: skip
    enc = FeatureEncoder.fit(frame, SPEC)
    batch = encode_frame(enc, frame, S.CLICKED)
    assert int(batch.syn.sum()) == 600
    cfg = TrainSettings(epochs=6, batch_size=128, lr=0.05, patience=10, seed=1)

    def p_blue(prune: tuple[float, int]) -> tuple[float, int]:
        model = build_model(enc, ModelSettings(hidden=(8,)), seed=0)
        report = fit_in_memory(model, batch, batch.slice(0, 500), cfg, prune)
        cat, num = enc.transform(pd.DataFrame({"color": ["blue"], "price": [1.0]}))
        p = float(torch.sigmoid(model(cat, num).detach())[0])
        return p, sum(h["pruned"] for h in report.history)

    plain, none_pruned = p_blue((0.0, 1))
    pruned, dropped = p_blue((0.5, 1))
    assert none_pruned == 0 and dropped > 0
    assert pruned < 0.3 < plain
    with pytest.raises(Exception, match=r"recmodel.prune_synthetic_share: 1\.5 is not in"):
        check_share(1.5, "recmodel.prune_synthetic_share")
