"""Hessian interaction map and feature groups of a trained recall model.

    coldstart interactions                 # the latest model version
    coldstart interactions --model 20261124T101500Z-w2026-11-23-3fa2c1
    spark-submit jobs/model/interactions.py --model V

Attributes the model's logit on a bounded sample of the real rows of its
training window (paper eq. 10-11, ``interactions:`` config), merges strong
pairs into feature groups (eq. 12) and records them as one row of
``model.feature_groups`` (re-running a version replaces its row). The map
also lands next to the model artifact as ``interactions.json`` and a heatmap
``interactions.png``.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

log = logging.getLogger(__name__)

MODEL_VERSION = "model_version"
FEATURE_GROUP_COLUMNS = (
    "model_version",
    "gamma",
    "fields",
    "groups",
    "interaction_matrix",
    "created_at",
)


def sample_window_rows(
    path: str,
    days: list[str],
    columns: list[str],
    rows: int,
    seed: int,
    version: int | None = None,
) -> pd.DataFrame:
    """About ``rows`` uniformly drawn rows of the window, streamed (bounded memory).

    ``version`` is the Delta version the model was trained on (its meta.json
    lineage), so the attribution sees the model's own training window.
    """
    from jobs.platform.errors import EmptyInputError
    from recmodel import reader

    dataset = reader.dataset(reader.snapshot(path, version), days)
    total = dataset.count_rows()
    if total == 0:
        raise EmptyInputError(f"table {path}: no rows in ds {days} to attribute on")
    frac = min(1.0, 1.2 * rows / total)
    rng = np.random.default_rng(seed)
    parts = []
    for rb in dataset.to_batches(columns=columns, batch_size=65_536):
        keep = rng.random(rb.num_rows) < frac
        if keep.any():
            parts.append(rb.to_pandas()[keep])
    pdf = pd.concat(parts, ignore_index=True)
    return pdf.iloc[:rows].reset_index(drop=True) if len(pdf) > rows else pdf


def aligned_fields(
    fields: list[str], matrix: np.ndarray, identities: Sequence[str]
) -> tuple[list[str], np.ndarray]:
    """The fields stage 2 may align (identities left out) and their sub-map.

    Why: a group with ``app_id`` in it would weigh synthetic rows by how often
    real rows show their app, and a cold app has no real rows by definition:
    the weights would erase exactly the rows written for it. The threshold of
    eq. 12 is then taken relative to the largest remaining pair.
    """
    drop = set(identities)
    keep = [i for i, f in enumerate(fields) if f not in drop]
    return [fields[i] for i in keep], np.asarray(matrix)[np.ix_(keep, keep)]


def feature_groups_row(
    spark: SparkSession,
    version: str,
    gamma: float,
    fields: list[str],
    groups: list[list[str]],
    matrix: np.ndarray,
) -> DataFrame:
    """One ``model.feature_groups`` row (HELPERS.md contract; all groups, singletons included)."""
    from pyspark.sql.types import DoubleType, StringType, StructField, StructType

    schema = StructType(
        [
            StructField("model_version", StringType(), False),
            StructField("gamma", DoubleType(), False),
            StructField("fields", StringType(), False),
            StructField("groups", StringType(), False),
            StructField("interaction_matrix", StringType(), False),
            StructField("created_at", StringType(), False),
        ]
    )
    created = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    row = (
        version,
        float(gamma),
        json.dumps(fields),
        json.dumps(groups),
        json.dumps(np.asarray(matrix, dtype=float).round(10).tolist()),
        created,
    )
    return spark.createDataFrame([row], schema)


def record_groups(spark: SparkSession, path: str, row: DataFrame, version: str, writer: str) -> int:
    """Append the row; if this version already has one, rewrite the (tiny) table without it."""
    from pyspark.sql import functions as F

    from jobs.platform.tables import read_table, table_exists, write_table

    if not table_exists(spark, path, writer):
        return write_table(row, path, mode="append", writer=writer).version
    existing = read_table(spark, path, writer=writer)
    if existing.where(F.col(MODEL_VERSION) == version).limit(1).count() == 0:
        return write_table(row, path, mode="append", writer=writer).version
    # One row per model version: the table has one row per trained model, so
    # rewriting it is cheap; localCheckpoint cuts the read-then-overwrite cycle.
    kept = existing.where(F.col(MODEL_VERSION) != version).select(*FEATURE_GROUP_COLUMNS)
    merged = kept.unionByName(row).localCheckpoint()
    return write_table(merged, path, mode="overwrite", writer=writer).version


def main(argv: Sequence[str] | None = None) -> int:
    """``coldstart interactions [--model V]``."""
    from configs.settings import load_config
    from jobs.platform.common import RunLog, job_parser
    from jobs.platform.spark import get_spark
    from recmodel.artifacts import latest_version, load_artifact, model_root, write_bytes
    from recmodel.groups import feature_groups, top_pairs
    from recmodel.heatmap import heatmap_png
    from recmodel.pipeline import model_interactions

    parser = job_parser("interactions", "Hessian interaction map + feature groups.", with_ds=False)
    parser.add_argument("--model", default=None, help="model version (default: the latest)")
    args = parser.parse_args(argv)
    settings = load_config(args.config)
    cfg = settings.interactions
    root = model_root(settings.warehouse)
    version = args.model or latest_version(root)
    run = RunLog("interactions")
    art = load_artifact(root, version)
    fields = list(art.encoder.spec.fields)
    logs_path = settings.table_path(settings.tables.user_logs)
    # Models trained before lineage have no "inputs": read the latest version.
    trained_on = art.meta.get("inputs", {}).get(settings.tables.user_logs, {}).get("version")
    pdf = sample_window_rows(
        logs_path, list(art.meta["days"]), fields, 2 * cfg.rows, cfg.seed, trained_on
    )
    full = model_interactions(art.model, art.encoder, pdf, cfg)
    fields, matrix = aligned_fields(fields, full, art.encoder.spec.hashed)
    groups = feature_groups(matrix, fields, cfg.gamma)
    doc = {
        "model_version": version,
        "gamma": cfg.gamma,
        "fields": fields,
        "groups": groups,
        "interaction_matrix": matrix.tolist(),
        "model_fields": list(art.encoder.spec.fields),
        "model_interaction_matrix": full.tolist(),
        "settings": cfg.model_dump(mode="json"),
    }
    write_bytes(f"{art.path}/interactions.json", json.dumps(doc, indent=1).encode())
    png = heatmap_png(matrix, fields, groups, f"Hessian interactions, model {version}")
    write_bytes(f"{art.path}/interactions.png", png)
    spark = get_spark(settings.spark)
    fg_path = settings.table_path(settings.tables.feature_groups)
    row = feature_groups_row(spark, version, cfg.gamma, fields, groups, matrix)
    table_version = record_groups(spark, fg_path, row, version, settings.io.delta_writer)
    top = top_pairs(matrix, fields, 5)
    run.add(
        model_version=version,
        rows=len(pdf),
        groups=groups,
        table=fg_path,
        table_version=table_version,
        top_pairs=top,
    )
    run.emit()
    merged = [g for g in groups if len(g) > 1]
    print(f"interactions of model {version}: groups {merged} (gamma={cfg.gamma})")
    print("  top pairs: " + ", ".join(f"{a} x {b} = {v:.4g}" for a, b, v in top))
    print(f"  -> {fg_path} and {art.path}/interactions.png")
    return 0


if __name__ == "__main__":
    from jobs.cli import main as cli_main

    sys.exit(cli_main(["interactions", *sys.argv[1:]]))
