"""``coldstart backfill``: days in order, a real fault on day 2, resume from day 2.

The fault is real: day 2 of raw.user_logs was never written, so the sample
stage fails on it with the error a user would see. After the day lands, the
same command resumes: day 1 is not redone (even under --force), days 2 and 3
run, and a further run without --force skips every existing output.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from configs.settings import load_config
from jobs.orchestration import backfill as bf
from jobs.orchestration.publish import partition_rows
from jobs.platform.errors import ColdstartError

DAYS = ["2026-11-01", "2026-11-02", "2026-11-03"]
ROWS = 1500


def _version(path: str) -> int:
    from deltalake import DeltaTable

    return DeltaTable(path).version()


def _partitions(path: str) -> list[str]:
    return [d for d in DAYS if partition_rows(path, d) is not None]


@pytest.fixture()
def config(warehouse: Path, tmp_path: Path) -> Path:
    cfg = {
        "warehouse": str(warehouse),
        "spark": {"master": "local[2]", "shuffle_partitions": 4},
        "simulate": {"rows": ROWS, "apps": 100},
        "cluster": {"k": 4, "seeds_total": 12, "max_iter": 5},
    }
    path = tmp_path / "backfill.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def _simulate(config: Path, ds: str) -> None:
    from jobs.sources import simulate

    assert simulate.main(["--config", str(config), "--ds", ds, "--rows", str(ROWS)]) == 0


def _backfill(config: Path, *extra: str) -> int:
    argv = ["--config", str(config), "--start", DAYS[0], "--end", DAYS[-1]]
    return bf.main([*argv, "--stages", "sample,cluster", "--via", "in-process", *extra])


@pytest.mark.slow
def test_backfill__fault_on_day_2_resumes_from_day_2(spark, config: Path, capsys) -> None:
    # Setup: days 1 and 3 exist upstream; day 2 is missing.
    _simulate(config, DAYS[0])
    _simulate(config, DAYS[2])
    settings = load_config(config)
    sampled = settings.table_path(settings.tables.sampled_logs)
    seeds = settings.table_path(settings.tables.seeds)

    # Run: fails on day 2's first stage, after day 1 completed.
    with pytest.raises(ColdstartError, match=r"ds=2026-11-02 stage sample failed"):
        _backfill(config, "--force")
    assert _partitions(sampled) == [DAYS[0]]
    assert _partitions(seeds) == [DAYS[0]]
    state_file = bf.state_path(settings, DAYS[0], DAYS[-1], ["sample", "cluster"], True)
    state = json.loads(Path(state_file).read_text())
    assert state["status"] == "failed"
    assert state["failed_at"] == f"{DAYS[1]}:sample"
    v_sampled, v_seeds = _version(sampled), _version(seeds)
    capsys.readouterr()

    # Fix the input, run the same command: resumes at day 2, day 1 not redone.
    _simulate(config, DAYS[1])
    assert _backfill(config, "--force") == 0
    out = capsys.readouterr().out
    assert _partitions(sampled) == DAYS
    assert _partitions(seeds) == DAYS
    assert _version(sampled) == v_sampled + 2  # days 2 and 3 only
    assert _version(seeds) == v_seeds + 2
    assert "done earlier" in out
    day1 = [line for line in out.splitlines() if line.startswith(DAYS[0])]
    assert len(day1) == 2 and all("skipped" in line for line in day1)
    assert json.loads(Path(state_file).read_text())["status"] == "done"

    # A run without --force finds every output and does nothing.
    assert _backfill(config) == 0
    out = capsys.readouterr().out
    assert out.count("output exists") == 6
    assert (_version(sampled), _version(seeds)) == (v_sampled + 2, v_seeds + 2)


def test_backfill__reversed_range_is_one_line_error(config: Path) -> None:
    with pytest.raises(ColdstartError, match="--end 2026-11-01 is before --start 2026-11-03"):
        bf.main(["--config", str(config), "--start", DAYS[2], "--end", DAYS[0]])


def test_backfill__validate_runs_even_though_its_candidate_exists(spark, config: Path) -> None:
    from jobs.platform.tables import write_partition

    settings = load_config(config)
    ds = DAYS[0]
    syn = spark.range(40).selectExpr("cast(id as string) as synth_id", "'m' as model")
    write_partition(syn, settings.table_path(settings.tables.synthetic_raw), ds)
    cand = syn.selectExpr("synth_id", "1.0 as weight", "0.0 as log_weight")
    write_partition(cand, settings.table_path(settings.orchestration.candidate_table), ds)
    state = bf.state_path(settings, ds, ds, ["validate"], False)
    (result,) = bf.backfill(
        settings, [ds], ["validate"], force=False, runner=bf.inprocess_runner(), state_file=state
    )
    assert (result.stage, result.status) == ("validate", "ok"), result
    assert result.note != "output exists"
