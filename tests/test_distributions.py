"""Cluster distributions: one stack value sets the toolkit's containerd, the driver/toolkit
installs and the pods' runtime class (infra/distributions.py), through the real program."""

from __future__ import annotations

from typing import get_args

import pytest

from infra.distributions import PROFILES, markdown_table, resolve
from infra.errors import ConfigError
from infra.model import ClusterSpec, Distribution, OperatorSpec
from infra.offline import RenderError
from infra.operator_chart import unknown_value_paths
from tests.conftest import ROOT, one, operator_values, render_config

GPU = {"gpu": {"preset": "rtx-3060", "sharing": "time-slicing", "replicas": 4}, "app": {"replicas": 4}}

K3S_SOCKET = "/run/k3s/containerd/containerd.sock"
EXPECTED = {
    # distribution: (driver.enabled, toolkit.enabled, toolkit.env, runtimeClassName)
    "kubeadm": (True, True, None, None),
    "k3s": (
        True,
        True,
        [
            {"name": "CONTAINERD_CONFIG", "value": "/var/lib/rancher/k3s/agent/etc/containerd/config.toml"},
            {"name": "CONTAINERD_SOCKET", "value": K3S_SOCKET},
            {"name": "RUNTIME_CONFIG_SOURCE", "value": "file"},
            {"name": "CONTAINERD_RUNTIME_CLASS", "value": "nvidia"},
            {"name": "CONTAINERD_SET_AS_DEFAULT", "value": "false"},
        ],
        "nvidia",
    ),
    "rke2": (
        True,
        True,
        [
            {"name": "CONTAINERD_CONFIG", "value": "/var/lib/rancher/rke2/agent/etc/containerd/config.toml"},
            {"name": "CONTAINERD_SOCKET", "value": K3S_SOCKET},
            {"name": "RUNTIME_CONFIG_SOURCE", "value": "file"},
            {"name": "CONTAINERD_RUNTIME_CLASS", "value": "nvidia"},
            {"name": "CONTAINERD_SET_AS_DEFAULT", "value": "false"},
        ],
        "nvidia",
    ),
    "microk8s": (
        True,
        True,
        [
            {"name": "CONTAINERD_CONFIG", "value": "/var/snap/microk8s/current/args/containerd-template.toml"},
            {"name": "CONTAINERD_SOCKET", "value": "/var/snap/microk8s/common/run/containerd.sock"},
            {"name": "RUNTIME_CONFIG_SOURCE", "value": "file=/var/snap/microk8s/current/args/containerd.toml"},
        ],
        "nvidia",
    ),
    "k0s": (
        True,
        True,
        [
            {"name": "CONTAINERD_CONFIG", "value": "/etc/k0s/containerd.d/nvidia.toml"},
            {"name": "CONTAINERD_SOCKET", "value": "/run/k0s/containerd.sock"},
            {"name": "RUNTIME_EXECUTABLE_PATH", "value": "/var/lib/k0s/bin/containerd"},
        ],
        "nvidia",
    ),
    "talos": (False, False, None, "nvidia"),
}


def render(cluster: dict, operator: dict | None = None):
    config = {**GPU, "cluster": cluster}
    if operator is not None:
        config["operator"] = operator
    return render_config(config)


def pod_spec(recording) -> dict:
    return one(recording, "Deployment", "cat-watcher")["spec"]["template"]["spec"]


def test_every_distribution_of_the_model_has_a_profile_and_an_expectation():
    assert set(get_args(Distribution)) == set(PROFILES) == set(EXPECTED)


@pytest.mark.parametrize("distribution", sorted(EXPECTED))
def test_distribution_sets_toolkit_driver_and_runtime_class(distribution):
    driver, toolkit, env, runtime_class = EXPECTED[distribution]
    recording = render({"distribution": distribution})
    values = operator_values(recording)
    assert values["driver"] == {"enabled": driver}
    assert values["toolkit"]["enabled"] is toolkit
    assert values["toolkit"].get("env") == env
    assert "cdi" not in values  # the chart's own CDI default (enabled) applies
    assert pod_spec(recording).get("runtimeClassName") == runtime_class
    assert unknown_value_paths(values) == []


@pytest.mark.parametrize("distribution", ["kubeadm", "k3s", "rke2", "microk8s", "k0s"])
def test_nri_plugin_drops_runtime_class_and_containerd_env(distribution):
    recording = render({"distribution": distribution, "useNriPlugin": True})
    values = operator_values(recording)
    assert values["cdi"] == {"enabled": True, "nriPluginEnabled": True}
    assert values["toolkit"] == {"enabled": True}  # no CONTAINERD_* env at all
    assert "runtimeClassName" not in pod_spec(recording)


def test_unknown_distribution_is_refused_naming_the_key():
    with pytest.raises(RenderError, match=r"catwatcher:cluster\.distribution") as caught:
        render({"distribution": "openshift"})
    assert "k3s" in str(caught.value)  # the message lists the valid values


def cluster(**keys) -> ClusterSpec:
    """Stack-file spelling (camelCase), as the program validates it."""
    return ClusterSpec.model_validate({"kubeContext": "test-cluster", **keys})


def operator(**keys) -> OperatorSpec:
    return OperatorSpec.model_validate(keys)


@pytest.mark.parametrize("key", ["installDriver", "installToolkit"])
def test_talos_refuses_the_operators_driver_or_toolkit(key):
    with pytest.raises(RenderError, match=rf"catwatcher:operator\.{key}: talos nodes get"):
        render({"distribution": "talos"}, {key: True})
    with pytest.raises(ConfigError) as caught:
        resolve(cluster(distribution="talos"), operator(**{key: True}))
    assert caught.value.keys == [f"catwatcher:operator.{key}"]


def test_talos_with_nri_plugin_is_refused():
    with pytest.raises(RenderError, match=r"catwatcher:cluster\.useNriPlugin: .*talos has no operator toolkit"):
        render({"distribution": "talos", "useNriPlugin": True})


def test_nri_plugin_without_the_toolkit_is_refused():
    with pytest.raises(RenderError, match=r"catwatcher:cluster\.useNriPlugin: .*installToolkit is false"):
        render({"distribution": "k3s", "useNriPlugin": True}, {"installToolkit": False})


def test_explicit_operator_settings_win_over_the_distribution_default():
    values = operator_values(render({"distribution": "k3s"}, {"installDriver": False}))
    assert values["driver"] == {"enabled": False}
    assert values["toolkit"]["env"][1] == {"name": "CONTAINERD_SOCKET", "value": K3S_SOCKET}
    # A host toolkit of the user's own: no operator toolkit, so no env, the runtime class stays.
    recording = render({"distribution": "rke2"}, {"installToolkit": False})
    assert operator_values(recording)["toolkit"] == {"enabled": False}
    assert pod_spec(recording)["runtimeClassName"] == "nvidia"
    # Saying what Talos implies anyway is fine.
    assert operator_values(render({"distribution": "talos"}, {"installDriver": False, "installToolkit": False}))[
        "driver"
    ] == {"enabled": False}


# --- the pure mapping, without any engine -------------------------------------------------


def test_resolve_defaults_to_kubeadm_with_chart_defaults():
    runtime = resolve(cluster(), operator())
    assert (runtime.distribution, runtime.install_driver, runtime.install_toolkit) == ("kubeadm", True, True)
    assert (runtime.toolkit_env, runtime.cdi_nri_plugin, runtime.runtime_class) == ((), False, None)


def test_resolve_nri_on_k0s():
    runtime = resolve(cluster(distribution="k0s", useNriPlugin=True), operator(installDriver=False))
    assert (runtime.install_driver, runtime.install_toolkit, runtime.cdi_nri_plugin) == (False, True, True)
    assert runtime.toolkit_env == () and runtime.runtime_class is None


def test_resolve_reports_every_contradiction_at_once():
    with pytest.raises(ConfigError) as caught:
        resolve(cluster(distribution="talos", useNriPlugin=True), operator(installDriver=True, installToolkit=True))
    assert caught.value.keys == ["catwatcher:operator.installDriver", "catwatcher:operator.installToolkit"]


def test_profiles_never_point_the_toolkit_at_a_template_or_the_default_config():
    for name, row in PROFILES.items():
        env = dict(row.toolkit_env)
        assert not env.get("CONTAINERD_CONFIG", "").endswith(".tmpl"), name
        if name != "kubeadm" and row.install_toolkit:
            assert env["CONTAINERD_SOCKET"] != "/run/containerd/containerd.sock", name
            assert env["CONTAINERD_CONFIG"] != "/etc/containerd/config.toml", name
        assert all(isinstance(value, str) for value in env.values()), name  # env values are strings


def test_markdown_table_has_one_row_per_distribution_and_the_nri_row():
    rows = [line for line in markdown_table().splitlines()[2:] if line.startswith("| `")]
    assert [row.split("`")[1] for row in rows] == list(PROFILES)
    assert "cluster.useNriPlugin: true" in markdown_table()
    assert "`CONTAINERD_SOCKET=/run/k3s/containerd/containerd.sock`" in markdown_table()


def test_readme_distribution_table_is_generated():
    readme = (ROOT / "README.md").read_text()
    if "## Cluster distributions" not in readme:
        pytest.skip("README has no '## Cluster distributions' section yet")
    assert markdown_table() in readme
