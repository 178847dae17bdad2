"""Shared fixtures: one local SparkSession for the whole run, temp warehouses.

One session for the suite because a SparkSession costs ~5 s to start; each
test gets its own warehouse directory so tests never see each other's tables.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from configs.settings import Settings, SparkSettings, load_config

REPO = Path(__file__).resolve().parents[1]

pytest_plugins = ["tests.cluster_fixture"]


@pytest.fixture(scope="session")
def spark():
    """The suite's one local[2] SparkSession (small shuffles for tiny test data)."""
    from jobs.platform.spark import get_spark

    session = get_spark(SparkSettings(master="local[2]", driver_memory="2g", shuffle_partitions=4))
    yield session
    session.stop()


@pytest.fixture()
def warehouse(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh warehouse root, also exported as COLDSTART_WAREHOUSE for CLI calls."""
    root = tmp_path / "warehouse"
    root.mkdir()
    monkeypatch.setenv("COLDSTART_WAREHOUSE", str(root))
    return root


@pytest.fixture()
def settings(warehouse: Path) -> Settings:
    """The packaged local config pointed at this test's warehouse."""
    return load_config()


@pytest.fixture(scope="session")
def movielens_dir() -> Path:
    """ml-100k found as the jobs find it (``locate_movielens``: $COLDSTART_MOVIELENS_DIR,
    ../shared/data/ml-100k, the user cache or a checksummed download); never copied
    into the repo (its licence forbids it)."""
    from jobs.sources.movielens import locate_movielens

    return locate_movielens()


def pytest_configure(config: pytest.Config) -> None:
    # Keep test runs quiet and offline.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("COLDSTART_LOG_LEVEL", "WARNING")
