"""Retention and compaction of the append-heavy tables (weekly DAG task ``maintain``).

    coldstart maintain                       # orchestration.maintenance of the config
    coldstart maintain --keep-days 30 --dry-run

``stage.llm_responses`` gets one small append per LLM wave, every day, and
is never rewritten by the pipeline: left alone it grows without bound and
reads slow down with its file count. Per table, with delta-rs only (no
Spark, no JVM; any ``jobs.platform.fs`` location):

1. **retention window**: rows whose ``ds`` is older than ``keep_days`` before
   ``--today`` are deleted (a re-run of such an old day pays for its LLM calls
   again; nothing else reads them);
2. **compaction**: ``optimize.compact`` rewrites the small files into files of
   about ``target_file_mb``;
3. **vacuum**: files no longer referenced by the table and older than
   ``vacuum_retention_hours`` are removed from storage, together with the
   attempt folders of writes that died before their commit.

Each step is its own Delta commit, so a reader sees the table before or after
it, never half of it. Run it when no ``synthesize`` is appending (the weekly
DAG's Monday slot): a concurrent append makes the commit fail, not corrupt.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from jobs.platform import fs
from jobs.platform.errors import InputError, TableNotFoundError
from jobs.platform.schema import DS

if TYPE_CHECKING:
    from configs.orchestration import MaintenanceSettings
    from configs.settings import Settings

log = logging.getLogger(__name__)


def maintain_table(
    path: str, rules: MaintenanceSettings, today: dt.date, *, dry_run: bool = False
) -> dict[str, Any]:
    """Retention, compaction and vacuum of one Delta table; the figures of each step."""
    if not fs.is_delta_table(path):
        raise TableNotFoundError(f"table {path}: no Delta table there")
    dt_ = fs.delta_table(path)
    fields = {f.name for f in dt_.schema().to_arrow()}
    out: dict[str, Any] = {"path": path, "version_before": dt_.version()}
    out["files_before"] = len(dt_.file_uris())
    if rules.keep_days is not None:
        if DS not in fields:
            raise InputError(f"table {path}: no '{DS}' column; set maintenance.keep_days: null")
        cutoff = (today - dt.timedelta(days=rules.keep_days)).isoformat()
        out["cutoff_ds"] = cutoff
        if dry_run:
            out["rows_deleted"] = None
        else:
            metrics = dt_.delete(f"{DS} < '{cutoff}'")
            out["rows_deleted"] = int(metrics.get("num_deleted_rows", 0))
    if not dry_run:
        dt_ = fs.delta_table(path)
        metrics = dt_.optimize.compact(target_size=rules.target_file_mb * 1024 * 1024)
        out["files_compacted"] = int(metrics.get("numFilesRemoved", 0))
        out["files_written"] = int(metrics.get("numFilesAdded", 0))
    dt_ = fs.delta_table(path)
    removed = dt_.vacuum(
        retention_hours=rules.vacuum_retention_hours,
        dry_run=dry_run,
        enforce_retention_duration=False,
    )
    out["files_vacuumed" if not dry_run else "files_to_vacuum"] = len(removed)
    dt_ = fs.delta_table(path)
    out.update(version_after=dt_.version(), files_after=len(dt_.file_uris()))
    return out


def maintain(
    settings: Settings, today: dt.date, *, keep_days: int | None = None, dry_run: bool = False
) -> list[dict[str, Any]]:
    """Every table of ``orchestration.maintenance.tables``; missing tables are reported, skipped."""
    rules = settings.orchestration.maintenance
    if keep_days is not None:
        rules = rules.model_copy(update={"keep_days": keep_days})
    results = []
    for table in rules.tables:
        path = settings.table_path(table)
        if not fs.is_delta_table(path):
            results.append({"table": table, "path": path, "skipped": "no table yet"})
            continue
        figures = maintain_table(path, rules, today, dry_run=dry_run)
        log.info("maintain %s: %s", table, figures)
        results.append({"table": table, **figures})
    return results


def main(argv: Sequence[str] | None = None) -> int:
    """``coldstart maintain``: retention window, compaction and vacuum (delta-rs)."""
    from configs.settings import load_config
    from jobs.platform.common import ds_arg, job_parser

    parser = job_parser(
        "maintain", "Retention window, compaction and vacuum of append tables.", with_ds=False
    )
    parser.add_argument(
        "--today", type=ds_arg, default=None, help="reference day YYYY-MM-DD (default: UTC today)"
    )
    parser.add_argument(
        "--keep-days", type=int, default=None, help="override orchestration.maintenance.keep_days"
    )
    parser.add_argument("--dry-run", action="store_true", help="report, change nothing")
    args = parser.parse_args(argv)
    if args.keep_days is not None and args.keep_days < 1:
        parser.error(f"--keep-days {args.keep_days}: expected a positive number of days")
    settings = load_config(args.config)
    today = dt.date.fromisoformat(args.today) if args.today else dt.datetime.now(dt.UTC).date()
    results = maintain(settings, today, keep_days=args.keep_days, dry_run=args.dry_run)
    print(json.dumps(results, indent=2, sort_keys=True))
    return 0


if __name__ == "__main__":
    from jobs.cli import main as cli_main

    sys.exit(cli_main(["maintain", *sys.argv[1:]]))
