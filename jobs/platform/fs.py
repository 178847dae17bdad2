"""One file-system layer for every read and write that does not go through Spark.

Reports, the simulator's truth file, model artifacts, stored prompts and the
delta-rs commits all address the warehouse through this module, so a
warehouse that works for one works for all of them. Accepted locations:

* a local path (``./warehouse``, ``/data/wh``) or ``file:///data/wh``;
* ``s3://bucket/key`` and ``s3a://bucket/key`` - the same object: ``s3a`` is
  the Hadoop connector's name for S3 (what Spark on a cluster is given);
  pyarrow and delta-rs only speak ``s3``, so it is mapped to ``s3`` here.

S3 settings come from the config (``io.s3``, applied by ``configure``) and the
standard AWS environment variables: ``AWS_ACCESS_KEY_ID``,
``AWS_SECRET_ACCESS_KEY``, ``AWS_SESSION_TOKEN`` (credentials, never in a
config file), ``AWS_ENDPOINT_URL`` and ``AWS_REGION`` (used when the config
leaves them unset). Without keys the AWS default chain (instance profile) is
used.

Writes are atomic on every file system: a local file is written under a
temporary name in the same folder and renamed over the target; an S3 object
is one PUT (or one completed multipart upload), which readers see whole or
not at all. Spark itself reaches ``s3a://`` through hadoop-aws on the
cluster's classpath (docs/cluster.md), not through this module.
"""

from __future__ import annotations

import functools
import json
import os
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from jobs.platform.errors import InputError

if TYPE_CHECKING:
    import pyarrow.fs as pafs

# pyarrow is imported inside the functions: configs.settings imports this module
# (``configure``), and the Airflow DAG files must parse without pyarrow.

S3_SCHEMES = ("s3://", "s3a://")


@dataclass(frozen=True)
class S3Options:
    """Endpoint and region of the S3 service (None: from the environment / AWS default)."""

    endpoint_url: str | None = None
    region: str | None = None


_config = S3Options()


def configure(endpoint_url: str | None = None, region: str | None = None) -> None:
    """Set the process's S3 endpoint and region (``io.s3`` of the loaded config)."""
    global _config
    _config = S3Options(endpoint_url, region)


def is_s3(path: str) -> bool:
    return str(path).startswith(S3_SCHEMES)


def is_remote(path: str) -> bool:
    """True for object-store locations (anything but a local path or ``file://``)."""
    return "://" in str(path) and not str(path).startswith("file://")


def _s3_settings() -> dict[str, str | None]:
    env = os.environ
    endpoint = _config.endpoint_url or env.get("AWS_ENDPOINT_URL") or None
    region = _config.region or env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION")
    return {
        "endpoint": endpoint,
        "region": region or "us-east-1",
        "key": env.get("AWS_ACCESS_KEY_ID") or None,
        "secret": env.get("AWS_SECRET_ACCESS_KEY") or None,
        "token": env.get("AWS_SESSION_TOKEN") or None,
    }


@functools.lru_cache(maxsize=8)
def _s3_filesystem(
    endpoint: str | None, region: str, key: str | None, secret: str | None, token: str | None
) -> pafs.S3FileSystem:
    import pyarrow.fs as pafs

    kwargs: dict[str, Any] = {"region": region}
    if endpoint:
        scheme, _, host = endpoint.partition("://")
        kwargs.update(endpoint_override=host.rstrip("/"), scheme=scheme or "https")
    if key and secret:
        kwargs.update(access_key=key, secret_key=secret, session_token=token)
    return pafs.S3FileSystem(**kwargs)


def resolve(path: str) -> tuple[pafs.FileSystem, str]:
    """``(file system, path inside it)`` for a local path or a URI."""
    import pyarrow as pa
    import pyarrow.fs as pafs

    path = str(path)
    if is_s3(path):
        rest = path.split("://", 1)[1].rstrip("/")
        if not rest or rest.startswith("/"):
            raise InputError(f"location {path}: expected s3://bucket/key")
        return _s3_filesystem(**_s3_settings()), rest
    if path.startswith("file://"):
        return pafs.LocalFileSystem(), path[len("file://") :]
    if "://" in path:
        try:
            return pafs.FileSystem.from_uri(path)
        except (pa.ArrowInvalid, OSError) as exc:
            raise InputError(
                f"location {path}: unsupported scheme (expected a path, file://, s3:// or s3a://)"
            ) from exc
    return pafs.LocalFileSystem(), os.path.abspath(path)


def delta_uri(path: str) -> str:
    """The table location as delta-rs wants it: ``s3a://`` becomes ``s3://``."""
    path = str(path)
    if path.startswith("s3a://"):
        return "s3://" + path[len("s3a://") :]
    return path


def storage_options(path: str) -> dict[str, str] | None:
    """delta-rs ``storage_options`` for ``path`` (None for local tables)."""
    if not is_s3(path):
        return None
    s = _s3_settings()
    opts = {"AWS_REGION": str(s["region"])}
    if s["endpoint"]:
        opts["AWS_ENDPOINT_URL"] = str(s["endpoint"])
        if str(s["endpoint"]).startswith("http://"):
            opts["AWS_ALLOW_HTTP"] = "true"
    for name, value in (
        ("AWS_ACCESS_KEY_ID", s["key"]),
        ("AWS_SECRET_ACCESS_KEY", s["secret"]),
        ("AWS_SESSION_TOKEN", s["token"]),
    ):
        if value:
            opts[name] = str(value)
    # Concurrent writers of one day are excluded by the orchestration (one run
    # per ds); S3 has no atomic rename, so delta-rs needs this to commit.
    opts["AWS_S3_ALLOW_UNSAFE_RENAME"] = "true"
    return opts


def delta_table(path: str, **kwargs: Any) -> Any:
    """``deltalake.DeltaTable`` at ``path`` with this layer's storage options."""
    from deltalake import DeltaTable

    return DeltaTable(delta_uri(path), storage_options=storage_options(path), **kwargs)


def is_delta_table(path: str) -> bool:
    """Whether a Delta table exists at ``path`` (local or object store)."""
    from deltalake import DeltaTable

    return DeltaTable.is_deltatable(delta_uri(path), storage_options=storage_options(path))


# -- files -------------------------------------------------------------------


def exists(path: str) -> bool:
    import pyarrow.fs as pafs

    fs, p = resolve(path)
    return fs.get_file_info(p).type != pafs.FileType.NotFound


def is_file(path: str) -> bool:
    import pyarrow.fs as pafs

    fs, p = resolve(path)
    return fs.get_file_info(p).type == pafs.FileType.File


def read_bytes(path: str) -> bytes:
    """The file's bytes; ``FileNotFoundError`` naming ``path`` if there is none."""
    import pyarrow.fs as pafs

    fs, p = resolve(path)
    if fs.get_file_info(p).type != pafs.FileType.File:
        raise FileNotFoundError(f"{path}: no such file")
    with fs.open_input_stream(p) as fh:
        return fh.read()


def read_json(path: str) -> Any | None:
    """Parsed JSON at ``path``, None when the file does not exist."""
    if not is_file(path):
        return None
    return json.loads(read_bytes(path).decode("utf-8"))


def write_bytes(path: str, data: bytes) -> str:
    """Write ``data`` to ``path`` atomically (rename locally, one PUT on S3)."""
    import pyarrow.fs as pafs

    fs, p = resolve(path)
    parent = p.rsplit("/", 1)[0]
    if isinstance(fs, pafs.LocalFileSystem):
        fs.create_dir(parent, recursive=True)
        tmp = f"{parent}/.{p.rsplit('/', 1)[1]}.{uuid.uuid4().hex[:8]}.tmp"
        try:
            with fs.open_output_stream(tmp) as out:
                out.write(data)
            fs.move(tmp, p)
        except BaseException:
            if fs.get_file_info(tmp).type == pafs.FileType.File:
                fs.delete_file(tmp)
            raise
        return path
    with fs.open_output_stream(p) as out:
        out.write(data)
    return path


def write_json(path: str, doc: Any, **dumps: Any) -> str:
    """``json.dumps(doc, **dumps)`` written atomically to ``path``."""
    opts = {"indent": 2, "sort_keys": True, **dumps}
    return write_bytes(path, json.dumps(doc, **opts).encode("utf-8"))


def list_dir(path: str) -> list[pafs.FileInfo]:
    """Entries directly under ``path`` (empty if it does not exist)."""
    import pyarrow.fs as pafs

    fs, p = resolve(path)
    if fs.get_file_info(p).type == pafs.FileType.NotFound:
        return []
    return fs.get_file_info(pafs.FileSelector(p, recursive=False, allow_not_found=True))


def subdirs(path: str) -> list[str]:
    """Names of the folders directly under ``path`` (S3: common prefixes)."""
    import pyarrow.fs as pafs

    return sorted(i.base_name for i in list_dir(path) if i.type == pafs.FileType.Directory)


def delete_dir(path: str) -> None:
    """Remove ``path`` and everything under it; nothing if it is not there."""
    import pyarrow.fs as pafs

    fs, p = resolve(path)
    if fs.get_file_info(p).type != pafs.FileType.NotFound:
        fs.delete_dir(p)


def join(base: str, *parts: str) -> str:
    """``base/part/...`` for paths and URIs alike (no OS separators)."""
    return "/".join([str(base).rstrip("/"), *(p.strip("/") for p in parts)])
