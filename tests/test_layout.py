"""The tests mirror the runtime file for file (docs/architecture.md, "Tests").

``include/lead_load/<room>/<module>.py`` is tested in ``tests/include/lead_load/<room>/
test_<module>.py``, and every module under ``plugins/`` (``agent_api``, ``lead_loads``, a plugin
file) in ``tests/plugins/<same path>/test_<module>.py``. Both ways: a module without its test
module fails here, and so does a test module whose source module is gone or was renamed.
"""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# Source tree -> the test tree that mirrors it.
MIRRORS = {
    REPO / "include" / "lead_load": REPO / "tests" / "include" / "lead_load",
    REPO / "plugins": REPO / "tests" / "plugins",
}
# Modules whose tests are named otherwise: `python -m lead_load` is the command's module.
RENAMED = {Path("__main__.py"): Path("test_main.py")}
# Test modules that test across modules on purpose (property tests of phones, mapping and
# transform together; the import rules of every room).
ACROSS_MODULES = {
    Path("include/lead_load/core/test_properties.py"),
    Path("include/lead_load/test_import_direction.py"),
}


def _modules(source: Path) -> list[Path]:
    """Source modules, relative to ``source``; a package's ``__init__`` holds no code to test."""
    return sorted(
        path.relative_to(source)
        for path in source.rglob("*.py")
        if path.name != "__init__.py" and "__pycache__" not in path.parts
    )


def _test_module_for(module: Path) -> Path:
    return RENAMED.get(module, module.with_name(f"test_{module.name}"))


def test_every_module_has_its_test_module():
    missing = [
        f"{source.relative_to(REPO) / module} -> {tests.relative_to(REPO) / expected}"
        for source, tests in MIRRORS.items()
        for module in _modules(source)
        if not (tests / (expected := _test_module_for(module))).is_file()
    ]
    assert not missing, "modules without their test module:\n" + "\n".join(missing)


def test_every_test_module_has_its_source_module():
    orphans = []
    for source, tests in MIRRORS.items():
        expected = {_test_module_for(module) for module in _modules(source)}
        for test_module in sorted(tests.rglob("test_*.py")):
            relative = test_module.relative_to(tests)
            if relative in expected or test_module.relative_to(REPO / "tests") in ACROSS_MODULES:
                continue
            orphans.append(str(test_module.relative_to(REPO)))
    assert not orphans, "test modules that mirror no source module:\n" + "\n".join(orphans)


def test_the_rule_sees_every_room_and_plugin_package():
    """Guards the walk itself: a path typo would otherwise make both tests pass on nothing."""
    modules = {str(m) for m in _modules(REPO / "include" / "lead_load")}
    assert {"__main__.py", "core/phones.py", "ledger/schema.py", "steps/settle.py"} <= modules
    assert {"glue/operators.py"} <= modules
    assert {"agent_api/masking.py", "agent_api/hooks/agent_api.py"} <= {
        str(m) for m in _modules(REPO / "plugins")
    }
