"""Helpers shared by the LLM-area tests: talk to a running stand-in's admin API."""

from __future__ import annotations

import json
import urllib.request
from typing import Any

from llm_client.standin import StandinHandle


def admin(handle: StandinHandle, path: str, payload: dict[str, Any] | None = None) -> dict:
    """GET (no payload) or POST JSON to the stand-in (``/admin/...``, ``/health``)."""
    data = None if payload is None else json.dumps(payload).encode()
    req = urllib.request.Request(
        f"{handle.root}{path}", data=data, headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(req, timeout=10) as resp:
        return json.loads(resp.read())


def reset(handle: StandinHandle, **faults: Any) -> None:
    """Set the faults (everything else off) and zero the call counters."""
    admin(handle, "/admin/faults", faults)
    admin(handle, "/admin/reset", {})


def wait_embedder(handle: StandinHandle, timeout_s: float = 180.0) -> None:
    """Block until the stand-in's sentence-embedding model is loaded (slow on a busy box)."""
    import time

    deadline = time.monotonic() + timeout_s
    while admin(handle, "/health")["embedder"] != "loaded":
        if time.monotonic() > deadline:
            raise TimeoutError("stand-in embedder not loaded")
        time.sleep(0.5)
