"""Lineage records: where the rows of one table partition came from.

One JSON document per (table, ds) under ``<warehouse>/_lineage/<layer>/<name>/ds=<ds>.json``
(``jobs.platform.fs``: any warehouse), replaced with the partition it
describes. Per-row lineage lives in the rows themselves (``stage.synthetic_raw``:
``model``, ``prompt_version`` with the refined instruction's hash,
``exemplar_cluster_ids``, ``request_hash``; gold rows join back on ``synth_id``);
what is constant over a partition (the run id, the endpoint, the model file,
the full instruction hash) is recorded here once instead of on every row.
"""

from __future__ import annotations

from typing import Any

from jobs.platform import fs

ROOT = "_lineage"


def lineage_path(warehouse: str, table: str, ds: str) -> str:
    """``<warehouse>/_lineage/<layer>/<name>/ds=<ds>.json`` for a logical table name."""
    layer, name = table.split(".")
    return fs.join(warehouse, ROOT, layer, name, f"ds={ds}.json")


def write_lineage(warehouse: str, table: str, ds: str, doc: dict[str, Any]) -> str:
    """Record (atomically) where ``table[ds]`` came from; returns the record's path."""
    return fs.write_json(lineage_path(warehouse, table, ds), {"table": table, "ds": ds, **doc})


def read_lineage(warehouse: str, table: str, ds: str) -> dict[str, Any] | None:
    """The record of ``table[ds]``, None when none was written."""
    return fs.read_json(lineage_path(warehouse, table, ds))
