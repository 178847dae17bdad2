"""``coldstart weights`` on hand-built contract tables (no LLM, no upstream jobs).

Real rows come from the simulator, down-sampled with a ``sample_weight``;
synthetic rows are another simulated day with the 'games' category
over-represented, in the stage.synthetic_raw contract.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pyspark.sql import functions as F

from jobs.cli import main as cli
from jobs.platform import schema as S
from jobs.platform.tables import read_table, write_partition, write_table
from jobs.stage2.weights import OUTPUT_COLUMNS

DS = "2026-11-20"
GROUPS = [["age_band", "interest", "category"], ["device", "price"], ["hour"], ["gender"]]


def _config(tmp_path: Path) -> str:
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(
        "spark: {master: 'local[2]', shuffle_partitions: 4}\n"
        "weights: {method: samplellm, report_max_rows: 300, label_model_max_rows: 3000, "
        "resample_rows: 500}\n"
    )
    return str(cfg)


def _simulated(settings, tmp_path: Path, ds: str, seed: int, rows: int):
    assert (
        cli(
            [
                "simulate",
                "--config",
                _config(tmp_path),
                "--ds",
                ds,
                "--rows",
                str(rows),
                "--seed",
                str(seed),
            ]
        )
        == 0
    )
    from jobs.platform.spark import get_spark

    spark = get_spark(settings.spark)
    return read_table(spark, settings.table_path(settings.tables.user_logs), ds)


@pytest.fixture()
def day(spark, settings, tmp_path):
    """Writes sampled_logs[DS], synthetic_raw[DS] and model.feature_groups."""
    real = _simulated(settings, tmp_path, DS, 1, 6000)
    keep = (F.col(S.CLICKED) == 1) | (F.xxhash64(S.EVENT_ID) % 2 == 0)
    sampled = real.where(keep).withColumn(
        "sample_weight", F.when(F.col(S.CLICKED) == 1, 1.0).otherwise(2.0)
    )
    write_partition(sampled, settings.table_path(settings.tables.sampled_logs), DS)
    other = _simulated(settings, tmp_path, "2026-11-19", 2, 3000)
    games = other.where(F.col(S.CATEGORY) == "games")
    syn = (
        other.unionByName(games)
        .unionByName(games)
        .select(
            F.concat(F.lit("s"), F.monotonically_increasing_id().cast("string")).alias(S.SYNTH_ID),
            *S.PROFILE_FIELDS,
            S.APP_ID,
            S.CATEGORY,
            S.PRICE,
            S.RATING,
            *S.CONTEXT_FIELDS,
            S.CLICKED,
            F.lit(0.1).alias("click_prob"),
            F.array(F.lit(1), F.lit(2)).alias("exemplar_cluster_ids"),
            F.lit("h").alias("request_hash"),
            F.lit("stand-in").alias("model"),
            F.lit("v1").alias("prompt_version"),
        )
    )
    write_partition(syn, settings.table_path(settings.tables.synthetic_raw), DS)
    fg = spark.createDataFrame(
        [
            (
                "m1",
                0.5,
                json.dumps(S.LOG_FEATURE_FIELDS),
                json.dumps([["age_band"]]),
                "[]",
                "2026-11-01T00:00:00",
            ),
            (
                "m2",
                0.5,
                json.dumps(S.LOG_FEATURE_FIELDS),
                json.dumps(GROUPS),
                "[]",
                "2026-11-02T00:00:00",
            ),
        ],
        "model_version string, gamma double, fields string, groups string, "
        "interaction_matrix string, created_at string",
    )
    write_table(fg, settings.table_path(settings.tables.feature_groups), "append")
    return real.count(), syn.count()


def test_weights__writes_contract_partition_report_and_is_idempotent(
    spark, settings, tmp_path, day
):
    _, n_syn = day
    gold_path = settings.table_path(settings.tables.weighted_synthetic)
    # Run twice: a re-run replaces the partition with the same rows
    assert cli(["weights", "--config", _config(tmp_path), "--ds", DS]) == 0
    first = read_table(spark, gold_path, DS).toPandas().sort_values(S.SYNTH_ID)
    assert cli(["weights", "--config", _config(tmp_path), "--ds", DS]) == 0
    second = read_table(spark, gold_path, DS).toPandas().sort_values(S.SYNTH_ID)
    # Assert: contract columns, all rows, mean weight 1, games down-weighted
    assert list(first.columns) == [*OUTPUT_COLUMNS, S.DS]
    report_dir = Path(settings.warehouse) / "reports" / "weights" / f"ds={DS}"
    doc = json.loads((report_dir / "report.json").read_text())
    copies = doc["copies"]
    assert doc["dropped"]["copy_of_real_row"] == copies["dropped"]
    assert len(first) == len(second) == n_syn - copies["dropped"]
    assert copies["kept_exact_match_rate"] <= copies["holdout_exact_match_rate"] + 0.01
    assert first[S.SYNTH_ID].tolist() == second[S.SYNTH_ID].tolist()
    assert second["weight"].to_numpy() == pytest.approx(first["weight"].to_numpy(), rel=1e-6)
    assert first["weight"].mean() == pytest.approx(1.0)
    games = first[S.CATEGORY] == "games"
    assert first.loc[games, "weight"].mean() < 0.6 * first.loc[~games, "weight"].mean()
    assert set(first["model_version"]) == {"m2"}
    assert first["run_id"].nunique() == 1 and first["run_id"][0] != second["run_id"][0]
    resampled = read_table(spark, settings.table_path(settings.weights.resampled_table), DS)
    assert resampled.count() == 500
    assert doc["feature_groups"] == [g for g in GROUPS if g != ["hour"]]
    assert doc["tvd"]["category"]["after"] < 0.5 * doc["tvd"]["category"]["before"]
    assert doc["label_term"] is True and doc["ess_fraction"] > 0.2
    # One 64-bit key per group value: the report states its collision bound.
    assert doc["key_collision_bound"] == pytest.approx(doc["frequency_keys"] ** 2 / 2**65)
    assert 0 < doc["key_collision_bound"] < 1e-12


def _tiny(spark, columns: list[str], n: int = 4):
    rows = [
        {
            c: (
                1.0
                if c in (S.PRICE, S.RATING, "sample_weight")
                else i % 2
                if c == S.CLICKED
                else f"v{i}"
            )
            for c in columns
        }
        for i in range(n)
    ]
    return spark.createDataFrame(rows)


def test_weights__missing_synthetic_column_is_named(spark, settings, tmp_path, capsys):
    # Setup: contract tables, but synthetic_raw lacks 'device'
    real_cols = [*S.SYNTH_FEATURE_FIELDS, S.CLICKED, "sample_weight"]
    write_partition(_tiny(spark, real_cols), settings.table_path(settings.tables.sampled_logs), DS)
    syn_cols = [S.SYNTH_ID, S.APP_ID, *S.SYNTH_FEATURE_FIELDS, *S.CONTEXT_FIELDS, S.CLICKED]
    syn = _tiny(spark, [c for c in syn_cols if c != S.DEVICE])
    write_partition(syn, settings.table_path(settings.tables.synthetic_raw), DS)
    fg = spark.createDataFrame(
        [("m1", 0.5, "[]", json.dumps(GROUPS), "[]", "2026-11-01T00:00:00")],
        "model_version string, gamma double, fields string, groups string, "
        "interaction_matrix string, created_at string",
    )
    write_table(fg, settings.table_path(settings.tables.feature_groups))
    # Run
    rc = cli(["weights", "--config", _config(tmp_path), "--ds", DS])
    # Assert: one line naming table and column; nothing written
    assert rc == 1
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        "coldstart weights: error: table stage.synthetic_raw: missing column(s) ['device']"
    )
    assert not Path(settings.table_path(settings.tables.weighted_synthetic)).exists()
