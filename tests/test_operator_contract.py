"""The GPU Operator v26.7.0 contract, checked on every shipped stack.

The operator owns objects by kind, namespace and name; three of its DaemonSets read our sharing
ConfigMap, at start only; it applies one MIG strategy to every node; its validator and default
driver cannot handle pre-Turing GPUs (../shared/reference/GPU-OPERATOR-NOTES.md). The contract
comes from the operator's own manifests in ../shared/reference when present, from the project's
derived copy (infra/data/gpu_operator_v26.7.0_contract.yaml) otherwise.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
import yaml

from infra.model import StackConfig
from infra.offline import load_stack_config
from infra.operator_chart import OperatorContract, contract_from_assets, operator_contract, owned_name_clashes
from infra.presets import catalogue
from infra.render import manifests
from infra.stack_config import decode_config
from tests.conftest import REFERENCE, ROOT, STACKS, objects, one, operator_values, render_config

ASSETS = REFERENCE / "gpu-operator-v26.7.0" / "assets"
GFD, MPS, PLUGIN = "gpu-feature-discovery", "nvidia-device-plugin-mps-control-daemon", "nvidia-device-plugin-daemonset"
TURING = (7, 5)


@pytest.fixture(scope="module")
def contract() -> OperatorContract:
    return contract_from_assets(ASSETS) if ASSETS.is_dir() else operator_contract()


def test_the_derived_copy_matches_the_operators_manifests(reference):
    assert operator_contract() == contract_from_assets(reference / "gpu-operator-v26.7.0" / "assets")


def test_the_contract_names_the_three_readers_and_the_service_monitor(contract):
    assert set(contract.sharing_config_readers) == {GFD, MPS, PLUGIN}
    assert ("ServiceMonitor", "nvidia-dcgm-exporter") in {(o.kind, o.name) for o in contract.owned}


def stack_config(stack: str) -> StackConfig:
    config, _ = load_stack_config(ROOT, stack)
    return StackConfig.model_validate(decode_config(config))


def group_specs(config: StackConfig) -> dict[str, Any]:
    """Group name -> its GpuSpec, as the stack file writes it."""
    if config.gpu is not None:
        return {"default": config.gpu}
    return {group.name: group.gpu for group in config.node_groups or []}


def sharing_configs(recording) -> dict[str, dict]:
    config_map = one(recording, "ConfigMap", "cat-watcher-sharing-config")
    return {key: yaml.safe_load(text) for key, text in config_map["data"].items()}


def restart_steps(recording) -> tuple[list[tuple[str, str]], list[str]]:
    """((verb, daemonset) of each init container, the verification's arguments)."""
    pod = one(recording, "Job")["spec"]["template"]["spec"]
    steps = [
        (c["command"][1], next(a for a in c["command"] if a.startswith("daemonset/"))[len("daemonset/") :])
        for c in pod["initContainers"]
    ]
    (verify,) = pod["containers"]
    return steps, verify["command"][4:]


# --- 1. no owned names ---------------------------------------------------------------------


def test_no_object_has_the_kind_namespace_and_name_of_an_operator_object(stack, rendered, contract):
    namespace = stack_config(stack).operator.namespace
    assert owned_name_clashes(manifests(rendered), namespace, contract) == []


def test_the_clash_check_finds_what_main_used_to_declare(contract):
    old = {"kind": "ServiceMonitor", "metadata": {"name": "nvidia-dcgm-exporter", "namespace": "gpu-operator"}}
    cluster_scoped = {"kind": "ClusterRole", "metadata": {"name": "nvidia-device-plugin"}}
    elsewhere = {"kind": "ServiceMonitor", "metadata": {"name": "nvidia-dcgm-exporter", "namespace": "monitoring"}}
    assert owned_name_clashes([old, cluster_scoped, elsewhere], "gpu-operator", contract) == [
        "ServiceMonitor gpu-operator/nvidia-dcgm-exporter",
        "ClusterRole nvidia-device-plugin",
    ]


def test_dcgm_queries_by_workload_pod_keep_working(rendered):
    """The exporter's own pod/namespace labels win (honorLabels), so pod=~"cat-watcher.*" works."""
    values = operator_values(rendered)
    monitors = [
        m
        for m in objects(rendered, "ServiceMonitor")
        if m["metadata"]["name"] != "cat-watcher" and not m["metadata"]["name"].startswith("hami-")
    ]  # HAMi's own (tests/test_component_hami.py)
    assert values["dcgmExporter"]["serviceMonitor"] == {"enabled": False}  # ours, not the operator's
    assert [m["spec"]["endpoints"][0]["honorLabels"] for m in monitors] == [True]


# --- 2. every reader restarted, in order, then the allocatable verified ----------------------


def test_every_reader_restarts_in_order_then_each_group_is_verified(stack, rendered, contract):
    config = stack_config(stack)
    configs = sharing_configs(rendered)
    uses_mps = any("mps" in (c.get("sharing") or {}) for c in configs.values())
    specs = group_specs(config)
    # HAMi's device plugin, not the operator's, serves HAMi groups: only GFD reads their config,
    # and their allocatable is HAMi's (tests/test_hami_mode.py).
    operator_plugin_groups = {name for name, spec in specs.items() if spec.sharing != "hami"}
    expected_readers = [GFD, MPS, PLUGIN] if uses_mps else [GFD, PLUGIN] if operator_plugin_groups else [GFD]
    assert set(expected_readers) <= set(contract.sharing_config_readers)
    steps, verify = restart_steps(rendered)
    assert steps == [(verb, reader) for reader in expected_readers for verb in ("wait", "patch", "rollout")]

    timeout, *checks = verify
    assert int(timeout) > 0
    parsed = {
        re.match(r"group ([^:]+):", reason).group(1): (resource, int(count), nodes)
        for resource, count, nodes, reason in (check.split("|") for check in checks)
    }
    assert set(specs) == set(configs)
    assert set(parsed) == operator_plugin_groups
    mig_layouts = {}
    if mig := [m for m in objects(rendered, "ConfigMap") if m["metadata"]["name"] == "cat-watcher-mig-parted-config"]:
        mig_layouts = yaml.safe_load(mig[0]["data"]["config.yaml"])["mig-configs"]
    deployments = {
        d["spec"]["template"]["metadata"]["labels"]["catwatcher.io/node-group"]: d
        for d in objects(rendered, "Deployment")
    }
    for name, (resource, count, nodes) in parsed.items():
        sharing = next(iter((configs[name].get("sharing") or {"none": {"resources": [{"replicas": 1}]}}).values()))
        replicas = sharing["resources"][0]["replicas"]
        instances = 1
        if specs[name].sharing == "mig":
            node = nodes.split(",")[0]
            labels = next(p for p in objects(rendered, "Node") if p["metadata"]["name"] == node)["metadata"]["labels"]
            layout = mig_layouts[labels["nvidia.com/mig.config"]][0]["mig-devices"]
            strategy = configs[name]["flags"]["migStrategy"]
            instances = (
                sum(layout.values())
                if strategy == "single"
                else layout[resource.removeprefix("nvidia.com/mig-").removesuffix(".shared")]
            )
        assert count == specs[name].count * instances * replicas, name
        limits = deployments[name]["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]
        assert resource in limits, (name, resource)
        # Named nodes are checked by name; a group without names covers every GPU node.
        assert nodes == ",".join(next((g.nodes for g in config.node_groups or [] if g.name == name), []))


def test_a_switch_from_time_slicing_to_mps_on_homelab_3060_restarts_gfd_the_mps_daemon_and_the_plugin():
    stack = stack_config("homelab-3060")
    time_sliced = render_config({"gpu": stack.gpu.model_dump(by_alias=True, exclude_none=True)})
    mps = render_config({"gpu": {**stack.gpu.model_dump(by_alias=True, exclude_none=True), "sharing": "mps"}})
    before, after = one(time_sliced, "Job"), one(mps, "Job")
    assert before["metadata"]["name"] != after["metadata"]["name"], "a new hash is a new Job: it runs"
    steps, _ = restart_steps(mps)
    assert [reader for verb, reader in steps if verb == "patch"] == [GFD, MPS, PLUGIN]


# --- 3. one MIG strategy -------------------------------------------------------------------


def test_one_mig_strategy_set_for_the_cluster_and_no_config_contradicts_it(rendered):
    strategy = operator_values(rendered)["mig"]["strategy"]
    configs = sharing_configs(rendered)
    assert {c["flags"]["migStrategy"] for c in configs.values()} == {strategy}
    if strategy == "mixed":  # the device plugin rejects MPS under mixed
        assert not any("mps" in (c.get("sharing") or {}) for c in configs.values())


# --- 4. pre-Turing GPUs --------------------------------------------------------------------


def test_pre_turing_gpus_skip_the_cuda_workload_and_get_an_r580_driver(stack, rendered):
    config = stack_config(stack)
    presets = catalogue()
    capabilities = [
        (spec.compute_capability or presets[spec.preset].compute_capability) for spec in group_specs(config).values()
    ]
    old = any(tuple(int(p) for p in c.split(".")) < TURING for c in capabilities)
    values = operator_values(rendered)
    cuda_env = values.get("validator", {}).get("cuda", {}).get("env", [])
    assert ({"name": "WITH_WORKLOAD", "value": "false"} in cuda_env) == old
    if old and values["driver"]["enabled"]:
        assert str(values["driver"].get("version", "")).startswith("580.")


def test_some_shipped_stack_has_a_pre_turing_gpu():
    assert "homelab-1070" in STACKS


def test_a_pinned_580_driver_is_installed_for_pascal():
    values = operator_values(render_config({"gpu": {"preset": "gtx-1070"}, "operator": {"driverVersion": "580.82.07"}}))
    assert values["driver"] == {"enabled": True, "version": "580.82.07"}
    assert values["validator"]["cuda"]["env"] == [{"name": "WITH_WORKLOAD", "value": "false"}]


def test_turing_and_newer_keep_the_cuda_workload_and_the_default_driver():
    values = operator_values(render_config({"gpu": {"preset": "gtx-1660"}}))
    assert "validator" not in values and values["driver"] == {"enabled": True}


def test_read_only_root_filesystem_is_a_setting_on_by_default():
    def read_only(app: dict) -> bool:
        recording = render_config({"gpu": {"preset": "rtx-3060"}, "app": app})
        return one(recording, "Deployment")["spec"]["template"]["spec"]["containers"][0]["securityContext"][
            "readOnlyRootFilesystem"
        ]

    assert read_only({}) is True
    assert read_only({"readOnlyRootFilesystem": False}) is False
