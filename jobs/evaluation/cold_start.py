"""``coldstart evaluate --protocol cold-start``: does synthetic data lift cold-app recall?

    coldstart evaluate --dataset simulator --protocol cold-start --seed 1 --repeats 5 \\
        --arms original,content,samplellm,samplellm_content,no_is,no_cs,oracle --out runs/cs

ColdLLM-style (WSDM'25): ``cold_fraction`` of the apps are held out as cold
with all their impressions (``cold_data.split_cold``); every arm trains the
same two-tower model (``recmodel.two_tower``) on the warm training rows, plus
for the SampleLLM arms the synthetic rows stage 1 writes for the cold apps
(the configured LLM endpoint; the offline stand-in by default) weighted by
stage 2 (``ArmBuilder`` of the paper evaluation), and ranks items for the test
users (their profiles):

    original           app_id + category + numeric fields; real rows only
    content            original + the MiniLM description embedding
    samplellm          original + stage-2-weighted synthetic rows of the cold apps
    samplellm_content  content + the same weighted synthetic rows
    no_is / no_cs      samplellm without importance weights / with random exemplars
    coldllm            original + the LLM's judgements of (real user, cold app) pairs:
                       the content tower's top ``candidates_per_app`` training users
                       of each cold app (ColdLLM / LLM-Ins candidates mode), weighted
    both               original + the samplellm and coldllm rows, weighted together
    samplellm_local    samplellm with stage 1 through ``evaluate.local_endpoint`` (a real model:
                       llama.cpp + Gemma 3 270M on the CPU by default) at ``evaluate.local_rows``
    samplellm_budget   samplellm through the configured endpoint at ``local_rows``
    samplellm_resampled  original + the paper's D_s' -> D_s: stage 1 writes
                       ``resample_pool`` x the budget, stage 2 weights it, the budget
                       is drawn in proportion to weight; trained unweighted
    *_prune            the arm with LLMRec pruning (``prune_share`` of each batch's
                       synthetic rows with the highest loss leave it after a warm-up)
    oracle             the simulator's true click logit (simulator only)
    attributes         category + numeric fields only, no app_id (calibration)

Metrics per arm and repeat (``DIR/summary.json``, ``cold_start.<arm>.<metric>``,
one value per repeat): cold ``recall@k`` / ``ndcg@k`` (ranking among the cold
apps), ``all_recall@k`` / ``all_ndcg@k`` (all apps, training clicks masked),
``auc`` on the cold impressions, ``coverage@k`` and ``gini@k`` of the cold
apps in the all-app top-k lists. Repeats retrain the model with another seed
on the same split and synthetic rows (stage 1 runs once per ``--seed``); the
oracle is deterministic, so its repeats are equal.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np
import pandas as pd

from jobs.evaluation import cold_metrics as M
from jobs.evaluation.cold_data import ColdSplit, World, eval_data, load_world, split_cold
from jobs.evaluation.data import LABEL
from jobs.platform import schema as S
from jobs.platform.errors import InputError

if TYPE_CHECKING:
    from configs.settings import Settings
    from jobs.evaluation.arms import ArmData
    from recmodel.two_tower import ItemCatalog, TwoTowerConfig

log = logging.getLogger(__name__)


class ArmSpec(NamedTuple):
    """How one arm's two-tower model is trained."""

    text: bool  # the description embedding in the item tower
    source: str | None  # whose synthetic rows (None: real rows only)
    weighted: bool  # stage-2 importance weights (else every synthetic row weighs 1)
    use_id: bool = True  # the app_id embedding
    prune: bool = False  # LLMRec pruning of the highest-loss synthetic rows


MODEL_ARMS: dict[str, ArmSpec] = {
    "original": ArmSpec(False, None, False),
    "content": ArmSpec(True, None, False),
    "samplellm": ArmSpec(False, "samplellm", True),
    "samplellm_content": ArmSpec(True, "samplellm", True),
    "no_is": ArmSpec(False, "samplellm", False),
    "no_cs": ArmSpec(False, "no_cs", True),
    "coldllm": ArmSpec(False, "coldllm", True),
    "both": ArmSpec(False, "both", True),
    "samplellm_resampled": ArmSpec(False, "samplellm_resampled", False),
    "samplellm_local": ArmSpec(False, "samplellm_local", True),
    "samplellm_budget": ArmSpec(False, "samplellm_budget", True),
    "samplellm_prune": ArmSpec(False, "samplellm", True, prune=True),
    "coldllm_prune": ArmSpec(False, "coldllm", True, prune=True),
    "both_prune": ArmSpec(False, "both", True, prune=True),
    "attributes": ArmSpec(False, None, False, use_id=False),
}


class Evaluator:
    """Test users, relevance matrices and the cold impressions of one split."""

    def __init__(self, world: World, split: ColdSplit, catalog: ItemCatalog, k: int) -> None:
        self.k = k
        test = pd.concat([split.test_warm, split.test_cold], ignore_index=True)
        self.users = test.drop_duplicates(S.USER_ID)[[S.USER_ID, *world.profile_fields]]
        self.users = self.users.reset_index(drop=True)
        uidx = pd.Index(self.users[S.USER_ID])
        self.cold_cols = catalog.positions(pd.Series(split.cold_apps))
        shape = (len(self.users), len(catalog.items))
        self.relevant = np.zeros(shape, dtype=bool)
        clicks = test[test[LABEL] == 1]
        self.relevant[uidx.get_indexer(clicks[S.USER_ID]), catalog.positions(clicks[S.APP_ID])] = 1
        self.seen = np.zeros(shape, dtype=bool)
        tr = split.train[(split.train[LABEL] == 1) & split.train[S.USER_ID].isin(uidx)]
        self.seen[uidx.get_indexer(tr[S.USER_ID]), catalog.positions(tr[S.APP_ID])] = True
        self.seen &= ~self.relevant  # a test click on an app also clicked in training stays
        c = split.test_cold
        self.auc_rows = (uidx.get_indexer(c[S.USER_ID]), catalog.positions(c[S.APP_ID]))
        self.auc_labels = c[LABEL].to_numpy()

    def measure(self, scores: np.ndarray) -> dict[str, Any]:
        """Every metric of one ranking (``scores``: test users x catalogue items)."""
        k = self.k
        cold = M.rank_scores(scores[:, self.cold_cols], self.relevant[:, self.cold_cols], k)
        masked = np.where(self.seen, -np.inf, scores)
        overall = M.rank_scores(masked, self.relevant, k)
        coverage, gini = M.exposure(masked, self.cold_cols, k)
        return {
            f"recall@{k}": cold.recall,
            f"ndcg@{k}": cold.ndcg,
            f"all_recall@{k}": overall.recall,
            f"all_ndcg@{k}": overall.ndcg,
            "auc": M.auc(self.auc_labels, scores[self.auc_rows]),
            f"coverage@{k}": coverage,
            f"gini@{k}": gini,
            "cold_users": cold.users,
            "cold_users_without_clicks": cold.users_without_clicks,
        }


def synthetic_arms(spark: Any, world: World, split: ColdSplit, settings: Settings, seed: int,
                   needed: set[str], catalog: ItemCatalog | None = None,
                   ) -> tuple[dict[str, ArmData], dict | None]:  # fmt: skip
    """Stage 1 (endpoint) + stage 2 rows of the cold apps for the arms' ``needed`` sources.

    ``samplellm`` / ``no_cs``: invented profiles (``ArmBuilder``); ``coldllm``:
    judged (real user, cold app) candidate pairs (needs ``catalog`` with text);
    ``both``: the two sets together, weighted by one stage-2 run.
    """
    from jobs.evaluation.arms import ArmBuilder, ArmData, local_arm, maybe_endpoint
    from jobs.evaluation.synth import candidate_stage1

    if not needed:
        return {}, None
    data = eval_data(world, split)
    s = settings.model_copy(
        update={"evaluate": settings.evaluate.model_copy(update={"seed": seed})}
    )
    cs = settings.evaluate.cold_start
    n_syn = max(10, round(settings.evaluate.synthetic_fraction * len(split.train)))
    profile_arms = needed & {"samplellm", "no_cs"} | ({"samplellm"} if "both" in needed else set())
    candidate_arm = bool(needed & {"coldllm", "both"})
    with maybe_endpoint(s, tuple(needed)) as ep:
        builder = ArmBuilder(spark, data, s, ep, n_syn)
        built = {name: builder.build(name) for name in sorted(profile_arms)}
        if candidate_arm:
            if catalog is None or catalog.text is None:
                raise InputError("coldllm arm: the content filter needs the description vectors")
            pairs, filt = content_candidates(world, split, catalog, settings, seed)
            s1 = candidate_stage1(data, s, ep, pairs, seed=seed,
                                  users_per_request=cs.candidate_users_per_request)  # fmt: skip
            if s1.rows.empty:
                raise InputError(f"arm coldllm: stage 1 ({s1.generator}) produced no rows")
            arm = ArmData("coldllm", s1.rows, None, s1.generator, figures={**s1.figures, **filt})
            arm.weights, arm.stage2 = builder.weights(arm.syn)
            built["coldllm"] = arm
        n_small = min(settings.evaluate.local_rows, n_syn)
        if "samplellm_budget" in needed:
            arm = ArmBuilder(spark, data, s, ep, n_small).build("samplellm")
            built["samplellm_budget"] = replace(arm, name="samplellm_budget")
        if "samplellm_local" in needed:
            built["samplellm_local"] = local_arm(spark, data, s, n_small)
        if "samplellm_resampled" in needed:
            built["samplellm_resampled"] = resampled_arm(
                ArmBuilder(spark, data, s, ep, round(n_syn * cs.resample_pool)), n_syn, seed
            )
        if "both" in needed:
            rows = pd.concat([built["samplellm"].syn, built["coldllm"].syn], ignore_index=True)
            arm = ArmData("both", rows, None, "samplellm+coldllm",
                          figures={"samplellm_rows": len(built["samplellm"].syn),
                                   "coldllm_rows": len(built["coldllm"].syn)})  # fmt: skip
            arm.weights, arm.stage2 = builder.weights(rows)
            built["both"] = arm
        info = {"base_url": ep.base_url, "model": ep.model, "standin": ep.is_standin}
    return {n: a for n, a in built.items() if n in needed}, info


def tower_config(settings: Settings, seed: int, **arm: Any) -> TwoTowerConfig:
    """The two-tower config of ``evaluate.cold_start`` plus one arm's switches."""
    from recmodel.two_tower import TwoTowerConfig

    cs = settings.evaluate.cold_start
    return TwoTowerConfig(dim=cs.dim, id_dropout=cs.id_dropout, epochs=cs.epochs,
                          batch_size=cs.batch_size, lr=cs.lr, max_rows=cs.max_rows, seed=seed,
                          prune_warmup=cs.prune_warmup, **arm)  # fmt: skip


def content_candidates(
    world: World, split: ColdSplit, catalog: ItemCatalog, settings: Settings, seed: int
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """ColdLLM's coupled filter: each cold app's top-N real training users by the content tower.

    The content tower is the ``content`` arm's model (description embedding in
    the item tower) trained on the warm rows only; a cold app is scored from its
    description, category and numeric fields (its id is unseen, so out of
    vocabulary). Returns (pairs: user_id + profile fields + app_id, figures).
    """
    from recmodel.two_tower import TwoTowerModel, top_users

    cs = settings.evaluate.cold_start
    cfg = tower_config(settings, seed, use_text=True)
    fields = list(world.profile_fields)
    model = TwoTowerModel(catalog, world.profile_fields, cfg)
    model.fit(split.train[[*fields, S.APP_ID, LABEL]])
    users = split.train.drop_duplicates(S.USER_ID)[[S.USER_ID, *fields]].reset_index(drop=True)
    cold = pd.Series(split.cold_apps)
    n = min(cs.candidates_per_app, len(users))
    top = top_users(model.user_vectors(users), model.item_vectors(cold), n)  # (apps, n)
    pairs = users.iloc[top.ravel()].reset_index(drop=True)
    pairs[S.APP_ID] = np.repeat(cold.to_numpy(), n)
    return pairs, {"candidate_users": len(users), "candidates_per_app": n}


def resampled_arm(pool_builder: Any, n: int, seed: int) -> ArmData:
    """The paper's D_s' -> D_s: weight an oversampled pool, keep ``n`` rows drawn in
    proportion to weight without replacement (Efraimidis-Spirakis with a seeded draw,
    the rule of ``jobs.stage2.transforms.importance_resample``), unweighted after."""
    from jobs.evaluation.arms import ArmData

    pool = pool_builder.build("samplellm")
    w = np.asarray(pool.weights, dtype=float)
    if len(pool.syn) < n:
        raise InputError(f"arm samplellm_resampled: the pool has {len(pool.syn)} rows, fewer "
                         f"than the {n} to draw (evaluate.cold_start.resample_pool)")  # fmt: skip
    u = np.random.default_rng(seed).random(len(w))
    with np.errstate(divide="ignore"):
        key = np.log(-np.log(u)) - np.log(w)  # weight 0: key +inf, drawn last
    keep = np.sort(np.argsort(key, kind="stable")[:n])
    rows = pool.syn.iloc[keep].reset_index(drop=True)
    figures = {**pool.figures, "pool_rows": len(pool.syn), "rows": n}
    arm = ArmData("samplellm_resampled", rows, None, f"{pool.generator}:resampled", figures=figures)
    arm.stage2 = {**pool.stage2, "resampled_from": len(pool.syn)}
    return arm


def _training_rows(split: ColdSplit, arm: ArmData | None, weighted: bool,
                   fields: tuple[str, ...], soft: bool = False,
                   ) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:  # fmt: skip
    """Real + synthetic rows, their weights and their positive mass (``soft``: click_prob)."""
    cols = [*fields, S.APP_ID, LABEL]
    real = split.train[cols]
    if arm is None or arm.syn is None:
        return real, np.ones(len(real)), real[LABEL].to_numpy(float)
    syn = arm.syn[cols].astype({f: str for f in fields})
    w = arm.weights if weighted and arm.weights is not None else np.ones(len(syn))
    w = w / w.mean() if w.sum() > 0 else w
    if soft:
        from recmodel.two_tower import soft_labels

        if "click_prob" not in arm.syn.columns:
            raise InputError(
                f"{arm.name} synthetic rows: no click_prob column; expected the judge's "
                "probability (evaluate.cold_start.soft_labels)"
            )
        syn_y = soft_labels(arm.syn)
    else:
        syn_y = arm.syn[LABEL].to_numpy(float)
    rows = pd.concat([real, syn], ignore_index=True)
    return (rows, np.concatenate([np.ones(len(real)), w]),
            np.concatenate([real[LABEL].to_numpy(float), syn_y]))  # fmt: skip


def model_scores(arm: str, world: World, split: ColdSplit, catalog: ItemCatalog,
                 syn: dict[str, ArmData], ev: Evaluator, settings: Settings,
                 seed: int) -> np.ndarray:  # fmt: skip
    """Train the arm's two-tower model once; scores of the test users x catalogue."""
    from recmodel.two_tower import TwoTowerModel

    cs = settings.evaluate.cold_start
    spec = MODEL_ARMS[arm]
    cfg = tower_config(settings, seed, use_text=spec.text, use_id=spec.use_id,
                       prune_share=cs.prune_share if spec.prune else 0.0)  # fmt: skip
    source = syn.get(spec.source) if spec.source else None
    rows, w, y = _training_rows(split, source, spec.weighted, world.profile_fields,
                                cs.soft_labels)  # fmt: skip
    synthetic = np.arange(len(rows)) >= len(split.train)
    model = TwoTowerModel(catalog, world.profile_fields, cfg).fit(rows, w, labels=y,
                                                                  synthetic=synthetic)  # fmt: skip
    return model.user_vectors(ev.users) @ model.item_vectors().T


def run_seed(spark: Any, settings: Settings, dataset: str, path: str | None, seed: int,
             repeats: int, arms: tuple[str, ...]) -> dict[str, Any]:  # fmt: skip
    """One ``--seed``: world, split, synthetic rows once, every arm ``repeats`` times."""
    from recmodel.text_embed import description_vectors
    from recmodel.two_tower import ItemCatalog

    cs = settings.evaluate.cold_start
    if "oracle" in arms and dataset != "simulator":
        raise InputError(f"--arms oracle: only the simulator has a true click model, not {dataset}")
    world = load_world(spark, settings, dataset, path, seed)
    split = split_cold(world, seed, cs.cold_fraction, cs.warm_test_fraction)
    warnings: list[str] = []
    text = None
    needed = {MODEL_ARMS[a].source for a in arms if a in MODEL_ARMS and MODEL_ARMS[a].source}
    if any(a in MODEL_ARMS and MODEL_ARMS[a].text for a in arms) or needed & {"coldllm", "both"}:
        emb = description_vectors(world.catalog, cs.text_table)
        text = emb.vectors
        if emb.missing_text:
            warnings.append(f"{len(emb.missing_text)} apps without a description get the zero "
                            f"text vector: {emb.missing_text[:5]}")  # fmt: skip
    num = world.num_fields
    catalog = ItemCatalog(world.catalog[[S.APP_ID, S.CATEGORY, *num]], (S.CATEGORY,), num, text)
    start = time.monotonic()
    syn, endpoint = synthetic_arms(spark, world, split, settings, seed, needed, catalog)
    stage_s = round(time.monotonic() - start, 1)
    ev = Evaluator(world, split, catalog, cs.k)
    results: dict[str, list[dict]] = {}
    for arm in arms:
        start = time.monotonic()
        if arm == "oracle":
            results[arm] = [ev.measure(world.oracle(ev.users, catalog.items))] * repeats
        else:
            results[arm] = [
                ev.measure(
                    model_scores(arm, world, split, catalog, syn, ev, settings, seed * 1_000 + r)
                )
                for r in range(repeats)
            ]
        log.info("cold-start %s seed %d: %s in %.1fs", dataset, seed, arm, time.monotonic() - start)
    n_cold = len(split.cold_apps)
    signal = {n: standin_signal(world, a) for n, a in syn.items()} if world.oracle else {}
    return {
        "standin_signal": signal,
        "seed": seed, "source": world.source, "facts": split.facts, "endpoint": endpoint,
        "warnings": warnings, "stage_seconds": stage_s,
        "random_recall": min(cs.k, n_cold) / n_cold,
        "synthetic": {n: {"rows": len(a.syn), "clicks": int(a.syn[LABEL].sum()),
                          "generator": a.generator, "stage1": a.figures, "stage2": a.stage2}
                      for n, a in syn.items()},
        "results": results,
    }  # fmt: skip


def standin_signal(world: World, arm: ArmData) -> dict[str, float | None]:
    """How much of the truth the stage-1 click judgements carry (simulator only).

    Pearson correlation of each synthetic row's ``click_prob`` with the true
    logit expected for its (synthetic) profile and app, overall and after
    removing each app's mean (the user-app match a per-app embedding can learn).
    """
    syn = arm.syn
    if syn is None or "click_prob" not in syn.columns or len(syn) < 3:
        return {"corr": None, "corr_within_app": None}
    apps = world.catalog[world.catalog[S.APP_ID].isin(syn[S.APP_ID].unique())]
    apps = apps.reset_index(drop=True)
    pos = pd.Index(apps[S.APP_ID]).get_indexer(syn[S.APP_ID])
    truth = world.oracle(syn, apps, expected=True)[np.arange(len(syn)), pos]
    prob = syn["click_prob"].to_numpy(float)
    frame = pd.DataFrame({"app": pos, "t": truth, "p": prob})
    centred = frame[["t", "p"]] - frame.groupby("app")[["t", "p"]].transform("mean")
    corr = lambda a, b: float(np.corrcoef(a, b)[0, 1]) if a.std() and b.std() else None  # noqa: E731
    return {"corr": corr(frame.t, frame.p), "corr_within_app": corr(centred.t, centred.p)}


def summarise(runs: list[dict], arms: tuple[str, ...], k: int) -> dict[str, Any]:
    """``cold_start.<arm>.<metric>`` lists over all seeds and repeats, plus mean/sd, p, gap."""
    from scipy.stats import ttest_ind

    metrics = [f"recall@{k}", f"ndcg@{k}", f"all_recall@{k}", f"all_ndcg@{k}", "auc",
               f"coverage@{k}", f"gini@{k}"]  # fmt: skip
    lists = {a: {m: [r[m] for run in runs for r in run["results"][a]] for m in metrics}
             for a in arms}  # fmt: skip
    key = f"recall@{k}"
    mean = {a: float(np.mean([x for x in lists[a][key] if x is not None])) for a in arms}
    table: dict[str, dict] = {}
    for a in arms:
        vals = [x for x in lists[a][key] if x is not None]
        row = {"mean": mean[a], "sd": float(np.std(vals, ddof=1)) if len(vals) > 1 else 0.0}
        if "original" in arms and a != "original":
            base = [x for x in lists["original"][key] if x is not None]
            row["welch_p_vs_original"] = float(ttest_ind(vals, base, equal_var=False).pvalue)
            row["ratio_vs_original"] = mean[a] / mean["original"] if mean["original"] else None
            if "oracle" in arms and mean["oracle"] != mean["original"]:
                gap = mean["oracle"] - mean["original"]
                row["gap_closed"] = (mean[a] - mean["original"]) / gap
        table[a] = row
    return {"lists": lists, key: table}


def evaluate_cold_start(settings: Settings, dataset: str, path: str | None, out: Path,
                        arms: tuple[str, ...], repeats: int, seed: int,
                        command: str) -> dict[str, Any]:  # fmt: skip
    """The protocol for one seed; writes ``out/summary.json`` and ``out/report.md``."""
    from jobs.platform.spark import get_spark

    spark = get_spark(settings.spark)
    if settings.evaluate.threads:
        import torch

        torch.set_num_threads(settings.evaluate.threads)
    k = settings.evaluate.cold_start.k
    run = run_seed(spark, settings, dataset, path, seed, repeats, arms)
    summ = summarise([run], arms, k)
    summary = {
        "protocol": "cold-start", "dataset": dataset, "command": command, "seed": seed,
        "repeats": repeats, "arms": list(arms), "k": k, "cold_start": summ["lists"],
        "cold_recall_summary": summ[f"recall@{k}"],
        **{x: run[x] for x in ("source", "facts", "endpoint", "warnings", "random_recall",
                               "synthetic", "stage_seconds")},
    }  # fmt: skip
    out.mkdir(parents=True, exist_ok=True)
    tmp = out / "summary.json.tmp"
    tmp.write_text(json.dumps(summary, indent=2, default=str))
    tmp.replace(out / "summary.json")
    (out / "report.md").write_text(report_markdown(summary))
    return summary


def report_markdown(summary: dict[str, Any]) -> str:
    """A short Markdown table: cold Recall@k mean ± sd, Welch p, gap closed per arm."""
    k = summary["k"]
    lines = [
        f"# Cold-start protocol: {summary['dataset']} (seed {summary['seed']})",
        "",
        f"Source: {summary['source']}. Endpoint: {summary['endpoint']}. "
        f"Random cold Recall@{k}: {summary['random_recall']:.4f}.",
        "",
        f"| Arm | cold Recall@{k} | Welch p vs original | gap closed |",
        "|---|---|---|---|",
    ]
    for arm, row in summary["cold_recall_summary"].items():
        p, g = row.get("welch_p_vs_original"), row.get("gap_closed")
        p_text = "" if p is None else f"{p:.3g}"
        g_text = "" if g is None else f"{g:.2f}"
        lines.append(f"| {arm} | {row['mean']:.4f} ± {row['sd']:.4f} | {p_text} | {g_text} |")
    lines += ["", *[f"Warning: {w}" for w in summary["warnings"]]]
    return "\n".join(lines) + "\n"
