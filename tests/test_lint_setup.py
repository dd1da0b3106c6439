"""The linters CI runs: where .ci/run calls them, their pins, and mypy's per-module exceptions."""

from __future__ import annotations

import importlib.util
import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
LINT_STEPS = [".venv/bin/ruff format --check .", ".venv/bin/ruff check .", ".venv/bin/mypy"]


def _commands(script: str) -> list[str]:
    return [line.strip() for line in script.splitlines() if line.strip() and not line.strip().startswith("#")]


def test_ci_runs_the_linters_after_the_install_and_ends_with_the_tests():
    script = (ROOT / ".ci" / "run").read_text()
    assert "set -euo pipefail" in script, "a finding must stop CI"
    commands = _commands(script)
    install = next(i for i, c in enumerate(commands) if "pip install -c constraints.txt -e '.[test]'" in c)
    steps = [commands.index(step) for step in LINT_STEPS]
    assert install < steps[0] < steps[1] < steps[2], commands
    assert commands[-1] == ".venv/bin/pytest"


def test_every_linting_tool_is_in_the_test_extra_and_pinned():
    extra = [
        re.split(r"[<>=\[; ]", requirement)[0] for requirement in PYPROJECT["project"]["optional-dependencies"]["test"]
    ]
    pins = {
        line.split("==")[0].lower().replace("_", "-")
        for line in (ROOT / "constraints.txt").read_text().splitlines()
        if "==" in line and not line.startswith("#")
    }
    tools = [name for name in extra if name in ("ruff", "mypy") or name.startswith("types-")]
    assert {"ruff", "mypy"} <= set(tools)
    assert [tool for tool in tools if tool.lower() not in pins] == []


def _has_types(module: str) -> bool:
    """A module is typed if it ships py.typed or a stub package (types-*) provides it."""
    spec = importlib.util.find_spec(module)
    assert spec is not None and spec.origin is not None, f"{module} is not installed"
    package_dir = Path(spec.origin).parent
    if (package_dir / "py.typed").exists():
        return True
    site = package_dir.parent
    return (site / f"{module}-stubs").is_dir()


def test_mypy_skips_missing_types_only_for_libraries_without_types():
    """`ignore_missing_imports` hides real errors in a typed library: only untyped ones get it."""
    config = PYPROJECT["tool"]["mypy"]
    assert "ignore_missing_imports" not in config, "per module only"
    untyped = [
        module
        for override in config.get("overrides", [])
        if override.get("ignore_missing_imports")
        for module in override["module"]
        if not module.endswith(".*")
    ]
    assert untyped, "the overrides name their modules"
    assert [module for module in untyped if _has_types(module)] == []
