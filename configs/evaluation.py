"""Config of ``coldstart evaluate`` (``evaluate:``): sizes that keep the paper-style
evaluation bounded on a laptop.

Its own module so the evaluation area owns its keys; ``Settings`` gains one
field. Everything the evaluation trains or fits runs on bounded pandas frames
(MovieLens-100K, a simulated day of modest size), so every size is a cap.
"""

from __future__ import annotations

from typing import Literal, get_args

from pydantic import BaseModel, ConfigDict, Field

from configs.recmodel import GAMMA

# Every arm --arms accepts, in report order.
Arm = Literal[
    "original",
    "samplellm",
    "no_cs",
    "no_is",
    "no_llm",
    "gaussian_copula",
    "ctgan",
    "tvae",
    "samplellm_local",
]
ALL_ARMS: tuple[str, ...] = get_args(Arm)
# The default arms: all but samplellm_local (a real model on the CPU: minutes per run,
# so only when asked for).
ARMS: tuple[str, ...] = tuple(a for a in ALL_ARMS if a != "samplellm_local")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


COLD_ARMS: tuple[str, ...] = (
    "original",
    "content",
    "samplellm",
    "samplellm_content",
    "no_is",
    "no_cs",
    "coldllm",
    "both",
    "samplellm_resampled",
    "samplellm_local",
    "samplellm_budget",
    "samplellm_prune",
    "coldllm_prune",
    "both_prune",
    "oracle",
    "attributes",
)


class ColdStartSettings(_Strict):
    """``coldstart evaluate --protocol cold-start`` (ColdLLM-style): split, world, two-tower."""

    # Share of the apps (movies) held out as cold with all their impressions.
    cold_fraction: float = Field(default=0.2, gt=0, lt=1)
    # Share of the warm impressions held out for the overall (all-items) metrics.
    warm_test_fraction: float = Field(default=0.1, gt=0, lt=1)
    k: int = Field(default=20, ge=1)
    # The simulated world: impressions, users, apps, base CTR (bots off).
    sim_rows: int = Field(default=60_000, ge=1_000)
    sim_users: int = Field(default=1_500, ge=10)
    sim_apps: int = Field(default=300, ge=20)
    sim_base_ctr: float = Field(default=0.1, gt=0, lt=1)
    # Two-tower model (recmodel/two_tower.py).
    dim: int = Field(default=32, ge=2)
    epochs: int = Field(default=5, ge=1)
    batch_size: int = Field(default=512, ge=8)
    lr: float = Field(default=5e-3, gt=0)
    id_dropout: float = Field(default=0.2, ge=0, le=1)
    max_rows: int = Field(default=30_000, ge=100)
    # Synthetic rows train with their click_prob as positive mass (the judge's
    # probability) instead of their sampled clicked flag.
    soft_labels: bool = True
    # coldllm arm (ColdLLM / LLM-Ins candidates mode): the content tower's top N
    # real training users of each cold app go to the LLM for a click judgement,
    # this many users per request (one app per request).
    candidates_per_app: int = Field(default=50, ge=1)
    candidate_users_per_request: int = Field(default=10, ge=1)
    # *_prune arms (LLMRec): share of each batch's synthetic rows dropped (highest
    # loss) after prune_warmup epochs.
    prune_share: float = Field(default=0.2, ge=0, lt=1)
    # samplellm_resampled arm (the paper's D_s' -> D_s): stage 1 writes this many times
    # the synthetic budget, stage 2 weights that pool, and the budget is drawn from it
    # in proportion to weight (without replacement); its model trains unweighted.
    resample_pool: float = Field(default=3.0, ge=1.0, le=20.0)
    prune_warmup: int = Field(default=1, ge=0)
    # Delta table of description embeddings (app_id, text_hash); null: not stored.
    text_table: str | None = "./runs/text_embeddings"


class EvaluateSettings(_Strict):
    """Splits, repeats, synthetic share and the caps of every bounded step."""

    arms: tuple[Arm, ...] = ARMS
    # Downstream DNN trainings per arm and setting (different seeds); paper: 10.
    repeats: int = Field(default=10, ge=2)
    # Synthetic rows = this share of the real training rows (paper: 10%).
    synthetic_fraction: float = Field(default=0.1, gt=0, le=1)
    seed: int = 2025
    # samplellm_local arm (a real model, issue 20; both protocols): stage 1 through this
    # endpoint (local-llm: llama.cpp + the packaged Gemma 3 270M on the CPU; or a URL)
    # at local_rows synthetic rows, as a CPU model writes about one click row per 3 s;
    # samplellm_budget (cold-start protocol): the configured endpoint at that budget.
    local_endpoint: str = "local-llm"
    local_rows: int = Field(default=80, ge=10)
    # Simulated day used by ``--dataset simulator`` without ``--path``.
    sim_rows: int = Field(default=40_000, ge=1_000)
    # Cold-start share of impressions in that day: enough held-out cold
    # impressions for a cold-start AUC (the production default is 0.2%).
    sim_cold_impression_share: float = Field(default=0.25, gt=0, lt=0.5)
    # Rows read from a dataset at most (a seeded sample beyond that).
    max_rows: int = Field(default=120_000, ge=1_000)
    # MovieLens: movies with at most this many ratings are cold-start.
    movielens_cold_max_ratings: int = Field(default=20, ge=1)
    # Stage 1 with the LLM endpoint: clusters for exemplars (capped by users).
    cluster_k: int = Field(default=50, ge=2)
    exemplars_per_request: int = Field(default=5, ge=1)
    rows_per_request: int = Field(default=5, ge=1)
    items_per_click_request: int = Field(default=8, ge=1)
    # SDV baselines: rows they are fitted on and epochs of CTGAN / TVAE.
    sdv_max_rows: int = Field(default=5_000, ge=100)
    sdv_epochs: int = Field(default=50, ge=1)
    # Hessian grouping threshold for stage 2 in the evaluation (configs.recmodel.GAMMA).
    gamma: float = Field(default=GAMMA, gt=0, le=1)
    # Bounded samples for the similarity, privacy and picture steps.
    quality_max_rows: int = Field(default=2_000, ge=50)
    dcr_max_rows: int = Field(default=2_000, ge=10)
    tsne_points: int = Field(default=400, ge=20)
    # Downstream model training.
    epochs: int = Field(default=6, ge=1)
    batch_size: int = Field(default=512, ge=16)
    # torch threads of the small downstream DNN; 1 avoids spinning threads on shared cores.
    threads: int | None = Field(default=1, ge=1)
    cold_start: ColdStartSettings = ColdStartSettings()
    # Where ``coldstart evaluate`` writes run folders without ``--out``.
    runs_dir: str = "./runs/evaluate"
