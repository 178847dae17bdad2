"""The publish gates: a daily candidate that violates a threshold is never published;
the weekly model gate rejects regressions beyond tolerance."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from configs.orchestration import GateSettings, ValidationSettings
from jobs.orchestration import weekly
from jobs.orchestration.publish import check, partition_rows, publish_day, report_tvd
from jobs.platform.errors import ValidationFailedError

DS = "2026-11-23"


def _figures(**over: object) -> dict:
    base = {
        "synthetic_rows": 100,
        "weighted_rows": 100,
        "bad_weights": 0,
        "ess_fraction": 0.5,
        "max_weight": 3.0,
        "tvd_mean": (0.3, 0.2),
    }
    return {**base, **over}


def test_check__clean_day_has_no_violations() -> None:
    assert check(_figures(), ValidationSettings()) == []


@pytest.mark.parametrize(
    ("over", "needle"),
    [
        ({"synthetic_rows": 3, "weighted_rows": 3}, "min_synthetic_rows"),
        ({"weighted_rows": 50}, "max_dropped_share"),
        ({"ess_fraction": 0.01}, "min_ess_fraction"),
        ({"bad_weights": 2}, "NaN"),
        ({"tvd_mean": (0.2, 0.3)}, "alignment"),
        ({"max_weight": 20.5}, "max_weight"),
    ],
)
def test_check__each_threshold_is_enforced(over: dict, needle: str) -> None:
    problems = check(_figures(**over), ValidationSettings())
    assert any(needle in p for p in problems), problems


def test_check__default_max_weight_is_twice_sqrt_rows() -> None:
    assert check(_figures(max_weight=19.9), ValidationSettings()) == []
    small = _figures(max_weight=19.9, weighted_rows=99, synthetic_rows=99)
    assert check(small, ValidationSettings())
    assert check(_figures(max_weight=25.0), ValidationSettings(max_weight=None)) == []


def test_report_tvd__means_over_dimensions() -> None:
    doc = {"tvd": {"a": {"before": 0.4, "after": 0.1}, "b": {"before": 0.2, "after": 0.3}}}
    assert report_tvd(doc) == pytest.approx((0.3, 0.2))
    assert report_tvd({}) is None


def test_gate__regression_beyond_tolerance_fails_and_within_passes() -> None:
    rules = GateSettings(tolerance=0.01, cold_start_tolerance=0.05)
    current = {"overall_auc": 0.70, "cold_start_auc": 0.60}
    assert weekly.gate({"overall_auc": 0.695, "cold_start_auc": 0.56}, current, rules) == []
    bad = weekly.gate({"overall_auc": 0.68, "cold_start_auc": 0.50}, current, rules)
    assert len(bad) == 2 and "overall_auc" in bad[0] and "cold_start_auc" in bad[1]
    assert weekly.gate({"overall_auc": 0.5}, None, rules)  # first model under min_auc
    assert weekly.gate({"overall_auc": None}, None, rules)


def test_publish_day__violating_candidate_is_not_published(spark, settings) -> None:
    from jobs.platform.tables import write_partition

    syn = spark.range(40).selectExpr("cast(id as string) as synth_id")
    write_partition(syn, settings.table_path(settings.tables.synthetic_raw), DS)
    # One dominant weight: ESS ~ 1 row of 40, far below min_ess_fraction.
    cand = spark.range(40).selectExpr(
        "cast(id as string) as synth_id",
        "case when id = 0 then 1000.0 else 0.001 end as weight",
    )
    cand = cand.selectExpr("*", "ln(weight) as log_weight")
    cand_path = settings.table_path(settings.orchestration.candidate_table)
    write_partition(cand, cand_path, DS)
    gold = settings.table_path(settings.tables.weighted_synthetic)

    with pytest.raises(ValidationFailedError, match="min_ess_fraction") as failed:
        publish_day(spark, settings, DS)
    assert "max_weight 1000.0 > max_weight sqrt_n" in str(failed.value)
    assert partition_rows(gold, DS) is None

    # Relax the gate (ESS and the sqrt(n) weight cap): the same candidate now publishes, whole.
    orch = settings.orchestration
    relaxed = {"min_ess_fraction": 0.001, "max_weight": None}
    loose = orch.model_copy(update={"validation": orch.validation.model_copy(update=relaxed)})
    relaxed_settings = settings.model_copy(update={"orchestration": loose})
    assert publish_day(spark, relaxed_settings, DS)["rows"] == 40 == partition_rows(gold, DS)
    # Publishing the day again replaces its gold partition: 40 rows, not 80.
    assert publish_day(spark, relaxed_settings, DS)["rows"] == 40 == partition_rows(gold, DS)


def _model(settings, version: str, auc: float, cold_auc: float) -> None:
    from pathlib import Path

    folder = Path(weekly.model_root(settings)) / version
    folder.mkdir(parents=True)
    meta = {"test": {"auc": auc, "logloss": 0.2}, "test_cold_start": {"auc": cold_auc}}
    (folder / weekly.META).write_text(json.dumps(meta))


def test_weekly__gate_then_publish_moves_the_pointer_only_when_it_passes(settings) -> None:
    _model(settings, "v1", 0.70, 0.60)
    assert weekly.new_version(set(), weekly.versions(settings)) == "v1"
    assert weekly.check_gate(settings, "v1")["metrics"]["cold_start_auc"] == 0.60
    weekly.publish(settings, "v1")
    assert weekly.published(settings)["model_version"] == "v1"

    before = weekly.versions(settings)
    _model(settings, "v2", 0.60, 0.60)
    assert weekly.new_version(before, weekly.versions(settings)) == "v2"
    with pytest.raises(ValidationFailedError, match="model v2 not published: overall_auc"):
        weekly.check_gate(settings, "v2")
    assert weekly.published(settings)["model_version"] == "v1"


def _with_validation(settings, **update):
    orch = settings.orchestration
    val = orch.validation.model_copy(update=update)
    return settings.model_copy(
        update={"orchestration": orch.model_copy(update={"validation": val})}
    )


def test_publish_day__standin_rows_never_reach_gold_unless_allowed(spark, settings) -> None:
    from configs.llm import STANDIN_MODEL
    from jobs.platform.lineage import read_lineage, write_lineage
    from jobs.platform.tables import write_partition

    syn = spark.range(40).selectExpr(
        "cast(id as string) as synth_id", f"'{STANDIN_MODEL}' as model"
    )
    write_partition(syn, settings.table_path(settings.tables.synthetic_raw), DS)
    cand = spark.range(40).selectExpr(
        "cast(id as string) as synth_id", "1.0 as weight", "0.0 as log_weight"
    )
    write_partition(cand, settings.table_path(settings.orchestration.candidate_table), DS)
    gold = settings.table_path(settings.tables.weighted_synthetic)
    strict = _with_validation(settings, allow_standin=False)

    with pytest.raises(ValidationFailedError, match="offline stand-in") as err:
        publish_day(spark, strict, DS)
    assert "\n" not in str(err.value) and STANDIN_MODEL in str(err.value)
    assert partition_rows(gold, DS) is None

    write_lineage(settings.warehouse, settings.tables.synthetic_raw, DS, {"run_id": "r1"})
    out = publish_day(spark, _with_validation(settings, allow_standin=True), DS)
    assert out["rows"] == 40 and out["models"] == [STANDIN_MODEL]
    gold_record = read_lineage(settings.warehouse, settings.tables.weighted_synthetic, DS)
    assert gold_record["synthetic"]["run_id"] == "r1" and gold_record["rows"] == 40
    assert gold_record["join"] == {"key": "synth_id", "table": "stage.synthetic_raw", "ds": DS}
    assert any("offline stand-in" in w for w in out["warnings"])


def test_gate__every_check_is_passed_failed_or_not_evaluated_with_a_reason() -> None:
    rules = GateSettings()
    current = {"overall_auc": 0.70, "cold_start_auc": 0.60}
    checks = weekly.evaluate_gate({"overall_auc": 0.70, "cold_start_auc": None}, current, rules)
    assert [(c.name, c.status) for c in checks] == [
        ("overall_auc", "passed"),
        ("cold_start_auc", "not evaluated"),
    ]
    assert all(c.reason for c in checks)
    # A cold-start check that could not run is not a pass ...
    problems = weekly.gate({"overall_auc": 0.70, "cold_start_auc": None}, current, rules)
    assert problems == [
        "cold_start_auc not evaluated: the new model has no finite cold_start_auc (None)"
    ]
    # ... unless the config says so; the first model needs the metric too.
    lax = GateSettings(require_cold_start=False)
    assert weekly.gate({"overall_auc": 0.70, "cold_start_auc": None}, current, lax) == []
    assert weekly.gate({"overall_auc": 0.70}, None, rules)
    assert weekly.gate({"overall_auc": 0.70, "cold_start_auc": 0.5}, None, rules) == []


def test_check_gate__records_every_check_in_gate_json(settings) -> None:
    _model(settings, "v1", 0.70, float("nan"))
    with pytest.raises(ValidationFailedError, match="cold_start_auc not evaluated"):
        weekly.check_gate(settings, "v1")
    record = json.loads((Path(weekly.model_root(settings)) / "v1" / weekly.GATE_RECORD).read_text())
    assert record["passed"] is False
    assert {c["name"]: c["status"] for c in record["checks"]} == {
        "min_auc": "passed",
        "cold_start_auc": "not evaluated",
    }
