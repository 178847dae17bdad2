"""Weekly gate and publish of the recall model (used by ``airflow_dags/weekly_training.py``).

A trained model version lives under ``<warehouse>/model/recall/<version>/``
(DESIGN.md: model artifacts are files, not Delta) with the held-out
evaluation the trainer wrote (``meta.json``: ``test`` and ``test_cold_start`` AUC /
logloss). The *published* version is a pointer file next to the versions,
``<warehouse>/model/recall/PUBLISHED.json``, replaced atomically, so readers
see the old or the new pointer, never half of one.

``evaluate_gate`` is a pure function: new metrics vs the published model's,
with the tolerances of ``orchestration.gate``; every rule comes back as
passed, failed or not evaluated with its reason, and ``check_gate`` records
them all in ``<version>/gate.json``. A cold-start check that could not be
evaluated (a metric missing on either side) blocks the publish unless
``orchestration.gate.require_cold_start`` is false: nothing passes unchecked.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from jobs.platform import fs
from jobs.platform.errors import InputError, ValidationFailedError

if TYPE_CHECKING:
    from configs.orchestration import GateSettings
    from configs.settings import Settings

MODEL_NAME = "recall"
POINTER = "PUBLISHED.json"
GATE_RECORD = "gate.json"
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


PASSED, FAILED, NOT_EVALUATED = "passed", "failed", "not evaluated"


@dataclass(frozen=True)
class Check:
    """One rule of the gate, what it found, and why (for the gate record and the log)."""

    name: str
    status: str  # passed | failed | not evaluated
    reason: str


def _regression(key: str, a: float | None, b: float | None, tol: float, sign: float) -> Check:
    if a is None or not math.isfinite(a):
        return Check(key, NOT_EVALUATED, f"the new model has no finite {key} ({a})")
    if b is None or not math.isfinite(b):
        return Check(key, NOT_EVALUATED, f"the published model has no finite {key} ({b})")
    verdict = FAILED if sign * (b - a) > tol else PASSED
    what = "regression beyond" if verdict == FAILED else "within"
    return Check(key, verdict, f"{key} {a:.4f} vs published {b:.4f}: {what} tolerance {tol}")


def evaluate_gate(
    new: dict[str, float | None], current: dict[str, float | None] | None, rules: GateSettings
) -> list[Check]:
    """Every rule of the gate as passed / failed / not evaluated, with its reason."""
    auc = new.get("overall_auc")
    if auc is None or not math.isfinite(auc):
        return [
            Check("overall_auc", FAILED, f"overall_auc is {auc}; the evaluation did not produce it")
        ]
    cold_key = f"cold_start_{rules.metric}"
    if current is None:
        floor = PASSED if auc >= rules.min_auc else FAILED
        checks = [
            Check(
                "min_auc", floor, f"overall_auc {auc:.4f} vs min_auc {rules.min_auc} (first model)"
            )
        ]
        cold = new.get(cold_key)
        if cold is None or not math.isfinite(cold):
            checks.append(
                Check(cold_key, NOT_EVALUATED, f"the new model has no finite {cold_key} ({cold})")
            )
        else:
            checks.append(Check(cold_key, PASSED, f"{cold_key} {cold:.4f} recorded (first model)"))
        return checks
    sign = 1.0 if rules.metric == "auc" else -1.0
    key = f"overall_{rules.metric}"
    return [
        _regression(key, new.get(key), current.get(key), rules.tolerance, sign),
        _regression(
            cold_key, new.get(cold_key), current.get(cold_key), rules.cold_start_tolerance, sign
        ),
    ]


def blocking(checks: list[Check], rules: GateSettings) -> list[Check]:
    """Checks that stop the publish: failures, and a cold-start check not evaluated
    unless ``gate.require_cold_start`` is false (a missing metric is not a pass)."""
    return [
        c
        for c in checks
        if c.status == FAILED
        or (
            c.status == NOT_EVALUATED
            and c.name.startswith("cold_start")
            and rules.require_cold_start
        )
    ]


def gate(
    new: dict[str, float | None], current: dict[str, float | None] | None, rules: GateSettings
) -> list[str]:
    """Every gate rule the new model breaks, as sentences (empty: publish it)."""
    checks = evaluate_gate(new, current, rules)
    return [
        c.reason if c.status == FAILED else f"{c.name} not evaluated: {c.reason}"
        for c in blocking(checks, rules)
    ]


def published(settings: Settings) -> dict[str, Any] | None:
    """The published pointer (version + metrics), None before the first publish."""
    return _read_json(f"{model_root(settings)}/{POINTER}")


def check_gate(settings: Settings, version: str) -> dict[str, Any]:
    """Gate ``version`` against the published model; ``ValidationFailedError`` if it fails.

    Every check (passed / failed / not evaluated, with its reason) is recorded in
    ``<version>/gate.json`` whatever the outcome, and returned.
    """
    rules = settings.orchestration.gate
    new = read_metrics(settings, version)
    current = published(settings)
    checks = evaluate_gate(new, current["metrics"] if current else None, rules)
    problems = gate(new, current["metrics"] if current else None, rules)
    record = {
        "model_version": version,
        "published_version": current["model_version"] if current else None,
        "passed": not problems,
        "metrics": new,
        "checks": [asdict(c) for c in checks],
    }
    fs.write_json(f"{model_root(settings)}/{version}/{GATE_RECORD}", record)
    if problems:
        raise ValidationFailedError(f"model {version} not published: " + "; ".join(problems))
    return record


def publish(settings: Settings, version: str) -> str:
    """Point ``PUBLISHED.json`` at ``version`` (temp file, then move: readers see old or new)."""
    doc = {"model_version": version, "metrics": read_metrics(settings, version)}
    return fs.write_json(f"{model_root(settings)}/{POINTER}", doc)
