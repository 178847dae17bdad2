"""Evaluation data sets as bounded pandas frames with a seeded 8:1:1 split.

Two sources, both loaded through Spark and then brought to the driver
because they are bounded by construction (``evaluate.max_rows``):

* the simulator: a warehouse that holds raw.user_logs + ref.apps (``--path``),
  or, without a path, a day simulated in-process with the simulator's own
  transforms and a cold-start impression share large enough to measure
  cold-start AUC on held-out impressions;
* MovieLens-100K via ``jobs.sources.movielens.load_movielens`` (any directory).

``EvalData`` says which columns are model features, which describe a user
(what stage 1 writes), which describe an item, and which items are cold.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from jobs.platform import schema as S
from jobs.platform.errors import EmptyInputError, InputError

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

    from configs.evaluation import EvaluateSettings
    from configs.settings import Settings

COLD = S.IS_COLD_START
LABEL = S.CLICKED
SIM_DS = "2026-11-23"


@dataclass
class EvalData:
    """A split data set and its column roles (all categoricals are strings)."""

    name: str
    train: pd.DataFrame
    val: pd.DataFrame
    test: pd.DataFrame
    categorical: tuple[str, ...]
    numeric: tuple[str, ...]
    profile_fields: tuple[str, ...]
    item_fields: tuple[str, ...]
    # Cold-start items for stage 1: item id, item fields, a description.
    cold_items: pd.DataFrame
    categories: tuple[str, ...]
    source: str
    facts: dict[str, Any] = field(default_factory=dict)
    # Descriptions of warm items (item id -> text), shown with labelled click examples.
    item_text: dict[str, str] = field(default_factory=dict)

    @property
    def features(self) -> tuple[str, ...]:
        return self.categorical + self.numeric

    @property
    def vocab(self) -> dict[str, list[str]]:
        """Profile-field values seen in training (what stage 1 may write)."""
        return {f: sorted(self.train[f].dropna().astype(str).unique()) for f in self.profile_fields}


def split_811(pdf: pd.DataFrame, seed: int) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Seeded 8:1:1 row split (train, validation, test); no row in two splits."""
    if len(pdf) < 10:
        raise EmptyInputError(f"evaluation split: {len(pdf)} rows, need at least 10")
    order = np.random.default_rng(seed).permutation(len(pdf))
    a, b = int(0.8 * len(pdf)), int(0.9 * len(pdf))
    take = pdf.iloc
    return (
        take[order[:a]].reset_index(drop=True),
        take[order[a:b]].reset_index(drop=True),
        take[order[b:]].reset_index(drop=True),
    )


def _bounded_pandas(df: DataFrame, columns: list[str], max_rows: int, seed: int) -> pd.DataFrame:
    total = df.count()
    if total == 0:
        raise EmptyInputError("evaluation data: no rows")
    part = df.select(*columns)
    if total > max_rows:
        part = part.sample(fraction=min(1.0, 1.1 * max_rows / total), seed=seed).limit(max_rows)
    return part.toPandas()


def _as_strings(pdf: pd.DataFrame, columns: tuple[str, ...]) -> pd.DataFrame:
    out = pdf.copy()
    for c in columns:
        out[c] = out[c].astype(str)
    return out


def _simulated_day(spark: SparkSession, settings: Settings) -> tuple[DataFrame, DataFrame]:
    from jobs.sources.simulate import build_apps, build_logs, build_users, make_plan

    cfg = settings.evaluate
    sim = settings.simulate.model_copy(
        update={"cold_start_impression_share": cfg.sim_cold_impression_share, "seed": cfg.seed}
    )
    plan = make_plan(sim, cfg.sim_rows)
    apps = build_apps(spark, plan, SIM_DS).persist()
    logs = build_logs(spark, plan, sim, SIM_DS, build_users(spark, plan), apps, 4)
    return logs, apps.drop("app_idx")


def _warehouse_day(
    spark: SparkSession, settings: Settings, path: str
) -> tuple[DataFrame, DataFrame]:
    from jobs.platform.tables import partitions, read_table

    w = settings.model_copy(update={"warehouse": str(path)})
    logs_path, apps_path = w.table_path(w.tables.user_logs), w.table_path(w.tables.apps)
    days = partitions(spark, logs_path, w.io.delta_writer)
    if not days:
        raise EmptyInputError(f"table {logs_path}: no ds partitions")
    logs = read_table(spark, logs_path, days[-1], w.io.delta_writer)
    return logs, read_table(spark, apps_path, writer=w.io.delta_writer)


def load_simulator(spark: SparkSession, settings: Settings, path: str | None) -> EvalData:
    """A day of app-store logs (simulated in-process, or the latest day under ``path``)."""
    cfg = settings.evaluate
    logs, apps = _warehouse_day(spark, settings, path) if path else _simulated_day(spark, settings)
    joined = logs.join(apps.select(S.APP_ID, COLD), S.APP_ID, "left")
    categorical = tuple(f for f in S.LOG_FEATURE_FIELDS if f not in S.NUMERIC_FIELDS)
    cols = [S.USER_ID, S.APP_ID, *categorical, *S.NUMERIC_FIELDS, LABEL, COLD]
    pdf = _bounded_pandas(joined, cols, cfg.max_rows, cfg.seed)
    pdf[COLD] = pdf[COLD].fillna(False).astype(bool)
    pdf = _as_strings(pdf, categorical)
    cold = apps.where(apps[COLD]).select(S.APP_ID, S.CATEGORY, S.PRICE, S.RATING, S.DESCRIPTION)
    items = cold.limit(5_000).toPandas()
    train, val, test = split_811(pdf, cfg.seed)
    return EvalData(
        "simulator",
        train,
        val,
        test,
        categorical,
        S.NUMERIC_FIELDS,
        S.PROFILE_FIELDS,
        S.APP_FIELDS,
        items,
        S.CATEGORIES,
        path or f"in-process simulation ({cfg.sim_rows} rows, seed {cfg.seed})",
    )


def load_movielens_data(
    spark: SparkSession, settings: Settings, path: str | Path | None
) -> EvalData:
    """MovieLens-100K: users, movies as items, rating >= 4 as click, rare movies cold."""
    from jobs.sources import movielens as ML

    cfg: EvaluateSettings = settings.evaluate
    root = ML.locate_movielens(path or None)
    df = ML.load_movielens(spark, root, cold_start_max_ratings=cfg.movielens_cold_max_ratings)
    categorical = ML.ML_FEATURE_FIELDS
    cols = [S.USER_ID, S.APP_ID, *categorical, LABEL, COLD]
    pdf = _as_strings(_bounded_pandas(df, cols, cfg.max_rows, cfg.seed), categorical)
    pdf[COLD] = pdf[COLD].astype(bool)
    items = pdf.loc[pdf[COLD], [S.APP_ID, S.CATEGORY]].drop_duplicates(S.APP_ID)
    items = items.assign(**{S.DESCRIPTION: "A " + items[S.CATEGORY] + " movie"})
    if items.empty:
        raise InputError(
            f"MovieLens {root}: no movie has <= {cfg.movielens_cold_max_ratings} ratings "
            "(evaluate.movielens_cold_max_ratings)"
        )
    train, val, test = split_811(pdf, cfg.seed)
    return EvalData(
        "movielens",
        train,
        val,
        test,
        categorical,
        (),
        ML.ML_PROFILE_FIELDS,
        (S.CATEGORY,),
        items.sort_values(S.APP_ID).reset_index(drop=True),
        ML.ML_CATEGORIES,
        str(root),
    )


def load(spark: SparkSession, settings: Settings, dataset: str, path: str | None) -> EvalData:
    """``simulator`` or ``movielens``; facts (base CTR, sizes) filled in."""
    if dataset == "simulator":
        data = load_simulator(spark, settings, path)
    elif dataset == "movielens":
        data = load_movielens_data(spark, settings, path)
    else:
        raise InputError(f"--dataset {dataset!r}: expected simulator or movielens")
    tr = data.train
    data.facts = {
        "rows": len(tr) + len(data.val) + len(data.test),
        "train_rows": len(tr),
        "base_ctr": round(float(tr[LABEL].mean()), 5),
        "cold_items": len(data.cold_items),
        "cold_test_rows": int(data.test[COLD].sum()),
        "cold_test_clicks": int(data.test.loc[data.test[COLD], LABEL].sum()),
    }
    return data
