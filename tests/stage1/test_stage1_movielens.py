"""Stage 1 end to end on a slice of real MovieLens-100K (read from ../shared/data)."""

from __future__ import annotations

import pytest

from configs.stage1 import ClusterSettings, SampleSettings
from jobs.platform import schema as S
from jobs.platform.errors import InputError
from jobs.sources.movielens import ML_CATEGORIES, ML_LOG_COLUMNS, ML_PROFILE_FIELDS, load_movielens
from jobs.stage1.cluster import behaviour_columns, cluster_day, user_profiles
from jobs.stage1.sample import sample_logs

DS = "1998-04-22"


@pytest.fixture(scope="module")
def ratings(spark, movielens_dir):
    return load_movielens(spark, movielens_dir, ds=DS, cold_start_max_ratings=5).cache()


def test_load_movielens__shaped_like_logs(ratings):
    assert tuple(ratings.columns) == ML_LOG_COLUMNS
    from pyspark.sql import functions as F

    row = ratings.agg(
        F.count(F.lit(1)).alias("n"),
        F.countDistinct(S.EVENT_ID).alias("events"),
        F.avg(S.CLICKED).alias("ctr"),
        F.sum(F.col(S.CATEGORY).isNull().cast("int")).alias("no_genre"),
        F.sum(F.col(S.AGE_BAND).isNull().cast("int")).alias("no_age"),
        F.countDistinct(F.when(F.col(S.IS_COLD_START), F.col(S.APP_ID))).alias("cold"),
    ).first()
    assert row["n"] == row["events"] == 100_000
    assert 0.5 < row["ctr"] < 0.6  # 55% of ML-100K ratings are 4 or 5 stars
    assert row["no_genre"] == 0 and row["no_age"] == 0
    assert 100 < row["cold"] < 700  # movies with <= 5 ratings


def test_load_movielens__missing_file_names_directory(spark, tmp_path):
    with pytest.raises(InputError, match=r"missing \['u.data'"):
        load_movielens(spark, tmp_path)


def test_stage1__movielens_slice_sample_cluster_seeds(ratings):
    from pyspark.sql import functions as F

    day = ratings.where(F.col(S.USER_ID).cast("int") <= 120)
    # Half the ratings are clicks here: CTR is no bot signal, so the bot rules are off.
    rules = SampleSettings(non_click_rate=0.5, bot_max_ctr=None, max_impressions_per_user=80)
    sampled = sample_logs(day, rules)
    per_user = sampled.groupBy(S.USER_ID).count().agg(F.max("count"), F.count(F.lit(1))).first()
    assert per_user[0] <= 80 and per_user[1] == 120
    profiles = user_profiles(
        sampled, profile_cols=ML_PROFILE_FIELDS, categories=ML_CATEGORIES
    ).cache()
    assert set(behaviour_columns(ML_CATEGORIES)) <= set(profiles.columns)
    cfg = ClusterSettings(k=8, seeds_total=24, max_iter=10)
    result = cluster_day(profiles, cfg, profile_cols=ML_PROFILE_FIELDS, categories=ML_CATEGORIES)
    assert result.clusters.count() == profiles.count() == 120
    seeds = result.seeds.collect()
    assert len(seeds) == 24
    assert {r[S.CLUSTER_ID] for r in seeds} == {r[S.CLUSTER_ID] for r in result.clusters.collect()}
    assert all(r["occupation"] is not None for r in seeds)
    result.assigned.unpersist()
    profiles.unpersist()
