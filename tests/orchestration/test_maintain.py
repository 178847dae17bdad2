"""coldstart maintain: retention window, compaction and vacuum of stage.llm_responses."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pyarrow as pa
import pytest
from deltalake import DeltaTable, write_deltalake

from configs.orchestration import MaintenanceSettings
from jobs.cli import main as cli_main
from jobs.orchestration.maintain import maintain_table
from jobs.platform.errors import TableNotFoundError

DAYS = ("2026-08-01", "2026-10-30", "2026-11-20")


def _responses(path: Path) -> None:
    """Six small appends (two per day), as the per-wave appends of synthesize leave them."""
    for i, ds in enumerate(DAYS * 2):
        rows = pa.table(
            {"request_hash": [f"h{i}a", f"h{i}b"], "ds": [ds, ds], "status": ["ok"] * 2}
        )
        write_deltalake(str(path), rows, mode="append")


def test_maintain_table__drops_old_days_compacts_and_vacuums(tmp_path: Path) -> None:
    path = tmp_path / "stage" / "llm_responses"
    _responses(path)
    assert len(DeltaTable(str(path)).file_uris()) == 6
    rules = MaintenanceSettings(keep_days=30, vacuum_retention_hours=0)
    out = maintain_table(str(path), rules, dt.date(2026, 11, 23))
    assert out["cutoff_ds"] == "2026-10-24" and out["rows_deleted"] == 4
    assert out["files_before"] == 6 and out["files_after"] == 1
    assert out["files_vacuumed"] >= 6  # the six originals, no longer referenced
    table = DeltaTable(str(path)).to_pyarrow_table()
    assert sorted(set(table.column("ds").to_pylist())) == ["2026-10-30", "2026-11-20"]
    assert table.num_rows == 8
    on_disk = [p for p in path.rglob("*.parquet")]
    assert len(on_disk) == 1


def test_maintain_cli__dry_run_changes_nothing_and_prints_figures(
    tmp_path: Path, warehouse: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = warehouse / "stage" / "llm_responses"
    _responses(path)
    version = DeltaTable(str(path)).version()
    code = cli_main(["maintain", "--today", "2026-11-23", "--keep-days", "30", "--dry-run"])
    assert code == 0
    (fig,) = json.loads(capsys.readouterr().out)
    assert fig["table"] == "stage.llm_responses" and fig["files_before"] == 6
    assert DeltaTable(str(path)).version() == version
    assert cli_main(["maintain", "--today", "2026-11-23", "--keep-days", "30"]) == 0
    assert DeltaTable(str(path)).to_pyarrow_table().num_rows == 8


def test_maintain_table__missing_table_is_one_line_error(tmp_path: Path) -> None:
    with pytest.raises(TableNotFoundError, match="no Delta table"):
        maintain_table(str(tmp_path / "none"), MaintenanceSettings(), dt.date(2026, 11, 23))
