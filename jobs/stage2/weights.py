"""``coldstart weights``: stage 2 of the daily chain, into ``gold.weighted_synthetic``.

    coldstart weights --ds 2026-11-23 [--method samplellm|classifier|hybrid]
    spark-submit jobs/stage2/weights.py --ds 2026-11-23

Real side: ``stage.sampled_logs[ds]`` with its ``sample_weight`` (frequencies
and the real label model are weighted by it, which undoes the down-sampling
of non-clicks). Synthetic side: ``stage.synthetic_raw[ds]``, less the rows
closer to real rows than real held-out rows are (``jobs.stage2.copies``,
dropped and counted as ``copy_of_real_row``). Feature groups:
the latest row of ``model.feature_groups`` (by ``created_at``), restricted to
the fields a synthetic row has. Writes the ``ds`` partition of
``gold.weighted_synthetic`` (contract columns), optionally an
importance-resampled table, and the alignment report under
``<warehouse>/reports/weights/ds=<ds>/``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from jobs.platform import schema as S
from jobs.platform.errors import EmptyInputError, SchemaMismatchError

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

    from configs.settings import Settings
    from jobs.stage2.reweight import Stage2Output

log = logging.getLogger(__name__)

SAMPLE_WEIGHT = "sample_weight"
MODEL_VERSION = "model_version"
FEATURE_GROUPS_VERSION = "feature_groups_version"
CATEGORICAL = [f for f in S.SYNTH_FEATURE_FIELDS if f not in S.NUMERIC_FIELDS]
NUMERIC = [f for f in S.SYNTH_FEATURE_FIELDS if f in S.NUMERIC_FIELDS]
# A synthetic row and a real row are the same row when these agree.
COPY_FIELDS: tuple[str, ...] = (S.APP_ID, *S.SYNTH_FEATURE_FIELDS, S.CLICKED)
# gold.weighted_synthetic (ds is added by the writer).
OUTPUT_COLUMNS: tuple[str, ...] = (
    S.SYNTH_ID,
    S.APP_ID,
    *S.SYNTH_FEATURE_FIELDS,
    *S.CONTEXT_FIELDS,  # drawn from the real day by synthesize, never null
    S.CLICKED,
    S.WEIGHT,
    S.LOG_WEIGHT,
    S.RUN_ID,
    MODEL_VERSION,
    FEATURE_GROUPS_VERSION,
)


def require(df: DataFrame, columns: Sequence[str], table: str) -> None:
    """``SchemaMismatchError`` naming every contract column ``df`` lacks."""
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise SchemaMismatchError(f"table {table}: missing column(s) {missing}")


def latest_feature_groups(spark: SparkSession, path: str, writer: str) -> dict[str, Any]:
    """The newest ``model.feature_groups`` row as plain values (groups, versions)."""
    from pyspark.sql import functions as F

    from jobs.platform.tables import read_table

    df = read_table(spark, path, writer=writer)
    require(df, [MODEL_VERSION, "groups", "created_at", "gamma"], path)
    row = df.orderBy(F.col("created_at").desc(), F.col(MODEL_VERSION).desc()).first()
    if row is None:
        raise EmptyInputError(f"table {path}: no feature groups yet (run coldstart interactions)")
    return {
        "groups": json.loads(row["groups"]),
        MODEL_VERSION: row[MODEL_VERSION],
        FEATURE_GROUPS_VERSION: f"{row[MODEL_VERSION]}@{row['created_at']}",
        "gamma": row["gamma"],
    }


def weigh_day(
    real: DataFrame, syn: DataFrame, groups: list[list[str]], settings: Settings, method: str
) -> Stage2Output:
    """The pure part: contract checks, then stage 2 with the sampled-logs weight undone."""
    from jobs.stage2.reweight import Stage2Inputs, run_stage2

    require(real, [*S.SYNTH_FEATURE_FIELDS, S.CLICKED, SAMPLE_WEIGHT], "stage.sampled_logs")
    need = [S.SYNTH_ID, S.APP_ID, *S.SYNTH_FEATURE_FIELDS, *S.CONTEXT_FIELDS, S.CLICKED]
    require(syn, need, "stage.synthetic_raw")
    inputs = Stage2Inputs(
        real,
        syn,
        CATEGORICAL,
        NUMERIC,
        S.CLICKED,
        groups,
        real_weight=SAMPLE_WEIGHT,
        syn_key=[S.SYNTH_ID],
    )
    return run_stage2(inputs, settings.weights, method)


def gold_rows(result: Stage2Output, run_id: str, fg: dict[str, Any]) -> DataFrame:
    """The contract columns of ``gold.weighted_synthetic``."""
    from pyspark.sql import functions as F

    return result.df.select(
        *OUTPUT_COLUMNS[:-3],
        F.lit(run_id).alias(S.RUN_ID),
        F.lit(fg[MODEL_VERSION]).cast("string").alias(MODEL_VERSION),
        F.lit(fg[FEATURE_GROUPS_VERSION]).alias(FEATURE_GROUPS_VERSION),
    )


def run_weights(spark: SparkSession, settings: Settings, ds: str, method: str, run) -> dict:
    """Extract -> transform -> load for one day; returns the report document."""
    from jobs.platform.tables import read_table, write_partition
    from jobs.stage2 import report
    from jobs.stage2.copies import check_copies
    from jobs.stage2.transforms import importance_resample

    w = settings.io.delta_writer
    real = read_table(spark, settings.table_path(settings.tables.sampled_logs), ds, writer=w)
    syn = read_table(spark, settings.table_path(settings.tables.synthetic_raw), ds, writer=w)
    if syn.limit(1).count() == 0:
        raise EmptyInputError(f"table {settings.tables.synthetic_raw}: partition ds={ds} is empty")
    fg = latest_feature_groups(spark, settings.table_path(settings.tables.feature_groups), w)
    copies, dropped = None, {}
    if settings.weights.copy_check:
        require(real, [*S.SYNTH_FEATURE_FIELDS, S.CLICKED, SAMPLE_WEIGHT], "stage.sampled_logs")
        require(syn, [S.SYNTH_ID, *COPY_FIELDS], "stage.synthetic_raw")
        require(real, list(COPY_FIELDS), "stage.sampled_logs")
        copies = check_copies(
            real,
            syn,
            list(COPY_FIELDS),
            holdout_fraction=settings.weights.copy_holdout_fraction,
            seed=settings.weights.seed,
            key_cols=[S.SYNTH_ID],
        )
        syn, dropped = copies.df, {"copy_of_real_row": copies.dropped}
    result = weigh_day(real, syn, fg["groups"], settings, method)
    gold = gold_rows(result, run.run_id, fg)
    written = write_partition(gold, settings.table_path(settings.tables.weighted_synthetic), ds, w)
    if settings.weights.resample_rows:
        sample = importance_resample(
            gold, settings.weights.resample_rows, settings.weights.seed, [S.SYNTH_ID]
        )
        write_partition(sample, settings.table_path(settings.weights.resampled_table), ds, w)
    doc = report.build_report(
        real,
        gold,
        result,
        columns=[*S.SYNTH_FEATURE_FIELDS, S.CLICKED],
        categorical=[*CATEGORICAL, S.CLICKED],
        real_weight=SAMPLE_WEIGHT,
        dropped=dropped,
        sdmetrics_rows=settings.weights.report_max_rows,
        seed=settings.weights.seed,
        key_cols=[S.SYNTH_ID],
        extra={
            "ds": ds,
            "run_id": run.run_id,
            "rows_written": written.rows,
            "table_version": written.version,
            "copies": copies.figures if copies else None,
            **fg,
        },
    )
    out_dir = f"{settings.warehouse.rstrip('/')}/reports/weights/ds={ds}"
    report.write_report(doc, out_dir)
    doc["report_dir"] = out_dir
    return doc


def main(argv: Sequence[str] | None = None) -> int:
    """``coldstart weights``: importance weights for one day's synthetic rows."""
    from configs.settings import load_config
    from jobs.platform.common import RunLog, job_parser
    from jobs.platform.spark import get_spark

    parser = job_parser("weights", "Stage 2: importance weights into gold.weighted_synthetic.")
    parser.add_argument(
        "--method",
        choices=("samplellm", "classifier", "hybrid"),
        default=None,
        help="estimator (default: config weights.method)",
    )
    args = parser.parse_args(argv)
    settings = load_config(args.config)
    run = RunLog("weights", args.ds)
    spark = get_spark(settings.spark)
    doc = run_weights(spark, settings, args.ds, args.method or settings.weights.method, run)
    run.add(
        rows_in=doc["rows"],
        rows_out=doc["rows_written"],
        ess_fraction=doc["ess_fraction"],
        method=doc["method"],
        floor_rows=doc["smoothing_floor_rows"].get("any_group", 0),
    )
    for reason, n in doc["dropped"].items():
        run.drop(reason, n)
    run.emit()
    print(
        f"weighted {doc['rows_written']} synthetic rows for ds={args.ds} "
        f"(ESS {doc['ess_fraction']:.1%}); report in {doc['report_dir']}"
    )
    return 0


if __name__ == "__main__":
    import sys

    from jobs.cli import main as cli_main

    sys.exit(cli_main(["weights", *sys.argv[1:]]))
