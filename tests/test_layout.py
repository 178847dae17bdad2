"""The tree follows the flow diagram: the import rule of docs/DESIGN.md, checked.

Rooms of ``jobs/`` from the bottom up: platform < sources < stage1 < stage2 <
model; orchestration and evaluation sit above them all. A module may import
its own room and the rooms below it, never a room above; orchestration and
evaluation import any stage but not each other; no stage or platform module
imports them. The libraries beside ``jobs/`` (recmodel, llm_client,
spark_udfs, configs) are platform-level: they import ``jobs.platform`` only.
``jobs.cli`` is the entry point every ``__main__`` block calls; it is exempt.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
STAGES = ["platform", "sources", "stage1", "stage2", "model"]
TOP = ["orchestration", "evaluation"]
LIBRARIES = ["recmodel", "llm_client", "spark_udfs", "configs"]


def _imports(path: Path) -> set[str]:
    """Every ``jobs...`` module a file imports, at module level or inside functions."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module == "jobs":
                found.update(f"jobs.{a.name}" for a in node.names)
            elif node.module.startswith("jobs."):
                found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("jobs."))
    return found


def _room(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in STAGES + TOP else None


def violations(repo: Path) -> list[str]:
    """``"<file> imports <module> (<rule>)"`` for each import that breaks the rule."""
    out = []
    for path in sorted(repo.glob("jobs/*/**/*.py")) + sorted(repo.glob("jobs/*/*.py")):
        own = path.relative_to(repo).parts[1]
        for module in sorted(_imports(path)):
            room = _room(module)
            if room is None or room == own:
                continue
            if own in TOP and room in TOP:
                out.append(f"{path.relative_to(repo)} imports {module} (top rooms are peers)")
            elif own in STAGES and (room in TOP or STAGES.index(room) > STAGES.index(own)):
                out.append(f"{path.relative_to(repo)} imports {module} ({room} is above {own})")
    for lib in LIBRARIES:
        for path in sorted((repo / lib).rglob("*.py")):
            for module in sorted(_imports(path)):
                room = _room(module)
                if module != "jobs.cli" and room != "platform":
                    out.append(f"{path.relative_to(repo)} imports {module} (libraries: platform)")
    return sorted(set(out))


def test_layout__no_import_goes_up_the_flow():
    assert violations(REPO) == []


def test_layout__jobs_top_level_holds_only_the_entry_point():
    loose = sorted(p.name for p in (REPO / "jobs").glob("*.py"))
    assert loose == ["__init__.py", "cli.py"]
    assert sorted(p.name for p in (REPO / "jobs").iterdir() if p.is_dir() and p.name[0] != "_") == (
        sorted(STAGES + TOP)
    )


@pytest.mark.parametrize(
    ("room", "line", "why"),
    [
        ("platform", "from jobs.stage1 import sample", "stage1 is above platform"),
        ("stage1", "from jobs.orchestration import daily", "orchestration is above stage1"),
        ("stage1", "from jobs.stage2 import weights", "stage2 is above stage1"),
        ("evaluation", "from jobs.orchestration import publish", "top rooms are peers"),
    ],
)
def test_violations__catches_an_upward_import(tmp_path, room, line, why):
    (tmp_path / "jobs" / room).mkdir(parents=True)
    (tmp_path / "jobs" / room / "bad.py").write_text(f"def f():\n    {line}\n")
    found = violations(tmp_path)
    assert len(found) == 1 and why in found[0], found


def unresolved_imports(repo: Path) -> list[str]:
    """``from <our module> import name`` lines (lazy ones inside functions too) that fail.

    Module-level imports fail at import time, but an import inside a function
    only fails when that function runs, which may be deep inside an
    end-to-end run; this resolves each one statically, in this process.
    """
    import importlib

    ours = ("jobs", "recmodel", "llm_client", "spark_udfs", "configs")
    bad = []
    for folder in ("jobs", "recmodel", "llm_client", "spark_udfs", "configs", "benchmarks"):
        for path in sorted((repo / folder).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
                if not (isinstance(node, ast.ImportFrom) and node.level == 0 and node.module):
                    continue
                if node.module.split(".")[0] not in ours:
                    continue
                where = f"{path.relative_to(repo)}:{node.lineno}"
                try:
                    module = importlib.import_module(node.module)
                except ImportError as exc:
                    bad.append(f"{where}: {node.module}: {exc}")
                    continue
                for alias in node.names:
                    if hasattr(module, alias.name):
                        continue
                    try:
                        importlib.import_module(f"{node.module}.{alias.name}")
                    except ImportError:
                        bad.append(f"{where}: {node.module} has no {alias.name!r}")
    return bad


def test_layout__every_import_resolves_including_lazy_ones():
    assert unresolved_imports(REPO) == []


def test_unresolved_imports__catches_a_lazy_import_of_a_missing_name(tmp_path):
    (tmp_path / "jobs").mkdir()
    (tmp_path / "jobs" / "bad.py").write_text(
        "def f():\n    from jobs.stage2.transforms import report\n"
    )
    found = unresolved_imports(tmp_path)
    assert len(found) == 1 and "has no 'report'" in found[0], found
