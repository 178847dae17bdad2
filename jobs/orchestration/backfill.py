"""Re-run the daily stages over a date range, in order, resumable.

    coldstart backfill --start 2026-11-01 --end 2026-11-07
    coldstart backfill --start 2026-11-01 --end 2026-11-07 --stages sample,cluster --force
    coldstart backfill --start 2026-11-01 --end 2026-11-07 --via in-process

Days run oldest first, each day's stages in the daily order
(``configs.orchestration.DAILY_STAGES``); a stage whose output partition
already exists is skipped unless ``--force`` (``validate``, which writes
nothing, always runs). ``--via spark-submit`` (default
``orchestration.backfill_via``) submits one job per (day, stage) with the
command of ``jobs.orchestration.daily.stage_command``; ``in-process`` runs them all in this
process with one SparkSession.

Resume: progress is recorded after every step in a state file under the
warehouse (``_orchestration/backfill/<start>_<end>_<digest>.json``, one per
range + stages + force). When a step fails the run stops there, prints the
summary and exits 1; running the same command again skips the steps that
already succeeded (also under ``--force``, which would otherwise redo them)
and continues from the failed day and stage. A completed range starts over.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

from configs.orchestration import DAILY_STAGES
from jobs.orchestration.daily import (
    StageResult,
    check_stages,
    output_rows,
    run_stage,
    summary_table,
)
from jobs.platform import fs
from jobs.platform.errors import ColdstartError, InputError

if TYPE_CHECKING:
    from configs.settings import Settings

log = logging.getLogger(__name__)

STATE_DIR = "_orchestration/backfill"
ALWAYS_RUN = frozenset({"validate"})  # checks, not writers: never "skipped: output exists"


def day_range(start: str, end: str) -> list[str]:
    """Every ISO day from ``start`` to ``end`` inclusive; ``InputError`` if reversed."""
    a, b = dt.date.fromisoformat(start), dt.date.fromisoformat(end)
    if b < a:
        raise InputError(f"--end {end} is before --start {start}")
    return [(a + dt.timedelta(days=i)).isoformat() for i in range((b - a).days + 1)]


def state_path(settings: Settings, start: str, end: str, stages: Sequence[str], force: bool) -> str:
    """State file of one backfill (range + stages + force) under the warehouse (path or URI)."""
    key = json.dumps({"stages": list(stages), "force": force}, sort_keys=True)
    digest = hashlib.sha256(key.encode()).hexdigest()[:10]
    return fs.join(settings.warehouse, STATE_DIR, f"{start}_{end}_{digest}.json")


def load_state(path: str) -> dict[str, Any]:
    """Steps recorded by an unfinished run of this backfill; empty for a fresh one."""
    state = fs.read_json(path)
    if state is None or state.get("status") == "done":
        return {"status": "new", "steps": {}}
    return state


def save_state(path: str, state: dict[str, Any]) -> None:
    """Write the state atomically (``jobs.platform.fs``: rename locally, one PUT on S3)."""
    fs.write_json(path, state)


def submit_runner(master: str | None) -> Callable[[str, Settings, str], dict]:
    """A runner that spark-submits one (day, stage) and waits for it."""

    def run(stage: str, settings: Settings, ds: str) -> dict:
        from jobs.orchestration.daily import stage_command

        cmd = stage_command(stage, ds, settings, master)
        log.info("backfill: %s", " ".join(cmd))
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            lines = proc.stderr.splitlines()
            last = ([x for x in lines if "error:" in x] or lines or [""])[-1]
            raise ColdstartError(f"spark-submit {stage} exited {proc.returncode}: {last}")
        return {}

    return run


def inprocess_runner() -> Callable[[str, Settings, str], dict]:
    """A runner that calls the stage in this process (one SparkSession for all)."""
    from jobs.orchestration.daily import run_stage_inprocess

    return run_stage_inprocess


def backfill(
    settings: Settings,
    days: Sequence[str],
    stages: Sequence[str],
    *,
    force: bool,
    runner: Callable[[str, Settings, str], dict],
    state_file: str,
) -> list[StageResult]:
    """Run every (day, stage) in order; record each step; stop at the first failure."""
    state = load_state(state_file)
    if state["steps"]:
        log.info("backfill: resuming %s (%d steps already done)", state_file, len(state["steps"]))
    state["status"] = "running"
    results: list[StageResult] = []
    for ds in days:
        for stage in stages:
            key = f"{ds}:{stage}"
            if state["steps"].get(key, {}).get("status") == "ok":
                rows = output_rows(stage, settings, ds)
                results.append(StageResult(ds, stage, "skipped", 0.0, rows, note="done earlier"))
                continue
            # validate writes nothing: an existing candidate is what it checks, not
            # a sign it ran, so it always runs.
            rows = None if force or stage in ALWAYS_RUN else output_rows(stage, settings, ds)
            if rows is not None:
                results.append(StageResult(ds, stage, "skipped", 0.0, rows, note="output exists"))
                continue
            result = run_stage(stage, settings, ds, runner)
            results.append(result)
            state["steps"][key] = {k: v for k, v in asdict(result).items() if k != "figures"}
            if result.status == "failed":
                state["status"] = "failed"
                state["failed_at"] = key
                save_state(state_file, state)
                return results
            save_state(state_file, state)
    state["status"] = "done"
    save_state(state_file, state)
    return results


def main(argv: Sequence[str] | None = None) -> int:
    """``coldstart backfill --start D1 --end D2 [--stages ...] [--force] [--via ...]``."""
    from configs.settings import load_config
    from jobs.platform.common import ds_arg, job_parser

    parser = job_parser("backfill", "Re-run daily stages over a date range.", with_ds=False)
    parser.add_argument("--start", required=True, type=ds_arg, help="first day YYYY-MM-DD")
    parser.add_argument("--end", required=True, type=ds_arg, help="last day YYYY-MM-DD")
    parser.add_argument(
        "--stages",
        default=",".join(DAILY_STAGES),
        help=f"comma-separated subset of {','.join(DAILY_STAGES)} (run in that order)",
    )
    parser.add_argument("--force", action="store_true", help="re-run steps whose output exists")
    parser.add_argument("--via", choices=("spark-submit", "in-process"), default=None)
    parser.add_argument("--master", default=None, help="spark-submit master (default: config)")
    args = parser.parse_args(argv)
    stages = check_stages([s.strip() for s in args.stages.split(",") if s.strip()])
    days = day_range(args.start, args.end)
    settings = load_config(args.config)
    via = args.via or settings.orchestration.backfill_via
    runner = inprocess_runner() if via == "in-process" else submit_runner(args.master)
    state_file = state_path(settings, args.start, args.end, stages, args.force)
    results = backfill(
        settings, days, stages, force=args.force, runner=runner, state_file=state_file
    )
    print(summary_table(results))
    failed = [r for r in results if r.status == "failed"]
    if failed:
        f = failed[0]
        raise ColdstartError(
            f"ds={f.ds} stage {f.stage} failed: {f.note}; fix it and run the same command "
            f"again to resume from there (state: {state_file})"
        )
    return 0


if __name__ == "__main__":
    from jobs.cli import main as cli_main

    sys.exit(cli_main(["backfill", *sys.argv[1:]]))
