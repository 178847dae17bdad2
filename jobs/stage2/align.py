"""``coldstart align``: stage 2 on any real/synthetic table pair.

    coldstart align --real real.csv --synthetic synth.parquet --label clicked --out out/
    coldstart align --real R --synthetic S --label Y --out DIR \\
        [--categorical C1,C2] [--seed N] [--method samplellm|classifier|hybrid] [--resample N]

For users who bring their own synthetic data (any generator: LLM, CTGAN, ...).
Inputs are Parquet, CSV or Delta, told apart by extension or by a
``_delta_log`` folder. The label may be any binary column: 0/1, booleans or
two strings (mapped in sorted order, the mapping goes into the report). The
command trains its own small model (Hessian feature groups, via
``recmodel.pipeline.fit_feature_groups``) and label models on bounded
samples, then writes a Delta table at ``DIR/weighted`` with every input
column plus ``weight`` and ``log_weight``, and ``DIR/report.json`` (+ PNG).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from jobs.platform.errors import InputError

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame, SparkSession

    from configs.settings import Settings

log = logging.getLogger(__name__)

LABEL = "__y"
NUMERIC_TYPES = ("byte", "short", "int", "bigint", "long", "float", "double", "decimal")
INTEGRAL_TYPES = ("tinyint", "smallint", "int", "bigint")


def read_any(spark: SparkSession, path: str, what: str) -> DataFrame:
    """Parquet, CSV or Delta by extension / folder layout; ``InputError`` naming the path."""
    from jobs.platform.tables import read_table

    p = Path(path)
    if not p.exists():
        raise InputError(f"--{what} {path}: no such file or directory")
    if (p / "_delta_log").is_dir():
        return read_table(spark, str(p.resolve()))
    files = (
        [p] if p.is_file() else sorted(q for q in p.iterdir() if not q.name.startswith(("_", ".")))
    )
    suffixes = {q.suffix.lower() for q in files}
    if suffixes <= {".csv"} and files:
        return spark.read.csv(str(p), header=True, inferSchema=True)
    if suffixes <= {".parquet"} and files:
        return spark.read.parquet(str(p))
    raise InputError(
        f"--{what} {path}: expected a .csv or .parquet file, a folder of them, or a Delta table"
    )


def check_columns(real: DataFrame, syn: DataFrame, label: str) -> list[str]:
    """The shared columns; ``InputError`` naming missing / extra synthetic columns."""
    if label not in real.columns:
        raise InputError(f"--label {label!r}: not a column of --real (columns {real.columns})")
    missing = [c for c in real.columns if c not in syn.columns]
    extra = [c for c in syn.columns if c not in real.columns]
    if missing or extra:
        raise InputError(
            f"--synthetic columns differ from --real: missing {missing}, extra {extra}"
        )
    internal = [c for c in real.columns if c.startswith("__")]
    if internal:
        raise InputError(f"columns {internal}: names starting with '__' are reserved")
    return list(real.columns)


def label_mapping(real: DataFrame, syn: DataFrame, label: str) -> dict[Any, int]:
    """Map the label's two values to 0/1 (0/1 and booleans kept; strings in sorted order)."""
    values = real.select(label).union(syn.select(label)).where(f"`{label}` IS NOT NULL").distinct()
    found = [r[0] for r in values.limit(3).collect()]
    if len(found) > 2 or not found:
        raise InputError(
            f"--label {label!r}: expected a binary column, found values {found[:3]}"
            + (" ..." if len(found) > 2 else "")
        )
    if all(not isinstance(v, str) and v in (0, 1) for v in found):
        return {v: int(v) for v in found}
    return {v: i for i, v in enumerate(sorted(found, key=str))}


def infer_types(
    real: DataFrame, features: list[str], categorical: list[str], settings: Settings
) -> tuple[list[str], list[str], list[str]]:
    """(categorical, numeric, id_like): strings/booleans and few-valued integers are categorical."""
    from pyspark.sql import functions as F

    unknown = [c for c in categorical if c not in features]
    if unknown:
        raise InputError(f"--categorical {unknown}: not feature columns of --real ({features})")
    types = dict(real.dtypes)
    counts = real.agg(*[F.approx_count_distinct(c).alias(c) for c in features]).first()
    cat, num, ids = [], [], []
    for c in features:
        integral = types[c] in INTEGRAL_TYPES
        is_num = types[c].split("(")[0] in NUMERIC_TYPES or types[c] in INTEGRAL_TYPES
        few = counts[c] <= settings.align.categorical_max_distinct
        if c in categorical or not is_num or (integral and few):
            (ids if counts[c] > settings.align.id_like_min_distinct else cat).append(c)
        else:
            num.append(c)
    return cat, num, ids


def hessian_groups(
    real: DataFrame, cat: list[str], num: list[str], settings: Settings, seed: int
) -> list[list[str]]:
    """Feature groups from the small model's Hessian map on a bounded real sample."""
    from jobs.stage2.reweight import bounded_sample
    from recmodel.features import FeatureSpec
    from recmodel.pipeline import fit_feature_groups

    n = settings.align.model_max_rows
    pdf = bounded_sample(real, n, seed, [*cat, *num, LABEL])
    result = fit_feature_groups(
        pdf,
        FeatureSpec(tuple(cat), tuple(num)),
        LABEL,
        gamma=settings.align.gamma,
        seed=seed,
        max_rows=n,
    )
    return result.groups


def prepare(
    real: DataFrame, syn: DataFrame, label: str, mapping: dict[Any, int]
) -> tuple[DataFrame, DataFrame, dict[str, int]]:
    """Add the 0/1 label column; drop (and count) rows whose label is null."""
    from pyspark.sql import functions as F

    expr = label_code(label, mapping)
    dropped = {}
    out = []
    for side, df in (("real", real), ("synthetic", syn)):
        nulls = df.where(F.col(label).isNull()).count()
        if nulls:
            dropped[f"{side}_null_label"] = nulls
        out.append(df.where(F.col(label).isNotNull()).withColumn(LABEL, expr))
    return out[0], out[1], dropped


def run_align(spark: SparkSession, args: Any, settings: Settings) -> dict[str, Any]:
    """Extract -> weights -> load; returns the report document."""
    from jobs.platform.tables import write_table
    from jobs.stage2 import report
    from jobs.stage2.reweight import Stage2Inputs, run_stage2
    from jobs.stage2.transforms import importance_resample

    real = read_any(spark, args.real, "real")
    syn = read_any(spark, args.synthetic, "synthetic")
    columns = check_columns(real, syn, args.label)
    mapping = label_mapping(real, syn, args.label)
    real, syn, dropped = prepare(real, syn, args.label, mapping)
    features = [c for c in columns if c != args.label]
    cat, num, ids = infer_types(real, features, args.categorical, settings)
    method = args.method or settings.align.method
    cfg = settings.weights.model_copy(update={"seed": args.seed})
    groups = [[c] for c in cat + num]
    if method != "classifier":
        groups = hessian_groups(real, cat, num, settings, args.seed)
    inputs = Stage2Inputs(real, syn, cat, num, LABEL, groups, syn_key=columns)
    result = run_stage2(inputs, cfg, method)
    weighted = result.df.select(*columns, "weight", "log_weight")
    out = Path(args.out).resolve()
    write_table(weighted, str(out / "weighted"), "overwrite", writer=settings.io.delta_writer)
    resample = args.resample or settings.align.resample_rows
    if resample:
        sample = importance_resample(weighted, resample, args.seed, columns)
        write_table(sample, str(out / "resampled"), "overwrite", writer=settings.io.delta_writer)
    doc = report.build_report(
        real,
        weighted.withColumn(LABEL, label_code(args.label, mapping)),
        result,
        columns=[*cat, *num, LABEL],
        categorical=[*cat, LABEL],
        real_weight=None,
        dropped=dropped,
        sdmetrics_rows=settings.weights.report_max_rows,
        seed=args.seed,
        key_cols=columns,
        extra={
            "label": args.label,
            "label_mapping": {str(k): v for k, v in mapping.items()},
            "categorical": cat,
            "numeric": num,
            "id_like_excluded": ids,
            "inputs": {"real": args.real, "synthetic": args.synthetic},
        },
    )
    report.write_report(doc, out)
    return doc


def label_code(label: str, mapping: dict[Any, int]) -> Column:
    """The label column mapped to 0/1 ints."""
    from pyspark.sql import functions as F

    expr = None
    for value, code in mapping.items():
        cond = F.col(label) == F.lit(value)
        expr = F.when(cond, code) if expr is None else expr.when(cond, code)
    return expr.cast("int")


def main(argv: Sequence[str] | None = None) -> int:
    """``coldstart align``: weighted Delta table + report for any table pair."""
    from configs.settings import load_config
    from jobs.platform.common import RunLog, job_parser
    from jobs.platform.spark import get_spark

    parser = job_parser("align", "Stage 2 (importance weights) on any table pair.", with_ds=False)
    parser.add_argument("--real", required=True, help="real rows: .parquet/.csv/Delta")
    parser.add_argument("--synthetic", required=True, help="synthetic rows, same columns")
    parser.add_argument("--label", required=True, help="binary label column")
    parser.add_argument("--out", required=True, help="output folder (DIR/weighted, report)")
    parser.add_argument(
        "--categorical", type=_csv_list, default=[], help="C1,C2: force categorical"
    )
    parser.add_argument("--seed", type=int, default=7, help="seed of every random choice")
    parser.add_argument("--method", choices=("samplellm", "classifier", "hybrid"), default=None)
    parser.add_argument("--resample", type=int, default=None, help="also write N resampled rows")
    args = parser.parse_args(argv)
    settings = load_config(args.config)
    run = RunLog("align")
    spark = get_spark(settings.spark)
    doc = run_align(spark, args, settings)
    run.add(rows_out=doc["rows_weighted"], ess_fraction=doc["ess_fraction"], method=doc["method"])
    for reason, n in doc["dropped"].items():
        run.drop(reason, n)
    run.emit()
    out = Path(args.out).resolve()
    print(f"weighted table: {out / 'weighted'}")
    print(f"report: {out / 'report.json'} (+ report.png); ESS {doc['ess_fraction']:.1%}")
    return 0


def _csv_list(value: str) -> list[str]:
    return [v.strip() for v in value.split(",") if v.strip()]


if __name__ == "__main__":
    import sys

    from jobs.cli import main as cli_main

    sys.exit(cli_main(["align", *sys.argv[1:]]))
