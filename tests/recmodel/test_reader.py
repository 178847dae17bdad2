"""recmodel.reader and MixedDeltaDataset on real Delta tables written by jobs.platform.tables.

The crash test runs the README's reader snippet in fresh interpreters: the
abort this reader avoids happens at interpreter exit, so only a new process
per run can see it.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from jobs.platform import schema as S
from jobs.platform.errors import InputError, SchemaMismatchError, TableNotFoundError
from recmodel.data import SYNTHETIC

REPO = Path(__file__).resolve().parents[2]
DAYS = ("2026-11-21", "2026-11-22", "2026-11-23")
LOGS_DDL = f"{S.EVENT_ID} long, {S.APP_ID} string, {S.CATEGORY} string, {S.CLICKED} int"
SYN_DDL = f"{S.SYNTH_ID} string, {S.APP_ID} string, {S.CLICKED} int, {S.WEIGHT} double"


def _logs(spark, day: str, n: int = 40, offset: int = 0):
    rows = [
        (offset + i, f"app_{i % 5}", ["games", "tools"][i % 2], int(i % 3 == 0)) for i in range(n)
    ]
    return spark.createDataFrame(rows, LOGS_DDL)


def _synthetic(spark, day: str, n: int = 12):
    rows = [(f"{day}-{i}", f"app_{i % 3}", i % 2, 0.25 + i / 8) for i in range(n)]
    return spark.createDataFrame(rows, SYN_DDL)


@pytest.fixture(scope="module")
def tables(spark, tmp_path_factory) -> dict[str, Path]:
    """raw.user_logs and gold.weighted_synthetic, three days each (versions 0, 1, 2)."""
    from jobs.platform.tables import write_partition

    root = tmp_path_factory.mktemp("reader") / "warehouse"
    logs, syn = root / "raw" / "user_logs", root / "gold" / "weighted_synthetic"
    for k, day in enumerate(DAYS):
        write_partition(_logs(spark, day, offset=1_000 * k), str(logs), day)
        write_partition(_synthetic(spark, day), str(syn), day)
    return {"root": root, "logs": logs, "synthetic": syn}


def _spark_rows(spark, path: Path, days: list[str], columns: list[str]) -> pd.DataFrame:
    from jobs.platform.tables import read_table

    pdf = read_table(spark, str(path), ds=days).select(*columns).toPandas()
    return pdf.sort_values(columns).reset_index(drop=True)


def test_read__day_range_and_columns_match_spark_with_ds_as_a_column(spark, tables):
    from recmodel.reader import read_batches, read_pandas

    cols = [S.DS, S.APP_ID, S.WEIGHT]
    pdf = read_pandas(str(tables["synthetic"]), start=DAYS[1], end=DAYS[2], columns=cols)
    assert list(pdf.columns) == cols
    got = pdf.sort_values(cols).reset_index(drop=True)
    pd.testing.assert_frame_equal(
        got, _spark_rows(spark, tables["synthetic"], list(DAYS[1:]), cols)
    )
    batches = list(read_batches(str(tables["logs"]), days=[DAYS[0]], columns=[S.EVENT_ID]))
    assert [b.schema.names for b in batches] == [[S.EVENT_ID]] * len(batches)
    ids = [i for b in batches for i in b.column(0).to_pylist()]
    assert sorted(ids) == list(range(40))


def test_read__bad_column_day_and_version_fail_naming_the_table(tables):
    from recmodel.reader import read_pandas

    path = str(tables["synthetic"])
    with pytest.raises(SchemaMismatchError, match=rf"{re.escape(path)}: no column 'price'"):
        read_pandas(path, columns=["price"])
    with pytest.raises(TableNotFoundError, match=r"no partition ds=2026-11-30 in version 2"):
        read_pandas(path, days=["2026-11-30"])
    with pytest.raises(InputError, match=r"day '2026-11-3': expected a date"):
        read_pandas(path, start="2026-11-3")
    with pytest.raises(InputError, match=r"cannot load version 9 \(latest is 2"):
        read_pandas(path, version=9)
    with pytest.raises(TableNotFoundError, match="no Delta table there"):
        read_pandas(str(tables["root"] / "gold" / "nothing"))


def test_read__pinned_version_returns_the_rows_before_a_day_was_overwritten(spark, tmp_path):
    from jobs.platform.tables import write_partition
    from recmodel.reader import read_pandas, table_version

    path = str(tmp_path / "user_logs")
    write_partition(_logs(spark, DAYS[0]), path, DAYS[0])
    write_partition(_logs(spark, DAYS[1], offset=100), path, DAYS[1])
    pinned = table_version(path)
    before = read_pandas(path, columns=[S.DS, S.EVENT_ID], version=pinned)
    write_partition(_logs(spark, DAYS[0], n=7, offset=500), path, DAYS[0])
    assert table_version(path) == pinned + 1
    again = read_pandas(path, columns=[S.DS, S.EVENT_ID], version=pinned)
    pd.testing.assert_frame_equal(again, before)
    assert sorted(again[again[S.DS] == DAYS[0]][S.EVENT_ID]) == list(range(40))
    latest = read_pandas(path, days=[DAYS[0]], columns=[S.EVENT_ID])
    assert sorted(latest[S.EVENT_ID]) == list(range(500, 507))


def test_mixed_dataset__real_rows_weigh_one_synthetic_rows_keep_their_weight(tables):
    from recmodel.data import DeltaSource
    from recmodel.dataset import MixedDeltaDataset
    from recmodel.reader import read_pandas

    real = DeltaSource(str(tables["logs"]), DAYS[:2], version=1)
    syn = DeltaSource(str(tables["synthetic"]), DAYS[1:], weight=S.WEIGHT, version=2)
    cols = [S.DS, S.EVENT_ID, S.SYNTH_ID, S.APP_ID, S.CLICKED]

    def data(seed: int):
        return MixedDeltaDataset(
            real,
            syn,
            cols,
            keep_real=lambda f: f[S.EVENT_ID] % 2 == 0,
            batch_rows=16,
            shuffle_rows=50,
            seed=seed,
            batch_size=10,
        )

    batches = list(data(seed=3))
    assert all(len(b) <= 10 for b in batches)
    rows = pd.concat(batches, ignore_index=True)
    is_real = rows[S.SYNTH_ID].isna()
    assert (rows.loc[is_real, S.WEIGHT] == 1.0).all()
    assert sorted(rows.loc[is_real, S.EVENT_ID]) == [
        i + k * 1_000 for k in (0, 1) for i in range(0, 40, 2)
    ]
    expected = read_pandas(syn.path, days=list(syn.days), columns=[S.SYNTH_ID, S.WEIGHT])
    got = rows.loc[~is_real, [S.SYNTH_ID, S.WEIGHT]].sort_values(S.SYNTH_ID)
    assert np.allclose(got[S.WEIGHT], expected.sort_values(S.SYNTH_ID)[S.WEIGHT])
    assert len(got) == 24 and not got[S.WEIGHT].eq(1.0).all()
    # Synthetic rows reach the first shuffle buffer; the same seed gives the same order.
    assert (~is_real[:50]).any()
    again = pd.concat(list(data(seed=3)), ignore_index=True)
    pd.testing.assert_frame_equal(again, rows)


def test_mixed_dataset__worker_shards_partition_the_files(tables):
    from torch.utils.data import DataLoader

    from recmodel.data import DeltaSource
    from recmodel.dataset import MixedDeltaDataset

    real = DeltaSource(str(tables["logs"]), DAYS)
    data = MixedDeltaDataset(real, None, [S.EVENT_ID], batch_rows=8)
    whole = sorted(pd.concat(list(data.frames()))[S.EVENT_ID])
    parts = [sorted(pd.concat(list(data.frames((i, 2))))[S.EVENT_ID]) for i in range(2)]
    assert sorted(parts[0] + parts[1]) == whole and len(whole) == 120
    assert parts[0] and parts[1]
    # Two forked DataLoader workers: no delta-rs call in a worker (its runtime
    # panics after fork), each row exactly once.
    loader = DataLoader(data, batch_size=None, num_workers=2)
    assert sorted(pd.concat(list(loader))[S.EVENT_ID]) == whole


def _readme_snippet(marker: str) -> str:
    text = (REPO / "README.md").read_text()
    found = re.search(rf"<!-- reader-snippet: {marker} .*?-->\n```python\n(.*?)```", text, re.S)
    assert found, f"README.md has no reader snippet {marker!r}"
    return found.group(1)


def exit_codes(code: str, runs: int, cwd: Path) -> list[int]:
    """Exit codes of ``runs`` fresh interpreters running ``code`` in ``cwd``."""
    codes = []
    for _ in range(runs):
        proc = subprocess.run(
            [sys.executable, "-c", code], cwd=cwd, capture_output=True, text=True, timeout=120
        )
        # An abort at exit (SIGABRT: -6 here, 134 in a shell) comes after the output;
        # anything else is a plain failure whose stderr the assertion shows.
        assert proc.returncode in (0, -6, 134) and proc.stdout.strip(), proc.stderr[-2000:]
        codes.append(proc.returncode)
    return codes


def test_readme_snippet__exits_zero_in_ten_fresh_processes(tables):
    # Run from the warehouse's parent: the snippet reads "warehouse/gold/...".
    codes = exit_codes(_readme_snippet("pandas"), 10, tables["root"].parent)
    assert codes == [0] * 10


def test_train_inputs__recorded_versions_read_the_same_rows_after_a_rewrite(spark, settings):
    from jobs.model.train import frames_for, resolve_inputs
    from jobs.platform.tables import write_partition, write_table

    day = DAYS[0]
    rc = settings.recmodel.model_copy(update={"use_synthetic": True})
    settings = settings.model_copy(update={"recmodel": rc})
    logs = settings.table_path(settings.tables.user_logs)
    syn = settings.table_path(settings.tables.weighted_synthetic)
    apps = settings.table_path(settings.tables.apps)
    write_partition(_logs(spark, day), logs, day)
    write_partition(_synthetic(spark, day), syn, day)
    app_rows = [(f"app_{i}", i == 4) for i in range(5)]
    write_table(
        spark.createDataFrame(app_rows, f"{S.APP_ID} string, {S.IS_COLD_START} boolean"), apps
    )
    inputs, _ = resolve_inputs(settings, day)
    assert inputs.tables == {
        settings.tables.user_logs: {"path": logs, "version": 0, "days": [day]},
        settings.tables.weighted_synthetic: {"path": syn, "version": 0, "days": [day]},
        settings.tables.apps: {"path": apps, "version": 0},
    }
    assert inputs.cold_apps == frozenset({"app_4"})
    before = pd.concat(list(frames_for(inputs, rc, "train")), ignore_index=True)
    assert set(before[S.WEIGHT]) > {1.0}
    assert int(before[SYNTHETIC].sum()) == 12  # every synthetic row, flagged for pruning
    write_partition(_logs(spark, day, n=9, offset=900), logs, day)
    pins = {name: t["version"] for name, t in inputs.tables.items()}
    pinned, _ = resolve_inputs(settings, day, pins)
    again = pd.concat(list(frames_for(pinned, rc, "train")), ignore_index=True)
    pd.testing.assert_frame_equal(again, before)
    latest, _ = resolve_inputs(settings, day)
    assert latest.tables[settings.tables.user_logs]["version"] == 1
    assert latest.real.version == 1


def test_same_rows_as__reads_the_versions_a_model_recorded(settings, warehouse):
    import json

    from jobs.model.train import pinned_versions

    inputs = {"raw.user_logs": {"path": "p", "version": 4, "days": [DAYS[0]]}}
    for version, meta in {
        "v1": {"weeks_ending": DAYS[0], "inputs": inputs},
        "v0": {"weeks_ending": DAYS[0]},
    }.items():
        folder = warehouse / "model" / "recall" / version
        folder.mkdir(parents=True)
        (folder / "meta.json").write_text(json.dumps(meta))
    assert pinned_versions(settings, "v1", DAYS[0]) == {"raw.user_logs": 4}
    with pytest.raises(InputError, match=r"trained for --weeks-ending 2026-11-21, not 2026-11-22"):
        pinned_versions(settings, "v1", DAYS[1])
    with pytest.raises(InputError, match=r"model v0: meta.json has no 'inputs'"):
        pinned_versions(settings, "v0", DAYS[0])
    with pytest.raises(InputError, match=r"model version 'v9' not found"):
        pinned_versions(settings, "v9", DAYS[0])


def test_train_window__synthetic_rows_train_a_new_apps_identity(spark, settings):
    # Setup: real rows on app_0..app_3 only; the cold app_4 exists only in synthetic rows.
    from jobs.model.train import check_window, resolve_inputs, train_window
    from jobs.platform.tables import write_partition, write_table
    from recmodel.features import hash_slots

    day = DAYS[0]
    logs = settings.table_path(settings.tables.user_logs)
    real = [(i, f"app_{i % 4}", ["games", "tools"][i % 2], int(i % 3 == 0)) for i in range(400)]
    write_partition(spark.createDataFrame(real, LOGS_DDL), logs, day)
    syn = [(f"s{i}", "app_4", i % 2, 1.0) for i in range(60)]
    write_partition(spark.createDataFrame(syn, SYN_DDL), settings.table_path(
        settings.tables.weighted_synthetic), day)  # fmt: skip
    apps = [(f"app_{i}", i == 4) for i in range(5)]
    write_table(spark.createDataFrame(apps, f"{S.APP_ID} string, {S.IS_COLD_START} boolean"),
                settings.table_path(settings.tables.apps))  # fmt: skip

    def identity(use_synthetic: bool) -> np.ndarray:
        rc = settings.recmodel.model_copy(update={
            "use_synthetic": use_synthetic, "categorical": (S.CATEGORY,), "numeric": (),
            "id_fields": (S.APP_ID,), "id_buckets": 1024,
        })  # fmt: skip
        mine = settings.model_copy(update={"recmodel": rc})
        inputs, _ = resolve_inputs(mine, day)
        out = train_window(inputs, rc, check_window(inputs.real.path, [day]))
        slots = hash_slots(pd.Series([f"app_{i}" for i in range(5)]), 1024)
        table = out["model"].cat_emb[out["encoder"].spec.categorical.index(S.APP_ID)]
        return table.weight.detach().numpy()[slots]

    # Run
    without, with_syn = identity(False), identity(True)
    # Assert: warm apps' identities train either way; the cold app's only from its rows.
    assert np.abs(without[:4]).sum(1).min() > 0
    assert not without[4].any()
    assert np.abs(with_syn[4]).sum() > 0.1 * np.abs(with_syn[:4]).sum(1).mean()
