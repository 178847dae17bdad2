"""Worlds and the cold split of the cold-start protocol (ColdLLM's cold setting).

A *world* is every impression of a bounded data set plus its item catalogue
(id, category, numeric fields, description text). The simulator world is made
in-process (``evaluate.cold_start.sim_*`` sizes, the seed of the run) and
carries an oracle: the true click logit of every (user, app) pair from the
simulator's latents. MovieLens-100K: ratings >= 4 are clicks; the text of a
movie is its title (with year) and genres.

The split holds ``cold_fraction`` of the apps with impressions out as cold,
with all their impressions (the cold test set); ``warm_test_fraction`` of the
warm impressions form the warm test set; the rest is the training data.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from jobs.evaluation.data import LABEL, EvalData
from jobs.platform import schema as S
from jobs.platform.errors import EmptyInputError

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

    from configs.settings import Settings

SIM_DS = "2026-11-23"
Oracle = Callable[..., np.ndarray]


@dataclass
class World:
    """All impressions and the item catalogue of one data set."""

    name: str
    rows: pd.DataFrame  # user_id, app_id, profile fields, category, numeric fields, clicked
    catalog: pd.DataFrame  # app_id, category, numeric fields, description
    profile_fields: tuple[str, ...]
    num_fields: tuple[str, ...]
    categories: tuple[str, ...]
    source: str
    oracle: Oracle | None = None  # (users with user_id, catalogue rows) -> true logits


@dataclass
class ColdSplit:
    """Warm training rows, warm / cold test rows and the cold app ids."""

    train: pd.DataFrame
    test_warm: pd.DataFrame
    test_cold: pd.DataFrame
    cold_apps: list[str]
    facts: dict[str, Any] = field(default_factory=dict)


def split_cold(world: World, seed: int, cold_fraction: float, warm_test: float) -> ColdSplit:
    """Hold out ``cold_fraction`` of the apps with impressions (all their rows) as cold."""
    apps = np.array(sorted(world.rows[S.APP_ID].astype(str).unique()))
    n_cold = round(cold_fraction * len(apps))
    if n_cold < 1 or n_cold >= len(apps):
        raise EmptyInputError(
            f"cold-start split of {world.name}: {len(apps)} apps with impressions and "
            f"cold_fraction {cold_fraction} give {n_cold} cold apps; need 1..{len(apps) - 1}"
        )
    rng = np.random.default_rng(seed)
    cold = sorted(rng.choice(apps, n_cold, replace=False).tolist())
    is_cold = world.rows[S.APP_ID].astype(str).isin(cold).to_numpy()
    warm = world.rows[~is_cold].reset_index(drop=True)
    held = rng.random(len(warm)) < warm_test
    split = ColdSplit(
        warm[~held].reset_index(drop=True),
        warm[held].reset_index(drop=True),
        world.rows[is_cold].reset_index(drop=True),
        cold,
    )
    if int(split.test_cold[LABEL].sum()) == 0:
        raise EmptyInputError(
            f"cold-start split of {world.name} (seed {seed}): the {n_cold} cold apps have no "
            "clicks; nothing to recall"
        )
    split.facts = {
        "apps": len(apps),
        "cold_apps": n_cold,
        "train_rows": len(split.train),
        "train_clicks": int(split.train[LABEL].sum()),
        "test_warm_rows": len(split.test_warm),
        "test_cold_rows": len(split.test_cold),
        "test_cold_clicks": int(split.test_cold[LABEL].sum()),
        "users": int(world.rows[S.USER_ID].nunique()),
    }
    return split


def eval_data(world: World, split: ColdSplit) -> EvalData:
    """The paper evaluation's ``EvalData`` view, so stage 1 + 2 (``ArmBuilder``) run as is."""
    cat = (*world.profile_fields, S.CATEGORY)
    stage_num = tuple(f for f in world.num_fields if f in S.NUMERIC_FIELDS)
    items = world.catalog[world.catalog[S.APP_ID].isin(split.cold_apps)]
    item_cols = [S.APP_ID, S.CATEGORY, *stage_num, S.DESCRIPTION]
    data = EvalData(
        world.name, split.train, split.test_warm.iloc[:0], split.test_cold, cat, stage_num,
        world.profile_fields, (S.CATEGORY, *stage_num), items[item_cols].reset_index(drop=True),
        world.categories, world.source,
    )  # fmt: skip
    data.facts = {"base_ctr": round(float(split.train[LABEL].mean()), 5), **split.facts}
    warm = world.catalog[~world.catalog[S.APP_ID].isin(split.cold_apps)]
    data.item_text = dict(zip(warm[S.APP_ID].astype(str), warm[S.DESCRIPTION], strict=True))
    return data


# -- the simulator world ------------------------------------------------------------


def simulator_world(spark: SparkSession, settings: Settings, seed: int) -> World:
    """A bounded simulated day (sizes from ``evaluate.cold_start``) with its oracle."""
    from jobs.sources import simulate as sim

    cs = settings.evaluate.cold_start
    cfg = settings.simulate.model_copy(
        update={
            "seed": seed, "users": cs.sim_users, "apps": cs.sim_apps, "base_ctr": cs.sim_base_ctr,
            "bot_impression_share": 0.0, "cold_start_impression_share": 0.0,
        }
    )  # fmt: skip
    plan = sim.make_plan(cfg, cs.sim_rows)
    users = sim.build_users(spark, plan).persist()
    apps = sim.build_apps(spark, plan, SIM_DS).persist()
    logs = sim.build_logs(spark, plan, cfg, SIM_DS, users, apps, 4)
    cols = [S.USER_ID, S.APP_ID, *S.PROFILE_FIELDS, *S.APP_FIELDS, LABEL]
    rows = logs.select(*cols).toPandas()  # bounded: evaluate.cold_start.sim_rows
    user_pdf = users.select(S.USER_ID, *S.PROFILE_FIELDS, sim.TASTE).toPandas()
    app_cols = [S.APP_ID, *S.APP_FIELDS, S.DESCRIPTION, *sim.HIDDEN_APP_COLUMNS]
    app_pdf = apps.select(*app_cols).toPandas()
    users.unpersist()
    apps.unpersist()
    catalog = app_pdf[app_pdf[S.APP_ID].isin(rows[S.APP_ID].unique())].reset_index(drop=True)
    oracle = _simulator_oracle(plan, cfg.interaction_strength, user_pdf, catalog)
    source = f"in-process simulation v2 ({cs.sim_rows} rows, {cs.sim_users} users, " + (
        f"{cs.sim_apps} apps, base CTR {cs.sim_base_ctr}, seed {seed})"
    )
    return World(
        "simulator", rows, catalog[[S.APP_ID, *S.APP_FIELDS, S.DESCRIPTION]],
        S.PROFILE_FIELDS, S.NUMERIC_FIELDS, S.CATEGORIES, source, oracle,
    )  # fmt: skip


def _simulator_oracle(plan: Any, strength: float, users: pd.DataFrame, apps: pd.DataFrame):
    """True logit of (user, app) without the context terms (constant per user and row)."""
    from jobs.sources import simulate as sim
    from jobs.sources import themes as TH

    taste_of = dict(zip(users[S.USER_ID], users[sim.TASTE], strict=True))
    app_rows = apps.set_index(S.APP_ID)

    def oracle(u: pd.DataFrame, items: pd.DataFrame, expected: bool = False) -> np.ndarray:
        """Logits (users x items); ``expected``: the taste given the profile only."""
        a = app_rows.loc[items[S.APP_ID].astype(str)]
        cat = a[S.CATEGORY].to_numpy()
        age = u[S.AGE_BAND].to_numpy()[:, None]
        interest = u[S.INTEREST].to_numpy()[:, None]
        table = lambda t, x, y: np.vectorize(lambda p, q: t.get(f"{p}|{q}", 0.0))(x, y)  # noqa: E731
        z = table(plan.age_category, age, cat[None, :]) + table(
            plan.interest_category, interest, cat[None, :]
        )
        slope = np.array([sim.DEVICE_PRICE_SLOPE.get(d, 0.0) for d in u[S.DEVICE]])
        z += slope[:, None] * np.log1p(a[S.PRICE].to_numpy())[None, :] * strength
        z += sim.RATING_SLOPE * (a[S.RATING].to_numpy() - 4.0)[None, :]
        if expected:
            taste = TH.affinity_matrix({f: u[f].to_numpy() for f in S.PROFILE_FIELDS})
        else:
            taste = np.stack([np.asarray(taste_of[x], float) for x in u[S.USER_ID]])
        hot = TH.theme_multi_hot([list(t) for t in a[sim.APP_THEMES]])
        return z + TH.pair_theme_logits(plan.latent, taste, hot, a[sim.APP_QUALITY].to_numpy())

    return oracle


# -- MovieLens-100K --------------------------------------------------------------------


def movielens_world(spark: SparkSession, path: str | Path | None) -> World:
    """Ratings (>= 4 = click) and movies with title / year / genres as text."""
    from jobs.sources import movielens as ML

    root = Path(path) if path else ML.DEFAULT_DIR
    df = ML.load_movielens(spark, root)
    cols = [S.USER_ID, S.APP_ID, *ML.ML_PROFILE_FIELDS, S.CATEGORY, LABEL]
    rows = df.select(*cols).toPandas()  # ML-100K: 100k ratings, bounded
    items = ML.movie_items(spark, root).toPandas()
    items = items[items[S.APP_ID].isin(rows[S.APP_ID].unique())].reset_index(drop=True)
    items["year"] = items["year"].fillna(items["year"].median())
    items[S.CATEGORY] = items[S.CATEGORY].fillna("unknown")
    for c in (*ML.ML_PROFILE_FIELDS, S.CATEGORY):
        rows[c] = rows[c].astype(str)
    return World("movielens", rows, items, ML.ML_PROFILE_FIELDS, ("year",), ML.ML_CATEGORIES,
                 str(root))  # fmt: skip


def load_world(spark: SparkSession, settings: Settings, dataset: str, path: str | None,
               seed: int) -> World:  # fmt: skip
    if dataset == "simulator":
        return simulator_world(spark, settings, seed)
    return movielens_world(spark, path)
