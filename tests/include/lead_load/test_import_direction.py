"""The rooms of include/lead_load (docs/architecture.md) import only downwards.

Read from the source (every import statement, those inside functions too), so a lazy import
that breaks a rule fails here as well; and for the pure core, also by importing it in a fresh
interpreter, which catches what a module drags in through another.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]
RUNTIME = REPO / "include" / "lead_load"
PLUGIN = REPO / "plugins" / "agent_api"
PAGE = REPO / "plugins" / "lead_loads"  # the Lead loads page of the UI

# The agent_api modules with no Airflow in them (its errors derive from Airflow's).
PURE_AGENT_API = ("agent_api.masking", "agent_api.endpoints")

# room -> imports it must not make (a module name or a package prefix).
FORBIDDEN = {
    "lead_load.core": (
        "airflow",
        "sqlalchemy",
        "agent_api",
        "lead_load.ledger",
        "lead_load.steps",
        "lead_load.glue",
    ),
    "lead_load.ledger": (
        "airflow",
        "agent_api",
        "lead_load.steps",
        "lead_load.glue",
    ),
    "lead_load.steps": ("lead_load.glue",),
    # The provider's direction: operator/sensor -> trigger -> step, never back.
    "lead_load.glue.triggers": ("lead_load.glue.operators", "lead_load.glue.sensors"),
    "lead_load.glue.batch_steps": (
        "lead_load.glue.operators",
        "lead_load.glue.sensors",
        "lead_load.glue.triggers",
    ),
    "lead_load": ("lead_load_devtools", "lead_loads"),  # no tooling, nor the UI's page
    "agent_api": ("lead_load", "lead_load_devtools", "lead_loads"),  # knows no pipeline
    # The page reads the ledger (browse) through the glue's connections; it runs no step.
    "lead_loads": (
        "lead_load_devtools",
        "lead_load.steps",
        "lead_load.glue.operators",
        "lead_load.glue.sensors",
        "lead_load.glue.triggers",
        "lead_load.glue.batch_steps",
    ),
}


def module_name(path: Path) -> str:
    plugins = path.is_relative_to(PLUGIN) or path.is_relative_to(PAGE)
    base = PLUGIN.parent if plugins else RUNTIME.parent
    parts = path.relative_to(base).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            # "from lead_load.ledger import staging" imports lead_load.ledger.staging
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def under(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def rules_for(module: str) -> list[str]:
    return [bad for room, bans in FORBIDDEN.items() if under(module, room) for bad in bans]


SOURCES = sorted([*RUNTIME.rglob("*.py"), *PLUGIN.rglob("*.py"), *PAGE.rglob("*.py")])


def test_every_room_has_rules() -> None:
    rooms = {module_name(p).split(".")[1] for p in RUNTIME.rglob("*.py") if p.parent != RUNTIME}
    assert rooms == {"core", "ledger", "steps", "glue"}, "a new room needs its rules here"


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(REPO)))
def test_imports_point_down(path: Path) -> None:
    module = module_name(path)
    bans = rules_for(module)
    broken = sorted(
        f"{module} imports {name} (not allowed: {bad})"
        for name in imports_of(path)
        for bad in bans
        if under(name, bad) and not any(under(name, pure) for pure in PURE_AGENT_API)
    )
    assert not broken, "\n".join(broken)


def test_the_rules_catch_a_violation() -> None:
    """The check itself: a core module importing Airflow, or a trigger importing an operator,
    is reported."""
    assert "airflow" in rules_for("lead_load.core.phones")
    assert "lead_load.glue.operators" in rules_for("lead_load.glue.triggers")
    assert "lead_load.steps" in rules_for("lead_loads.app")
    assert "lead_loads" in rules_for("lead_load.ledger.browse")
    source = ast.parse("def f():\n    from lead_load.glue import operators\n")
    found = {
        f"{n.module}.{a.name}"
        for n in ast.walk(source)
        if isinstance(n, ast.ImportFrom)
        for a in n.names
    }
    assert any(under(name, "lead_load.glue.operators") for name in found)


def test_the_core_drags_in_neither_airflow_nor_sqlalchemy() -> None:
    core = sorted(module_name(p) for p in (RUNTIME / "core").glob("*.py"))
    probe = (
        "import importlib, json, sys\n"
        f"for name in {core!r}:\n"
        "    importlib.import_module(name)\n"
        "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules} "
        "& {'airflow', 'sqlalchemy', 'aiohttp', 'requests'})))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, cwd=REPO
    )
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []
