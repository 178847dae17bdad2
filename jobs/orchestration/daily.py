"""The whole daily chain for one day, in-process with one SparkSession.

    coldstart run-daily --ds 2026-11-23
    coldstart run-daily --ds 2026-11-23 --stages validate,publish

Stages, in order (``configs.orchestration.DAILY_STAGES``):

* ``sample`` -> ``cluster`` -> ``synthesize``: the stage jobs' own ``main``;
* ``interactions``: reuse the feature groups the weekly training published
  (the latest row of ``model.feature_groups``); when none exists yet,
  bootstrap: train the recall model on the real logs available up to ``ds``
  and run ``interactions`` on it (said so in the log);
* ``weights``: the weights job writing ``orchestration.candidate_table``
  (through a derived config file), not the gold table;
* ``validate`` -> ``publish``: the gate of ``jobs.orchestration.publish``; a day that fails
  it is never copied to ``gold.weighted_synthetic``.

Every stage replaces exactly its ``ds`` partition, so re-running a day is
idempotent. The Airflow DAG and ``coldstart backfill`` run the same stages,
one spark-submit each (``stage_command``). A per-stage summary (status,
seconds, output rows) is printed at the end, also when a stage fails.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import logging
import os
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from configs.orchestration import DAILY_STAGES
from jobs.cli import COMMANDS
from jobs.platform.errors import ColdstartError, InputError

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

    from configs.settings import Settings

log = logging.getLogger(__name__)

# Stages that are a job module of their own (run as ``coldstart <job> --ds D``);
# the module names come from the CLI's registry so the two never drift apart.
JOB_STAGES: dict[str, str] = {
    name: COMMANDS[name][0] for name in ("sample", "cluster", "synthesize", "weights")
}


# -- outputs -------------------------------------------------------------------


def stage_output(stage: str, settings: Settings) -> str:
    """Logical table a stage writes (``validate``: the candidate table it checks)."""
    tables, orch = settings.tables, settings.orchestration
    return {
        "sample": tables.sampled_logs,
        "cluster": tables.seeds,
        "synthesize": tables.synthetic_raw,
        "interactions": tables.feature_groups,
        "weights": orch.candidate_table,
        "validate": orch.candidate_table,
        "publish": tables.weighted_synthetic,
    }[stage]


def output_rows(stage: str, settings: Settings, ds: str) -> int | None:
    """Rows of the stage's output for ``ds`` (whole table if unpartitioned); None if absent."""
    from jobs.orchestration.publish import partition_rows

    path = settings.table_path(stage_output(stage, settings))
    return partition_rows(path, None if stage == "interactions" else ds)


def check_stages(stages: Sequence[str]) -> list[str]:
    """Validate and order a stage selection; ``InputError`` naming unknown ones."""
    unknown = [s for s in stages if s not in DAILY_STAGES]
    if unknown:
        raise InputError(f"--stages: unknown {unknown} (choose from {', '.join(DAILY_STAGES)})")
    return [s for s in DAILY_STAGES if s in stages]


# -- derived config --------------------------------------------------------------


def derived_config(settings: Settings, overrides: dict[str, Any]) -> Path:
    """A config file equal to ``settings`` with dotted-key ``overrides`` applied.

    How the weights step is pointed at the candidate table and synthesize at
    an endpoint from an Airflow connection without editing the user's file.
    Content-addressed, written atomically: concurrent tasks agree on it.
    """
    import yaml

    data = settings.model_dump(mode="json")
    for dotted, value in overrides.items():
        node = data
        *parents, leaf = dotted.split(".")
        for key in parents:
            node = node[key]
        node[leaf] = value
    text = yaml.safe_dump(data, sort_keys=True)
    digest = hashlib.sha256(text.encode()).hexdigest()[:16]
    out = Path(tempfile.gettempdir()) / "coldstart-configs" / f"{digest}.yaml"
    if not out.is_file():
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(f"# derived from {settings.source} by jobs/orchestration/daily.py\n{text}")
        tmp.replace(out)
    return out


def weights_config(settings: Settings) -> Path:
    """Config of the weights step: writes the candidate table, not gold."""
    cand = settings.orchestration.candidate_table
    return derived_config(settings, {"tables.weighted_synthetic": cand})


def config_path(settings: Settings) -> str:
    """The file ``settings`` came from (jobs re-read it), or a dump of them."""
    source = Path(settings.source)
    return str(source) if source.is_file() else str(derived_config(settings, {}))


# -- in-process stages -------------------------------------------------------------


def run_job(module: str, argv: list[str]) -> None:
    """Call ``<module>.main(argv)``; a non-zero return is a failure of the stage."""
    try:
        mod = importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if exc.name != module:
            raise
        raise InputError(f"stage module {module} does not exist yet (not implemented)") from None
    code = int(mod.main(argv) or 0)
    if code != 0:
        raise ColdstartError(f"{module}.main exited {code}")


def published_feature_groups(spark: SparkSession, settings: Settings) -> str | None:
    """model_version of the latest row of ``model.feature_groups``, None if empty/absent."""
    from pyspark.sql import functions as F

    from jobs.platform.tables import read_table, table_exists

    path = settings.table_path(settings.tables.feature_groups)
    if not table_exists(spark, path, settings.io.delta_writer):
        return None
    latest = (
        read_table(spark, path, writer=settings.io.delta_writer)
        .orderBy(F.col("created_at").desc(), F.col("model_version").desc())
        .select("model_version")
        .first()
    )
    return None if latest is None else str(latest["model_version"])


def ensure_feature_groups(spark: SparkSession, settings: Settings, ds: str) -> dict[str, Any]:
    """Reuse the published feature groups; bootstrap them when none exist yet."""
    version = published_feature_groups(spark, settings)
    if version is not None:
        log.info("interactions: reusing published feature groups model_version=%s", version)
        return {"model_version": version, "bootstrap": False}
    log.warning(
        "interactions: no published feature groups in %s yet; bootstrapping: training the "
        "recall model on the real logs up to ds=%s, then running interactions",
        settings.tables.feature_groups,
        ds,
    )
    cfg = config_path(settings)
    run_job("jobs.model.train", ["--config", cfg, "--weeks-ending", ds])
    run_job("jobs.model.interactions", ["--config", cfg])
    version = published_feature_groups(spark, settings)
    if version is None:
        raise InputError(f"table {settings.tables.feature_groups}: still empty after bootstrap")
    return {"model_version": version, "bootstrap": True}


def run_stage_inprocess(stage: str, settings: Settings, ds: str) -> dict[str, Any]:
    """Run one stage in this process (the session is shared through ``get_spark``)."""
    from jobs.platform.spark import get_spark

    if stage in ("sample", "cluster", "synthesize"):
        run_job(JOB_STAGES[stage], ["--config", config_path(settings), "--ds", ds])
        return {}
    if stage == "weights":
        run_job(JOB_STAGES[stage], ["--config", str(weights_config(settings)), "--ds", ds])
        return {}
    spark = get_spark(settings.spark)
    if stage == "interactions":
        return ensure_feature_groups(spark, settings, ds)
    from jobs.orchestration.publish import publish_day, validate_day

    if stage == "validate":
        return validate_day(spark, settings, ds).figures
    return publish_day(spark, settings, ds)


# -- spark-submit ------------------------------------------------------------------


def pinned_artifact() -> Any:
    """The ``--py-files`` artifact in a folder named by its source digest.

    ``jobs.platform.package.ensure_artifact`` rebuilds ``dist/`` in place when the
    sources change; a job still running from the old zip then reads a file
    replaced under it (zipimport: "bad local file header"). One folder per
    digest is never rewritten, so a running job keeps its own code.
    """
    from jobs.platform.package import REPO, ensure_artifact, source_digest

    digest = source_digest(REPO)
    return ensure_artifact(REPO, REPO / "dist" / "by-digest" / digest[:16])


def stage_command(stage: str, ds: str, settings: Settings, master: str | None = None) -> list[str]:
    """spark-submit argv that runs one stage of one day (``jobs.platform.submit``).

    Job stages submit their own module; ``interactions`` (reuse or bootstrap),
    ``validate`` and ``publish`` submit ``run-daily --stages <stage>``.
    """
    from configs.settings import load_config
    from jobs.platform.submit import spark_submit_command

    art = pinned_artifact()
    if stage in ("sample", "cluster", "synthesize"):
        return spark_submit_command(stage, ["--ds", ds], settings, master, artifact=art)
    if stage == "weights":
        derived = load_config(weights_config(settings))
        return spark_submit_command("weights", ["--ds", ds], derived, master, artifact=art)
    job_args = ["--ds", ds, "--stages", stage]
    return spark_submit_command("run-daily", job_args, settings, master, artifact=art)


# -- the chain ---------------------------------------------------------------------


@dataclass
class StageResult:
    """One row of the summary table."""

    ds: str
    stage: str
    status: str  # ok | failed | skipped
    seconds: float = 0.0
    rows: int | None = None
    table: str = ""
    note: str = ""
    figures: dict[str, Any] = field(default_factory=dict)


def run_stage(
    stage: str, settings: Settings, ds: str, runner: Callable[[str, Settings, str], Any]
) -> StageResult:
    """Run ``stage`` with ``runner``, timing it and reading its output rows after."""
    start = time.monotonic()
    table = stage_output(stage, settings)
    try:
        figures = runner(stage, settings, ds) or {}
    except Exception as exc:
        seconds = round(time.monotonic() - start, 2)
        if not isinstance(exc, ColdstartError):
            log.exception("run-daily ds=%s: stage %s crashed", ds, stage)
        return StageResult(ds, stage, "failed", seconds, None, table, short_error(exc))
    seconds = round(time.monotonic() - start, 2)
    rows = output_rows(stage, settings, ds)
    note = "bootstrapped" if figures.get("bootstrap") else ""
    if "model_version" in figures:
        note = f"{note} model_version={figures['model_version']}".strip()
    if stage == "validate":
        note = f"ess_fraction={figures.get('ess_fraction')}"
    return StageResult(ds, stage, "ok", seconds, rows, table, note, figures)


def short_error(exc: BaseException) -> str:
    """One line for the summary: the message, or a traceback's last ``XError: ...`` line."""
    lines = [x.strip() for x in str(exc).splitlines() if x.strip()]
    if not lines:
        return type(exc).__name__
    errors = [x for x in lines if x.split(":")[0].endswith(("Error", "Exception"))]
    return (errors[-1] if len(lines) > 1 and errors else lines[0])[:300]


def summary_table(results: Sequence[StageResult]) -> str:
    """Fixed-width table: ds, stage, status, seconds, rows, table, note."""
    head = ("ds", "stage", "status", "seconds", "rows", "table", "note")
    rows = [
        (
            r.ds,
            r.stage,
            r.status,
            f"{r.seconds:.1f}",
            "-" if r.rows is None else str(r.rows),
            r.table,
            r.note,
        )
        for r in results
    ]
    widths = [max(len(str(x)) for x in col) for col in zip(head, *rows, strict=True)]
    lines = [
        "  ".join(str(x).ljust(w) for x, w in zip(line, widths, strict=True)).rstrip()
        for line in (head, *rows)
    ]
    return "\n".join([lines[0], "  ".join("-" * w for w in widths), *lines[1:]])


def run_daily(settings: Settings, ds: str, stages: Sequence[str]) -> list[StageResult]:
    """Run ``stages`` of one day in order in this process; stop at the first failure."""
    from jobs.platform.spark import get_spark

    get_spark(settings.spark)  # one session for every stage
    results: list[StageResult] = []
    for stage in check_stages(stages):
        log.info("run-daily ds=%s: stage %s", ds, stage)
        result = run_stage(stage, settings, ds, run_stage_inprocess)
        results.append(result)
        if result.status == "failed":
            break
    return results


def main(argv: Sequence[str] | None = None) -> int:
    """``coldstart run-daily --ds D [--stages a,b]``: the daily chain in-process."""
    from configs.settings import load_config
    from jobs.platform.common import RunLog, job_parser

    parser = job_parser("run-daily", "The whole daily chain in-process for one --ds.")
    parser.add_argument(
        "--stages",
        default=",".join(DAILY_STAGES),
        help=f"comma-separated subset of {','.join(DAILY_STAGES)} (run in that order)",
    )
    parser.add_argument(
        "--summary-json", default=None, help="also write the per-stage summary as JSON here"
    )
    args = parser.parse_args(argv)
    stages = check_stages([s.strip() for s in args.stages.split(",") if s.strip()])
    settings = load_config(args.config)
    run = RunLog("run-daily", args.ds)
    results = run_daily(settings, args.ds, stages)
    if args.summary_json:
        rows = [{k: v for k, v in asdict(r).items() if k != "figures"} for r in results]
        Path(args.summary_json).write_text(json.dumps(rows, indent=2))
    run.add(
        stages={
            r.stage: {"status": r.status, "seconds": r.seconds, "rows": r.rows} for r in results
        }
    )
    run.emit()
    print(summary_table(results))
    failed = [r for r in results if r.status == "failed"]
    if failed:
        raise ColdstartError(f"ds={args.ds} stage {failed[0].stage} failed: {failed[0].note}")
    return 0


if __name__ == "__main__":
    from jobs.cli import main as cli_main

    sys.exit(cli_main(["run-daily", *sys.argv[1:]]))
