"""Finding MovieLens-100K on a fresh machine, as scikit-learn's fetchers do.

No test touches the network: the download is served by a real HTTP server on
loopback (or pointed at a closed port).
"""

from __future__ import annotations

import hashlib
import http.server
import io
import socket
import threading
import zipfile
from pathlib import Path

import pytest

from jobs.platform.errors import InputError
from jobs.sources import movielens as ML

USER = "1|24|M|technician|85711\n"
ITEM = "1|Toy Story (1995)|01-Jan-1995||http://x|0|0|0|1|1|1|0|0|0|0|0|0|0|0|0|0|0|0|0\n"
DATA = "1\t1\t5\t874965758\n"


def _fake(root: Path) -> Path:
    root.mkdir(parents=True)
    for name, text in (("u.data", DATA), ("u.user", USER), ("u.item", ITEM)):
        (root / name).write_text(text)
    return root


@pytest.fixture
def nowhere(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No env var, no shared folder, an empty cache: the state of a fresh clone."""
    monkeypatch.delenv(ML.ENV_DIR, raising=False)
    monkeypatch.setattr(ML, "DEFAULT_DIR", tmp_path / "shared" / "ml-100k")
    monkeypatch.setenv(ML.ENV_DATA_HOME, str(tmp_path / "cache"))
    return tmp_path


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_env_var_wins_and_the_loader_reads_it(spark, nowhere, monkeypatch) -> None:
    root = _fake(nowhere / "mine")
    monkeypatch.setenv(ML.ENV_DIR, str(root))
    assert ML.locate_movielens() == root
    rows = ML.load_movielens(spark).collect()
    assert [(r.user_id, r.app_id, r.category, r.clicked) for r in rows] == [
        ("1", "1", "Animation", 1)
    ]


def test_every_place_fails__one_error_names_all_three(nowhere, monkeypatch) -> None:
    monkeypatch.setenv(ML.ENV_DIR, str(nowhere / "empty"))
    url = f"http://127.0.0.1:{_closed_port()}/ml-100k.zip"
    with pytest.raises(InputError) as err:
        ML.locate_movielens(url=url)
    msg = str(err.value)
    assert "\n" not in msg and msg.startswith("MovieLens-100K not found")
    assert ML.ENV_DIR in msg and str(ML.DEFAULT_DIR) in msg and url in msg
    assert str(nowhere / "cache" / "ml-100k") in msg
    assert not (nowhere / "cache" / "ml-100k").exists()


def _serve(blob: bytes):
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Length", str(len(blob)))
            self.end_headers()
            self.wfile.write(blob)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def test_download__checksum_checked_then_unpacked_into_the_cache(nowhere) -> None:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, text in (("u.data", DATA), ("u.user", USER), ("u.item", ITEM)):
            zf.writestr(f"ml-100k/{name}", text)
    blob = buf.getvalue()
    server = _serve(blob)
    url = f"http://127.0.0.1:{server.server_port}/ml-100k.zip"
    try:
        with pytest.raises(InputError, match="MD5"):
            ML.locate_movielens(url=url, md5="0" * 32)
        assert not (nowhere / "cache" / "ml-100k").exists()
        got = ML.locate_movielens(url=url, md5=hashlib.md5(blob).hexdigest())
    finally:
        server.shutdown()
    assert got == nowhere / "cache" / "ml-100k"
    assert (got / "u.data").read_text() == DATA
    assert ML.locate_movielens(url="http://127.0.0.1:1/unused") == got  # cached now
