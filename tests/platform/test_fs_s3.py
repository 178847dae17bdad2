"""jobs.platform.fs end to end against a real S3-compatible server on loopback.

The server is moto's (``moto[server]``), started by the fixture as its own
process on a free port; every read and write below is real HTTP to it. The
Spark half of an s3a write needs hadoop-aws (docs/cluster.md) and cannot run
here, so the delta-rs commit is fed Parquet files put by pyarrow, exactly as
Spark's executors would leave them in the attempt folder.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq
import pytest
import torch

from configs.recmodel import ModelSettings
from configs.settings import Settings
from jobs.orchestration import backfill, publish, weekly
from jobs.platform import fs, tables
from jobs.sources.simulate import write_json
from jobs.stage2 import report
from llm_client import refine
from recmodel.artifacts import latest_version, list_versions, load_artifact, save_artifact

BUCKET = "coldstart-test"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def s3_server() -> Iterator[str]:
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(f"{url}/moto-api/", timeout=1)
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("moto server did not start") from None
                time.sleep(0.2)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.fixture
def s3(s3_server: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """Environment pointing at the server, a fresh bucket; returns an s3a:// warehouse."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
    fs.configure(endpoint_url=s3_server)
    admin = pafs.S3FileSystem(
        access_key="testing",
        secret_key="testing",
        region="us-east-1",
        endpoint_override=s3_server.split("://")[1],
        scheme="http",
        allow_bucket_creation=True,
    )
    admin.create_dir(BUCKET)
    yield f"s3a://{BUCKET}/wh-{time.monotonic_ns()}"
    fs.configure()


def _put_parquet(table_path: str, rel_dir: str, table: pa.Table) -> None:
    filesystem, root = fs.resolve(table_path)
    with filesystem.open_output_stream(f"{root}/{rel_dir}/part-00000.parquet") as out:
        pq.write_table(table, out)


def test_s3a_and_s3_name_the_same_object(s3: str) -> None:
    fs.write_json(f"{s3}/a/doc.json", {"x": 1})
    assert fs.read_json(s3.replace("s3a://", "s3://") + "/a/doc.json") == {"x": 1}
    assert fs.read_json(f"{s3}/a/missing.json") is None


def test_delta_rs_commit__writes_and_replaces_a_partition_on_s3(s3: str) -> None:
    path = f"{s3}/stage/llm_responses"
    schema = pa.schema([("k", pa.int64()), ("ds", pa.string())])
    for ds, ks in (("2026-11-01", [1, 2, 3]), ("2026-11-02", [4]), ("2026-11-01", [7, 8])):
        rel = tables.staging_dir(ds)
        _put_parquet(path, rel, pa.table({"k": pa.array(ks, pa.int64())}))
        result = tables.commit_files(path, rel, schema, ds, "overwrite")
        assert result.rows == len(ks)
    assert fs.is_delta_table(path)
    dt = fs.delta_table(path)
    assert dt.version() == 2
    got = dt.to_pyarrow_table().to_pydict()
    assert sorted(zip(got["ds"], got["k"], strict=True)) == [
        ("2026-11-01", 7),
        ("2026-11-01", 8),
        ("2026-11-02", 4),
    ]
    assert publish.partition_rows(path, "2026-11-01") == 2


def test_alignment_report__written_and_read_back_by_the_publish_gate(s3: str) -> None:
    settings = Settings(warehouse=s3)
    ds = "2026-11-03"
    doc = {"tvd": {"age": {"before": 0.2, "after": 0.1}}, "method": "m"}
    doc.update(ess_fraction=0.5, rows_weighted=10)
    out = f"{s3}/" + settings.orchestration.report_dir.format(ds=ds)
    js, png = report.write_report(doc, out)
    path, back = publish.read_report(settings, ds)
    assert path == js and back == doc
    assert fs.read_bytes(png)[:4] == b"\x89PNG"
    assert publish.report_tvd(back) == (0.2, 0.1)


def test_truth_file_prompts_and_backfill_state_on_s3(s3: str) -> None:
    write_json(f"{s3}/truth/simulation.json", {"seed": 42})
    assert fs.read_json(f"{s3}/truth/simulation.json") == {"seed": 42}
    refine._save(s3, "v1", {"rounds": [{"round": 0, "instruction": "i", "hash": "h"}]})
    assert refine.load_stored(s3, "v1")["rounds"][0]["hash"] == "h"
    state = backfill.state_path(Settings(warehouse=s3), "2026-11-01", "2026-11-02", ["x"], False)
    backfill.save_state(state, {"status": "failed", "steps": {"a": 1}})
    assert backfill.load_state(state)["steps"] == {"a": 1}


def test_model_artifacts__save_list_load_and_publish_on_s3(s3: str) -> None:
    import pandas as pd

    from recmodel.features import FeatureEncoder, FeatureSpec
    from recmodel.model import build_model

    rows = pd.DataFrame({"color": ["red", "blue", "red"], "price": [1.0, 2.0, 3.0]})
    enc = FeatureEncoder.fit(rows, FeatureSpec(("color",), ("price",)))
    model = build_model(enc, ModelSettings(hidden=(4,)), seed=1)
    settings = Settings(warehouse=s3)
    root = weekly.model_root(settings)
    meta = {"test": {"auc": 0.7, "logloss": 0.5}, "test_cold_start": {"auc": 0.6}}
    save_artifact(root, "v1", model, enc, meta)
    fs.write_bytes(f"{root}/v2/model.pt", b"unfinished: no meta.json")
    assert list_versions(root) == ["v1"] and weekly.versions(settings) == {"v1"}
    art = load_artifact(root, latest_version(root))
    cat, num = enc.transform(rows)
    torch.testing.assert_close(art.model(cat, num), model(cat, num).detach())
    weekly.publish(settings, "v1")
    assert weekly.published(settings)["model_version"] == "v1"
