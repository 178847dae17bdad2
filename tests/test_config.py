"""Config validation: bad files fail at start-up naming file, key and reason."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from configs.settings import Settings, default_config_path, load_config
from jobs.platform.errors import ConfigError


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "cfg.yaml"
    path.write_text(text)
    return path


def test_load_config__packaged_default_is_valid(warehouse: Path) -> None:
    settings = load_config()
    assert isinstance(settings, Settings)
    assert settings.source == str(default_config_path())
    assert settings.warehouse == str(warehouse)  # COLDSTART_WAREHOUSE wins


def test_load_config__packaged_default_loads_from_the_shipped_zip(tmp_path: Path) -> None:
    # Setup: the --py-files artifact, imported by a Python whose only route to
    # the project is that zip (as on a spark-submitted driver in cluster mode)
    from jobs.platform.package import build_artifact

    art = build_artifact(out_dir=tmp_path / "dist")
    code = (
        "import configs, json; from configs.settings import load_config; s = load_config(); "
        "print(json.dumps([configs.__file__, s.spark.master, s.source]))"
    )
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(art.zip_path), "HOME": str(tmp_path)}
    # Run
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    # Assert: the default config is read out of the zip
    assert proc.returncode == 0, proc.stderr[-2000:]
    where, master, source = json.loads(proc.stdout)
    assert str(art.zip_path) in where
    assert master == load_config().spark.master
    assert source.endswith("local.yaml")


def test_load_config__unknown_key_names_file_and_key(tmp_path: Path) -> None:
    path = _write(tmp_path, "spark:\n  mastr: local[2]\n")
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert str(path) in str(err.value)
    assert "spark.mastr" in str(err.value)
    assert "unknown key" in str(err.value)


def test_load_config__wrong_type_names_key(tmp_path: Path) -> None:
    path = _write(tmp_path, "simulate:\n  rows: lots\n")
    with pytest.raises(ConfigError, match=r"simulate\.rows"):
        load_config(path)


def test_load_config__bad_table_name(tmp_path: Path) -> None:
    path = _write(tmp_path, "tables:\n  user_logs: logs\n")
    with pytest.raises(ConfigError, match=r"tables\.user_logs.*layer\.name"):
        load_config(path)


def test_load_config__missing_file_and_invalid_yaml(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="file not found"):
        load_config(tmp_path / "nope.yaml")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(_write(tmp_path, "spark: [unclosed\n"))
    with pytest.raises(ConfigError, match="mapping at the top level"):
        load_config(_write(tmp_path, "- a\n- b\n"))


def test_load_config__relative_warehouse_resolves_and_env_overrides(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("COLDSTART_WAREHOUSE", raising=False)
    monkeypatch.chdir(tmp_path)
    path = _write(tmp_path, "warehouse: wh\n")
    assert load_config(path).warehouse == str(tmp_path / "wh")
    monkeypatch.setenv("COLDSTART_WAREHOUSE", "s3a://bucket/wh")
    settings = load_config(path)
    assert settings.warehouse == "s3a://bucket/wh"
    assert settings.table_path("raw.user_logs") == "s3a://bucket/wh/raw/user_logs"


def test_cli__bad_config_fails_in_one_line_before_spark(tmp_path: Path, warehouse: Path) -> None:
    path = _write(tmp_path, "simulate:\n  rows: -5\n")
    proc = subprocess.run(
        [sys.executable, "-m", "jobs.cli", "simulate", "--ds", "2026-11-23", "--config", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 1
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, proc.stderr
    assert "simulate.rows" in lines[0] and str(path) in lines[0]
    assert list(warehouse.iterdir()) == []  # nothing written


def test_gamma__one_grouping_threshold_for_interactions_align_and_evaluate() -> None:
    # The daily groups, `coldstart align` and the evaluation must merge the same pairs.
    from configs.evaluation import EvaluateSettings
    from configs.recmodel import GAMMA, InteractionSettings
    from configs.weights import AlignSettings

    packaged = load_config(None)
    defaults = {InteractionSettings().gamma, AlignSettings().gamma, EvaluateSettings().gamma}
    shipped = {packaged.interactions.gamma, packaged.align.gamma, packaged.evaluate.gamma}
    assert defaults == shipped == {GAMMA}
