"""One versioned model artifact: ``<warehouse>/model/<name>/<version>/``.

Files: ``model.pt`` (weights only, loadable with ``weights_only=True``),
``encoder.json`` (vocabularies, numeric statistics), ``config.json`` (model
settings) and ``meta.json`` (training window, metrics, and under ``inputs`` the path,
Delta version and days of every table the run read). ``meta.json`` is
written last: a version without it is an unfinished write and is invisible
to ``latest_version`` and ``load_artifact``. Versions are UTC timestamps
first, so sorting names sorts by creation time. Paths may be local or URIs
(``jobs.platform.fs``: ``file://``, ``s3://``, ``s3a://``); each file is written atomically.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import uuid
from dataclasses import dataclass
from typing import Any

import torch

from configs.recmodel import ModelSettings
from jobs.platform import fs
from jobs.platform.errors import InputError
from recmodel.features import FeatureEncoder
from recmodel.model import RecallModel, build_model

META = "meta.json"


@dataclass
class Artifact:
    """A loaded model version."""

    version: str
    path: str
    model: RecallModel
    encoder: FeatureEncoder
    meta: dict[str, Any]


def model_root(warehouse: str, name: str = "recall") -> str:
    return f"{warehouse.rstrip('/')}/model/{name}"


def new_version(tag: str = "") -> str:
    """``20261124T112233Z-<tag>-<6 hex>``: unique, sorts by creation time."""
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    middle = f"-{tag}" if tag else ""
    return f"{stamp}{middle}-{uuid.uuid4().hex[:6]}"


def save_artifact(
    root: str,
    version: str,
    model: RecallModel,
    encoder: FeatureEncoder,
    meta: dict[str, Any],
) -> str:
    """Write the version's files (``meta.json`` last); return the version path."""
    path = f"{root.rstrip('/')}/{version}"
    if fs.exists(f"{path}/{META}"):
        raise InputError(f"model artifact {path} already exists")
    buf = io.BytesIO()
    torch.save({k: v.detach().cpu() for k, v in model.state_dict().items()}, buf)
    fs.write_bytes(f"{path}/model.pt", buf.getvalue())
    fs.write_bytes(f"{path}/encoder.json", json.dumps(encoder.to_dict(), indent=1).encode())
    config = model.cfg.model_dump(mode="json")
    fs.write_bytes(f"{path}/config.json", json.dumps(config, indent=1).encode())
    full_meta = {"version": version, "fields": model.fields, **meta}
    fs.write_bytes(f"{path}/{META}", json.dumps(full_meta, indent=1, default=str).encode())
    return path


def list_versions(root: str) -> list[str]:
    """Complete versions (with ``meta.json``) under ``root``, oldest first."""
    return [v for v in fs.subdirs(root) if fs.is_file(f"{root.rstrip('/')}/{v}/{META}")]


def latest_version(root: str) -> str:
    """The newest complete version; ``InputError`` naming ``root`` if there is none."""
    versions = list_versions(root)
    if not versions:
        raise InputError(f"no trained model under {root}; run 'coldstart train' first")
    return versions[-1]


def load_artifact(root: str, version: str) -> Artifact:
    """Rebuild model + encoder of ``version`` (weights-only load)."""
    path = f"{root.rstrip('/')}/{version}"
    if not fs.is_file(f"{path}/{META}"):
        have = ", ".join(list_versions(root)[-5:]) or "none"
        raise InputError(f"model version {version!r} not found under {root} (latest: {have})")

    def read(name: str) -> bytes:
        return fs.read_bytes(f"{path}/{name}")

    encoder = FeatureEncoder.from_dict(json.loads(read("encoder.json")))
    cfg = ModelSettings.model_validate(json.loads(read("config.json")))
    model = build_model(encoder, cfg, seed=0)
    state = torch.load(io.BytesIO(read("model.pt")), weights_only=True)
    model.load_state_dict(state)
    model.eval()
    return Artifact(version, path, model, encoder, json.loads(read(META)))


def load_meta(root: str, version: str) -> dict[str, Any]:
    """A version's ``meta.json`` alone (window, metrics, table lineage), no weights loaded."""
    path = f"{root.rstrip('/')}/{version}"
    if not fs.is_file(f"{path}/{META}"):
        have = ", ".join(list_versions(root)[-5:]) or "none"
        raise InputError(f"model version {version!r} not found under {root} (latest: {have})")
    return json.loads(fs.read_bytes(f"{path}/{META}"))


def write_bytes(path: str, data: bytes) -> None:
    """Write a side file (heatmap PNG, map JSON) next to an artifact."""
    fs.write_bytes(path, data)
