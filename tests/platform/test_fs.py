"""jobs.platform.fs on local paths: the same calls as on S3, atomic by rename."""

from __future__ import annotations

from pathlib import Path

import pytest

from jobs.platform import fs
from jobs.platform.errors import InputError


def test_local_and_file_uri_are_the_same_file(tmp_path: Path) -> None:
    path = tmp_path / "a" / "b" / "doc.json"
    fs.write_json(f"file://{path}", {"k": [1, 2]})
    assert fs.read_json(str(path)) == {"k": [1, 2]}
    assert fs.is_file(str(path)) and not fs.is_file(str(tmp_path / "a"))
    assert fs.subdirs(str(tmp_path / "a")) == ["b"]
    assert fs.read_json(str(tmp_path / "none.json")) is None


def test_write_bytes__replaces_whole_and_leaves_no_temporary_file(tmp_path: Path) -> None:
    target = tmp_path / "report.json"
    fs.write_bytes(str(target), b"old")
    with pytest.raises(TypeError):
        fs.write_bytes(str(target), "not bytes")  # type: ignore[arg-type]
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["report.json"]


def test_s3a_maps_to_s3_for_delta_rs_and_bad_locations_are_named() -> None:
    assert fs.delta_uri("s3a://bucket/wh/t") == "s3://bucket/wh/t"
    assert fs.delta_uri("/local/t") == "/local/t"
    assert fs.storage_options("/local/t") is None
    with pytest.raises(InputError, match="expected s3://bucket/key"):
        fs.resolve("s3a:///no-bucket")
    with pytest.raises(InputError, match="unsupported scheme"):
        fs.resolve("gopher://host/x")
