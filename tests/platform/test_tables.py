"""Delta IO layer on real Delta tables: idempotency, atomicity, schema checks."""

from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq
import pytest
from deltalake import DeltaTable

from jobs.platform import tables as T
from jobs.platform.errors import InputError, SchemaMismatchError, TableNotFoundError
from recmodel.reader import read_table as read_delta_rs


@pytest.fixture()
def small_df(spark):
    return spark.range(100).selectExpr(
        "id", "cast(id * 0.5 as double) as x", "cast(id % 3 as string) as s"
    )


def test_write_partition__rerun_is_idempotent(spark, tmp_path: Path, small_df) -> None:
    path = str(tmp_path / "t")
    T.write_partition(small_df, path, "2026-11-20")
    T.write_partition(small_df, path, "2026-11-21")
    T.write_partition(small_df, path, "2026-11-20")  # re-run of one day
    counts = {
        r["ds"]: r["count"] for r in T.read_table(spark, path).groupBy("ds").count().collect()
    }
    assert counts == {"2026-11-20": 100, "2026-11-21": 100}
    assert T.partitions(spark, path) == ["2026-11-20", "2026-11-21"]


def test_write_partition__replaces_only_its_partition(spark, tmp_path: Path, small_df) -> None:
    path = str(tmp_path / "t")
    T.write_partition(small_df, path, "2026-11-20")
    T.write_partition(small_df, path, "2026-11-21")
    T.write_partition(small_df.limit(7), path, "2026-11-21")
    assert T.read_table(spark, path, "2026-11-20").count() == 100
    assert T.read_table(spark, path, "2026-11-21").count() == 7


def test_write_partition__schema_mismatch_leaves_table_intact(
    spark, tmp_path: Path, small_df
) -> None:
    path = str(tmp_path / "t")
    T.write_partition(small_df, path, "2026-11-20")
    version = DeltaTable(path).version()
    attempts = sorted((tmp_path / "t").rglob("attempt-*"))
    with pytest.raises(SchemaMismatchError, match=r"missing column 'x'"):
        T.write_partition(small_df.drop("x"), path, "2026-11-20")
    with pytest.raises(SchemaMismatchError, match=r"column 's' is int64, table has string"):
        T.write_partition(small_df.withColumn("s", small_df["id"]), path, "2026-11-20")
    assert DeltaTable(path).version() == version
    assert T.read_table(spark, path, "2026-11-20").count() == 100
    assert sorted((tmp_path / "t").rglob("attempt-*")) == attempts  # nothing left behind


def test_read_table__delta_rs_written_table_reads_in_spark_and_delta_rs(
    spark, tmp_path: Path, small_df
) -> None:
    path = str(tmp_path / "t")
    T.write_partition(small_df, path, "2026-11-20")
    via_spark = sorted(tuple(r) for r in T.read_table(spark, path).collect())
    # delta-rs's snapshot, scanned by pyarrow (to_pyarrow_table may abort at exit, issue 17).
    via_rs = read_delta_rs(path).to_pylist()
    assert len(via_rs) == 100
    assert sorted((r["id"], r["x"], r["s"], r["ds"]) for r in via_rs) == via_spark
    assert DeltaTable(path).metadata().partition_columns == ["ds"]


def test_read_table__uncommitted_files_are_invisible(spark, tmp_path: Path, small_df) -> None:
    path = str(tmp_path / "t")
    T.write_partition(small_df, path, "2026-11-20")
    # A crashed attempt: Parquet files in the table folder, never committed.
    orphan = tmp_path / "t" / "ds=2026-11-20" / "attempt-dead"
    orphan.mkdir()
    pq.write_table(small_df.toArrow(), orphan / "part-00000.parquet")
    assert T.read_table(spark, path, "2026-11-20").count() == 100
    assert read_delta_rs(path).num_rows == 100


def test_write_table__overwrite_and_append(spark, tmp_path: Path, small_df) -> None:
    path = str(tmp_path / "u")
    T.write_table(small_df, path)
    T.write_table(small_df, path, mode="append")
    assert T.read_table(spark, path).count() == 200
    T.write_table(small_df.limit(5), path)
    assert T.read_table(spark, path).count() == 5
    with pytest.raises(InputError, match="write mode"):
        T.write_table(small_df, path, mode="upsert")


def test_read_table__version_reads_that_snapshot_of_a_rewritten_partition(
    spark, tmp_path: Path, small_df
) -> None:
    path = str(tmp_path / "t")
    T.write_partition(small_df, path, "2026-11-20")
    first = DeltaTable(path).version()
    T.write_partition(small_df.limit(7), path, "2026-11-20")  # a re-run rewrites the day
    assert T.read_table(spark, path, "2026-11-20").count() == 7
    assert T.read_table(spark, path, "2026-11-20", version=first).count() == 100


def test_read_table__missing_table_and_partition(spark, tmp_path: Path, small_df) -> None:
    with pytest.raises(TableNotFoundError, match="no Delta table"):
        T.read_table(spark, str(tmp_path / "none"))
    path = str(tmp_path / "t")
    T.write_partition(small_df, path, "2026-11-20")
    with pytest.raises(TableNotFoundError, match="ds=2026-11-22"):
        T.read_table(spark, path, "2026-11-22")
    with pytest.raises(InputError, match="YYYY-MM-DD"):
        T.read_table(spark, path, "20261120")


def test_validate_ds__rejects_non_dates() -> None:
    assert T.validate_ds("2026-02-28") == "2026-02-28"
    for bad in ("2026-02-30", "2026-2-1", "yesterday", ""):
        with pytest.raises(InputError):
            T.validate_ds(bad)


def test_write_partition__failed_job_leaves_previous_version(
    spark, tmp_path: Path, small_df
) -> None:
    from pyspark.sql import functions as F

    path = str(tmp_path / "t")
    T.write_partition(small_df, path, "2026-11-20")
    version = DeltaTable(path).version()
    attempts = sorted((tmp_path / "t").rglob("attempt-*"))
    # Same schema, but the Spark job dies on executors half-way through the write.
    ok = F.assert_true(F.col("id") < 50).isNull().cast("double")
    failing = small_df.withColumn("x", F.col("x") + ok)
    with pytest.raises(Exception, match="id < 50"):
        T.write_partition(failing, path, "2026-11-20")
    assert DeltaTable(path).version() == version
    assert T.read_table(spark, path, "2026-11-20").count() == 100
    assert sorted((tmp_path / "t").rglob("attempt-*")) == attempts
