"""``coldstart align`` end to end on small files (real Spark, real Delta, real models)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from jobs.cli import main as cli
from jobs.platform.tables import read_table


def _draw(rng: np.random.Generator, n: int, p_a: tuple[float, float, float]) -> pd.DataFrame:
    a = rng.choice(["x", "y", "z"], n, p=p_a)
    b = np.where(rng.random(n) < 0.7, a, rng.choice(["x", "y", "z"], n))
    c = rng.normal(size=n) + (a == "x")
    logit = -0.3 + 1.0 * (a == b) + 0.8 * c
    y = np.where(rng.random(n) < 1 / (1 + np.exp(-logit)), "Good", "Bad")
    uid = [f"u{i}" for i in rng.integers(0, 10**6, n)]
    return pd.DataFrame({"a": a, "b": b, "c": c, "uid": uid, "y": y})


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    """Real rows as CSV; synthetic rows over-represent a == 'z' ~2.5x, as Parquet."""
    root = tmp_path_factory.mktemp("align_in")
    rng = np.random.default_rng(0)
    _draw(rng, 3000, (0.5, 0.3, 0.2)).to_csv(root / "real.csv", index=False)
    syn = _draw(rng, 1500, (0.3, 0.2, 0.5))
    syn.to_parquet(root / "syn.parquet", index=False)
    syn.assign(y="Good").to_parquet(root / "one_class.parquet", index=False)
    syn.assign(extra=1).drop(columns="c").to_parquet(root / "bad_cols.parquet", index=False)
    syn.assign(y=np.where(syn["y"] == "Good", "Good", "Meh")).to_csv(root / "three.csv")
    return {p.stem: p for p in root.iterdir()}


def _config(tmp_path: Path) -> str:
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(
        "spark: {master: 'local[2]', shuffle_partitions: 4}\n"
        "weights: {report_max_rows: 300, label_model_max_rows: 1500,"
        " classifier: {max_rows: 1500, max_iter: 40}}\n"
        "align: {model_max_rows: 1500}\n"
    )
    return str(cfg)


def _align(tmp_path: Path, real: str, syn: str, out: str, *extra: str) -> int:
    """``coldstart align`` on two files with label ``y`` (``extra``: further options)."""
    argv = ["align", "--config", _config(tmp_path), "--real", real, "--synthetic", syn]
    return cli([*argv, "--label", "y", "--out", out, *extra])


def test_align__string_label_csv_and_parquet_in_delta_and_report_out(
    spark, files, tmp_path, capsys
):
    out = tmp_path / "out"
    # Run
    rc = _align(tmp_path, str(files["real"]), str(files["syn"]), str(out), "--method", "samplellm")
    # Assert: exit 0, paths printed, every input column + weight/log_weight
    assert rc == 0
    printed = capsys.readouterr().out
    assert str(out / "weighted") in printed and str(out / "report.json") in printed
    table = read_table(spark, str(out / "weighted")).toPandas()
    assert list(table.columns) == ["a", "b", "c", "uid", "y", "weight", "log_weight"]
    assert len(table) == 1500
    np.testing.assert_allclose(table["weight"].mean(), 1.0, rtol=1e-9)
    np.testing.assert_allclose(np.log(table["weight"]), table["log_weight"], rtol=1e-9)
    assert table.loc[table["a"] == "z", "weight"].mean() < 0.7
    doc = json.loads((out / "report.json").read_text())
    assert doc["label_mapping"] == {"Bad": 0, "Good": 1}
    assert doc["id_like_excluded"] == ["uid"] and doc["numeric"] == ["c"]
    assert sorted(f for g in doc["feature_groups"] for f in g) == ["a", "b", "c"]
    assert doc["tvd"]["a"]["after"] < 0.5 * doc["tvd"]["a"]["before"]
    assert 0.2 < doc["ess_fraction"] <= 1.0 and doc["label_term"] is True
    assert doc["sdmetrics"]["resampled"]["score"] > doc["sdmetrics"]["raw"]["score"]
    assert (out / "report.png").stat().st_size > 1000


def test_align__classifier_method_down_weights_the_over_represented_region(spark, files, tmp_path):
    out = tmp_path / "out"
    rc = _align(
        tmp_path,
        str(files["real"]),
        str(files["syn"]),
        str(out),
        "--method",
        "classifier",
        "--resample",
        "200",
    )
    assert rc == 0
    table = read_table(spark, str(out / "weighted")).toPandas()
    assert table.loc[table["a"] == "z", "weight"].mean() < 0.7
    doc = json.loads((out / "report.json").read_text())
    assert doc["method"] == "classifier"
    assert doc["tvd"]["a"]["after"] < 0.5 * doc["tvd"]["a"]["before"]
    assert read_table(spark, str(out / "resampled")).count() == 200


def test_align__one_label_class_skips_label_term_with_warning(spark, files, tmp_path):
    out = tmp_path / "out"
    rc = _align(
        tmp_path, str(files["real"]), str(files["one_class"]), str(out), "--method", "samplellm"
    )
    assert rc == 0
    doc = json.loads((out / "report.json").read_text())
    assert doc["label_term"] is False
    assert any("label term skipped" in w for w in doc["warnings"])


def test_align__missing_and_extra_columns_are_named(spark, files, tmp_path, capsys):
    rc = _align(tmp_path, str(files["real"]), str(files["bad_cols"]), str(tmp_path / "o"))
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 1
    assert err[-1] == (
        "coldstart align: error: --synthetic columns differ from --real: "
        "missing ['c'], extra ['extra']"
    )
    assert not (tmp_path / "o").exists()


def test_align__non_binary_label_and_missing_file_fail(spark, files, tmp_path, capsys):
    real = pd.read_csv(files["real"])
    real.to_csv(tmp_path / "real_idx.csv")
    rc = _align(tmp_path, str(tmp_path / "real_idx.csv"), str(files["three"]), str(tmp_path / "o"))
    assert rc == 1
    assert "--label 'y': expected a binary column" in capsys.readouterr().err
    rc = _align(tmp_path, str(tmp_path / "nope.csv"), str(files["syn"]), str(tmp_path / "o"))
    assert rc == 1
    assert "--real" in (err := capsys.readouterr().err) and "no such file" in err
