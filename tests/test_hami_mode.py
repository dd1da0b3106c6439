"""`sharing: hami` end to end: validation, the rendered homelab-3060-hami stack, mixed node
groups, Pod Security after HAMi's webhook, and switching modes as a one-value change."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
import yaml

from inference import contract
from infra.errors import ConfigError
from infra.gpu_impact import restart_job
from infra.hami_chart import facts, value_paths
from infra.offline import load_stack_config
from infra.plan import plan_rollout
from infra.presets import catalogue
from infra.render import helm_releases, manifests
from infra.stack_config import decode_config, parse_stack_config
from tests.conftest import ROOT, objects, operator_values, render_config, render_stack, with_cluster
from tests.pod_security import restricted_violations
from tests.test_pod_security import RESTRICTED, namespace_labels, pod_templates

STACK = "homelab-3060-hami"


def plan(config: dict[str, Any]):
    return plan_rollout(parse_stack_config(with_cluster(config)), catalogue())


def refused(config: dict[str, Any]) -> dict[str, str]:
    with pytest.raises(ConfigError) as caught:
        plan(config)
    return dict(caught.value.problems)


def stack_config(stack: str) -> dict[str, Any]:
    config, _ = load_stack_config(ROOT, stack)
    return decode_config(config)


def inference_container(recording) -> tuple[dict[str, Any], dict[str, Any]]:
    [deployment] = [d for d in objects(recording, "Deployment") if d["metadata"]["namespace"] == "cat-watcher"]
    spec = deployment["spec"]["template"]["spec"]
    return spec, spec["containers"][0]


# --- validation ------------------------------------------------------------------------------


def test_the_preset_recommendation_fits_under_hami():
    group = plan({"gpu": {"preset": "rtx-3060", "sharing": "hami"}}).groups[0]
    assert (group.replicas_per_device, group.memory_per_pod_mb) == (4, 2304)
    # HAMi caps the whole budget: the arena plus the CUDA context and libraries.
    assert group.backend.memory_cap_mb(group) == group.budget_mb == 2304 + group.overhead_mb


def test_pods_per_gpu_up_to_device_split_count():
    assert facts().device_split_count == 10
    # 10 x (1280 arena + 800 overhead) + 1024 reserve = 21824 MiB: memory is not the limit here.
    group = plan({"gpu": {"preset": "rtx-4090", "sharing": "hami", "replicas": 10, "memoryPerPodMb": 1280}}).groups[0]
    assert group.replicas_per_device == 10
    problems = refused({"gpu": {"preset": "rtx-4090", "sharing": "hami", "replicas": 11, "memoryPerPodMb": 1280}})
    assert "deviceSplitCount" in problems["catwatcher:gpu.replicas"]


def test_one_pod_per_gpu_is_a_capped_whole_gpu():
    group = plan({"gpu": {"preset": "rtx-3060", "sharing": "hami", "replicas": 1}}).groups[0]
    assert group.replicas_per_device == 1 and group.memory_per_pod_mb == 2304


def test_memory_plus_reserve_must_fit_vram():
    # 4 x (2396 arena + 420 overhead) + 1024 = 12288: exactly the RTX 3060's VRAM.
    plan({"gpu": {"preset": "rtx-3060", "sharing": "hami", "replicas": 4, "memoryPerPodMb": 2396}})
    problems = refused({"gpu": {"preset": "rtx-3060", "sharing": "hami", "replicas": 4, "memoryPerPodMb": 2397}})
    assert (
        "4 pods x (2397 arena + 420 overhead) + 1024 reserve = 12292 MiB > 12288 MiB"
        in problems["catwatcher:gpu.memoryPerPodMb"]
    )


def test_gpu_cores_total_at_most_100():
    group = plan({"gpu": {"preset": "rtx-3060", "sharing": "hami", "replicas": 4, "gpuCoresPerPod": 25}}).groups[0]
    assert group.gpu_cores_per_pod == 25
    problems = refused({"gpu": {"preset": "rtx-3060", "sharing": "hami", "replicas": 4, "gpuCoresPerPod": 26}})
    assert problems["catwatcher:gpu.gpuCoresPerPod"].startswith("4 pods x 26% = 104%")


@pytest.mark.parametrize(
    ("capability", "accepted"), [("5.2", False), ("5.3", False), ("6.0", True), ("6.1", True), ("12.0", True)]
)
def test_compute_capability_floor_is_pascal(capability, accepted):
    config = {
        "gpu": {
            "preset": "gtx-1070",
            "sharing": "hami",
            "computeCapability": capability,
            "replicas": 2,
            "memoryPerPodMb": 3072,
        },
        "operator": {"installDriver": False},
    }  # an R580 host driver, as Pascal needs
    if accepted:
        plan(config)
    else:
        assert "compute capability 6.0" in refused(config)["catwatcher:gpu.sharing"]


def test_every_preset_hami_can_drive_is_accepted():
    for key, preset in catalogue().items():
        if preset.capability >= facts().minimum_compute_capability:
            plan(
                {
                    "gpu": {"preset": key, "sharing": "hami", "replicas": 2, "memoryPerPodMb": 1024},
                    "operator": {"installDriver": False},
                }
            )


# --- the shipped stack -----------------------------------------------------------------------


def test_the_hami_release_is_pinned_and_its_values_exist_upstream(reference):
    release = helm_releases(render_stack(STACK))["hami"]
    assert (release["chart"], release["version"], release["repository"]) == (
        "hami",
        "2.10.0",
        "https://project-hami.github.io/HAMi/",
    )
    upstream = yaml.safe_load((reference / "hami-v2.10.0" / "values.yaml").read_text())
    listed = frozenset(value_paths(upstream))
    for path in value_paths(release["values"]):
        # The node selector is a free-form map (toYaml in the DaemonSet template).
        assert path in listed or path.startswith("devicePlugin.nvidiaNodeSelector."), path


def test_no_operator_device_plugin_on_hami_nodes():
    recording = render_stack(STACK)
    assert operator_values(recording)["devicePlugin"]["enabled"] is False
    # The restart rolls only GPU feature discovery (it still labels HAMi nodes from the sharing
    # config): nothing waits for the plugin DaemonSet the operator no longer creates, and no
    # allocatable check holds HAMi's nodes to the operator plugin's count.
    (job,) = [j for j in objects(recording, "Job") if j["metadata"]["name"].startswith("device-plugin-restart")]
    assert restart_job(job).rolls == ("gpu-feature-discovery",)
    assert "nvidia-device-plugin-daemonset" not in json.dumps(job)
    (verify,) = [c for c in job["spec"]["template"]["spec"]["containers"] if c["name"] == "verify-allocatable"]
    assert verify["command"][-2:] == ["verify-allocatable", "600"]  # no check after the timeout
    # HAMi's plugin takes every GPU node instead (the label the operator puts on them).
    selector = helm_releases(recording)["hami"]["values"]["devicePlugin"]["nvidiaNodeSelector"]
    assert selector == {"gpu": None, "nvidia.com/gpu.present": "true"}


def test_pods_ask_for_gpumem_equal_to_their_onnx_runtime_limit():
    spec, container = inference_container(render_stack(STACK))
    env = {item["name"]: item["value"] for item in container["env"]}
    limits = container["resources"]["limits"]
    assert limits[facts().gpu_resource] == "1"
    # The cap is the pod's whole budget; the service gives ONNX Runtime's arenas that minus the
    # overhead (CUDA context and libraries), which HAMi-core counts too.
    assert limits[facts().memory_resource] == env[contract.GPU_MEMORY_LIMIT_ENV] == "2724"
    assert int(env[contract.GPU_MEMORY_LIMIT_ENV]) - int(env[contract.GPU_MEMORY_OVERHEAD_ENV]) == 2304
    assert facts().cores_resource not in limits
    assert spec["schedulerName"] == facts().scheduler_name
    assert spec["runtimeClassName"] == "nvidia"


def apply_hami_webhook(pod_spec: dict[str, Any], runtime_class: str) -> dict[str, Any]:
    """What HAMi's admission webhook does to a pod asking for nvidia.com/gpu (pkg/scheduler/
    webhook.go, pkg/device/nvidia MutateAdmission): schedulerName, runtimeClassName if the pod
    names none, env only for nvidia.com/priority or a non-default gpuCorePolicy (we set neither)."""
    mutated = copy.deepcopy(pod_spec)
    for container in mutated.get("initContainers", []) + mutated["containers"]:
        limits = container.get("resources", {}).get("limits", {})
        assert "nvidia.com/priority" not in limits
        assert not container.get("securityContext", {}).get("privileged"), "HAMi refuses privileged GPU pods"
    mutated["schedulerName"] = facts().scheduler_name
    mutated.setdefault("runtimeClassName", runtime_class)
    return mutated


def test_pod_security_restricted_holds_after_hamis_webhook():
    recording = render_stack(STACK)
    labels = namespace_labels(recording)
    assert labels["cat-watcher"]["pod-security.kubernetes.io/enforce"] == "restricted"
    for name, namespace, template in pod_templates(recording):
        if namespace != "cat-watcher":
            continue
        mutated = {"metadata": template["metadata"], "spec": apply_hami_webhook(template["spec"], "nvidia")}
        assert restricted_violations(mutated, RESTRICTED) == [], name
    # HAMi's own device plugin is privileged with hostPID: its namespace says so.
    assert labels["hami-system"]["pod-security.kubernetes.io/enforce"] == "privileged"


def test_hami_monitoring_is_rendered():
    recording = render_stack(STACK)
    monitors = {m["metadata"]["name"]: m for m in objects(recording, "ServiceMonitor")}
    assert monitors["hami-device-plugin"]["metadata"]["namespace"] == "hami-system"
    rules = {r["metadata"]["name"]: r for r in objects(recording, "PrometheusRule")}
    alerts = {rule["alert"] for group in rules["cat-watcher-hami"]["spec"]["groups"] for rule in group["rules"]}
    assert alerts == {"CatWatcherPodNearGpuMemCap", "CatWatcherHamiMetricsAbsent"}
    assert 'namespace="cat-watcher"' in next(
        rule["expr"]
        for group in rules["cat-watcher-hami"]["spec"]["groups"]
        for rule in group["rules"]
        if rule["alert"] == "CatWatcherPodNearGpuMemCap"
    )


def test_no_monitoring_no_hami_monitors():
    config = stack_config(STACK) | {"monitoring": {"enabled": False}}
    recording = render_config(config)
    assert "hami" in helm_releases(recording)
    assert objects(recording, "ServiceMonitor") == [] and objects(recording, "PrometheusRule") == []


def test_gpu_cores_reach_the_pod():
    config = stack_config(STACK)
    config["gpu"] = {**config["gpu"], "gpuCoresPerPod": 25}
    _, container = inference_container(render_config(config))
    assert container["resources"]["limits"][facts().cores_resource] == "25"


# --- mixed node groups -----------------------------------------------------------------------

MIXED = {
    "nodeGroups": [
        {"name": "capped", "nodes": ["gpu-1", "gpu-2"], "gpu": {"preset": "rtx-3060", "sharing": "hami"}},
        {"name": "sliced", "nodes": ["gpu-3"], "gpu": {"preset": "rtx-3060", "sharing": "time-slicing"}},
    ]
}


def test_mixed_stack_keeps_the_operators_plugin_off_hami_nodes_only() -> None:
    recording = render_config(MIXED)
    patches: dict[str, dict[str, str]] = {}
    for patch in objects(recording, "Node"):
        patches.setdefault(patch["metadata"]["name"], {}).update(patch["metadata"]["labels"])
    for node in ("gpu-1", "gpu-2"):
        assert patches[node]["nvidia.com/gpu.deploy.device-plugin"] == "false"
        assert patches[node]["gpu"] == "on"
    assert "nvidia.com/gpu.deploy.device-plugin" not in patches["gpu-3"] and "gpu" not in patches["gpu-3"]
    # The operator's plugin stays on for the time-sliced group, and is restarted on config changes.
    assert operator_values(recording)["devicePlugin"].get("enabled") is not False
    assert [j for j in objects(recording, "Job") if j["metadata"]["name"].startswith("device-plugin-restart")]
    assert helm_releases(recording)["hami"]["values"]["devicePlugin"]["nvidiaNodeSelector"] == {"gpu": "on"}
    # HAMi's plugin registers only once the labels keep the operator's off those nodes.
    (release,) = [r for r in recording.of_type("kubernetes:helm.sh/v3:Release") if r.inputs.get("chart") == "hami"]
    assert {r.urn for r in recording.of_type("kubernetes:core/v1:NodePatch")} <= set(release.dependencies)
    pods = {d["metadata"]["name"]: d["spec"]["template"]["spec"] for d in objects(recording, "Deployment")}
    assert pods["cat-watcher-capped"]["schedulerName"] == "hami-scheduler"
    assert "schedulerName" not in pods["cat-watcher-sliced"]
    assert "nvidia.com/gpumem" not in pods["cat-watcher-sliced"]["containers"][0]["resources"]["limits"]


# --- switching is one value ----------------------------------------------------------------


def with_sharing(stack: str, sharing: str) -> dict[str, Any]:
    config = stack_config(stack)
    config["gpu"] = {**config["gpu"], "sharing": sharing}
    return config


def test_homelab_3060_hami_is_homelab_3060_with_one_value_changed():
    assert with_sharing("homelab-3060", "hami") == stack_config(STACK)
    assert manifests(render_config(with_sharing("homelab-3060", "hami"), stack=STACK)) == manifests(render_stack(STACK))


@pytest.mark.parametrize("sharing", ["time-slicing", "mps"])
def test_switching_back_restores_the_operators_plugin_and_its_restart(sharing):
    recording = render_config(with_sharing(STACK, sharing))
    assert "hami" not in helm_releases(recording)
    assert operator_values(recording)["devicePlugin"].get("enabled") is not False
    jobs = [j for j in objects(recording, "Job") if j["metadata"]["name"].startswith("device-plugin-restart")]
    assert len(jobs) == 1
    spec, container = inference_container(recording)
    assert "schedulerName" not in spec and "nvidia.com/gpumem" not in container["resources"]["limits"]


def test_switching_rolls_the_inference_pods():
    """Pod template changes (resources, scheduler, runtime class) make the Deployment replace its
    pods: each pod starts under the new mode's limits."""
    templates = {}
    for sharing in ("time-slicing", "mps", "hami"):
        spec, _ = inference_container(render_config(with_sharing(STACK, sharing)))
        templates[sharing] = spec
    assert templates["time-slicing"] != templates["hami"] != templates["mps"]


@pytest.mark.parametrize("distribution", ["kubeadm", "k3s", "rke2", "talos"])
def test_every_distribution_uses_the_nvidia_runtime_class_for_hami(distribution):
    """HAMi hands GPUs over as NVIDIA_VISIBLE_DEVICES: the nvidia runtime must run both its
    plugin and the GPU pods, also on kubeadm where other modes need no RuntimeClass."""
    config = stack_config(STACK) | {"cluster": {"distribution": distribution, "kubernetesVersion": "1.33"}}
    recording = render_config(config)
    assert helm_releases(recording)["hami"]["values"]["devicePlugin"]["runtimeClassName"] == "nvidia"
    spec, container = inference_container(recording)
    assert spec["runtimeClassName"] == "nvidia"
    # HAMi-core answers an allocation past the cap with CUDA out-of-memory (the service falls
    # back to CPU) unless ACTIVE_OOM_KILLER asks it to kill the process instead.
    assert "ACTIVE_OOM_KILLER" not in {item["name"] for item in container["env"]}


def impact(base_config: dict[str, Any], head_config: dict[str, Any]):
    from infra.diff import diff_renders, render_of

    base, head = render_of(render_config(base_config, STACK)), render_of(render_config(head_config, STACK))
    return diff_renders(STACK, base, head).impact


def test_the_gpu_impact_preview_reads_a_switch_to_hami():
    preview = impact(with_sharing(STACK, "time-slicing"), stack_config(STACK))
    (group,) = preview.groups
    assert (group.before.mode, group.after.mode) == ("time-slicing", "hami")
    assert (
        group.after.resource == facts().gpu_resource and group.after.replicas_per_device == facts().device_split_count
    )
    assert group.after.memory_per_pod_mb == group.before.memory_per_pod_mb
    assert any("Helm release hami is installed" in line for line in preview.restarts)
    assert any("devicePlugin.enabled" in line for line in preview.restarts)
    assert any(line.startswith("Deployment cat-watcher/cat-watcher rolls") for line in preview.restarts)
    (restart,) = [line for line in preview.restarts if "restart Job" in line]
    assert "rolls DaemonSet gpu-feature-discovery;" in restart


def test_the_gpu_impact_preview_reads_a_switch_back_from_hami():
    preview = impact(stack_config(STACK), with_sharing(STACK, "mps"))
    (group,) = preview.groups
    assert (group.before.mode, group.after.mode) == ("hami", "mps")
    assert any("Helm release hami is uninstalled" in line for line in preview.restarts)
    assert any(line.startswith("restart Job device-plugin-restart-") for line in preview.restarts)


def test_the_gpu_impact_preview_of_a_mixed_stack_marks_only_the_hami_group():
    groups = {g.name: g.after for g in impact(MIXED, MIXED).groups}
    assert (groups["capped"].mode, groups["sliced"].mode) == ("hami", "time-slicing")
