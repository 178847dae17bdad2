"""Simulate one day of app-store impression logs with a known click model.

    coldstart simulate --ds 2026-11-23 --rows 1000000
    spark-submit jobs/sources/simulate.py --ds 2026-11-23 --rows 1000000

Writes ``raw.user_logs`` (partition ds), ``ref.apps`` and the ground truth
``<warehouse>/ref/simulator_truth.json``. Every random draw is a hash of
(seed, salt, row key), not ``rand()``: results do not depend on the number of
partitions or executors, so a laptop run and a cluster run of the same seed
produce identical rows. Users and apps are small dimension tables built the
same way and broadcast-joined onto the impressions.

The click model (logistic) has main effects plus three **planted
interactions** that later stages must recover from a trained model's Hessian:
``age_band x category`` (a random table), ``interest x category`` (users click
apps of their interest) and ``device x price`` (paid apps sell on flagships,
not on entry phones). A small share of impressions comes from click-fraud bots
(many impressions, CTR ~ 0.5) for the sampler's outlier rules to catch.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from configs.settings import SimulateSettings
from jobs.platform import schema as S
from jobs.platform.hashing import uniform
from jobs.sources import themes as TH

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame, SparkSession

log = logging.getLogger(__name__)

PLANTED_PAIRS: tuple[tuple[str, str], ...] = (
    (S.AGE_BAND, S.CATEGORY),
    (S.INTEREST, S.CATEGORY),
    (S.DEVICE, S.PRICE),
)

# Marginal distributions (value -> probability) of the categorical fields.
USER_DISTS: dict[str, dict[str, float]] = {
    S.AGE_BAND: dict(zip(S.VOCAB[S.AGE_BAND], (0.18, 0.28, 0.22, 0.15, 0.10, 0.07), strict=True)),
    S.GENDER: dict(zip(S.VOCAB[S.GENDER], (0.48, 0.47, 0.05), strict=True)),
    S.CITY_TIER: dict(zip(S.VOCAB[S.CITY_TIER], (0.2, 0.3, 0.3, 0.2), strict=True)),
    S.DEVICE: dict(zip(S.VOCAB[S.DEVICE], (0.3, 0.4, 0.2, 0.1), strict=True)),
    S.OS: dict(zip(S.VOCAB[S.OS], (0.2, 0.3, 0.35, 0.15), strict=True)),
    S.INTEREST: dict(
        zip(S.CATEGORIES, (0.2, 0.14, 0.14, 0.1, 0.1, 0.06, 0.08, 0.06, 0.06, 0.06), strict=True)
    ),
}
CATEGORY_DIST = dict(
    zip(S.CATEGORIES, (0.22, 0.1, 0.1, 0.08, 0.1, 0.08, 0.1, 0.07, 0.07, 0.08), strict=True)
)
PAID_PRICES = (0.99, 1.99, 2.99, 4.99, 9.99, 19.99)
NETWORK_DIST = {"wifi": 0.6, "4g": 0.3, "5g": 0.1}
SLOT_DIST = {"home_feed": 0.45, "search": 0.2, "category_list": 0.2, "banner": 0.15}
HOUR_WEIGHTS = np.array([1, 1, 1, 1, 1, 1, 2, 3, 4, 4, 4, 5, 6, 5, 4, 4, 5, 6, 8, 9, 9, 8, 5, 2.0])
HOUR_DIST = {str(h): float(w) for h, w in enumerate(HOUR_WEIGHTS / HOUR_WEIGHTS.sum())}
# Share of (non-bot) impressions by activity level; level sizes are 20/40/40 % of users.
ACTIVITY_ROW_SHARE = {"high": 0.55, "medium": 0.35, "low": 0.10}
ACTIVITY_USER_SHARE = {"high": 0.2, "medium": 0.4, "low": 0.4}

SLOT_EFFECT = {"home_feed": 0.0, "search": 0.8, "category_list": 0.2, "banner": -0.5}
ACTIVITY_EFFECT = {"high": 0.2, "medium": 0.0, "low": -0.2}
DEVICE_PRICE_SLOPE = {"entry": -0.9, "mid": -0.3, "flagship": 0.6, "tablet": 0.2}
RATING_SLOPE = 0.6
INTEREST_MATCH = 1.5
BOT_CTR = 0.5
# Hidden latent columns (never written to ref.apps / raw.user_logs; see themes.py).
TASTE = "_taste"
APP_THEMES = "_themes"
APP_QUALITY = "_quality"
HIDDEN_APP_COLUMNS: tuple[str, ...] = (APP_THEMES, APP_QUALITY)

DESCRIPTIONS: dict[str, tuple[str, ...]] = {
    "games": (
        "a fast-paced puzzle game with daily challenges",
        "an online battle arena with ranked seasons",
        "a relaxing farming game to play offline",
    ),
    "social": (
        "a chat app to share moments with friends",
        "a community for people with shared hobbies",
        "a short-post network with live comments",
    ),
    "video": (
        "a streaming app for series and films",
        "a short-video feed with creative filters",
        "a video editor for clips and vlogs",
    ),
    "music": (
        "a music streaming app with curated playlists",
        "a karaoke app with scored duets",
        "a podcast player with offline downloads",
    ),
    "shopping": (
        "a marketplace with flash sales and coupons",
        "a grocery delivery app with same-day slots",
        "a second-hand trading app with buyer protection",
    ),
    "finance": (
        "a budgeting app that tracks every expense",
        "a stock trading app with live quotes",
        "a mobile wallet for bills and transfers",
    ),
    "education": (
        "a language-learning app with bite-sized lessons",
        "an exam-prep app with practice tests",
        "a coding course app for beginners",
    ),
    "health": (
        "a fitness tracker with guided workouts",
        "a meditation app for sleep and stress",
        "a clinic booking app with online consults",
    ),
    "travel": (
        "a hotel and flight booking app with price alerts",
        "an offline map with transit routes",
        "a trip planner with local guides",
    ),
    "tools": (
        "a file manager that cleans storage",
        "a VPN for safe public wifi",
        "a scanner that turns photos into PDFs",
    ),
}
DESCRIPTION_TAILS = (
    "Free to try.",
    "Loved by families.",
    "No ads in the paid tier.",
    "Works on tablets too.",
    "Updated every week.",
)


@dataclass(frozen=True)
class SimulationPlan:
    """Sizes and the drawn click-model parameters of one simulated day."""

    rows: int
    users: int
    bots: int
    apps: int
    cold_apps: int
    seed: int
    age_category: dict[str, float]
    interest_category: dict[str, float]
    intercept: float
    # Simulator v2: latent themes, quality and tastes (jobs/sources/themes.py).
    latent: TH.ThemeParams


# -- hashing helpers: partition-independent randomness -----------------------


def choose(u: Column, dist: dict[str, float]) -> Column:
    """Pick a key of ``dist`` by inverse CDF on the uniform column ``u``."""
    from pyspark.sql import functions as F

    items = list(dist.items())
    total = sum(p for _, p in items)
    expr, cum = None, 0.0
    for value, p in items[:-1]:
        cum += p / total
        expr = F.when(u < cum, F.lit(value)) if expr is None else expr.when(u < cum, F.lit(value))
    last = F.lit(items[-1][0])
    return last if expr is None else expr.otherwise(last)


def lookup(mapping: dict[str, float], key: Column) -> Column:
    """``mapping[key]`` as a Spark map lookup (0.0 for unknown keys)."""
    from pyspark.sql import functions as F

    flat = [F.lit(x) for kv in mapping.items() for x in kv]
    return F.coalesce(F.create_map(*flat)[key], F.lit(0.0))


def _pair_key(a: Column, b: Column) -> Column:
    from pyspark.sql import functions as F

    return F.concat_ws("|", a, b)


# -- plan: sizes and click-model parameters -----------------------------------


def make_plan(settings: SimulateSettings, rows: int) -> SimulationPlan:
    """Draw the click-model tables from the seed and calibrate the intercept."""
    users = settings.users or max(10, int(rows / settings.rows_per_user))
    bots = max(1, round(users * settings.bot_user_fraction)) if settings.bot_impression_share else 0
    cold = max(1, round(settings.apps * settings.cold_start_fraction))
    rng = np.random.default_rng(settings.seed)
    k = settings.interaction_strength
    age_cat = {
        f"{a}|{c}": round(float(rng.normal(0.0, 0.9 * k)), 4)
        for a in S.VOCAB[S.AGE_BAND]
        for c in S.CATEGORIES
    }
    int_cat = {
        f"{i}|{c}": (INTEREST_MATCH * k if i == c else round(float(rng.normal(0.0, 0.2 * k)), 4))
        for i in S.CATEGORIES
        for c in S.CATEGORIES
    }
    latent = TH.ThemeParams(
        seed=settings.seed,
        per_app=settings.themes_per_app,
        weight=settings.theme_weight,
        taste_sd=settings.taste_sd,
        quality_sd=settings.quality_sd,
        mention_rate=settings.theme_mention_rate,
        decoy_rate=settings.theme_decoy_rate,
    )
    plan = SimulationPlan(
        rows, users, bots, settings.apps, cold, settings.seed, age_cat, int_cat, 0.0, latent
    )
    intercept = _calibrate_intercept(plan, settings, rng)
    return SimulationPlan(**{**plan.__dict__, "intercept": intercept})


def _draw(rng: np.random.Generator, dist: dict[str, float], n: int) -> np.ndarray:
    keys = list(dist)
    p = np.array([dist[x] for x in keys])
    return np.array(keys)[rng.choice(len(keys), size=n, p=p / p.sum())]


def _calibrate_intercept(
    plan: SimulationPlan, settings: SimulateSettings, rng: np.random.Generator
) -> float:
    """Solve for the intercept that gives ``base_ctr`` on a Monte Carlo sample.

    Uses the same marginals as the Spark generator (app popularity is ignored,
    so the realised CTR lands near, not exactly at, the target; the run log
    reports the realised value).
    """
    n = 200_000
    age, interest, device = (
        _draw(rng, USER_DISTS[f], n) for f in (S.AGE_BAND, S.INTEREST, S.DEVICE)
    )
    cat = _draw(rng, CATEGORY_DIST, n)
    paid = rng.random(n) < 0.25
    price = np.where(paid, np.array(PAID_PRICES)[rng.integers(0, len(PAID_PRICES), n)], 0.0)
    rating = 2.5 + 2.5 * rng.random(n) ** 0.7
    slot = _draw(rng, SLOT_DIST, n)
    activity = _draw(rng, ACTIVITY_ROW_SHARE, n)
    profiles = {S.AGE_BAND: age, S.INTEREST: interest, S.DEVICE: device, S.ACTIVITY_LEVEL: activity}
    profiles |= {f: _draw(rng, USER_DISTS[f], n) for f in (S.GENDER, S.CITY_TIER)}
    z = (
        np.vectorize(plan.age_category.get)(np.char.add(np.char.add(age, "|"), cat))
        + np.vectorize(plan.interest_category.get)(np.char.add(np.char.add(interest, "|"), cat))
        + np.vectorize(DEVICE_PRICE_SLOPE.get)(device)
        * np.log1p(price)
        * settings.interaction_strength
        + RATING_SLOPE * (rating - 4.0)
        + np.vectorize(SLOT_EFFECT.get)(slot)
        + np.vectorize(ACTIVITY_EFFECT.get)(activity)
        + TH.sample_theme_logit(plan.latent, profiles, rng)
    )
    lo, hi = -15.0, 5.0
    for _ in range(60):
        mid = (lo + hi) / 2
        ctr = float(np.mean(1.0 / (1.0 + np.exp(-(z + mid)))))
        lo, hi = (mid, hi) if ctr < settings.base_ctr else (lo, mid)
    return round((lo + hi) / 2, 6)


# -- dimension tables ---------------------------------------------------------


def build_users(spark: SparkSession, plan: SimulationPlan) -> DataFrame:
    """One row per user (bots last) with profile fields drawn from the seed."""
    from pyspark.sql import functions as F

    n, seed = plan.users, plan.seed
    idx = F.col("user_idx")
    hi_end = int(n * ACTIVITY_USER_SHARE["high"])
    mid_end = hi_end + int(n * ACTIVITY_USER_SHARE["medium"])
    activity = (
        F.when(idx < hi_end, "high")
        .when(idx < mid_end, "medium")
        .when(idx < n, "low")
        .otherwise("high")
    )
    cols = [F.format_string("u%08d", idx).alias(S.USER_ID), idx]
    cols += [choose(uniform(seed, f"user.{f}", idx), USER_DISTS[f]).alias(f) for f in USER_DISTS]
    cols += [activity.alias(S.ACTIVITY_LEVEL), (idx >= n).alias("is_bot")]
    users = spark.range(n + plan.bots).withColumnRenamed("id", "user_idx").select(*cols)
    return users.withColumn(TASTE, TH.user_taste_column(plan.latent, idx))


def build_apps(spark: SparkSession, plan: SimulationPlan, ds: str) -> DataFrame:
    """``ref.apps`` columns plus the hidden ``HIDDEN_APP_COLUMNS`` (drop before writing).

    The description is the category phrase, then the app's themes in words
    (some omitted, maybe a decoy; ``jobs.sources.themes``), then a tail.
    """
    from pyspark.sql import functions as F

    seed, idx = plan.seed, F.col("app_idx")
    warm = plan.apps - plan.cold_apps
    category = choose(uniform(seed, "app.category", idx), CATEGORY_DIST)
    paid = uniform(seed, "app.paid", idx) < 0.25
    price_pick = F.element_at(
        F.array(*[F.lit(p) for p in PAID_PRICES]),
        (uniform(seed, "app.price", idx) * len(PAID_PRICES)).cast("int") + 1,
    )
    phrases = F.create_map(
        *[x for c, ps in DESCRIPTIONS.items() for x in (F.lit(c), F.array(*map(F.lit, ps)))]
    )
    phrase = F.element_at(
        phrases[F.col(S.CATEGORY)], (uniform(seed, "app.desc", idx) * 3).cast("int") + 1
    )
    tail = F.element_at(
        F.array(*map(F.lit, DESCRIPTION_TAILS)),
        (uniform(seed, "app.tail", idx) * len(DESCRIPTION_TAILS)).cast("int") + 1,
    )
    themes, quality, theme_text = TH.app_theme_columns(plan.latent, idx)
    is_cold = idx >= warm
    ds_date = F.to_date(F.lit(ds))
    age_days = F.when(is_cold, (uniform(seed, "app.launch", idx) * 7).cast("int")).otherwise(
        30 + (uniform(seed, "app.launch", idx) * 1500).cast("int")
    )
    developer = F.format_string(
        "dev_%04d", (uniform(seed, "app.dev", idx) * max(1, plan.apps // 5)).cast("int")
    )
    return (
        spark.range(plan.apps)
        .withColumnRenamed("id", "app_idx")
        .withColumn(S.CATEGORY, category)
        .select(
            F.format_string("app_%05d", idx).alias(S.APP_ID),
            S.CATEGORY,
            F.when(paid, price_pick).otherwise(F.lit(0.0)).alias(S.PRICE),
            F.round(2.5 + 2.5 * F.pow(uniform(seed, "app.rating", idx), 0.7), 1).alias(S.RATING),
            developer.alias(S.DEVELOPER),
            F.concat_ws(
                ". ",
                F.concat(F.initcap(F.substring(phrase, 1, 1)), F.substring(phrase, 2, 200)),
                F.when(F.length(theme_text) > 0, theme_text),
                tail,
            ).alias(S.DESCRIPTION),
            is_cold.alias(S.IS_COLD_START),
            F.date_format(F.date_sub(ds_date, age_days), "yyyy-MM-dd").alias(S.LAUNCH_DS),
            idx,
            themes.alias(APP_THEMES),
            quality.alias(APP_QUALITY),
        )
    )


# -- impressions -----------------------------------------------------------


def _pick_user(plan: SimulationPlan, bot_share: float, key: Column) -> Column:
    """User index: bots take ``bot_share`` of rows, else activity level, then uniform."""
    from pyspark.sql import functions as F

    seed, n = plan.seed, plan.users
    u_level, u_user = uniform(seed, "row.level", *key), uniform(seed, "row.user", *key)
    hi = int(n * ACTIVITY_USER_SHARE["high"])
    mid = int(n * ACTIVITY_USER_SHARE["medium"])
    start = {"high": 0, "medium": hi, "low": hi + mid}
    size = {"high": hi, "medium": mid, "low": n - hi - mid}
    level = choose(u_level, ACTIVITY_ROW_SHARE)
    lo = lookup({k: float(v) for k, v in start.items()}, level)
    width = lookup({k: float(v) for k, v in size.items()}, level)
    human = (lo + F.floor(u_user * width)).cast("long")
    bot = (F.lit(n) + F.floor(u_user * plan.bots)).cast("long")
    if plan.bots == 0:
        return human
    return F.when(uniform(seed, "row.bot", *key) < bot_share, bot).otherwise(human)


def _pick_app(plan: SimulationPlan, cold_share: float, key: Column) -> Column:
    """App index: long-tail popularity over warm apps; cold-start apps rarely shown."""
    from pyspark.sql import functions as F

    warm = plan.apps - plan.cold_apps
    u = uniform(plan.seed, "row.app", *key)
    warm_idx = F.floor(F.pow(u, 2.5) * warm)
    cold_idx = warm + F.floor(u * plan.cold_apps)
    return (
        F.when(uniform(plan.seed, "row.cold", *key) < cold_share, cold_idx)
        .otherwise(warm_idx)
        .cast("long")
    )


def click_logit(plan: SimulationPlan, strength: float) -> Column:
    """The ground-truth logit over the joined impression columns."""
    from pyspark.sql import functions as F

    c = F.col
    return (
        F.lit(plan.intercept)
        + lookup(plan.age_category, _pair_key(c(S.AGE_BAND), c(S.CATEGORY)))
        + lookup(plan.interest_category, _pair_key(c(S.INTEREST), c(S.CATEGORY)))
        + lookup(DEVICE_PRICE_SLOPE, c(S.DEVICE)) * F.log1p(c(S.PRICE)) * F.lit(strength)
        + F.lit(RATING_SLOPE) * (c(S.RATING) - 4.0)
        + lookup(SLOT_EFFECT, c(S.SLOT))
        + lookup(ACTIVITY_EFFECT, c(S.ACTIVITY_LEVEL))
        + TH.theme_logit(plan.latent, c(TASTE), c(APP_THEMES), c(APP_QUALITY))
    )


def build_logs(
    spark: SparkSession,
    plan: SimulationPlan,
    settings: SimulateSettings,
    ds: str,
    users: DataFrame,
    apps: DataFrame,
    partitions: int,
) -> DataFrame:
    """``raw.user_logs`` rows of one day (without ``ds``; the writer adds it)."""
    from pyspark.sql import functions as F

    seed = plan.seed
    key = (F.lit(ds), F.col("id"))
    weekday = dt.date.fromisoformat(ds).strftime("%a").lower()
    base = spark.range(0, plan.rows, numPartitions=partitions).select(
        F.col("id").alias(S.EVENT_ID),
        _pick_user(plan, settings.bot_impression_share, key).alias("user_idx"),
        _pick_app(plan, settings.cold_start_impression_share, key).alias("app_idx"),
        choose(uniform(seed, "row.hour", *key), HOUR_DIST).cast("int").alias(S.HOUR),
        F.lit(weekday).alias(S.WEEKDAY),
        choose(uniform(seed, "row.network", *key), NETWORK_DIST).alias(S.NETWORK),
        choose(uniform(seed, "row.slot", *key), SLOT_DIST).alias(S.SLOT),
        uniform(seed, "row.click", *key).alias("u_click"),
    )
    # Dimension tables are small (users ~ rows/20, apps ~ 2k): broadcast them.
    joined = base.join(F.broadcast(users), "user_idx").join(
        F.broadcast(apps.select("app_idx", S.APP_ID, *S.APP_FIELDS, *HIDDEN_APP_COLUMNS)),
        "app_idx",
    )
    p_click = F.when(F.col("is_bot"), F.lit(BOT_CTR)).otherwise(
        1.0 / (1.0 + F.exp(-click_logit(plan, settings.interaction_strength)))
    )
    return joined.withColumn(S.CLICKED, (F.col("u_click") < p_click).cast("int")).select(
        *S.USER_LOG_COLUMNS
    )


def truth_document(
    plan: SimulationPlan,
    settings: SimulateSettings,
    ds: str,
    app_latents: dict[str, dict[str, Any]] | None = None,
    tastes_path: str | None = None,
) -> dict[str, Any]:
    """Ground truth for later stages (DESIGN.md contract: planted_pairs, seed).

    ``latent`` holds what only the oracle may read: the theme vocabulary, each
    app's themes and quality, the taste affinities and where the per-user
    tastes are (a Parquet table: users grow with the data, apps do not), as a
    path relative to the warehouse, so the document does not depend on where
    the warehouse lives (a cluster run and a local run write the same truth).
    """
    lat = plan.latent
    latent = {
        "themes": list(TH.THEME_NAMES),
        "theme_weight": lat.weight,
        "taste_sd": lat.taste_sd,
        "quality_sd": lat.quality_sd,
        "mention_rate": lat.mention_rate,
        "decoy_rate": lat.decoy_rate,
        "affinity": {t.name: [list(a) for a in t.affinity] for t in TH.THEMES},
        "apps": app_latents or {},
        "user_tastes_path": tastes_path,  # relative to the warehouse
        "click_logit_term": "theme_weight * sum(taste[t] for t in app themes) + quality",
    }
    return {
        "latent": latent,
        "seed": plan.seed,
        "ds": ds,
        "planted_pairs": [list(p) for p in PLANTED_PAIRS],
        "rows": plan.rows,
        "users": plan.users,
        "bot_users": plan.bots,
        "bot_user_ids": [f"u{plan.users + i:08d}" for i in range(plan.bots)],
        "apps": plan.apps,
        "cold_start_apps": plan.cold_apps,
        "base_ctr_target": settings.base_ctr,
        "click_model": {
            "link": "logistic",
            "intercept": plan.intercept,
            "age_band|category": plan.age_category,
            "interest|category": plan.interest_category,
            "device_price_slope (x log1p(price))": DEVICE_PRICE_SLOPE,
            "interaction_strength": settings.interaction_strength,
            "rating_slope (x (rating - 4))": RATING_SLOPE,
            "slot": SLOT_EFFECT,
            "activity_level": ACTIVITY_EFFECT,
            "bot_ctr": BOT_CTR,
        },
    }


def write_json(path: str, document: dict[str, Any]) -> None:
    """Write JSON to a local path or URI atomically (``jobs.platform.fs``)."""
    from jobs.platform import fs

    fs.write_json(path, document)


def main(argv: Sequence[str] | None = None) -> int:
    """``coldstart simulate``: write raw.user_logs[ds], ref.apps and the truth file."""
    from pyspark.sql import functions as F

    from configs.settings import load_config
    from jobs.platform.common import RunLog, job_parser
    from jobs.platform.spark import get_spark
    from jobs.platform.tables import read_table, write_partition, write_table

    parser = job_parser("simulate", "Generate a day of app-store logs with planted interactions.")
    parser.add_argument(
        "--rows", type=int, default=None, help="impressions (default: config simulate.rows)"
    )
    parser.add_argument(
        "--seed", type=int, default=None, help="random seed (default: config simulate.seed)"
    )
    args = parser.parse_args(argv)
    settings = load_config(args.config)
    sim = settings.simulate.model_copy(
        update={k: v for k, v in {"seed": args.seed}.items() if v is not None}
    )
    rows = args.rows if args.rows is not None else sim.rows
    if rows < 1:
        parser.error(f"--rows {rows}: expected a positive number of impressions")
    run = RunLog("simulate", args.ds)
    spark = get_spark(settings.spark)
    plan = make_plan(sim, rows)
    parts = sim.partitions or max(
        2 * spark.sparkContext.defaultParallelism, math.ceil(rows / 500_000)
    )
    users = build_users(spark, plan)
    apps = build_apps(spark, plan, args.ds)
    logs_path = settings.table_path(settings.tables.user_logs)
    apps_path = settings.table_path(settings.tables.apps)
    write_table(
        apps.drop("app_idx", *HIDDEN_APP_COLUMNS), apps_path, writer=settings.io.delta_writer
    )
    logs = build_logs(spark, plan, sim, args.ds, users, apps, parts)
    result = write_partition(logs, logs_path, args.ds, writer=settings.io.delta_writer)
    ref = f"{settings.warehouse.rstrip('/')}/ref"
    tastes_rel = "ref/simulator_truth_users"
    tastes_path = f"{settings.warehouse.rstrip('/')}/{tastes_rel}"
    users.where(~F.col("is_bot")).select(S.USER_ID, F.col(TASTE).alias("taste")).write.mode(
        "overwrite"
    ).parquet(tastes_path)
    latents = {
        r[S.APP_ID]: {"themes": [TH.THEME_NAMES[t] for t in r[1]], "quality": round(r[2], 4)}
        for r in apps.select(S.APP_ID, APP_THEMES, APP_QUALITY).collect()  # apps: bounded
    }
    write_json(
        f"{ref}/simulator_truth.json", truth_document(plan, sim, args.ds, latents, tastes_rel)
    )
    written = read_table(spark, logs_path, args.ds, writer=settings.io.delta_writer)
    ctr = written.agg({S.CLICKED: "avg"}).first()[0]
    run.add(
        rows_out=result.rows,
        users=plan.users,
        apps=plan.apps,
        ctr=round(float(ctr or 0.0), 5),
        table=logs_path,
        version=result.version,
    )
    run.emit()
    print(f"simulated {result.rows} impressions for ds={args.ds} into {logs_path} (ctr={ctr:.4f})")
    return 0


if __name__ == "__main__":
    import sys

    from jobs.cli import main as cli_main

    sys.exit(cli_main(["simulate", *sys.argv[1:]]))
