"""The real program under Pulumi's mock engine: what it registers and in which order."""

from __future__ import annotations

import pytest

from infra.offline import RenderError
from infra.render import graph, helm_releases
from tests.conftest import objects, one, operator_values, render_config, render_stack

HOMELAB_3060 = {"gpu": {"preset": "rtx-3060", "sharing": "time-slicing", "replicas": 4}, "app": {"replicas": 4}}


def depends_on(recording, dependent: str, dependency: str) -> bool:
    """Whether `dependent` (a graph id) waits for `dependency`, directly or transitively."""
    edges = {node["id"]: set(node["dependencies"]) for node in graph(recording)["resources"]}
    seen, todo = set(), [dependent]
    while todo:
        for nxt in edges.get(todo.pop(), ()):
            if nxt == dependency:
                return True
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return False


def test_homelab_3060_registers_the_whole_rollout():
    recording = render_stack("homelab-3060")
    types = {r.type for r in recording.resources}
    assert {
        "catwatcher:index:SharingConfig",
        "catwatcher:index:GpuOperator",
        "catwatcher:index:CatWatcher",
        "catwatcher:index:DcgmMonitoring",
        "kubernetes:helm.sh/v3:Release",
        "kubernetes:core/v1:ConfigMap",
        "kubernetes:batch/v1:Job",
        "kubernetes:apps/v1:Deployment",
    } <= types


def test_configmap_then_release_then_restart_then_deployment():
    recording = render_stack("homelab-3060")
    config_map = "kubernetes:core/v1:ConfigMap::sharing-device-plugin"
    release = "kubernetes:helm.sh/v3:Release::gpu-operator"
    restart = "kubernetes:batch/v1:Job::gpu-operator-device-plugin-restart"
    deployment = "kubernetes:apps/v1:Deployment::cat-watcher-default"
    assert depends_on(recording, release, config_map)
    assert depends_on(recording, restart, release)
    assert depends_on(recording, deployment, restart)
    assert not depends_on(recording, config_map, deployment)


def test_components_parent_their_children():
    nodes = {n["id"]: n for n in graph(render_stack("homelab-3060"))["resources"]}
    assert (
        nodes["kubernetes:helm.sh/v3:Release::gpu-operator"]["parent"] == "catwatcher:index:GpuOperator::gpu-operator"
    )
    assert (
        nodes["kubernetes:core/v1:ConfigMap::sharing-device-plugin"]["parent"]
        == "catwatcher:index:SharingConfig::sharing"
    )
    assert (
        nodes["kubernetes:apps/v1:Deployment::cat-watcher-default"]["parent"]
        == "catwatcher:index:CatWatcher::cat-watcher"
    )


def test_operator_values_wire_the_sharing_config():
    recording = render_stack("homelab-3060")
    release = helm_releases(recording)["gpu-operator"]
    assert (release["chart"], release["repository"], release["version"], release["namespace"]) == (
        "gpu-operator",
        "https://helm.ngc.nvidia.com/nvidia",
        "v26.7.0",
        "gpu-operator",
    )
    config_map = one(recording, "ConfigMap", "cat-watcher-sharing-config")
    plugin = release["values"]["devicePlugin"]["config"]
    assert plugin["name"] == config_map["metadata"]["name"]
    assert plugin["default"] in config_map["data"]
    assert config_map["metadata"]["namespace"] == release["namespace"]


def test_driver_and_toolkit_toggles():
    values = operator_values(
        render_config({**HOMELAB_3060, "operator": {"installDriver": False, "installToolkit": False}})
    )
    assert values["driver"] == {"enabled": False}
    assert values["toolkit"]["enabled"] is False
    assert operator_values(render_config(HOMELAB_3060))["driver"] == {"enabled": True}


def test_deployment_is_sized_to_its_slice():
    deployment = one(render_stack("homelab-3060"), "Deployment", "cat-watcher")
    pod = deployment["spec"]["template"]["spec"]
    container = pod["containers"][0]
    env = {e["name"]: e["value"] for e in container["env"]}
    assert env["CAT_WATCHER__INFERENCE__GPU_MEMORY_LIMIT"] == "2724"  # 2304 arena + 420 overhead
    assert container["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert deployment["spec"]["replicas"] == 4
    assert not container["image"].endswith(":latest") and ":" in container["image"]
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in pod["tolerations"]
    assert pod["nodeSelector"] == {"nvidia.com/gpu.present": "true"}
    # Every slice is used: a surge pod could never be scheduled.
    assert deployment["spec"]["strategy"]["rollingUpdate"]["maxSurge"] == 0


def restart_job(recording) -> dict:
    return one(recording, "Job")


def test_restart_job_changes_exactly_when_the_sharing_config_changes():
    base = restart_job(render_config(HOMELAB_3060))
    same = restart_job(
        render_config({**HOMELAB_3060, "app": {"replicas": 2, "image": "docker.io/jeefy/cat-watcher:0.2.0"}})
    )
    changed = restart_job(
        render_config({**HOMELAB_3060, "gpu": {**HOMELAB_3060["gpu"], "replicas": 3}, "app": {"replicas": 3}})
    )
    assert base == same
    assert changed["metadata"]["name"] != base["metadata"]["name"]


def test_restart_job_waits_for_the_daemonset_before_restarting():
    spec = restart_job(render_stack("homelab-3060"))["spec"]["template"]["spec"]
    steps = [c["command"] for c in spec["initContainers"]] + [c["command"] for c in spec["containers"]]
    for first, reader in ((0, "gpu-feature-discovery"), (3, "nvidia-device-plugin-daemonset")):
        assert steps[first][:4] == ["kubectl", "wait", "--for=create", f"daemonset/{reader}"]
        assert steps[first + 1][:3] == ["kubectl", "patch", f"daemonset/{reader}"]
        assert steps[first + 2][:4] == ["kubectl", "rollout", "status", f"daemonset/{reader}"]
    assert steps[6][:2] == ["bash", "-c"] and steps[6][-1] == "nvidia.com/gpu|4||group default: 1 GPU x 4 replicas"


def test_restart_stamps_the_content_hash_so_a_rerun_restarts_nothing():
    import json

    job = restart_job(render_stack("homelab-3060"))
    stamp = job["spec"]["template"]["spec"]["initContainers"][1]["command"][-1]
    annotations = json.loads(stamp)["spec"]["template"]["metadata"]["annotations"]
    content_hash = job["spec"]["template"]["metadata"]["annotations"]["catwatcher.io/sharing-config-hash"]
    assert annotations == {"catwatcher.io/sharing-config-hash": content_hash}
    assert job["metadata"]["name"].endswith(content_hash[:10])
    # A new restart image replaces the Job, but it stamps the same hash: no second rollout.
    other = restart_job(
        render_config({**HOMELAB_3060, "operator": {"restartImage": "registry.k8s.io/kubectl:v1.34.1"}})
    )
    assert other["spec"]["template"]["spec"]["initContainers"][1]["command"][-1] == stamp


def test_restart_rbac_allows_every_kubectl_step():
    role = one(render_stack("homelab-3060"), "Role", "device-plugin-restart")
    verbs = {verb for rule in role["rules"] for verb in rule["verbs"] if "daemonsets" in rule["resources"]}
    assert {"get", "list", "watch", "patch"} <= verbs


def test_invalid_config_registers_nothing():
    with pytest.raises(RenderError, match=r"catwatcher:gpu\.replicas"):
        render_config({"gpu": {"preset": "rtx-3060", "replicas": 1}})


def test_monitoring_can_be_turned_off_for_clusters_without_prometheus_operator():
    recording = render_config({**HOMELAB_3060, "monitoring": {"serviceMonitor": False}})
    assert objects(recording, "ServiceMonitor") == []
    assert operator_values(recording)["dcgmExporter"]["enabled"] is True


def test_every_kubernetes_resource_goes_through_the_explicit_provider(rendered):
    providers = [r for r in rendered.resources if r.type == "pulumi:providers:kubernetes"]
    assert [p.name for p in providers] == ["cluster"]
    for resource in rendered.resources:
        if resource.custom and resource.type.startswith("kubernetes:"):
            assert resource.provider.startswith(providers[0].urn + "::"), (resource.type, resource.name)


def test_kube_context_selects_the_cluster():
    recording = render_config({**HOMELAB_3060, "cluster": {"kubeContext": "homelab"}})
    provider = next(r for r in recording.resources if r.type == "pulumi:providers:kubernetes")
    assert provider.inputs["context"] == "homelab"


def test_config_maps_update_in_place_but_secrets_are_replaced():
    provider = next(r for r in render_stack("homelab-3060").resources if r.type == "pulumi:providers:kubernetes")
    assert provider.inputs["enableConfigMapMutable"] == "true"
    assert "enableSecretMutable" not in provider.inputs


def test_pulumi_yaml_disables_the_default_kubernetes_provider():
    import yaml

    from tests.conftest import ROOT

    settings = yaml.safe_load((ROOT / "Pulumi.yaml").read_text())
    assert settings["config"]["pulumi:disable-default-providers"]["value"] == ["kubernetes"]


def test_renders_after_asyncio_run_left_the_thread_without_a_loop():
    import asyncio

    asyncio.run(asyncio.sleep(0))  # leaves no current event loop, as test clients do
    assert render_config(HOMELAB_3060).resources
