"""Weekly gate and publish of the recall model (used by ``airflow_dags/weekly_training.py``).

A trained model version lives under ``<warehouse>/model/recall/<version>/``
(DESIGN.md: model artifacts are files, not Delta) with the held-out
evaluation the trainer wrote (``meta.json``: ``test`` and ``test_cold_start`` AUC /
logloss). The *published* version is a pointer file next to the versions,
``<warehouse>/model/recall/PUBLISHED.json``, replaced atomically, so readers
see the old or the new pointer, never half of one.

``gate`` is a pure function: new metrics vs the published model's, with the
tolerances of ``orchestration.gate``; it returns every violation as a sentence.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from jobs.platform import fs
from jobs.platform.errors import InputError, ValidationFailedError

if TYPE_CHECKING:
    from configs.orchestration import GateSettings
    from configs.settings import Settings

MODEL_NAME = "recall"
POINTER = "PUBLISHED.json"
META = "meta.json"  # written last by recmodel.artifacts.save_artifact: a version is complete


def model_root(settings: Settings) -> str:
    """``<warehouse>/model/recall`` (same layout as ``recmodel.artifacts.model_root``)."""
    return f"{settings.warehouse.rstrip('/')}/model/{MODEL_NAME}"


def _read_json(path: str) -> dict[str, Any] | None:
    return fs.read_json(path)


def versions(settings: Settings) -> set[str]:
    """Complete model versions (folders with ``meta.json``) under the model root."""
    root = model_root(settings)
    return {v for v in fs.subdirs(root) if fs.is_file(fs.join(root, v, META))}


def new_version(before: set[str], after: set[str]) -> str:
    """The version a training run wrote: the one complete version that was not there before."""
    added = sorted(after - before)
    if len(added) != 1:
        raise InputError(
            f"model/{MODEL_NAME}: expected the training run to add one version, found {added}"
        )
    return added[0]


def read_metrics(settings: Settings, version: str) -> dict[str, float | None]:
    """Held-out AUC/logloss, overall and on cold-start apps, from the version's meta.json."""
    path = f"{model_root(settings)}/{version}/{META}"
    meta = _read_json(path)
    if meta is None:
        raise InputError(f"model version {version}: {path} not found (training incomplete?)")
    out: dict[str, float | None] = {}
    for scope, key in (("overall", "test"), ("cold_start", "test_cold_start")):
        block = meta.get(key) or {}
        for m in ("auc", "logloss"):
            value = block.get(m)
            out[f"{scope}_{m}"] = float(value) if isinstance(value, int | float) else None
    return out


def gate(
    new: dict[str, float | None], current: dict[str, float | None] | None, rules: GateSettings
) -> list[str]:
    """Every gate rule the new model breaks (empty: publish it)."""
    out: list[str] = []
    auc = new.get("overall_auc")
    if auc is None or not math.isfinite(auc):
        return [f"overall_auc is {auc}; the evaluation did not produce it"]
    if current is None:
        if auc < rules.min_auc:
            out.append(f"overall_auc {auc:.4f} < min_auc {rules.min_auc} (first model)")
        return out
    sign = 1.0 if rules.metric == "auc" else -1.0
    for scope, tol in (("overall", rules.tolerance), ("cold_start", rules.cold_start_tolerance)):
        key = f"{scope}_{rules.metric}"
        a, b = new.get(key), current.get(key)
        if a is None or b is None:
            continue
        if sign * (b - a) > tol:
            out.append(f"{key} {a:.4f} vs published {b:.4f}: regression beyond tolerance {tol}")
    return out


def published(settings: Settings) -> dict[str, Any] | None:
    """The published pointer (version + metrics), None before the first publish."""
    return _read_json(f"{model_root(settings)}/{POINTER}")


def check_gate(settings: Settings, version: str) -> dict[str, Any]:
    """Gate ``version`` against the published model; ``ValidationFailedError`` if it fails."""
    new = read_metrics(settings, version)
    current = published(settings)
    problems = gate(new, current["metrics"] if current else None, settings.orchestration.gate)
    if problems:
        raise ValidationFailedError(f"model {version} not published: " + "; ".join(problems))
    return {"model_version": version, "metrics": new}


def publish(settings: Settings, version: str) -> str:
    """Point ``PUBLISHED.json`` at ``version`` (temp file, then move: readers see old or new)."""
    doc = {"model_version": version, "metrics": read_metrics(settings, version)}
    return fs.write_json(f"{model_root(settings)}/{POINTER}", doc)
