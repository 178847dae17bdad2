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

# Every JVM the suite starts (local sessions, spark-submits, the standalone
# cluster's daemons and executors, which inherit the environment) lives for
# seconds to minutes on tiny data, where C2 JIT threads burn CPU that is never
# paid back: on `coldstart cluster` of a 3,000-row day, C1 only, one compiler
# thread and the serial GC cut the JVM's CPU from 86-90 s to 47-54 s. With two
# xdist workers on 2 cores the suite is CPU-bound, so that CPU is wall time.
# Test-only: production JVMs keep HotSpot's defaults. Set JAVA_TOOL_OPTIONS
# (even to "") to run the suite with other flags.
TEST_JVM_OPTIONS = "-XX:TieredStopAtLevel=1 -XX:CICompilerCount=1 -XX:+UseSerialGC"
os.environ.setdefault("JAVA_TOOL_OPTIONS", TEST_JVM_OPTIONS)

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


# Files whose tests are the suite's longest (a standalone cluster, real Airflow):
# collected first, so that `make test`'s two xdist workers (--dist loadfile,
# --no-loadscope-reorder) start them at once instead of ending on them.
FIRST_MARKERS = ("cluster", "airflow")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Order files by their longest kind of test (a stable sort: order within a file kept)."""
    rank: dict[str, int] = {}
    for item in items:
        marks = {m.name for m in item.iter_markers()}
        here = min(
            (i for i, m in enumerate(FIRST_MARKERS) if m in marks), default=len(FIRST_MARKERS)
        )
        path = str(item.path)
        rank[path] = min(rank.get(path, here), here)
    items.sort(key=lambda item: rank[str(item.path)])


def pytest_configure(config: pytest.Config) -> None:
    # Keep test runs quiet and offline.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("COLDSTART_LOG_LEVEL", "WARNING")
