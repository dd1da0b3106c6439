"""Every sharing mode through the real program, heterogeneous nodes, and switching modes."""

from __future__ import annotations

import pytest
import yaml

from components.sharing_config import DEVICE_PLUGIN_CONFIG_LABEL, MIG_CONFIG_LABEL, MIG_LAYOUT_KEY
from infra.diff import diff_renders, render_of
from infra.offline import RenderError
from tests.conftest import objects, one, operator_values, render_config, render_stack
from tests.upstream_rules import device_plugin_violations, mig_layout_violations


def plugin_config(recording, key: str = "default") -> dict:
    return yaml.safe_load(one(recording, "ConfigMap", "cat-watcher-sharing-config")["data"][key])


def container(recording, name: str = "cat-watcher") -> dict:
    return one(recording, "Deployment", name)["spec"]["template"]["spec"]["containers"][0]


def env(recording, name: str = "cat-watcher") -> dict[str, str]:
    return {e["name"]: e["value"] for e in container(recording, name)["env"]}


def gpu_limits(recording, name: str = "cat-watcher") -> dict[str, str]:
    return {k: v for k, v in container(recording, name)["resources"]["limits"].items() if k.startswith("nvidia.com/")}


def test_mps_uses_the_plugins_mps_block_and_caps_memory_client_side():
    recording = render_stack("homelab-3090-mps")
    config = plugin_config(recording)
    assert device_plugin_violations(config) == []
    assert config["sharing"]["mps"]["resources"] == [{"name": "nvidia.com/gpu", "replicas": 8}]
    assert "memoryGB" not in yaml.safe_dump(config)
    variables = env(recording)
    assert (
        variables["CUDA_MPS_PINNED_DEVICE_MEM_LIMIT"] == f"0={variables['CAT_WATCHER__INFERENCE__GPU_MEMORY_LIMIT']}M"
    )
    pod = one(recording, "Deployment")["spec"]["template"]["spec"]
    # The device plugin mounts the MPS pipe and shm itself: no hostPath, no hostIPC.
    assert not any("hostPath" in v for v in pod.get("volumes", [])) and not pod.get("hostIPC")


@pytest.mark.parametrize(
    ("gpu", "key", "fragment"),
    [
        ({"preset": "gtx-1070", "sharing": "mps"}, "catwatcher:gpu.sharing", "compute capability >= 7.0"),
        (
            {"preset": "rtx-3060", "sharing": "mps", "replicas": 49, "memoryPerPodMb": 200},
            "catwatcher:gpu.replicas",
            "at most 48",
        ),
        (
            {"preset": "rtx-3060", "sharing": "mps", "computeCapability": "7.0", "replicas": 17, "memoryPerPodMb": 200},
            "catwatcher:gpu.replicas",
            "at most 16",
        ),
        (
            {"preset": "a100-40gb", "sharing": "mps", "mig": {"strategy": "mixed"}},
            "catwatcher:gpu.mig",
            "MPS runs on full GPUs only",
        ),
        ({"preset": "rtx-3060", "sharing": "mig"}, "catwatcher:gpu.sharing", "does not support MIG"),
        (
            {"preset": "a100-40gb", "sharing": "mig", "mig": {"layout": {"1g.10gb": 7}}},
            "catwatcher:gpu.mig.layout.1g.10gb",
            "at most 4",
        ),
        (
            {"preset": "a100-40gb", "sharing": "mig", "mig": {"layout": {"1g.6gb": 4}}},
            "catwatcher:gpu.mig.layout.1g.6gb",
            "not a MIG profile",
        ),
        (
            {
                "preset": "a100-40gb",
                "sharing": "mig",
                "mig": {"strategy": "mixed", "layout": {"3g.20gb": 2, "1g.5gb": 2}},
            },
            "catwatcher:gpu.mig.layout",
            "does not fit",
        ),
        (
            {"preset": "a100-40gb", "sharing": "mig", "mig": {"layout": {"3g.20gb": 1, "1g.5gb": 2}}},
            "catwatcher:gpu.mig.strategy",
            "use mixed",
        ),
        ({"preset": "rtx-3060", "sharing": "none", "replicas": 4}, "catwatcher:gpu.replicas", "whole GPU"),
    ],
)
def test_invalid_mode_combinations_are_refused(gpu, key, fragment):
    with pytest.raises(RenderError) as caught:
        render_config({"gpu": gpu})
    assert key in str(caught.value) and fragment in str(caught.value)


def mig_node_layout(recording) -> tuple[str, dict]:
    """(the layout a MIG node is labelled with, the mig-parted document)."""
    layouts = yaml.safe_load(one(recording, "ConfigMap", "cat-watcher-mig-parted-config")["data"][MIG_LAYOUT_KEY])
    (node,) = objects(recording, "Node")
    return node["metadata"]["labels"][MIG_CONFIG_LABEL], layouts


def test_mig_single_requests_whole_gpus_from_a_mig_layout():
    recording = render_stack("a100-mig")
    label, layouts = mig_node_layout(recording)
    assert mig_layout_violations(layouts) == []
    values = operator_values(recording)
    assert values["mig"] == {"strategy": "single"}
    # The ClusterPolicy's enum allows only all-disabled here: the node label picks the layout.
    assert values["migManager"]["config"] == {"name": "cat-watcher-mig-parted-config", "default": "all-disabled"}
    assert layouts["mig-configs"][label][0]["mig-devices"] == {"1g.5gb": 7}
    assert plugin_config(recording, "a100")["flags"] == {"migStrategy": "single"}
    assert gpu_limits(recording, "cat-watcher-a100") == {"nvidia.com/gpu": "1"}
    assert one(recording, "Deployment")["spec"]["replicas"] == 7


def test_mig_needs_named_nodes():
    with pytest.raises(
        RenderError,
        match=r"catwatcher:gpu\.sharing: mig layouts reach a node through its nvidia\.com/mig\.config label",
    ):
        render_config({"gpu": {"preset": "a100-40gb", "sharing": "mig"}})


def test_mig_mixed_requests_the_profile_and_time_slices_it():
    recording = render_stack("h100-mig-mixed")
    assert mig_node_layout(recording)[0] == "catwatcher-2x1g.10gb-1x2g.20gb-1x3g.40gb"
    config = plugin_config(recording, "h100")
    assert device_plugin_violations(config) == []
    assert config["flags"]["migStrategy"] == "mixed"
    assert config["sharing"]["timeSlicing"]["resources"] == [{"name": "nvidia.com/mig-1g.10gb", "replicas": 2}]
    assert gpu_limits(recording, "cat-watcher-h100") == {"nvidia.com/mig-1g.10gb": "1"}
    assert one(recording, "Deployment")["spec"]["replicas"] == 4
    # Per-pod memory comes from the MIG instance, not the whole card.
    assert int(env(recording, "cat-watcher-h100")["CAT_WATCHER__INFERENCE__GPU_MEMORY_LIMIT"]) * 2 + 1024 <= 9984


def test_none_gives_each_pod_a_whole_gpu():
    recording = render_config({"gpu": {"preset": "rtx-3060", "sharing": "none", "count": 2}})
    assert plugin_config(recording) == {"version": "v1", "flags": {"migStrategy": "none"}}
    assert gpu_limits(recording) == {"nvidia.com/gpu": "1"}
    assert one(recording, "Deployment")["spec"]["replicas"] == 2
    with pytest.raises(RenderError, match=r"catwatcher:app\.replicas"):
        render_config({"gpu": {"preset": "rtx-3060", "sharing": "none", "count": 2}, "app": {"replicas": 3}})


def test_heterogeneous_nodes_get_their_own_config_key_and_workloads():
    recording = render_stack("homelab-mixed-nodes")
    data = one(recording, "ConfigMap", "cat-watcher-sharing-config")["data"]
    assert set(data) == {"pascal", "ampere"}
    nodes = {n["metadata"]["name"]: n["metadata"]["labels"] for n in objects(recording, "Node")}
    assert nodes == {
        "gpu-node-1070": {DEVICE_PLUGIN_CONFIG_LABEL: "pascal"},
        "gpu-node-3060": {DEVICE_PLUGIN_CONFIG_LABEL: "ampere"},
    }
    for labels in nodes.values():
        assert labels[DEVICE_PLUGIN_CONFIG_LABEL] in data  # no label points at a missing key
    assert "default" not in operator_values(recording)["devicePlugin"]["config"]
    for group, replicas, memory in (("pascal", 2, "3492"), ("ampere", 4, "2724")):
        deployment = one(recording, "Deployment", f"cat-watcher-{group}")
        pod = deployment["spec"]["template"]["spec"]
        assert pod["nodeSelector"] == {DEVICE_PLUGIN_CONFIG_LABEL: group}
        assert deployment["spec"]["replicas"] == replicas
        assert env(recording, f"cat-watcher-{group}")["CAT_WATCHER__INFERENCE__GPU_MEMORY_LIMIT"] == memory


def test_mig_node_group_gets_the_mig_label():
    recording = render_config(
        {
            "nodeGroups": [
                {"name": "a100", "nodes": ["dgx-1"], "gpu": {"preset": "a100-40gb", "sharing": "mig"}},
                {"name": "consumer", "nodes": ["box-1"], "gpu": {"preset": "rtx-3060"}},
            ]
        }
    )
    labels = {n["metadata"]["name"]: n["metadata"]["labels"] for n in objects(recording, "Node")}
    layouts = yaml.safe_load(one(recording, "ConfigMap", "cat-watcher-mig-parted-config")["data"][MIG_LAYOUT_KEY])
    assert labels["dgx-1"][MIG_CONFIG_LABEL] in layouts["mig-configs"]
    assert MIG_CONFIG_LABEL not in labels["box-1"]


@pytest.mark.parametrize(
    ("groups", "key", "fragment"),
    [
        ([{"name": "a", "nodes": [], "gpu": {"preset": "rtx-3060"}}], "catwatcher:nodeGroups[0].nodes", "at least 1"),
        (
            [
                {"name": "a", "nodes": ["n1"], "gpu": {"preset": "rtx-3060"}},
                {"name": "a", "nodes": ["n2"], "gpu": {"preset": "gtx-1070"}},
            ],
            "catwatcher:nodeGroups[1].name",
            "duplicate",
        ),
        (
            [
                {"name": "a", "nodes": ["n1"], "gpu": {"preset": "rtx-3060"}},
                {"name": "b", "nodes": ["n1"], "gpu": {"preset": "gtx-1070"}},
            ],
            "catwatcher:nodeGroups[1].nodes",
            "already in node group",
        ),
        (
            [{"name": "a", "nodes": ["n1"], "gpu": {"preset": "rtx-3060"}, "inferenceReplicas": 5}],
            "catwatcher:nodeGroups[0].inferenceReplicas",
            "at most 4",
        ),
    ],
)
def test_bad_node_groups_are_refused(groups, key, fragment):
    with pytest.raises(RenderError) as caught:
        render_config({"nodeGroups": groups})
    assert key in str(caught.value) and fragment in str(caught.value)


HOMELAB_3060 = {"gpu": {"preset": "rtx-3060", "sharing": "time-slicing", "replicas": 4}, "app": {"replicas": 4}}


def test_switching_time_slicing_to_mps_touches_only_what_it_must():
    base = render_config(HOMELAB_3060)
    head = render_config({**HOMELAB_3060, "gpu": {**HOMELAB_3060["gpu"], "sharing": "mps"}})
    diff = diff_renders("homelab-3060", render_of(base), render_of(head))
    touched = {(c.what, c.status) for c in diff.changes}
    assert {what for what, status in touched if status == "changed"} == {
        "ConfigMap gpu-operator/cat-watcher-sharing-config",
        "Deployment cat-watcher/cat-watcher",
    }
    # The restart Job is the one object replaced: a new hash, a new Job.
    assert {status for what, status in touched if what.startswith("Job ")} == {"added", "removed"}
    assert not any(what.startswith(("Namespace", "helm release")) for what, _ in touched)
    fields = {f.path for c in diff.changes if c.status == "changed" for f in c.fields}
    assert fields == {
        "data.default",
        "spec.template.spec.containers[inference].env[CUDA_MPS_PINNED_DEVICE_MEM_LIMIT]",
    }


def test_switching_to_mig_changes_operator_values_not_the_release_identity():
    def a100(sharing: dict) -> dict:
        return {"nodeGroups": [{"name": "a100", "nodes": ["dgx-1"], "gpu": {"preset": "a100-40gb", **sharing}}]}

    base = render_config(a100({"sharing": "time-slicing", "replicas": 4}))
    head = render_config(a100({"sharing": "mig"}))
    diff = diff_renders("a100", render_of(base), render_of(head))
    release = next(c for c in diff.changes if c.what == "helm release gpu-operator")
    assert release.status == "changed"
    # MIG layout wiring, and the exporter no longer needs to split shared devices per pod.
    assert {f.path.split(".")[1] for f in release.fields} <= {"mig", "migManager", "dcgmExporter"}
    assert not any(c.what.startswith("Namespace") for c in diff.changes)


def test_node_labels_wait_for_the_configs_they_name():
    from infra.render import graph

    nodes = {n["id"]: n for n in graph(render_stack("h100-mig-mixed"))["resources"]}
    patch = nodes["kubernetes:core/v1:NodePatch::sharing-node-hgx-h100-1"]
    assert {
        "kubernetes:core/v1:ConfigMap::sharing-device-plugin",
        "kubernetes:core/v1:ConfigMap::sharing-mig-parted",
    } <= set(patch["dependencies"])
