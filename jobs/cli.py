"""``coldstart``: one console entry point, one subcommand per job.

Subcommands are dispatched lazily (``jobs.<module>.main(argv)``) so that
``coldstart --help`` answers in well under a second without importing Spark
or torch. A ``ColdstartError`` becomes one line on stderr and its exit code.
A Spark failure (py4j / pyspark) becomes one line too: the job, the step it
escaped from and the Java root cause, with the full trace written to a log
file (``$COLDSTART_LOG_DIR``, default ``<tmp>/coldstart-logs``) or, with
``--verbose`` anywhere on the command line, to the terminal. Anything else is
a bug and keeps its traceback. SIGTERM exits through ``SystemExit`` so that
child processes a job started are stopped by their context managers.
"""

from __future__ import annotations

import argparse
import importlib
import os
import signal
import sys
import threading
import time
import traceback
from collections.abc import Sequence

from jobs.platform.common import STEP_ATTR, log_dir, setup_logging
from jobs.platform.errors import ColdstartError

# name -> (module implementing ``main(argv)``, one-line help). Order is the
# order of the daily flow, then weekly, then tools.
COMMANDS: dict[str, tuple[str, str]] = {
    "simulate": (
        "jobs.sources.simulate",
        "a day of app-store logs + ref.apps with planted truth",
    ),
    "sample": ("jobs.stage1.sample", "downsample a day of raw.user_logs into stage.sampled_logs"),
    "cluster": ("jobs.stage1.cluster", "cluster users (KMeans) and pick seeds by cluster size"),
    "synthesize": (
        "jobs.stage1.synthesize",
        "LLM stage 1: synthetic profiles and clicks",
    ),
    "interactions": ("jobs.model.interactions", "Hessian interaction map and feature groups"),
    "weights": ("jobs.stage2.weights", "stage 2: importance weights into gold.weighted_synthetic"),
    "train": ("jobs.model.train", "weekly recall-model training on real + weighted synthetic"),
    "evaluate": (
        "jobs.evaluation.evaluate",
        "paper-style and cold-start evaluation reports",
    ),
    "run-daily": ("jobs.orchestration.daily", "the whole daily chain in-process for one --ds"),
    "backfill": ("jobs.orchestration.backfill", "re-run daily stages over a date range, resumable"),
    "maintain": (
        "jobs.orchestration.maintain",
        "retention window, compaction and vacuum of stage.llm_responses (delta-rs)",
    ),
    "align": ("jobs.stage2.align", "stage 2 on any real/synthetic table pair"),
    "submit-cmd": ("jobs.platform.submit", "print the spark-submit command for a job"),
}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="coldstart",
        description=(
            "Cold-start augmentation with LLM-synthesized rows (SampleLLM) on Spark. "
            "Every subcommand takes --config (default: configs/local.yaml); daily jobs "
            "take --ds YYYY-MM-DD. Run 'coldstart <command> --help' for its options."
        ),
    )
    sub = parser.add_subparsers(dest="command", metavar="<command>")
    for name, (_, help_text) in COMMANDS.items():
        sub.add_parser(name, help=help_text, add_help=False)
    return parser


def _terminate(signum: int, frame: object) -> None:
    """SIGTERM (Airflow, YARN, a timeout) ends the job like Ctrl-C does: by an exception,
    so every ``finally`` / context manager runs and child processes (the offline
    stand-in, a local LLM server) are stopped instead of orphaned."""
    raise SystemExit(128 + signum)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``coldstart`` console script."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _terminate)
    args = list(sys.argv[1:] if argv is None else argv)
    verbose = "--verbose" in args
    args = [a for a in args if a != "--verbose"]
    if verbose:  # read by jobs.platform.spark: the local JVM logs to the terminal too
        os.environ["COLDSTART_VERBOSE"] = "1"
    parser = _parser()
    if not args or args[0] in ("-h", "--help"):
        parser.print_help()
        return 0 if args else 2
    name, rest = args[0], args[1:]
    if name not in COMMANDS:
        parser.error(f"unknown command {name!r} (choose from {', '.join(COMMANDS)})")
    setup_logging()
    module_name = COMMANDS[name][0]
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name != module_name:
            raise
        print(f"coldstart {name}: not implemented yet", file=sys.stderr)
        return 2
    try:
        return int(module.main(rest) or 0)
    except ColdstartError as exc:
        print(f"coldstart {name}: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except Exception as exc:
        return _spark_failure(name, exc, verbose)


def _spark_failure(name: str, exc: Exception, verbose: bool) -> int:
    """One line for a Spark failure (full trace to a log file or ``--verbose``); re-raise others."""
    cause = None
    if "pyspark" in sys.modules or "py4j" in sys.modules:
        from jobs.platform.spark import spark_failure

        cause = spark_failure(exc)
    if cause is None:
        raise exc
    where = getattr(exc, STEP_ATTR, None)
    trace = "".join(traceback.format_exception(exc))
    if verbose:
        print(trace, file=sys.stderr)
        saved = "above"
    else:
        path = os.path.join(log_dir(), f"{name}-{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}.log")
        with open(path, "w", encoding="utf-8") as fh:
            fh.write(trace)
        saved = f"in {path}; --verbose prints it"
    step_part = f" in step {where!r}" if where else ""
    print(
        f"coldstart {name}: error: Spark failed{step_part}: {cause} (stack trace {saved})",
        file=sys.stderr,
    )
    return 1


if __name__ == "__main__":
    sys.exit(main())
