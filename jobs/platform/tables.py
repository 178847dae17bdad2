"""Delta table IO for every job: one partition replaced per write, atomically.

Two writers behind one function (DESIGN.md, "Delta without the JVM jars"):

* **native** - Spark's ``format("delta")`` with ``replaceWhere`` when the Delta
  extension is on the session's classpath (a real cluster image).
* **delta-rs** - everywhere else. Spark's executors write the Parquet files in
  parallel into a fresh, attempt-unique folder inside the table; the driver
  then reads only the files' footers and commits exactly those files to the
  Delta log in one delta-rs transaction (``overwrite`` with a ``ds`` partition
  filter). Nothing of the day's data passes through the driver. A write that
  dies before the commit leaves files that no snapshot references, so readers
  never see them and the previous version stays current.

Reads without the extension list the current snapshot's files through
delta-rs and hand them to ``spark.read.parquet``. Both writers produce
standard Delta tables that either reader opens.
"""

from __future__ import annotations

import contextlib
import json
import logging
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from jobs.platform import fs
from jobs.platform.errors import InputError, SchemaMismatchError, TableNotFoundError
from jobs.platform.schema import DS

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

log = logging.getLogger(__name__)

DELTA_EXTENSION = "io.delta.sql.DeltaSparkSessionExtension"
STAGING_PREFIX = "attempt-"


@dataclass(frozen=True)
class WriteResult:
    """What a write committed: for run logs and idempotency checks."""

    path: str
    version: int
    files: int
    rows: int
    partition: str | None


# -- writer selection --------------------------------------------------------


def native_delta_available(spark: SparkSession) -> bool:
    """True when Spark itself can read and write Delta (extension configured)."""
    return DELTA_EXTENSION in (spark.conf.get("spark.sql.extensions", "") or "")


def _use_native(spark: SparkSession, writer: str) -> bool:
    if writer == "native":
        if not native_delta_available(spark):
            raise InputError(
                f"io.delta_writer is 'native' but spark.sql.extensions lacks {DELTA_EXTENSION}"
            )
        return True
    if writer == "delta-rs":
        return False
    return native_delta_available(spark)


# -- schema helpers ----------------------------------------------------------


def _arrow_schema(df: DataFrame) -> pa.Schema:
    from pyspark.sql.pandas.types import to_arrow_schema

    return to_arrow_schema(df.schema)


def _type_map(schema: pa.Schema) -> dict[str, str]:
    return {f.name: str(f.type) for f in schema}


def _check_schema(path: str, existing: pa.Schema, incoming: pa.Schema) -> None:
    """Raise naming every column that is missing, extra or of another type."""
    old, new = _type_map(existing), _type_map(incoming)
    problems = [f"missing column {c!r}" for c in old if c not in new]
    problems += [f"unexpected column {c!r}" for c in new if c not in old]
    problems += [
        f"column {c!r} is {new[c]}, table has {old[c]}"
        for c in new
        if c in old and new[c] != old[c]
    ]
    if problems:
        raise SchemaMismatchError(f"table {path}: schema mismatch: {'; '.join(problems)}")


def _delta_arrow_schema(dt) -> pa.Schema:
    return pa.schema(dt.schema().to_arrow())


# -- delta-rs path -----------------------------------------------------------


def _filesystem(path: str) -> tuple[pafs.FileSystem, str]:
    return fs.resolve(path)


def _table_exists(path: str) -> bool:
    return fs.is_delta_table(path)


def _add_actions(path: str, rel_dir: str, partition: dict[str, str]) -> tuple[list, int]:
    """Build one AddAction per Parquet file Spark wrote under ``rel_dir``.

    Only the footers are read (row counts for the Delta stats), never the data.
    """
    from deltalake.transaction import AddAction

    filesystem, root = _filesystem(path)
    infos = filesystem.get_file_info(pafs.FileSelector(f"{root}/{rel_dir}", recursive=False))
    actions, rows = [], 0
    for info in sorted(infos, key=lambda i: i.path):
        if not info.is_file or not info.base_name.endswith(".parquet"):
            continue
        with filesystem.open_input_file(info.path) as fh:
            n = pq.ParquetFile(fh).metadata.num_rows
        rows += n
        actions.append(
            AddAction(
                path=f"{rel_dir}/{info.base_name}",
                size=info.size,
                partition_values=partition,
                modification_time=int(info.mtime.timestamp() * 1000),
                data_change=True,
                stats=json.dumps({"numRecords": n}),
            )
        )
    return actions, rows


def _remove_dir(path: str, rel_dir: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        fs.delete_dir(fs.join(path, rel_dir))


def _check_target(path: str, table_schema: pa.Schema, partition: str | None) -> bool:
    """Whether the table exists; raise if its schema or partitioning differ from the write."""
    if not _table_exists(path):
        return False
    dt = fs.delta_table(path)
    _check_schema(path, _delta_arrow_schema(dt), table_schema)
    table_parts = dt.metadata().partition_columns
    want = [DS] if partition is not None else []
    if list(table_parts) != want:
        raise SchemaMismatchError(
            f"table {path}: partitioned by {list(table_parts)}, write expects {want}"
        )
    return True


def staging_dir(partition: str | None) -> str:
    """A fresh, attempt-unique folder (relative to the table) for one write's files."""
    prefix = f"{DS}={partition}/" if partition is not None else ""
    return f"{prefix}{STAGING_PREFIX}{uuid.uuid4().hex}"


def commit_files(
    path: str, rel_dir: str, table_schema: pa.Schema, partition: str | None, mode: str
) -> WriteResult:
    """Commit the Parquet files under ``path/rel_dir`` in one delta-rs transaction.

    The Python half of the delta-rs writer: Spark (or anything else) has put
    the files there; this reads their footers and replaces partition
    ``partition`` (or the table, or appends) with exactly them. Works on every
    location of ``jobs.platform.fs`` (local, ``s3://``, ``s3a://``).
    """
    from deltalake import Schema
    from deltalake.transaction import create_table_with_add_actions

    exists = _check_target(path, table_schema, partition)
    actions, rows = _add_actions(path, rel_dir, {DS: partition} if partition else {})
    part_by = [DS] if partition is not None else None
    if exists:
        filters = [(DS, "=", partition)] if partition is not None and mode == "overwrite" else None
        fs.delta_table(path).create_write_transaction(
            actions, mode=mode, schema=table_schema, partition_by=part_by, partition_filters=filters
        )
    else:
        create_table_with_add_actions(
            fs.delta_uri(path),
            Schema.from_arrow(table_schema),
            actions,
            mode="error",
            partition_by=part_by,
            storage_options=fs.storage_options(path),
        )
    version = fs.delta_table(path).version()
    return WriteResult(path, version, len(actions), rows, partition)


def _write_delta_rs(df: DataFrame, path: str, partition: str | None, mode: str) -> WriteResult:
    data = df.drop(DS) if partition is not None else df
    data_schema = _arrow_schema(data)
    table_schema = (
        pa.schema([*data_schema, pa.field(DS, pa.string())])
        if partition is not None
        else data_schema
    )
    _check_target(path, table_schema, partition)
    rel_dir = staging_dir(partition)
    try:
        data.write.mode("errorifexists").parquet(f"{path.rstrip('/')}/{rel_dir}")
        return commit_files(path, rel_dir, table_schema, partition, mode)
    except BaseException:
        # Uncommitted files are invisible to readers; removing them is tidiness.
        _remove_dir(path, rel_dir)
        raise


# -- native path -------------------------------------------------------------


def _write_native(df: DataFrame, path: str, partition: str | None, mode: str) -> WriteResult:
    from pyspark.sql.utils import AnalysisException

    writer = df.write.format("delta").mode(mode)
    if partition is not None:
        writer = writer.partitionBy(DS)
        if mode == "overwrite":
            writer = writer.option("replaceWhere", f"{DS} = '{partition}'")
    try:
        writer.save(path)
    except AnalysisException as exc:
        raise SchemaMismatchError(f"table {path}: {str(exc).splitlines()[0]}") from exc
    spark = df.sparkSession
    last = spark.sql(f"DESCRIBE HISTORY delta.`{path}` LIMIT 1").collect()[0]
    metrics = last["operationMetrics"] or {}
    return WriteResult(
        path,
        int(last["version"]),
        int(metrics.get("numFiles", 0)),
        int(metrics.get("numOutputRows", 0)),
        partition,
    )


# -- public API --------------------------------------------------------------


def validate_ds(ds: str) -> str:
    """Return ``ds`` if it is an ISO date ``YYYY-MM-DD``; raise ``InputError`` otherwise."""
    import datetime as dt

    try:
        parsed = dt.date.fromisoformat(ds)
    except (TypeError, ValueError):
        raise InputError(f"--ds {ds!r}: expected a date YYYY-MM-DD") from None
    if parsed.isoformat() != ds:
        raise InputError(f"--ds {ds!r}: expected a date YYYY-MM-DD")
    return ds


def write_partition(df: DataFrame, path: str, ds: str, writer: str = "auto") -> WriteResult:
    """Replace exactly partition ``ds`` of the table at ``path`` with ``df``.

    ``df`` may carry a ``ds`` column (it must then hold only ``ds``) or not;
    the partition value always comes from the argument. Re-running with the
    same data leaves the table with the same rows: idempotent by construction.
    """
    from pyspark.sql import functions as F

    validate_ds(ds)
    if DS in df.columns:
        df = df.drop(DS)
    df = df.withColumn(DS, F.lit(ds))
    if _use_native(df.sparkSession, writer):
        result = _write_native(df, path, ds, "overwrite")
    else:
        result = _write_delta_rs(df, path, ds, "overwrite")
    log.info(
        "wrote %s ds=%s version=%d files=%d rows=%d",
        path,
        ds,
        result.version,
        result.files,
        result.rows,
    )
    return result


def write_table(
    df: DataFrame, path: str, mode: str = "overwrite", writer: str = "auto"
) -> WriteResult:
    """Write an unpartitioned table (``overwrite`` replaces it, ``append`` adds)."""
    if mode not in ("overwrite", "append"):
        raise InputError(f"write mode {mode!r}: expected 'overwrite' or 'append'")
    if _use_native(df.sparkSession, writer):
        result = _write_native(df, path, None, mode)
    else:
        result = _write_delta_rs(df, path, None, mode)
    log.info("wrote %s mode=%s version=%d rows=%d", path, mode, result.version, result.rows)
    return result


def table_exists(spark: SparkSession, path: str, writer: str = "auto") -> bool:
    """Whether a Delta table exists at ``path``."""
    if _use_native(spark, writer):
        from delta.tables import DeltaTable as SparkDeltaTable

        return SparkDeltaTable.isDeltaTable(spark, path)
    return _table_exists(path)


def partitions(spark: SparkSession, path: str, writer: str = "auto") -> list[str]:
    """Sorted ``ds`` values present in the current snapshot (from the log, not a scan)."""
    if not table_exists(spark, path, writer):
        return []
    if _use_native(spark, writer):
        rows = spark.read.format("delta").load(path).select(DS).distinct().collect()
        return sorted(r[DS] for r in rows)
    actions = pa.table(fs.delta_table(path).get_add_actions(flatten=True))
    col = f"partition.{DS}"
    if col not in actions.column_names:
        return []
    return sorted({v for v in actions.column(col).to_pylist() if v is not None})


def partition_exists(spark: SparkSession, path: str, ds: str, writer: str = "auto") -> bool:
    """Whether partition ``ds`` exists in the current snapshot."""
    return ds in partitions(spark, path, writer)


def read_table(
    spark: SparkSession,
    path: str,
    ds: str | list[str] | None = None,
    writer: str = "auto",
    version: int | None = None,
) -> DataFrame:
    """Read a Delta table (optionally only some ``ds`` partitions) as a DataFrame.

    ``version`` reads that Delta version (time travel), e.g. the one a model's
    ``meta.json`` recorded. Raises ``TableNotFoundError`` naming the path, or
    the missing partition.
    """
    from pyspark.sql import functions as F

    wanted = [ds] if isinstance(ds, str) else ds
    for d in wanted or []:
        validate_ds(d)
    if not table_exists(spark, path, writer):
        raise TableNotFoundError(f"table {path}: no Delta table there")
    if _use_native(spark, writer):
        reader = spark.read.format("delta")
        if version is not None:
            reader = reader.option("versionAsOf", version)
        df = reader.load(path)
        if wanted is not None:
            missing = [d for d in wanted if not partition_exists(spark, path, d, writer)]
            if missing:
                raise TableNotFoundError(f"table {path}: no partition ds={missing[0]}")
            df = df.where(F.col(DS).isin(wanted))
        return df
    return _read_delta_rs(spark, path, wanted, version)


def _read_delta_rs(
    spark: SparkSession, path: str, wanted: list[str] | None, version: int | None = None
) -> DataFrame:
    from pyspark.sql import functions as F
    from pyspark.sql.pandas.types import from_arrow_schema

    dt = fs.delta_table(path) if version is None else fs.delta_table(path, version=version)
    schema = _delta_arrow_schema(dt)
    part_cols = list(dt.metadata().partition_columns)
    data_schema = pa.schema([f for f in schema if f.name not in part_cols])
    spark_schema = from_arrow_schema(data_schema)
    actions = pa.table(dt.get_add_actions(flatten=True))
    root = path.rstrip("/")
    by_part: dict[str | None, list[str]] = {}
    part_col = f"partition.{DS}" if DS in part_cols else None
    paths = actions.column("path").to_pylist()
    values = actions.column(part_col).to_pylist() if part_col else [None] * len(paths)
    for rel, value in zip(paths, values, strict=True):
        by_part.setdefault(value, []).append(rel if "://" in rel else f"{root}/{rel}")
    if wanted is not None:
        missing = [d for d in wanted if d not in by_part]
        if missing:
            raise TableNotFoundError(f"table {path}: no partition ds={missing[0]}")
        by_part = {d: by_part[d] for d in wanted}
    frames = []
    for value, files in sorted(by_part.items(), key=lambda kv: str(kv[0])):
        frame = spark.read.schema(spark_schema).parquet(*files)
        if part_col:
            frame = frame.withColumn(DS, F.lit(value))
        frames.append(frame)
    if not frames:
        empty = spark.createDataFrame([], from_arrow_schema(schema))
        return empty.select(*[f.name for f in schema])
    out = frames[0]
    for frame in frames[1:]:
        out = out.unionByName(frame)
    return out.select(*[f.name for f in schema])
