"""The publish gate of the daily chain: validate a day's weighted rows, then publish them.

    coldstart run-daily --ds 2026-11-23 --stages validate,publish

The weights step writes ``orchestration.candidate_table`` (default
``stage.weighted_candidate``), not ``gold.weighted_synthetic``. ``validate``
checks the candidate partition against ``orchestration.validation`` (row
counts, dropped share, effective sample size, largest weight, finite
positive weights, the alignment report's TVD before vs after) and raises
``ValidationFailedError`` naming every violated threshold. ``publish``
validates again and only then replaces ``gold.weighted_synthetic[ds]`` with
the candidate partition in one Delta commit, so the weekly training never
reads a day that failed the gate, and a re-run of a day replaces it whole.

Only aggregates reach the driver (one row of sums per check); row counts
of upstream partitions come from the Delta log's file statistics.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from jobs.platform import fs
from jobs.platform.errors import ValidationFailedError

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

    from configs.orchestration import ValidationSettings
    from configs.settings import Settings

log = logging.getLogger(__name__)

WEIGHT, LOG_WEIGHT, MODEL = "weight", "log_weight", "model"


@dataclass
class Validation:
    """Figures of one validation and the thresholds they violated."""

    ds: str
    figures: dict[str, Any] = field(default_factory=dict)
    violations: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.violations


def partition_rows(path: str, ds: str | None = None) -> int | None:
    """Rows of partition ``ds`` (or the whole table) from the Delta log; None if absent.

    Reads only the log's per-file ``numRecords`` statistics, never the data.
    """
    import pyarrow as pa

    if not fs.is_delta_table(path):
        return None
    actions = pa.table(fs.delta_table(path).get_add_actions(flatten=True))
    counts = actions.column("num_records").to_pylist()
    if ds is not None:
        col = "partition.ds"
        if col not in actions.column_names:
            return None
        values = actions.column(col).to_pylist()
        counts = [n for n, v in zip(counts, values, strict=True) if v == ds]
        if not counts:
            return None
    return int(sum(n or 0 for n in counts))


def weight_figures(df: DataFrame) -> dict[str, float | int]:
    """Rows, non-finite or non-positive weights, ESS and max weight: one aggregation."""
    from pyspark.sql import functions as F

    w = F.col(WEIGHT).cast("double")
    good = w.isNotNull() & ~F.isnan(w) & (w > 0) & (w < F.lit(float("inf")))
    gw = F.when(good, w)
    row = df.agg(
        F.count(F.lit(1)).alias("rows"),
        F.sum((~good | w.isNull()).cast("long")).alias("bad"),
        F.sum(gw).alias("s1"),
        F.sum(gw * gw).alias("s2"),
        F.max(gw).alias("max_w"),
    ).first()
    rows, s1, s2 = int(row["rows"]), float(row["s1"] or 0.0), float(row["s2"] or 0.0)
    ess = s1 * s1 / s2 if s2 > 0 else 0.0
    return {
        "weighted_rows": rows,
        "bad_weights": int(row["bad"] or 0),
        "ess": round(ess, 2),
        "ess_fraction": round(ess / rows, 4) if rows else 0.0,
        "max_weight": round(float(row["max_w"] or 0.0), 4),
    }


def report_tvd(doc: dict[str, Any]) -> tuple[float, float] | None:
    """Mean TVD before and after weighting over the report's dimensions."""
    tvd = doc.get("tvd") or {}
    pairs = [(v["before"], v["after"]) for v in tvd.values() if "before" in v and "after" in v]
    if not pairs:
        return None
    return (
        sum(b for b, _ in pairs) / len(pairs),
        sum(a for _, a in pairs) / len(pairs),
    )


def max_weight_cap(rule: float | str | None, rows: int) -> float | None:
    """The gate's largest allowed weight: a number, ``sqrt_n`` (2 * sqrt(rows)) or None."""
    if rule == "sqrt_n":
        return 2.0 * math.sqrt(max(rows, 1))
    return None if rule is None else float(rule)


def check(figures: dict[str, Any], rules: ValidationSettings) -> list[str]:
    """Every threshold of ``rules`` that ``figures`` violate, as readable sentences."""
    out: list[str] = []
    syn, rows = figures.get("synthetic_rows") or 0, figures["weighted_rows"]
    if syn < rules.min_synthetic_rows:
        out.append(f"synthetic_rows {syn} < min_synthetic_rows {rules.min_synthetic_rows}")
    if rows < rules.min_weighted_rows:
        out.append(f"weighted_rows {rows} < min_weighted_rows {rules.min_weighted_rows}")
    if syn and (dropped := 1 - rows / syn) > rules.max_dropped_share:
        out.append(f"dropped share {dropped:.3f} > max_dropped_share {rules.max_dropped_share}")
    if figures["bad_weights"]:
        out.append(f"{figures['bad_weights']} weights are null, NaN, inf or <= 0")
    if rows and figures["ess_fraction"] < rules.min_ess_fraction:
        out.append(
            f"ess_fraction {figures['ess_fraction']} < min_ess_fraction {rules.min_ess_fraction}"
        )
    cap = max_weight_cap(rules.max_weight, rows)
    if cap is not None and figures["max_weight"] > cap:
        rule = f"max_weight {rules.max_weight} ({cap:.4g})"
        out.append(f"max_weight {figures['max_weight']} > {rule}")
    tvd = figures.get("tvd_mean")
    if rules.max_tvd_ratio is not None and tvd is not None:
        before, after = tvd
        if after > before * rules.max_tvd_ratio + 1e-12:
            out.append(
                f"alignment: mean TVD after weighting {after:.4f} > {rules.max_tvd_ratio} x "
                f"before {before:.4f}"
            )
    return out


def read_report(settings: Settings, ds: str) -> tuple[str, dict[str, Any] | None]:
    """The weights run's alignment report JSON for ``ds`` (None if it wrote none)."""
    rel = settings.orchestration.report_dir.format(ds=ds)
    path = fs.join(settings.warehouse, rel, "report.json")
    return path, fs.read_json(path)


def synthetic_models(spark: SparkSession, settings: Settings, ds: str) -> list[str] | None:
    """Distinct ``model`` values of ``stage.synthetic_raw[ds]`` (None: table or column absent).

    One aggregation; only the handful of distinct model names reach the driver.
    """
    from jobs.platform.tables import partition_exists, read_table

    path, writer = settings.table_path(settings.tables.synthetic_raw), settings.io.delta_writer
    if not partition_exists(spark, path, ds, writer):
        return None
    df = read_table(spark, path, ds, writer=writer)
    if MODEL not in df.columns:
        return None
    return sorted(str(r[0]) for r in df.select(MODEL).distinct().collect())


def check_standin(
    models: list[str] | None, table: str, ds: str, allow: bool
) -> tuple[list[str], list[str]]:
    """(violations, warnings) of the stand-in rule: its rows never reach gold unless allowed."""
    from configs.llm import STANDIN_MODEL

    where = f"table {table} ds={ds}"
    if models is None:
        note = f"{where}: no '{MODEL}' column; cannot tell whether rows came from the stand-in"
        return ([note], []) if not allow else ([], [note])
    if STANDIN_MODEL not in models:
        return [], []
    note = f"{where}: rows came from the offline stand-in (model {STANDIN_MODEL!r}), not an LLM"
    if allow:
        return [], [f"{note}; accepted (orchestration.validation.allow_standin is true)"]
    return [f"{note}; orchestration.validation.allow_standin is false"], []


def validate_day(spark: SparkSession, settings: Settings, ds: str) -> Validation:
    """Validate the candidate partition of ``ds``; raise ``ValidationFailedError`` if bad."""
    from jobs.platform.tables import read_table
    from jobs.stage1.sample import require_columns

    orch, tables = settings.orchestration, settings.tables
    cand_path = settings.table_path(orch.candidate_table)
    result = Validation(ds)
    candidate = read_table(spark, cand_path, ds, writer=settings.io.delta_writer)
    require_columns(candidate, [WEIGHT, LOG_WEIGHT], f"table {orch.candidate_table}")
    result.figures.update(weight_figures(candidate))
    result.figures["synthetic_rows"] = partition_rows(settings.table_path(tables.synthetic_raw), ds)
    report_path, report = read_report(settings, ds)
    if report is None:
        note = f"no alignment report at {report_path}"
        if orch.validation.require_report:
            result.violations.append(note)
        else:
            result.warnings.append(note)
    else:
        result.figures["tvd_mean"] = report_tvd(report)
        result.figures["report"] = report_path
    models = synthetic_models(spark, settings, ds)
    result.figures["models"] = models
    bad, notes = check_standin(models, tables.synthetic_raw, ds, orch.validation.allow_standin)
    result.violations += bad
    result.warnings += notes
    result.violations += check(result.figures, orch.validation)
    for note in result.warnings:
        log.warning("validate ds=%s: %s", ds, note)
    result.figures["warnings"] = list(result.warnings)  # into the run's summary, not only the log
    if not result.ok:
        raise ValidationFailedError(
            f"table {orch.candidate_table} ds={ds} not published: " + "; ".join(result.violations)
        )
    return result


def publish_day(spark: SparkSession, settings: Settings, ds: str) -> dict[str, Any]:
    """Validate, then replace ``gold.weighted_synthetic[ds]`` with the candidate partition."""
    from jobs.platform.tables import read_table, write_partition

    validation = validate_day(spark, settings, ds)
    cand_path = settings.table_path(settings.orchestration.candidate_table)
    gold_path = settings.table_path(settings.tables.weighted_synthetic)
    candidate = read_table(spark, cand_path, ds, writer=settings.io.delta_writer)
    result = write_partition(candidate, gold_path, ds, writer=settings.io.delta_writer)
    if result.rows != validation.figures["weighted_rows"]:
        # A concurrent re-run of weights changed the candidate between the two reads.
        raise ValidationFailedError(
            f"table {settings.tables.weighted_synthetic} ds={ds}: published {result.rows} rows, "
            f"validated {validation.figures['weighted_rows']}; re-run validate and publish"
        )
    lineage = record_gold_lineage(settings, ds, result.version, validation)
    out = {"table": settings.tables.weighted_synthetic, "rows": result.rows, **validation.figures}
    return {**out, "lineage": lineage}


def record_gold_lineage(settings: Settings, ds: str, version: int, validation: Validation) -> str:
    """The gold partition's record: its synthetic source's record plus what validated it.

    A gold row joins back on ``synth_id`` to ``stage.synthetic_raw[ds]`` (model,
    prompt_version, exemplar clusters, request hash per row); the source record
    holds the synthesize run id, endpoint and instruction hash.
    """
    from jobs.platform.lineage import read_lineage, write_lineage

    tables = settings.tables
    source = read_lineage(settings.warehouse, tables.synthetic_raw, ds)
    if source is None:
        validation.warnings.append(f"{tables.synthetic_raw} ds={ds}: no lineage record")
    doc = {
        "table_version": version,
        "rows": validation.figures["weighted_rows"],
        "join": {"key": "synth_id", "table": tables.synthetic_raw, "ds": ds},
        "synthetic": source,
        "validation": validation.figures,
    }
    return write_lineage(settings.warehouse, tables.weighted_synthetic, ds, doc)
