"""The arms of the paper's tables: which synthetic rows, made how, weighted how.

    original         real rows only (the reference of augmentation utility)
    samplellm        LLM stage 1 with cluster-based exemplars + stage-2 weights
    no_cs  (-CS)     LLM stage 1 with random exemplars + stage-2 weights
    no_is  (-IS)     LLM stage 1 with cluster-based exemplars, every weight 1
    no_llm (-LLM)    SDV GaussianCopula as stage 1 + stage-2 weights
    gaussian_copula, ctgan, tvae   the SDV synthesizers alone (weights 1)

Stage 2 is the pipeline's estimator (``jobs.stage2.reweight.run_stage2``) with
feature groups from the Hessian map of ``recmodel.pipeline.fit_feature_groups``
on the real training rows, restricted to the fields the generator writes.
Stage-1 outputs and group fits are cached per builder, so -IS reuses
SampleLLM's rows and the heatmap in the report is the map stage 2 used.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from jobs.evaluation.data import LABEL, EvalData
from jobs.evaluation.synth import Stage1, llm_stage1, sdv_stage1

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

    from configs.settings import Settings
    from llm_client.endpoint import Endpoint
    from recmodel.pipeline import FeatureGroupsResult

log = logging.getLogger(__name__)

LABELS: dict[str, str] = {
    "original": "Original",
    "samplellm": "SampleLLM",
    "no_cs": "-CS",
    "no_is": "-IS",
    "no_llm": "-LLM",
    "gaussian_copula": "GaussianCopula",
    "ctgan": "CTGAN",
    "tvae": "TVAE",
    "samplellm_local": "SampleLLM (local LLM)",
}
BASELINES: tuple[str, ...] = ("original", "gaussian_copula", "ctgan", "tvae")
# Arms whose synthetic rows an LLM endpoint writes (coldllm / both: the cold-start protocol).
LLM_ARMS: tuple[str, ...] = (
    "samplellm", "no_cs", "no_is", "coldllm", "both", "samplellm_resampled", "samplellm_budget",
)  # fmt: skip
WEIGHTED_ARMS: tuple[str, ...] = ("samplellm", "no_cs", "no_llm")


@dataclass
class ArmData:
    """One arm's synthetic rows (None for Original) and their training weights."""

    name: str
    syn: pd.DataFrame | None
    weights: np.ndarray | None
    generator: str
    stage2: dict[str, Any] = field(default_factory=dict)
    figures: dict[str, Any] = field(default_factory=dict)

    @property
    def label(self) -> str:
        return LABELS[self.name]

    def resampled(self, seed: int) -> pd.DataFrame | None:
        """What a weighted arm's model sees, as unweighted rows (importance resampling)."""
        if self.syn is None or self.weights is None:
            return self.syn
        p = self.weights / self.weights.sum()
        idx = np.random.default_rng(seed).choice(len(self.syn), size=len(self.syn), p=p)
        return self.syn.iloc[idx].reset_index(drop=True)


def present_fields(data: EvalData, syn: pd.DataFrame) -> tuple[list[str], list[str]]:
    """The model's categorical and numeric fields that ``syn`` carries."""
    return (
        [c for c in data.categorical if c in syn.columns],
        [c for c in data.numeric if c in syn.columns],
    )


class ArmBuilder:
    """Builds arms on demand, caching stage 1 and the feature-group fits."""

    def __init__(
        self,
        spark: SparkSession,
        data: EvalData,
        settings: Settings,
        endpoint: Endpoint | None,
        n_syn: int,
    ) -> None:
        self.spark, self.data, self.settings = spark, data, settings
        self.endpoint, self.n_syn = endpoint, n_syn
        self.seed = settings.evaluate.seed
        self._stage1: dict[str, Stage1] = {}
        self.groups: dict[tuple[str, ...], FeatureGroupsResult] = {}

    def stage1(self, key: str) -> Stage1:
        if key not in self._stage1:
            cfg = self.settings.evaluate
            if key in ("llm_cluster", "llm_random"):
                if self.endpoint is None:
                    raise ValueError("LLM arms need an endpoint")
                mode = key.split("_", 1)[1]
                self._stage1[key] = llm_stage1(
                    self.spark, self.data, self.settings, self.endpoint, self.n_syn,
                    exemplars=mode, seed=self.seed,
                )  # fmt: skip
            else:
                self._stage1[key] = sdv_stage1(
                    self.data, key, self.n_syn, epochs=cfg.sdv_epochs,
                    max_rows=cfg.sdv_max_rows, seed=self.seed,
                )  # fmt: skip
        return self._stage1[key]

    def feature_groups(self, categorical: list[str], numeric: list[str]) -> FeatureGroupsResult:
        from recmodel.features import FeatureSpec
        from recmodel.pipeline import fit_feature_groups

        key = (*categorical, *numeric)
        if key not in self.groups:
            self.groups[key] = fit_feature_groups(
                self.data.train, FeatureSpec(tuple(categorical), tuple(numeric)), LABEL,
                gamma=self.settings.evaluate.gamma, seed=self.seed, max_rows=20_000,
            )  # fmt: skip
        return self.groups[key]

    def weights(self, syn: pd.DataFrame) -> tuple[np.ndarray, dict[str, Any]]:
        """Stage 2 of the pipeline on (real training rows, ``syn``)."""
        from jobs.stage2.reweight import Stage2Inputs, run_stage2

        cat, num = present_fields(self.data, syn)
        fg = self.feature_groups(cat, num)
        cols = [*cat, *num, LABEL]
        real = self.spark.createDataFrame(self.data.train[cols])
        syn_pdf = syn[cols].assign(_row=np.arange(len(syn), dtype=np.int64))
        syn_df = self.spark.createDataFrame(syn_pdf)
        inputs = Stage2Inputs(real, syn_df, cat, num, LABEL, fg.groups, syn_key=["_row"])
        cfg = self.settings.weights.model_copy(update={"seed": self.seed})
        out = run_stage2(inputs, cfg)
        got = out.df.select("_row", "weight").toPandas()
        w = np.zeros(len(syn))
        w[got["_row"].to_numpy()] = got["weight"].to_numpy()
        info = {
            "method": out.method,
            "groups": out.groups,
            "ess_fraction": round(out.stats.ess_fraction, 4),
            "max_weight": round(out.stats.max_weight, 3),
            "dropped_nonfinite": out.stats.nonfinite_dropped,
            "warnings": out.warnings,
            "fields": [*cat, *num],
        }
        return w, info

    def build(self, name: str) -> ArmData:
        if name == "original":
            return ArmData(name, None, None, "none")
        key = {"samplellm": "llm_cluster", "no_is": "llm_cluster", "no_cs": "llm_random"}.get(
            name, "gaussian_copula" if name == "no_llm" else name
        )
        s1 = self.stage1(key)
        if s1.rows.empty:
            raise ValueError(f"arm {name}: stage 1 ({s1.generator}) produced no rows")
        arm = ArmData(name, s1.rows, None, s1.generator, figures=dict(s1.figures))
        if name in WEIGHTED_ARMS:
            arm.weights, arm.stage2 = self.weights(s1.rows)
        return arm


def local_arm(spark: SparkSession, data: EvalData, settings: Settings, n: int) -> ArmData:
    """samplellm through ``evaluate.local_endpoint`` (a real model; its call settings
    are ``llm.local_llm``'s for ``local-llm``), ``n`` rows, weighted by stage 2. Its
    stage-1 figures (requests, failures, drops by reason) are the arm's report."""
    from llm_client.endpoint import open_endpoint

    llm = settings.llm.model_copy(update={"endpoint": settings.evaluate.local_endpoint})
    local = settings.model_copy(update={"llm": llm.effective()})
    with open_endpoint(local.llm) as ep:
        arm = ArmBuilder(spark, data, local, ep, n).build("samplellm")
        arm.figures["endpoint"] = {"model": ep.model, "identity": ep.cache_model,
                                   "standin": ep.is_standin}  # fmt: skip
    return replace(arm, name="samplellm_local")


@contextlib.contextmanager
def maybe_endpoint(settings: Settings, arms: tuple[str, ...]) -> Iterator[Endpoint | None]:
    """The configured LLM endpoint (the stand-in for ``local``) if any arm needs it."""
    if not any(a in LLM_ARMS for a in arms):
        yield None
        return
    from llm_client.endpoint import open_endpoint

    with open_endpoint(settings.llm) as ep:
        yield ep
