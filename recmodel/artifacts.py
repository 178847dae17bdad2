"""One versioned model artifact: ``<warehouse>/model/<name>/<version>/``.

Files: ``model.pt`` (weights only, loadable with ``weights_only=True``),
``encoder.json`` (vocabularies, numeric statistics), ``config.json`` (model
settings) and ``meta.json`` (training window, metrics, and under ``inputs`` the path,
Delta version and days of every table the run read). ``meta.json`` is
written last: a version without it is an unfinished write and is invisible
to ``latest_version`` and ``load_artifact``. Versions are UTC timestamps
first, so sorting names sorts by creation time. Paths may be local or URIs
(pyarrow file systems).
"""

from __future__ import annotations

import datetime as dt
import io
import json
import uuid
from dataclasses import dataclass
from typing import Any

import pyarrow.fs as pafs
import torch

from configs.recmodel import ModelSettings
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


def _fs(path: str) -> tuple[pafs.FileSystem, str]:
    return pafs.FileSystem.from_uri(path if "://" in path else f"file://{path}")


def new_version(tag: str = "") -> str:
    """``20261124T112233Z-<tag>-<6 hex>``: unique, sorts by creation time."""
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    middle = f"-{tag}" if tag else ""
    return f"{stamp}{middle}-{uuid.uuid4().hex[:6]}"


def _write(fs: pafs.FileSystem, path: str, data: bytes) -> None:
    with fs.open_output_stream(path) as out:
        out.write(data)


def save_artifact(
    root: str,
    version: str,
    model: RecallModel,
    encoder: FeatureEncoder,
    meta: dict[str, Any],
) -> str:
    """Write the version's files (``meta.json`` last); return the version path."""
    path = f"{root.rstrip('/')}/{version}"
    fs, base = _fs(path)
    if fs.get_file_info(f"{base}/{META}").type != pafs.FileType.NotFound:
        raise InputError(f"model artifact {path} already exists")
    fs.create_dir(base, recursive=True)
    buf = io.BytesIO()
    torch.save({k: v.detach().cpu() for k, v in model.state_dict().items()}, buf)
    _write(fs, f"{base}/model.pt", buf.getvalue())
    _write(fs, f"{base}/encoder.json", json.dumps(encoder.to_dict(), indent=1).encode())
    config = model.cfg.model_dump(mode="json")
    _write(fs, f"{base}/config.json", json.dumps(config, indent=1).encode())
    full_meta = {"version": version, "fields": model.fields, **meta}
    _write(fs, f"{base}/{META}", json.dumps(full_meta, indent=1, default=str).encode())
    return path


def list_versions(root: str) -> list[str]:
    """Complete versions (with ``meta.json``) under ``root``, oldest first."""
    fs, base = _fs(root)
    if fs.get_file_info(base).type == pafs.FileType.NotFound:
        return []
    infos = fs.get_file_info(pafs.FileSelector(base, recursive=False))
    done = [
        i.base_name
        for i in infos
        if i.type == pafs.FileType.Directory
        and fs.get_file_info(f"{i.path}/{META}").type == pafs.FileType.File
    ]
    return sorted(done)


def latest_version(root: str) -> str:
    """The newest complete version; ``InputError`` naming ``root`` if there is none."""
    versions = list_versions(root)
    if not versions:
        raise InputError(f"no trained model under {root}; run 'coldstart train' first")
    return versions[-1]


def load_artifact(root: str, version: str) -> Artifact:
    """Rebuild model + encoder of ``version`` (weights-only load)."""
    path = f"{root.rstrip('/')}/{version}"
    fs, base = _fs(path)
    if fs.get_file_info(f"{base}/{META}").type != pafs.FileType.File:
        have = ", ".join(list_versions(root)[-5:]) or "none"
        raise InputError(f"model version {version!r} not found under {root} (latest: {have})")

    def read(name: str) -> bytes:
        with fs.open_input_stream(f"{base}/{name}") as fh:
            return fh.read()

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
    fs, base = _fs(path)
    if fs.get_file_info(f"{base}/{META}").type != pafs.FileType.File:
        have = ", ".join(list_versions(root)[-5:]) or "none"
        raise InputError(f"model version {version!r} not found under {root} (latest: {have})")
    with fs.open_input_stream(f"{base}/{META}") as fh:
        return json.loads(fh.read())


def write_bytes(path: str, data: bytes) -> None:
    """Write a side file (heatmap PNG, map JSON) next to an artifact."""
    fs, target = _fs(path)
    _write(fs, target, data)
