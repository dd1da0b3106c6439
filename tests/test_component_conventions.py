"""House rules for components, checked on the source: type tokens, args, register_outputs last,
no stack config read inside a component."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

COMPONENTS = sorted((Path(__file__).resolve().parents[1] / "components").glob("*.py"))


def component_classes():
    for path in COMPONENTS:
        tree = ast.parse(path.read_text())
        for node in tree.body:
            if isinstance(node, ast.ClassDef) and any(
                isinstance(b, ast.Attribute) and b.attr == "ComponentResource" for b in node.bases
            ):
                yield pytest.param(path, node, id=node.name)


@pytest.mark.parametrize(("path", "cls"), list(component_classes()))
def test_component_follows_the_conventions(path, cls):
    init = next(n for n in cls.body if isinstance(n, ast.FunctionDef) and n.name == "__init__")
    assert [a.arg for a in init.args.args] == ["self", "name", "args", "opts"]
    assert ast.get_docstring(cls), "docstring says what the component creates"
    super_call = init.body[0].value
    token = super_call.args[0].value
    assert token == f"catwatcher:index:{cls.name}"
    last = init.body[-1]
    assert isinstance(last, ast.Expr) and last.value.func.attr == "register_outputs"


def test_components_never_read_stack_config():
    for path in COMPONENTS:
        assert "pulumi.Config" not in path.read_text(), path.name


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def test_components_import_nothing_from_infra():
    """Dependencies point one way (program -> infra plan -> components): a component is built
    and tested from its own Args alone."""
    assert COMPONENTS
    for path in COMPONENTS:
        offending = sorted(m for m in imported_modules(path) if m == "infra" or m.startswith("infra."))
        assert offending == [], f"{path.name} imports {offending}"


def test_every_component_has_a_test_module_of_its_own():
    tests = Path(__file__).parent
    for path in COMPONENTS:
        if path.name != "__init__.py":
            assert (tests / f"test_component_{path.stem}.py").is_file(), path.name
