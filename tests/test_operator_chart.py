"""Chart-version data: a version without it is refused, and so is a value key the chart lacks,
both during validation, before anything is registered."""

from __future__ import annotations

import pytest

import infra.offline
import infra.operator_chart
from infra.errors import ConfigError
from infra.offline import RenderError
from infra.operator_chart import chart_value_paths, supported_chart_versions
from infra.plan import plan_rollout
from infra.presets import catalogue
from infra.stack_config import parse_stack_config
from tests.conftest import render_config, with_cluster

HOMELAB = {"gpu": {"preset": "rtx-3060"}}


def test_supported_versions_are_those_with_value_paths_and_distribution_facts():
    assert supported_chart_versions() == ["v26.7.0"]
    assert "devicePlugin.config.name" in chart_value_paths("v26.7.0")


def test_unsupported_chart_version_is_refused_naming_the_key_and_the_valid_ones():
    with pytest.raises(ConfigError) as caught:
        plan_rollout(
            parse_stack_config(with_cluster({**HOMELAB, "operator": {"chartVersion": "v99.0.0"}})), catalogue()
        )
    assert caught.value.keys == ["catwatcher:operator.chartVersion"]
    assert "'v99.0.0'" in str(caught.value) and "supported: v26.7.0" in str(caught.value)


@pytest.fixture
def chart_without_mig(monkeypatch):
    """The v26.7.0 key list minus `migManager.config.name`, as an older chart might be."""
    real = chart_value_paths("v26.7.0")
    monkeypatch.setattr(
        infra.operator_chart, "chart_value_paths", lambda version="v26.7.0": real - {"migManager.config.name"}
    )


MIG = {"nodeGroups": [{"name": "mig", "nodes": ["n1"], "gpu": {"preset": "a100-40gb", "sharing": "mig"}}]}


def test_a_value_the_chart_lacks_is_a_config_error_not_a_failure_mid_deployment(chart_without_mig):
    with pytest.raises(ConfigError) as caught:
        plan_rollout(parse_stack_config(with_cluster(MIG)), catalogue())
    assert caught.value.keys == ["catwatcher:operator.chartVersion"]
    assert "has no values migManager.config.name" in str(caught.value)
    plan_rollout(parse_stack_config(with_cluster(HOMELAB)), catalogue())  # stacks without MIG still plan


def test_the_program_registers_nothing_when_a_value_is_unknown(chart_without_mig, monkeypatch):
    registered = []

    class Counting(infra.offline.RecordingMonitor):
        def observe(self, resource):
            registered.append(resource.type)
            super().observe(resource)

    monkeypatch.setattr(infra.offline, "RecordingMonitor", Counting)
    with pytest.raises(RenderError, match="operator.chartVersion"):
        render_config(MIG)
    assert set(registered) <= {"pulumi:pulumi:Stack"}
