"""The ``coldstart`` command surface: help, unknown commands, bad arguments."""

from __future__ import annotations

import importlib.util
import subprocess
import sys

import pytest

from jobs.cli import COMMANDS, main

DESIGN_COMMANDS = {
    "simulate",
    "sample",
    "cluster",
    "synthesize",
    "interactions",
    "weights",
    "train",
    "evaluate",
    "run-daily",
    "backfill",
    "align",
}


def test_help__lists_every_design_subcommand(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    assert set(COMMANDS) >= DESIGN_COMMANDS
    for name in DESIGN_COMMANDS:
        assert name in out


def test_subcommand_help__exists_or_says_not_implemented() -> None:
    for name, (module, _) in COMMANDS.items():
        proc = subprocess.run(
            [sys.executable, "-m", "jobs.cli", name, "--help"],
            capture_output=True,
            text=True,
            timeout=60,
        )
        if importlib.util.find_spec(module) is None:
            assert proc.returncode == 2, name
            assert "not implemented yet" in proc.stderr, name
        else:
            assert proc.returncode == 0, (name, proc.stderr[-500:])
            assert "--config" in proc.stdout, name


def test_unknown_command_and_bad_ds__exit_non_zero(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["simulat"])
    assert exc.value.code == 2
    proc = subprocess.run(
        [sys.executable, "-m", "jobs.cli", "simulate", "--ds", "2026-13-01"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "--ds" in lines[0] and "YYYY-MM-DD" in lines[0]


def test_environment__pyspark_importable_and_pinned_with_client() -> None:
    from importlib.metadata import version

    import pyspark

    assert pyspark.__version__ == version("pyspark")
    assert version("pyspark-client") == version("pyspark")
