"""The bad-config corpus (tests/bad_configs.yaml): every case is refused, naming its key, on one
line, before anything is registered, both through the real program under Pulumi's mock engine
and through the pure path (parse_stack_config + plan_rollout)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

import infra.offline
from infra.errors import ConfigError
from infra.offline import RecordingMonitor, RenderError
from infra.plan import plan_rollout
from infra.presets import catalogue
from infra.stack_config import parse_stack_config
from tests.conftest import render_config, with_cluster

CORPUS = Path(__file__).with_name("bad_configs.yaml")
STACK_RESOURCE = "pulumi:pulumi:Stack"


def load_corpus() -> list[dict[str, Any]]:
    return yaml.safe_load(CORPUS.read_text())


CASES = load_corpus()


def params() -> list[Any]:
    return [
        pytest.param(
            case,
            id=case["name"],
            marks=[pytest.mark.xfail(strict=True, reason=case["xfail"])] if "xfail" in case else [],
        )
        for case in CASES
    ]


def test_the_corpus_is_well_formed():
    assert len(CASES) >= 40
    names = [case["name"] for case in CASES]
    assert len(names) == len(set(names)), "case names must be unique"
    for case in CASES:
        assert set(case) <= {"name", "config", "key", "fragment", "xfail"}, case["name"]
        assert isinstance(case["config"], dict), case["name"]
        assert case["key"].startswith("catwatcher:"), case["name"]
        assert case["fragment"], case["name"]
        assert not any(key.startswith("catwatcher:") for key in case["config"]), "write keys without the prefix"


class _CountingMonitor(RecordingMonitor):
    """A RecordingMonitor that remembers itself and every type registered, even if the run fails."""

    instances: list[_CountingMonitor] = []

    def __init__(self, stack: str):
        super().__init__(stack)
        self.registered_types: list[str] = []
        _CountingMonitor.instances.append(self)

    def observe(self, resource):
        self.registered_types.append(resource.type)
        super().observe(resource)


@pytest.fixture
def monitors(monkeypatch: pytest.MonkeyPatch) -> list[_CountingMonitor]:
    """Every monitor infra.offline creates while the test runs (run_program looks the class up
    in its module at call time, so patching the module attribute is enough)."""
    _CountingMonitor.instances = []
    monkeypatch.setattr(infra.offline, "RecordingMonitor", _CountingMonitor)
    return _CountingMonitor.instances


def assert_names_key(message: str, key: str, fragment: str) -> None:
    # Problems are `key: message`, one a line: the key must start one of the lines, exactly.
    lines = message.splitlines()
    assert all(line.startswith("catwatcher:") for line in lines), f"a line names no key: {message!r}"
    assert any(line.startswith(f"{key}: ") for line in lines), f"{key} not named in: {message}"
    assert fragment in message, f"{fragment!r} not in: {message}"


def test_the_monitor_wrapper_sees_registrations(monitors):
    """Guard against a vacuous 'nothing registered': a good config does register resources."""
    recording = render_config({"gpu": {"preset": "rtx-3060"}})
    assert len(monitors) == 1
    assert recording.resources
    assert len([t for t in monitors[0].registered_types if t != STACK_RESOURCE]) == len(recording.resources)


@pytest.mark.parametrize("case", params())
def test_bad_config_is_refused_by_the_program_before_any_registration(case, monitors):
    with pytest.raises(RenderError) as caught:
        render_config(case["config"])
    assert_names_key(str(caught.value), case["key"], case["fragment"])
    assert len(monitors) == 1, "the program did not run under a recording monitor"
    (monitor,) = monitors
    assert monitor.recording.resources == [], [r.urn for r in monitor.recording.resources]
    assert set(monitor.registered_types) <= {STACK_RESOURCE}, monitor.registered_types


@pytest.mark.parametrize("case", params())
def test_bad_config_is_refused_by_the_pure_path(case):
    with pytest.raises(ConfigError) as caught:
        plan_rollout(parse_stack_config(with_cluster(case["config"])), catalogue())
    error = caught.value
    assert case["key"] in error.keys, str(error)
    assert_names_key(str(error), case["key"], case["fragment"])
