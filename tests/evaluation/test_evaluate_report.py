"""``coldstart evaluate`` end to end on a tiny simulated day: every arm, every file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from configs.evaluation import ARMS
from jobs.evaluation.arms import LABELS

TINY = {
    "repeats": 2,
    "sim_rows": 3_000,
    "sim_cold_impression_share": 0.1,
    "cluster_k": 4,
    "exemplars_per_request": 3,
    "sdv_epochs": 1,
    "sdv_max_rows": 300,
    "quality_max_rows": 200,
    "dcr_max_rows": 200,
    "tsne_points": 60,
    "epochs": 1,
    "batch_size": 1024,
    "threads": 1,
}


@pytest.fixture()
def tiny_config(tmp_path: Path, warehouse: Path) -> Path:
    doc = {
        "warehouse": str(warehouse),
        "spark": {"master": "local[2]", "shuffle_partitions": 4},
        "evaluate": TINY,
    }
    path = tmp_path / "eval.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def _table(md: str, title: str) -> list[str]:
    """Data rows of the first Markdown table after the heading that contains ``title``."""
    lines = md.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("## ") and title in line)
    block: list[str] = []
    for line in lines[start + 1 :]:
        if line.startswith("|"):
            block.append(line)
        elif block:
            break
    return block[2:]  # header and separator rows first


def test_evaluate__tiny_simulated_day_writes_full_report(spark, tiny_config: Path, tmp_path: Path):
    # Setup
    from jobs.evaluation.evaluate import main

    out = tmp_path / "run"

    # Run
    code = main(["--config", str(tiny_config), "--dataset", "simulator", "--out", str(out)])

    # Assert: files
    assert code == 0
    for name in ("report.md", "report.html", "summary.json", "tsne.png", "weights.png"):
        assert (out / name).is_file() and (out / name).stat().st_size > 0, name
    assert list(out.glob("heatmap_*.png")) and list(out.glob("alignment_*.png"))
    md = (out / "report.md").read_text()
    # the header names the stage-1 endpoint and says the stand-in is not an LLM
    assert "offline-standin" in md and "NOT AN LLM" in md
    # Assert: the augmentation table has every arm, each with mean ± std and a p-value column
    rows = _table(md, "Augmentation utility")
    assert [r.split("|")[1].strip() for r in rows] == [LABELS[a] for a in ARMS]
    assert all(r.count("±") == 2 for r in rows)
    mle = _table(md, "MLE utility")
    assert [r.split("|")[1].strip() for r in mle] == [LABELS[a] for a in ARMS if a != "original"]
    summary = json.loads((out / "summary.json").read_text())
    assert set(summary["utility"]["augment"]) == set(ARMS)
    assert all(len(v) == 2 for v in summary["runs"]["augment"].values())
    assert summary["endpoint"]["standin"] is True
    sp = summary["similarity_privacy"]
    assert set(sp) == set(ARMS) - {"original"}
    assert all(0.0 <= v["quality"]["score"] <= 1.0 for v in sp.values())
    # every mean says how many finite repeats it rests on
    assert all(t["n_auc"] == t["repeats"] == 2 for t in summary["utility"]["augment"].values())
    # stage 1: requests and failures of every LLM arm, and each arm's DCR columns
    stage1 = _table(md, "Stage 1 requests per LLM arm")
    assert len(stage1) == 3 and all("profiles" in r and "(failed 0)" in r for r in stage1)
    quality = _table(md, "Similarity")
    assert all("age_band" in r.split("|")[-2] for r in quality)
    # stage-2 weights exist only on the weighted arms, with mean 1
    arms = summary["arms"]
    assert arms["samplellm"]["stage2"]["groups"] and not arms["no_is"]["stage2"]


def test_evaluate__unknown_arm_is_a_one_line_error(tiny_config: Path, capsys):
    from jobs.cli import main as cli

    args = ["--config", str(tiny_config), "--dataset", "simulator", "--arms", "gan9"]
    code = cli(["evaluate", *args])

    assert code != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("coldstart evaluate: error: --arms 'gan9'")


def test_summarise__a_non_finite_repeat_is_counted_not_hidden():
    import numpy as np

    from jobs.evaluation.downstream import Scores
    from jobs.evaluation.evaluate import summarise
    from jobs.evaluation.report import results_rows

    def scores(auc: float) -> Scores:
        return Scores(auc=auc, logloss=0.3, cold_auc=None, cold_logloss=None)

    runs = {"original": [scores(0.7), scores(0.72)], "samplellm": [scores(0.71), scores(np.nan)]}
    table = summarise(runs, ["original"])
    assert table["samplellm"]["n_auc"] == 1 and table["samplellm"]["repeats"] == 2
    rows = {r[0]: r for r in results_rows(["original", "samplellm"], table, "auc", "logloss")}
    assert rows[LABELS["samplellm"]][1].endswith("(n=1 of 2)")
    assert "(n=" not in rows[LABELS["original"]][1]


def test_parse_arms__the_real_model_arm_only_when_asked_for():
    from configs.evaluation import ARMS
    from jobs.evaluation.evaluate import parse_arms

    assert "samplellm_local" not in parse_arms(None, ARMS)  # minutes on a CPU: opt in
    assert parse_arms("samplellm_local,original", ARMS) == ("original", "samplellm_local")
