"""Read the weighted Delta tables from Python without an abort at exit.

    from recmodel.reader import read_pandas
    pdf = read_pandas("warehouse/gold/weighted_synthetic", start="2026-11-17",
                      end="2026-11-23", columns=["app_id", "clicked", "weight"], version=12)

Why not ``DeltaTable(path).to_pyarrow_table()``: it returns the rows and then
the interpreter aborts at exit ("terminate called without an active
exception", exit 134) on this project's deltalake / pyarrow versions, and so
does ``to_pyarrow_dataset()`` often (delta-io/delta-rs#2184, apache/arrow#34314;
pola-rs/polars#24169 uses the same workaround as here). Both scan through
delta-rs's own file system object. This module asks delta-rs only for the
snapshot (its add actions: file paths and partition values, a log read) and
scans the Parquet files with pyarrow's own file system; that path exits 0.

Partitioned Delta tables do not store partition values (``ds``) in their
Parquet files; each file becomes a dataset fragment whose partition
expression carries them, so ``ds`` comes back as an ordinary column.

Reproducible training: every read takes a Delta table ``version``; pin the
one ``snapshot(path).version`` returned (the weekly trainer records them in
its ``meta.json`` under ``inputs``) and the same rows come back later.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import unquote

import pyarrow as pa
import pyarrow.dataset as pads
import pyarrow.fs as pafs

from jobs.platform import fs
from jobs.platform.errors import InputError, SchemaMismatchError, TableNotFoundError

if TYPE_CHECKING:
    import pandas as pd

DS = "ds"
# Reader features whose data the plain Parquet files do not fully describe:
# deletion vectors hide rows, column mapping renames physical columns.
UNSUPPORTED_FEATURES = ("deletionVectors", "columnMapping")


@dataclass(frozen=True)
class Snapshot:
    """One version of a Delta table: its schema and files with their partition values."""

    path: str
    version: int
    schema: pa.Schema
    partition_columns: tuple[str, ...]
    files: tuple[tuple[str, tuple[tuple[str, str | None], ...]], ...]

    def days(self) -> list[str]:
        """Sorted ``ds`` values of this snapshot ([] for an unpartitioned table)."""
        if DS not in self.partition_columns:
            return []
        return sorted({dict(parts)[DS] for _, parts in self.files} - {None})


def _filesystem(path: str) -> tuple[pafs.FileSystem, str]:
    """pyarrow's own file system for a URI (s3/s3a via jobs.platform.fs) or a local path."""
    return fs.resolve(path)


def _open(path: str, version: int | None):
    if not fs.is_delta_table(path):
        raise TableNotFoundError(f"table {path}: no Delta table there")
    if version is None:
        return fs.delta_table(path)
    if not isinstance(version, int) or version < 0:
        raise InputError(f"table {path}: version {version!r}: expected an integer >= 0")
    try:
        return fs.delta_table(path, version=version)
    except Exception as exc:  # delta-rs raises its own error types per cause
        latest = fs.delta_table(path).version()
        raise InputError(
            f"table {path}: cannot load version {version} (latest is {latest}; "
            f"older versions may be vacuumed): {str(exc).splitlines()[0]}"
        ) from None


def snapshot(path: str, version: int | None = None) -> Snapshot:
    """The table's snapshot at ``version`` (default: the latest), from the log only."""
    table = _open(path, version)
    protocol = table.protocol()
    features = set(protocol.reader_features or [])
    if protocol.min_reader_version == 2:
        features.add("columnMapping")
    bad = sorted(features & set(UNSUPPORTED_FEATURES))
    if bad:
        raise InputError(
            f"table {path}: uses Delta reader feature(s) {bad}; this reader scans plain "
            "Parquet files, read it with Spark (jobs.platform.tables.read_table)"
        )
    schema = pa.schema(table.schema().to_arrow())
    parts = tuple(table.metadata().partition_columns)
    actions = pa.table(table.get_add_actions(flatten=True))
    paths = actions.column("path").to_pylist()
    columns = {c: actions.column(f"partition.{c}").to_pylist() for c in parts}
    files = tuple((rel, tuple((c, columns[c][i]) for c in parts)) for i, rel in enumerate(paths))
    return Snapshot(path, table.version(), schema, parts, files)


def table_version(path: str) -> int:
    """The latest version of the Delta table at ``path`` (what a run should pin)."""
    return _open(path, None).version()


def _partition_expression(schema: pa.Schema, parts: Sequence[tuple[str, str | None]]):
    expr = None
    for name, value in parts:
        field = pads.field(name)
        if value is None:
            term = field.is_null()
        else:
            term = field == pa.scalar(value).cast(schema.field(name).type)
        expr = term if expr is None else expr & term
    return expr


def dataset(snap: Snapshot, days: Sequence[str] | None = None) -> pads.FileSystemDataset:
    """A pyarrow dataset over the snapshot's files (only ``days`` if given), ``ds`` included.

    Scans run on pyarrow's own file system, never through delta-rs.
    """
    table_fs, root = _filesystem(snap.path)
    fmt = pads.ParquetFileFormat()
    wanted = None if days is None else set(days)
    fragments = []
    for rel, parts in snap.files:
        if wanted is not None and dict(parts).get(DS) not in wanted:
            continue
        if "://" in rel:
            file_fs, file_path = _filesystem(rel)
        else:
            file_fs, file_path = table_fs, f"{root.rstrip('/')}/{unquote(rel)}"
        expr = _partition_expression(snap.schema, parts)
        fragments.append(fmt.make_fragment(file_path, file_fs, partition_expression=expr))
    return pads.FileSystemDataset(fragments, snap.schema, fmt, table_fs)


def select_days(
    snap: Snapshot,
    start: str | None = None,
    end: str | None = None,
    days: Sequence[str] | None = None,
) -> list[str]:
    """The snapshot's ``ds`` values in [start, end] (inclusive) or among ``days``.

    Errors name the table when a bound is not a date, when both a range and a
    list are given, or when an asked-for day is not in the snapshot.
    """
    for value in (start, end, *(days or [])):
        if value is not None:
            _check_date(snap.path, value)
    if days is not None and (start is not None or end is not None):
        raise InputError(f"table {snap.path}: give days or start/end, not both")
    if DS not in snap.partition_columns:
        raise InputError(f"table {snap.path}: not partitioned by {DS!r}; read it without days")
    have = snap.days()
    if days is not None:
        missing = sorted(set(days) - set(have))
        if missing:
            raise TableNotFoundError(
                f"table {snap.path}: no partition ds={missing[0]} in version {snap.version}"
            )
        return sorted(set(days))
    return [d for d in have if (start is None or d >= start) and (end is None or d <= end)]


def _check_date(path: str, value: str) -> None:
    try:
        ok = dt.date.fromisoformat(value).isoformat() == value
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise InputError(f"table {path}: day {value!r}: expected a date YYYY-MM-DD")


def _columns(snap: Snapshot, columns: Sequence[str] | None, fill_missing: bool) -> list[str]:
    if columns is None:
        return snap.schema.names
    missing = [c for c in columns if c not in snap.schema.names]
    if missing and not fill_missing:
        raise SchemaMismatchError(
            f"table {snap.path}: no column {missing[0]!r} (has {', '.join(snap.schema.names)})"
        )
    return list(dict.fromkeys(columns))


def read_batches(
    path: str,
    start: str | None = None,
    end: str | None = None,
    *,
    days: Sequence[str] | None = None,
    columns: Sequence[str] | None = None,
    version: int | None = None,
    batch_rows: int = 65_536,
    filter: pads.Expression | None = None,
    fill_missing: bool = False,
) -> Iterator[pa.RecordBatch]:
    """Record batches of the days [start, end] (or ``days``) of one table version.

    ``columns`` selects and orders columns (``ds`` included on request);
    ``fill_missing`` turns a column the table lacks into nulls instead of an
    error (the trainer reads real and synthetic rows with one column list).
    """
    snap = snapshot(path, version)
    yield from scan(
        snap,
        start,
        end,
        days=days,
        columns=columns,
        batch_rows=batch_rows,
        filter=filter,
        fill_missing=fill_missing,
    )


def scan(
    snap: Snapshot,
    start: str | None = None,
    end: str | None = None,
    *,
    days: Sequence[str] | None = None,
    columns: Sequence[str] | None = None,
    batch_rows: int = 65_536,
    filter: pads.Expression | None = None,
    fill_missing: bool = False,
    shard: tuple[int, int] = (0, 1),
) -> Iterator[pa.RecordBatch]:
    """``read_batches`` on an already resolved snapshot; ``shard=(i, n)`` reads every n-th file."""
    whole = start is None and end is None and days is None
    wanted = None if whole else select_days(snap, start, end, days)
    data = dataset(snap, wanted)
    index, count = shard
    if count > 1:
        frags = list(data.get_fragments())[index::count]
        data = pads.FileSystemDataset(frags, data.schema, data.format, data.filesystem)
    names = _columns(snap, columns, fill_missing)
    read = [c for c in names if c in snap.schema.names]
    for rb in data.to_batches(columns=read, filter=filter, batch_size=batch_rows):
        if rb.num_rows == 0:
            continue
        if read != names:
            arrays = [rb.column(c) if c in read else pa.nulls(rb.num_rows) for c in names]
            rb = pa.RecordBatch.from_arrays(arrays, names=names)
        yield rb


def read_table(
    path: str,
    start: str | None = None,
    end: str | None = None,
    *,
    days: Sequence[str] | None = None,
    columns: Sequence[str] | None = None,
    version: int | None = None,
) -> pa.Table:
    """One Arrow table of the selected days/columns of one version (bounded data only)."""
    snap = snapshot(path, version)
    names = _columns(snap, columns, fill_missing=False)
    batches = list(scan(snap, start, end, days=days, columns=names))
    schema = pa.schema([snap.schema.field(c) for c in names])
    return pa.Table.from_batches(batches, schema=schema)


def read_pandas(
    path: str,
    start: str | None = None,
    end: str | None = None,
    *,
    days: Sequence[str] | None = None,
    columns: Sequence[str] | None = None,
    version: int | None = None,
) -> pd.DataFrame:
    """``read_table(...).to_pandas()``: for a day or a sample, not for a week of logs."""
    return read_table(path, start, end, days=days, columns=columns, version=version).to_pandas()
