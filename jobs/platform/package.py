"""Build the artifact that spark-submit ships to the driver and every executor.

    python -m jobs.platform.package
    # -> dist/coldstart-<version>-<digest>.zip, dist/coldstart_launcher.py

Executors import our code (pandas UDFs, mapInPandas functions, pickled
models) from this zip, given to spark-submit with ``--py-files``; they never
see the checkout. The zip holds exactly the packages pyproject.toml declares,
with their data files (YAML, prompts), so what runs on the cluster is what
``pip install`` would install. Third-party dependencies come from the
cluster's Python (a packed virtualenv with ``--archives`` on YARN/K8s).

Zips are content-addressed and never rewritten: the name carries a digest
of the sources, so a rebuild after an edit writes a *new* file. A driver or
executor that is importing from a zip while someone submits the next job
keeps a valid file (zipimport caches offsets; replacing a zip under a running
driver fails with "bad local file header"). ``coldstart submit-cmd`` can call
``ensure_artifact()`` on every invocation: it only hashes the sources when
nothing changed. Entries carry a fixed timestamp, so the same sources give a
byte-identical zip.

The launcher is the primary resource of every submit: ``coldstart_launcher.py
[--env NAME=VALUE ...] <command> [args]`` sets the given environment
variables on the driver (e.g. the resolved warehouse URI, which must not
depend on the driver's working directory) and runs ``coldstart <command>``.
It lives outside the zip because spark-submit needs a file for it; it puts
no folder of the checkout on ``sys.path``.
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
import sys
import tomllib
import zipfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from jobs.platform.errors import InputError

log = logging.getLogger(__name__)

REPO = Path(__file__).resolve().parents[2]
DIST = REPO / "dist"
LAUNCHER_NAME = "coldstart_launcher.py"
_ZIP_TIME = (1980, 1, 1, 0, 0, 0)
_SKIP_SUFFIXES = (".pyc", ".pyo")

LAUNCHER = '''"""spark-submit entry point: [--env NAME=VALUE ...] <command> [args].

Built by jobs/platform/package.py.
"""

import os
import sys


def _split_env(argv):
    env, rest = {}, list(argv)
    while len(rest) >= 2 and rest[0] == "--env":
        name, _, value = rest[1].partition("=")
        env[name] = value
        rest = rest[2:]
    return env, rest


if __name__ == "__main__":
    env, args = _split_env(sys.argv[1:])
    os.environ.update(env)
    from jobs.cli import main

    sys.exit(main(args))
'''


@dataclass(frozen=True)
class Artifact:
    """The files one spark-submit needs: ``--py-files`` zip and the launcher script."""

    zip_path: Path
    launcher: Path
    digest: str


def _project(repo: Path) -> tuple[str, list[str]]:
    pyproject = repo / "pyproject.toml"
    if not pyproject.is_file():
        raise InputError(f"{pyproject}: not found; build the artifact from a checkout")
    data = tomllib.loads(pyproject.read_text())
    # Top-level packages from [tool.setuptools.packages.find] include = ["jobs*", ...];
    # rglob below takes their subpackages (jobs/stage1, ...) with them.
    include = data["tool"]["setuptools"]["packages"]["find"]["include"]
    return data["project"]["version"], sorted({p.rstrip("*").rstrip(".") for p in include})


def _sources(repo: Path, packages: Sequence[str]) -> Iterator[tuple[str, Path]]:
    """(name in zip, file) for every file of the declared packages that exist."""
    for package in packages:
        root = repo / package
        if not (root / "__init__.py").is_file():
            continue
        for path in sorted(root.rglob("*")):
            rel = path.relative_to(repo)
            if not path.is_file() or "__pycache__" in rel.parts:
                continue
            if path.suffix in _SKIP_SUFFIXES:
                continue
            yield rel.as_posix(), path


def source_digest(repo: Path = REPO) -> str:
    """sha256 over names and contents of everything that goes into the zip."""
    version, packages = _project(repo)
    h = hashlib.sha256(version.encode())
    for name, path in _sources(repo, packages):
        h.update(name.encode() + b"\0" + path.read_bytes() + b"\0")
    h.update(LAUNCHER.encode())
    return h.hexdigest()


def _zip_path(out: Path, version: str, digest: str) -> Path:
    return out / f"coldstart-{version}-{digest[:12]}.zip"


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(data)
    tmp.replace(path)


def build_artifact(repo: Path = REPO, out_dir: Path | None = None) -> Artifact:
    """Write the zip and the launcher (each atomically: temp file, then rename)."""
    out = out_dir or repo / "dist"
    out.mkdir(parents=True, exist_ok=True)
    version, packages = _project(repo)
    digest = source_digest(repo)
    buffer = io.BytesIO()
    count = 0
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, path in _sources(repo, packages):
            info = zipfile.ZipInfo(name, date_time=_ZIP_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            zf.writestr(info, path.read_bytes())
            count += 1
    if count == 0:
        raise InputError(f"{repo}: none of the packages {packages} found")
    zip_path = _zip_path(out, version, digest)
    _write_atomic(zip_path, buffer.getvalue())
    launcher = _ensure_launcher(out)
    log.info("built %s (%d files)", zip_path, count)
    return Artifact(zip_path, launcher, digest)


def _ensure_launcher(out: Path) -> Path:
    launcher = out / LAUNCHER_NAME
    if not launcher.is_file() or launcher.read_text() != LAUNCHER:
        _write_atomic(launcher, LAUNCHER.encode())
    return launcher


def ensure_artifact(repo: Path = REPO, out_dir: Path | None = None) -> Artifact:
    """Return the artifact of the current sources, building it if it does not exist yet."""
    out = out_dir or repo / "dist"
    version, _ = _project(repo)
    digest = source_digest(repo)
    zip_path = _zip_path(out, version, digest)
    if zip_path.is_file():
        return Artifact(zip_path, _ensure_launcher(out), digest)
    return build_artifact(repo, out)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m jobs.platform.package [--out DIR]``: build the artifact, print its paths."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m jobs.platform.package", description=__doc__)
    parser.add_argument("--out", default=None, help="output folder (default: dist/)")
    args = parser.parse_args(argv)
    artifact = build_artifact(REPO, Path(args.out) if args.out else None)
    print(f"{artifact.zip_path}\n{artifact.launcher}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
