"""Shared plumbing for job ``main()`` functions: arguments, logging, run lines.

Every job's ``main(argv)`` is ~15 lines: parse args with ``job_parser``, load
config, build the session, extract -> transform -> load, and emit one
structured ``run`` line (run id, ds, rows in/out, dropped by reason, seconds)
with ``RunLog``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from typing import Any, NoReturn

from jobs.platform.tables import validate_ds

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def setup_logging(level: str | None = None) -> None:
    """Configure root logging once (level from ``COLDSTART_LOG_LEVEL``, default INFO)."""
    chosen = (level or os.environ.get("COLDSTART_LOG_LEVEL", "INFO")).upper()
    root = logging.getLogger()
    if not root.handlers:
        logging.basicConfig(level=chosen, format=LOG_FORMAT, stream=sys.stderr)
    root.setLevel(chosen)
    for noisy in ("py4j", "urllib3", "httpx", "openai", "filelock", "matplotlib"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


class OneLineParser(argparse.ArgumentParser):
    """argparse that reports a usage error as one line (``coldstart x: error: ...``), exit 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def job_parser(prog: str, description: str, *, with_ds: bool = True) -> argparse.ArgumentParser:
    """An argument parser with the options every job shares (``--config``, ``--ds``)."""
    parser = OneLineParser(prog=f"coldstart {prog}", description=description)
    parser.add_argument(
        "--config",
        default=None,
        help="YAML config (default: the packaged configs/local.yaml)",
    )
    if with_ds:
        parser.add_argument("--ds", required=True, type=ds_arg, help="partition date YYYY-MM-DD")
    return parser


def ds_arg(value: str) -> str:
    """argparse type for ``--ds``: an ISO date, else a one-line usage error."""
    from jobs.platform.errors import InputError

    try:
        return validate_ds(value)
    except InputError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


@dataclass
class RunLog:
    """Collects the figures of one job run and logs them as one JSON line."""

    job: str
    ds: str | None = None
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex[:12])
    figures: dict[str, Any] = field(default_factory=dict)
    dropped: dict[str, int] = field(default_factory=dict)
    started: float = field(default_factory=time.monotonic)

    def add(self, **figures: Any) -> None:
        self.figures.update(figures)

    def drop(self, reason: str, count: int) -> None:
        self.dropped[reason] = self.dropped.get(reason, 0) + int(count)

    def line(self) -> dict[str, Any]:
        return {
            "job": self.job,
            "run_id": self.run_id,
            "ds": self.ds,
            **self.figures,
            "dropped": self.dropped,
            "seconds": round(time.monotonic() - self.started, 2),
        }

    def emit(self) -> dict[str, Any]:
        line = self.line()
        logging.getLogger("coldstart.run").info("run %s", json.dumps(line, default=str))
        return line


STEP_ATTR = "coldstart_step"


def log_dir() -> str:
    """Folder for stack traces and the local JVM's log (``$COLDSTART_LOG_DIR``).

    Default ``<tmp>/coldstart-logs``: a terminal gets one line per failure,
    the file gets the whole story.
    """
    import tempfile

    folder = os.environ.get("COLDSTART_LOG_DIR") or os.path.join(
        tempfile.gettempdir(), "coldstart-logs"
    )
    os.makedirs(folder, exist_ok=True)
    return folder


@contextmanager
def step(name: str) -> Iterator[None]:
    """Name the job step an exception escaped from (the innermost step wins).

    The CLI puts the name into its one-line error, so "Spark failed" says
    where: ``coldstart cluster: error: Spark failed in step 'fit': ...``.
    """
    try:
        yield
    except BaseException as exc:
        if not hasattr(exc, STEP_ATTR):
            with suppress(AttributeError, TypeError):  # exceptions with __slots__
                setattr(exc, STEP_ATTR, name)
        raise


@contextmanager
def timed(figures: dict[str, Any], name: str) -> Iterator[None]:
    """Record the wall seconds of a block into ``figures[name]`` (and name the step)."""
    start = time.monotonic()
    try:
        with step(name.removesuffix("_s")):
            yield
    finally:
        figures[name] = round(time.monotonic() - start, 3)
