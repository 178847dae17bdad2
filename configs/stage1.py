"""Config of stage 1: the day's sampler and the user clustering / seed picker.

Kept apart from ``configs/settings.py`` so the stage-1 knobs live next to
their documentation; ``Settings.sample`` and ``Settings.cluster`` hold them.
Defaults are sized for the simulator (``coldstart simulate``): its click-fraud
bots show ~200 impressions a day at CTR ~0.5 while real users stay well under
CTR 0.3, so the default bot rules drop the bots and nobody else.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SampleSettings(_Strict):
    """``coldstart sample``: down-sample one day of raw.user_logs.

    Rules run in this order: bot/outlier users out (on the full day's counts),
    then a share of users kept (whole users, so their behaviour aggregates stay
    complete), then non-clicks kept at ``non_click_rate`` (every click kept),
    then at most ``max_impressions_per_user`` rows per user.
    """

    # Share of users kept (hash of seed, ds, user_id). Uniform over users, so
    # it biases neither P(features) nor P(click | features): weight stays 1.
    fraction: float = Field(default=1.0, gt=0, le=1)
    # Share of non-click rows kept; kept non-clicks get sample_weight 1/rate.
    non_click_rate: float = Field(default=0.25, gt=0, le=1)
    # Cap of sampled rows per user per day (None: no cap).
    max_impressions_per_user: int | None = Field(default=100, ge=1)
    # Outlier rule: drop users with more impressions than this (None: off).
    bot_max_impressions: int | None = Field(default=2_000, ge=1)
    # Click-fraud rule: drop users whose CTR is above this with 95% confidence
    # (Wilson lower bound), ...
    bot_max_ctr: float | None = Field(default=0.3, gt=0, le=1)
    # ... when they have at least this many impressions (few rows say little).
    bot_min_impressions: int = Field(default=20, ge=1)
    seed: int = 7


class ClusterSettings(_Strict):
    """``coldstart cluster``: KMeans over per-user profile rows, then seeds.

    ``algorithm``/``init_mode``/``solver`` defaults come from
    benchmarks/stage1.py on the 2-core machine (figures in its docstring).
    """

    k: int = Field(default=1_000, ge=2)
    algorithm: Literal["kmeans", "bisecting"] = "kmeans"
    init_mode: Literal["random", "k-means||"] = "random"
    init_steps: int = Field(default=2, ge=1)
    max_iter: int = Field(default=20, ge=1)
    # Spark KMeans solver: "block" runs the distance step as matrix products
    # (GEMM over blocks of rows), "row" one vector at a time; "auto" lets Spark pick.
    solver: Literal["auto", "row", "block"] = "block"
    tol: float = Field(default=1e-4, gt=0)
    # Total seed users over all clusters (at least one per non-empty cluster,
    # so the realised total is max(seeds_total, non-empty clusters)).
    seeds_total: int = Field(default=2_000, ge=1)
    seed: int = 11
    # Profiles are hash-partitioned into exactly this many sorted partitions
    # before the fit: KMeans' init samples per partition, so a fixed layout
    # gives the same clusters on a laptop and on any cluster.
    fit_partitions: int = Field(default=8, ge=1)
