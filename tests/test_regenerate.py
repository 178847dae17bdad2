"""``benchmarks/regenerate.py --stale``: which results no longer measure the code."""

from __future__ import annotations

import importlib.util
import json
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _load():
    spec = importlib.util.spec_from_file_location("regenerate", REPO / "benchmarks/regenerate.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _commit(root: Path, files: dict[str, str], message: str) -> str:
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t", "-C", str(root)]
    subprocess.run([*git, "add", "-A"], check=True, capture_output=True)
    subprocess.run([*git, "commit", "-qm", message], check=True, capture_output=True)
    return subprocess.run(
        [*git, "rev-parse", "--short", "HEAD"], check=True, capture_output=True, text=True
    ).stdout.strip()


@pytest.fixture
def regen(tmp_path, monkeypatch):
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    module = _load()
    monkeypatch.setattr(module, "REPO", tmp_path)
    monkeypatch.setattr(module, "RESULTS", tmp_path / "benchmarks/results")
    return module


def _result(root: Path, name: str, commit: str) -> None:
    path = root / "benchmarks/results" / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"benchmark": name, "commit": commit}))


def test_stale__only_commits_touching_what_a_benchmark_measures_make_it_stale(regen, tmp_path):
    first = _commit(
        tmp_path,
        {"benchmarks/weights.py": "x", "jobs/stage2/a.py": "1", "recmodel/m.py": "1"},
        "code",
    )
    _result(tmp_path, "weights", first)
    assert regen.stale("weights") is None
    assert regen.stale("simulate") == {"why": "no result file"}

    _commit(tmp_path, {"recmodel/m.py": "2", "README.md": "docs"}, "elsewhere")
    assert regen.stale("weights") is None  # neither the model nor the docs are measured

    changed = _commit(tmp_path, {"jobs/stage2/a.py": "2"}, "stage 2")
    report = regen.stale("weights")
    assert report["commits"] == [changed]
    assert report["files"] == ["jobs/stage2/a.py"]

    _result(tmp_path, "weights", f"{changed}-dirty")
    assert "changed tree" in regen.stale("weights")["why"]
    _result(tmp_path, "weights", "0000000")
    assert "not in this repository" in regen.stale("weights")["why"]


def test_stale__every_registered_benchmark_names_what_it_depends_on():
    module = _load()
    assert set(module.DEPENDS) == set(module.REGISTRY)
    for name, paths in module.DEPENDS.items():
        for path in paths:
            assert (REPO / path).exists(), f"{name}: {path} does not exist"


def test_run_one__result_records_the_package_versions_it_ran_with(regen, tmp_path):
    # Setup: a benchmark script that prints one JSON object, committed
    from importlib import metadata

    _commit(tmp_path, {"benchmarks/tiny.py": "print('{\"x\": 1}')\n"}, "tiny")
    # Run
    assert regen.run_one("tiny", {"args": []})
    doc = json.loads((tmp_path / "benchmarks/results/tiny.json").read_text())
    # Assert: the result, and the versions of this interpreter's packages beside it
    assert doc["result"] == {"x": 1}
    env = doc["environment"]
    assert env["packages"]["numpy"] == metadata.version("numpy")
    assert env["packages"]["torch"] == metadata.version("torch")
    assert set(env["packages"]) == set(regen.PACKAGES)
    assert env["python"].count(".") == 2 and env["java"]
