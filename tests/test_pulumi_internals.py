"""The Pulumi SDK internals the offline engine rests on: present, and used nowhere else.

When an SDK upgrade breaks render/diff/tests, this file says which internal moved. Move the pin
(constraints.txt) only once it passes (notes/readme/core.md: moving the pin)."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import pytest

from infra import pulumi_internals
from infra.pulumi_internals import INTERNALS, PulumiInternalChangedError, _internal

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize(("module", "attribute", "purpose"), INTERNALS, ids=[f"{m}.{a}" for m, a, _ in INTERNALS])
def test_internal_still_exists(module, attribute, purpose):
    try:
        found = getattr(importlib.import_module(module), attribute)
    except (ImportError, AttributeError) as error:
        pytest.fail(f"Pulumi SDK internal {module}.{attribute} changed ({error}); we use it to {purpose}")
    assert found is not None


def test_the_mock_monitor_still_takes_registrations_by_the_grpc_name():
    monitor_class = pulumi_internals.MockMonitor
    assert callable(getattr(monitor_class, "RegisterResource", None)), (
        "pulumi.runtime.mocks.MockMonitor.RegisterResource changed: ObservingMockMonitor records nothing"
    )


def test_a_missing_internal_is_reported_by_name():
    with pytest.raises(PulumiInternalChangedError, match=r"pulumi\.runtime\.stack\.no_such_thing"):
        _internal("pulumi.runtime.stack", "no_such_thing")


def test_the_pinned_versions_are_installed():
    """constraints.txt pins the versions these internals were checked with."""
    from importlib import metadata

    pins = dict(
        re.fullmatch(r"([A-Za-z0-9_.-]+)==(\S+)", line).groups()
        for line in (ROOT / "constraints.txt").read_text().splitlines()
        if line and not line.startswith("#")
    )
    for package in ("pulumi", "pulumi_kubernetes"):
        assert metadata.version(package) == pins[package], f"{package} differs from constraints.txt"


PRIVATE_USES = re.compile(
    r"pulumi\.runtime|_sync_await|run_pulumi_func|\bMockMonitor|runtime_config|CONFIG\.get\(|set_all_config|set_mocks"
)


def test_no_other_module_touches_the_internals():
    offenders = []
    for folder in ("infra", "components", "inference", "tests"):
        for path in (ROOT / folder).rglob("*.py"):
            if path.name in ("pulumi_internals.py", "test_pulumi_internals.py"):
                continue
            for number, line in enumerate(path.read_text().splitlines(), 1):
                if PRIVATE_USES.search(line):
                    offenders.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert offenders == []


def test_ci_and_the_readme_install_with_the_constraints():
    assert "pip install -c constraints.txt -e '.[test]'" in (ROOT / ".ci" / "run").read_text()
    readme = (ROOT / "README.md").read_text()
    assert "pip install -c constraints.txt -e . &&" in readme
    assert "pip install -c constraints.txt -e '.[test]' &&" in readme
