"""endpoint: local-llm against the real llama.cpp server and the packaged Gemma 3 270M.

Needs the extra local-llm (``make test`` installs it). Every test starts or
uses a real server subprocess; signals are real signals to a real process.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from configs.llm import LLMSettings
from jobs.platform.errors import ConfigError, LLMError
from llm_client import local_llm, schemas
from llm_client.client import ClientConfig, LLMClient
from tests.llm_client.test_llm_client import click_request, profile_request

REPO = Path(__file__).resolve().parents[2]
PACKAGED = "gemma-3-270m-q4_k_m"


def _settings(**kw) -> LLMSettings:
    return LLMSettings(endpoint="local-llm", **kw)


@pytest.fixture(scope="module")
def server():
    # One llama.cpp thread: make test runs a second pytest worker beside this one,
    # and two llama.cpp threads spin at their barriers whenever that worker's JVM
    # holds a core (the json_object test took 420 s so, 87-101 s alone).
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv("COLDSTART_LLM_ENDPOINT", raising=False)
        with local_llm.local_llm_server(_settings(local_llm={"n_threads": 1})) as srv:
            yield srv


def _gone(pid: int) -> bool:
    """True once ``pid`` is reaped or a zombie (it no longer runs)."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split(") ", 1)[1][0] in "ZX"
    except FileNotFoundError:
        return True


def test_local_llm__real_model_answers_in_the_json_object_dialect(server):
    assert server.model == PACKAGED and server.identity.startswith(f"{PACKAGED}@sha256:")
    prof = profile_request(1, rows=3)
    prof.sampling["max_tokens"] = schemas.max_tokens_for(prof.response_format["json_schema"]
                                                         ["schema"], 1024)  # fmt: skip
    clicks, refs, ids = click_request()
    clicks.sampling["max_tokens"] = 1024
    cfg = ClientConfig(base_url=server.base_url, model=server.model, concurrency=2,
                       timeout_s=600, max_retries=0, dialect="auto")  # fmt: skip

    async def go():
        async with LLMClient(cfg) as client:
            assert await client.ready() == [PACKAGED]
            return await client.run([prof, clicks]), client.dialect

    (p, c), dialect = asyncio.run(go())
    assert dialect == "json_object"  # learned from the real server's rejection
    assert p.success and c.success, (p.error, c.error)
    assert p.model == c.model == PACKAGED and p.completion_tokens > 0
    # Guided decoding: every item in the vocabularies / the asked ids.
    assert (
        len(schemas.validate_profiles(p.parsed[0]).items)
        + sum(schemas.validate_profiles(p.parsed[0]).dropped.values())
        == 3
    )
    assert schemas.validate_profiles(p.parsed[0]).dropped.keys() <= {"duplicate_item"}
    judged = schemas.validate_clicks(c.parsed[0], refs, ids)
    # The grammar enforces the pairs (one const slot each) and click_prob (an enum).
    # (With "minimum"/"maximum" on a "number", llama.cpp ignored the bounds and Gemma
    # 270M wrote click_prob > 1 in 5 of 6 judgements; with an open items schema it
    # repeated pairs and left others out.)
    assert len(judged.items) == len(refs) * len(ids) and not judged.dropped, judged.dropped
    assert all(x["click_prob"] in schemas.CLICK_PROB_GRID for x in judged.items)


def test_local_llm__llama_cpp_build_is_portable():
    """The installed llama.cpp CPU backend holds no AVX-512 or AMX instruction.

    The wheel outlives the machine that built it (a cache), so ``make`` builds it
    with GGML_NATIVE=OFF. A CI run on a ``-march=native`` wheel from pip's shared
    cache saw the server die with SIGSEGV at its first completion."""
    import llama_cpp

    libs = sorted((Path(llama_cpp.__file__).parent / "lib").glob("libggml-cpu*.so*"))
    assert libs, "llama_cpp/lib has no libggml-cpu*.so"
    asm = subprocess.run(
        ["objdump", "-d", "--no-show-raw-insn", str(libs[0])],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    wide = [ln for ln in asm.splitlines() if "%zmm" in ln or "%tmm" in ln or "tdpb" in ln]
    assert not wide, f"{libs[0].name}: {len(wide)} AVX-512/AMX instructions, e.g. {wide[:2]}"


def test_local_llm__bad_model_file_port_taken_are_one_line_errors(tmp_path):
    with pytest.raises(ConfigError, match=r"local_model_path .*file not found"):
        local_llm.user_model(str(tmp_path / "none.gguf"))
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"PK\x03\x04not a model")
    with pytest.raises(ConfigError, match="not a GGUF file"):
        local_llm.user_model(str(bad))
    corrupt = tmp_path / "corrupt.gguf"
    corrupt.write_bytes(b"GGUF" + os.urandom(4096))
    corrupt_llm = _settings(local_model_path=str(corrupt))
    with (
        pytest.raises(LLMError, match=r"llama\.cpp server exited with code") as exc,
        local_llm.local_llm_server(corrupt_llm),
    ):
        pass
    assert "\n" not in str(exc.value)
    with local_llm.socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with (
            pytest.raises(LLMError, match=f"port {port}: already in use"),
            local_llm.local_llm_server(_settings(local_llm={"port": port})),
        ):
            pass


def test_local_llm__packaged_model_sha256_checked(tmp_path):
    target = tmp_path / "gemma-3-270m-q4_k_m.gguf"
    good = local_llm.packaged_model(tmp_path)
    assert good.path == target and local_llm.sha256_file(target) == good.sha256
    with target.open("r+b") as fh:  # flip one byte in the middle of the file
        fh.seek(1_000_000)
        byte = fh.read(1)
        fh.seek(1_000_000)
        fh.write(bytes([byte[0] ^ 0xFF]))
    with pytest.raises(LLMError, match=r"sha256 is not .*corrupt"):
        local_llm.packaged_model(tmp_path)


HOLDER = """
import sys, time
from configs.llm import LLMSettings
from llm_client.local_llm import local_llm_server
with local_llm_server(LLMSettings(endpoint="local-llm")) as srv:
    print(srv.process.pid, flush=True)
    time.sleep(600)
"""


def _holder() -> subprocess.Popen:
    """A job holding a local llama.cpp server; it prints the server's pid once ready."""
    env = {k: v for k, v in os.environ.items() if k != "COLDSTART_LLM_ENDPOINT"}
    return subprocess.Popen([sys.executable, "-c", HOLDER], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, text=True)  # fmt: skip


def _gone_within(pid: int, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while not _gone(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    return _gone(pid)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT, signal.SIGKILL])
def test_local_llm__server_stopped_on_signal_no_orphan(sig):
    proc = _holder()
    try:
        pid = int(proc.stdout.readline())  # printed once the server is ready
        assert not _gone(pid)
        proc.send_signal(sig)
        proc.wait(timeout=30)
        if sig == signal.SIGTERM:  # stopped by the job itself (SystemExit), not by the kernel
            assert proc.returncode == 128 + signal.SIGTERM
        assert _gone_within(pid, 15), f"llama.cpp server {pid} outlived its job ({sig.name})"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@pytest.mark.parametrize("how", ["sigterm_twice", "sigkill"])
def test_local_llm__busy_server_does_not_outlive_its_job(how):
    # A SIGSTOPped server stands in for one deep in a generation: it honours
    # SIGTERM only much later (uvicorn waits for the request in flight). A second
    # SIGTERM must not cut the job's SIGTERM -> SIGKILL escalation short, and a
    # job killed outright must take the server with it.
    proc = _holder()
    pid = None
    try:
        pid = int(proc.stdout.readline())
        os.kill(pid, signal.SIGSTOP)
        if how == "sigkill":
            proc.kill()
        else:
            proc.send_signal(signal.SIGTERM)
            time.sleep(1.0)
            proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
        assert _gone_within(pid, 20), f"stopped llama.cpp server {pid} outlived its job ({how})"
        if how == "sigterm_twice":
            assert proc.returncode == 128 + signal.SIGTERM
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if pid is not None and not _gone(pid):
            os.kill(pid, signal.SIGKILL)


def test_local_llm__server_dying_mid_run_is_one_line(server, caplog):
    local_llm.assert_alive()  # running: no error
    server.process.kill()
    server.process.wait()
    with pytest.raises(LLMError, match=r"died mid-run with code -9.*re-run to resume"):
        local_llm.assert_alive()
    # The log file dies with a CI machine: its CPU build line and tail go to the job's log.
    (dead,) = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert f"pid {server.process.pid}) died; built for CPU : " in dead
    assert server.log_path in dead and 'HTTP/1.1" 200 OK' in dead  # the log's tail


def test_local_llm__any_port_start_that_loses_its_port_retries_on_another(monkeypatch, caplog):
    # Setup: the first port picked is taken by another process before llama.cpp
    # binds it (a race that the suite's second worker and its JVMs make real).
    real_free_port = local_llm.free_port
    with local_llm.socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        lost = taken.getsockname()[1]
        picks = iter([lost])
        monkeypatch.setattr(
            local_llm, "free_port", lambda port: next(picks, 0) or real_free_port(port)
        )
        monkeypatch.delenv("COLDSTART_LLM_ENDPOINT", raising=False)

        # Run: port 0 (any free port), the default.
        with (
            caplog.at_level("WARNING", logger=local_llm.__name__),
            local_llm.local_llm_server(_settings(local_llm={"n_threads": 1})) as srv,
        ):
            # Assert: served on another port, the lost start said so.
            assert srv.base_url != f"http://127.0.0.1:{lost}/v1"
            assert srv.model in local_llm._served(srv.base_url)
    assert "start 1/3 lost its port" in caplog.text
    assert "address already in use" in caplog.text.lower()
