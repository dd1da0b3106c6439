"""Pod Security Standards: the checker itself, then every pod template every stack renders."""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from infra.offline import Recording
from infra.render import manifests
from tests.pod_security import (
    ENFORCE,
    ENFORCE_VERSION,
    baseline_violations,
    namespace_level,
    restricted_violations,
    violations,
)

RESTRICTED = {ENFORCE: "restricted"}
BASELINE = {ENFORCE: "baseline"}
PRIVILEGED = {ENFORCE: "privileged"}


def good_pod() -> dict[str, Any]:
    """A pod that passes restricted: non-root, no escalation, RuntimeDefault, drop ALL."""
    hardened = {
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
        "readOnlyRootFilesystem": True,
    }
    return {
        "securityContext": {"runAsNonRoot": True, "runAsUser": 1000, "seccompProfile": {"type": "RuntimeDefault"}},
        "initContainers": [{"name": "init", "image": "busybox:1.36", "securityContext": copy.deepcopy(hardened)}],
        "containers": [
            {
                "name": "app",
                "image": "app:1.0",
                "ports": [{"containerPort": 8080}],
                "securityContext": copy.deepcopy(hardened),
                "livenessProbe": {"httpGet": {"path": "/healthz", "port": 8080}},
            }
        ],
        "ephemeralContainers": [{"name": "debug", "image": "busybox:1.36", "securityContext": copy.deepcopy(hardened)}],
        "volumes": [
            {"name": "tmp", "emptyDir": {}},
            {"name": "config", "configMap": {"name": "c"}},
            {"name": "token", "projected": {"sources": []}},
            {"name": "creds", "secret": {"secretName": "s"}},
            {"name": "info", "downwardAPI": {"items": []}},
            {"name": "data", "persistentVolumeClaim": {"claimName": "d"}},
            {"name": "scratch", "ephemeral": {"volumeClaimTemplate": {"spec": {}}}},
            {"name": "driver", "csi": {"driver": "x.csi.k8s.io"}},
        ],
    }


Mutation = Callable[[dict[str, Any]], object]  # mutates the pod; any result is ignored


def _set(path: str, value: Any) -> Mutation:
    """`_set("containers.0.securityContext.privileged", True)`: set a nested field."""

    def mutate(pod: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        node: Any = pod
        for part in parents:
            if isinstance(node, list):
                node = node[int(part)]
            else:
                node = node.setdefault(part, {})
        if isinstance(node, list):
            node[int(last)] = value
        else:
            node[last] = value

    return mutate


def _drop(path: str) -> Mutation:
    def mutate(pod: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        node: Any = pod
        for part in parents:
            node = node[int(part)] if isinstance(node, list) else node[part]
        del node[last]

    return mutate


def _add_volume(volume: dict[str, Any]) -> Mutation:
    return lambda pod: pod["volumes"].append(volume)


# Each baseline control, violated once per place it can be violated (pod, containers,
# initContainers, ephemeralContainers). These must fail baseline and restricted.
BASELINE_BAD: list[tuple[str, str, Mutation]] = [
    ("hostProcess-pod", "hostProcess", _set("securityContext.windowsOptions.hostProcess", True)),
    ("hostProcess-container", "hostProcess", _set("containers.0.securityContext.windowsOptions.hostProcess", True)),
    (
        "hostProcess-ephemeral",
        "hostProcess",
        _set("ephemeralContainers.0.securityContext.windowsOptions.hostProcess", True),
    ),
    ("hostNetwork", "hostNamespaces", _set("hostNetwork", True)),
    ("hostPID", "hostNamespaces", _set("hostPID", True)),
    ("hostIPC", "hostNamespaces", _set("hostIPC", True)),
    ("privileged-container", "privileged", _set("containers.0.securityContext.privileged", True)),
    ("privileged-init", "privileged", _set("initContainers.0.securityContext.privileged", True)),
    ("privileged-ephemeral", "privileged", _set("ephemeralContainers.0.securityContext.privileged", True)),
    ("cap-sys-admin", "capabilities", _set("containers.0.securityContext.capabilities.add", ["SYS_ADMIN"])),
    ("cap-net-raw-init", "capabilities", _set("initContainers.0.securityContext.capabilities.add", ["NET_RAW"])),
    (
        "cap-sys-ptrace-ephemeral",
        "capabilities",
        _set("ephemeralContainers.0.securityContext.capabilities.add", ["SYS_PTRACE"]),
    ),
    ("hostPath", "hostPathVolumes", _add_volume({"name": "host", "hostPath": {"path": "/var/run"}})),
    ("hostPort", "hostPorts", _set("containers.0.ports.0.hostPort", 8080)),
    ("hostPort-init", "hostPorts", _set("initContainers.0.ports", [{"containerPort": 80, "hostPort": 80}])),
    ("probe-host", "hostProbesAndHostLifecycle", _set("containers.0.livenessProbe.httpGet.host", "10.0.0.1")),
    (
        "tcp-probe-host",
        "hostProbesAndHostLifecycle",
        _set("containers.0.readinessProbe", {"tcpSocket": {"port": 80, "host": "kubelet"}}),
    ),
    (
        "lifecycle-host",
        "hostProbesAndHostLifecycle",
        _set("containers.0.lifecycle", {"preStop": {"httpGet": {"port": 80, "host": "169.254.169.254"}}}),
    ),
    ("apparmor-pod-unconfined", "appArmorProfile", _set("securityContext.appArmorProfile", {"type": "Unconfined"})),
    (
        "apparmor-container-unconfined",
        "appArmorProfile",
        _set("containers.0.securityContext.appArmorProfile", {"type": "Unconfined"}),
    ),
    ("selinux-type", "seLinuxOptions", _set("securityContext.seLinuxOptions", {"type": "spc_t"})),
    ("selinux-user", "seLinuxOptions", _set("containers.0.securityContext.seLinuxOptions", {"user": "system_u"})),
    ("selinux-role", "seLinuxOptions", _set("initContainers.0.securityContext.seLinuxOptions", {"role": "system_r"})),
    ("procMount-unmasked", "procMount", _set("containers.0.securityContext.procMount", "Unmasked")),
    ("procMount-ephemeral", "procMount", _set("ephemeralContainers.0.securityContext.procMount", "Unmasked")),
    ("seccomp-pod-unconfined", "seccompProfile", _set("securityContext.seccompProfile", {"type": "Unconfined"})),
    (
        "seccomp-container-unconfined",
        "seccompProfile",
        _set("containers.0.securityContext.seccompProfile", {"type": "Unconfined"}),
    ),
    ("sysctl-unsafe", "sysctls", _set("securityContext.sysctls", [{"name": "kernel.msgmax", "value": "65536"}])),
    ("sysctl-net-core", "sysctls", _set("securityContext.sysctls", [{"name": "net.core.somaxconn", "value": "1024"}])),
]

# Pods that pass baseline but violate a restricted-only control.
RESTRICTED_BAD: list[tuple[str, str, Mutation]] = [
    *[
        (f"volume-{source}", "restrictedVolumes", _add_volume({"name": "v", source: body}))
        for source, body in {
            "nfs": {"server": "nas", "path": "/"},
            "gitRepo": {"repository": "https://example.invalid/r.git"},
            "iscsi": {"targetPortal": "t", "iqn": "i", "lun": 0},
            "rbd": {"image": "i", "monitors": ["m"]},
            "cephfs": {"monitors": ["m"]},
            "awsElasticBlockStore": {"volumeID": "v"},
            "flexVolume": {"driver": "d"},
        }.items()
    ],
    ("privesc-unset", "allowPrivilegeEscalation", _drop("containers.0.securityContext.allowPrivilegeEscalation")),
    (
        "privesc-true-init",
        "allowPrivilegeEscalation",
        _set("initContainers.0.securityContext.allowPrivilegeEscalation", True),
    ),
    (
        "privesc-unset-ephemeral",
        "allowPrivilegeEscalation",
        _drop("ephemeralContainers.0.securityContext.allowPrivilegeEscalation"),
    ),
    ("nonroot-pod-false", "runAsNonRoot", _set("securityContext.runAsNonRoot", False)),
    ("nonroot-pod-unset", "runAsNonRoot", _drop("securityContext.runAsNonRoot")),
    ("nonroot-container-false", "runAsNonRoot", _set("containers.0.securityContext.runAsNonRoot", False)),
    ("nonroot-ephemeral-false", "runAsNonRoot", _set("ephemeralContainers.0.securityContext.runAsNonRoot", False)),
    ("runAsUser-pod-0", "runAsUser", _set("securityContext.runAsUser", 0)),
    ("runAsUser-init-0", "runAsUser", _set("initContainers.0.securityContext.runAsUser", 0)),
    ("seccomp-unset", "seccompProfile", _drop("securityContext.seccompProfile")),
    (
        "seccomp-container-unset-pod-unconfined-free",
        "seccompProfile",
        lambda pod: (
            pod["securityContext"].pop("seccompProfile"),
            pod["containers"][0]["securityContext"].update(seccompProfile={"type": "RuntimeDefault"}),
        ),
    ),
    ("caps-no-drop", "capabilities", _drop("containers.0.securityContext.capabilities.drop")),
    ("caps-drop-some", "capabilities", _set("initContainers.0.securityContext.capabilities.drop", ["NET_RAW"])),
    ("caps-drop-lowercase-all", "capabilities", _set("containers.0.securityContext.capabilities.drop", ["all"])),
    ("caps-add-chown", "capabilities", _set("containers.0.securityContext.capabilities.add", ["CHOWN"])),
    ("caps-ephemeral-no-drop", "capabilities", _drop("ephemeralContainers.0.securityContext.capabilities")),
]

# Variations that stay within restricted.
RESTRICTED_GOOD: list[tuple[str, Mutation]] = [
    ("as-is", lambda pod: None),
    (
        "nonroot-per-container",
        lambda pod: (
            pod["securityContext"].pop("runAsNonRoot"),
            *[
                c["securityContext"].update(runAsNonRoot=True)
                for k in ("containers", "initContainers", "ephemeralContainers")
                for c in pod[k]
            ],
        ),
    ),
    (
        "seccomp-per-container-localhost",
        lambda pod: (
            pod["securityContext"].pop("seccompProfile"),
            *[
                c["securityContext"].update(seccompProfile={"type": "Localhost", "localhostProfile": "p.json"})
                for k in ("containers", "initContainers", "ephemeralContainers")
                for c in pod[k]
            ],
        ),
    ),
    ("runAsUser-unset", _drop("securityContext.runAsUser")),
    ("add-net-bind-service", _set("containers.0.securityContext.capabilities.add", ["NET_BIND_SERVICE"])),
    ("hostPort-zero", _set("containers.0.ports.0.hostPort", 0)),
    ("hostNetwork-false", _set("hostNetwork", False)),
    ("privileged-false", _set("containers.0.securityContext.privileged", False)),
    (
        "safe-sysctls",
        _set(
            "securityContext.sysctls",
            [
                {"name": name, "value": "1"}
                for name in (
                    "kernel.shm_rmid_forced",
                    "net.ipv4.ip_local_port_range",
                    "net.ipv4.ip_unprivileged_port_start",
                    "net.ipv4.tcp_syncookies",
                    "net.ipv4.ping_group_range",
                    "net.ipv4.ip_local_reserved_ports",
                    "net.ipv4.tcp_keepalive_time",
                    "net.ipv4.tcp_fin_timeout",
                    "net.ipv4.tcp_keepalive_intvl",
                    "net.ipv4.tcp_keepalive_probes",
                    "net.ipv4.tcp_rmem",
                    "net.ipv4.tcp_wmem",
                )
            ],
        ),
    ),
    ("selinux-container_t", _set("securityContext.seLinuxOptions", {"type": "container_t", "level": "s0:c1,c2"})),
    ("apparmor-runtime-default", _set("securityContext.appArmorProfile", {"type": "RuntimeDefault"})),
    (
        "apparmor-localhost",
        _set("containers.0.securityContext.appArmorProfile", {"type": "Localhost", "localhostProfile": "p"}),
    ),
    ("procMount-default", _set("containers.0.securityContext.procMount", "Default")),
    ("volume-without-source-defaults-to-emptyDir", _add_volume({"name": "bare"})),
    ("probe-host-empty", _set("containers.0.livenessProbe.httpGet.host", "")),
    ("no-ephemeral-containers", _drop("ephemeralContainers")),
    ("image-volume", _add_volume({"name": "model", "image": {"reference": "models:1"}})),
]


def mutated(mutate: Mutation) -> dict[str, Any]:
    pod = good_pod()
    mutate(pod)
    return pod


def test_the_good_pod_passes_every_level():
    assert restricted_violations(good_pod()) == []
    assert restricted_violations(good_pod(), RESTRICTED) == []
    assert restricted_violations(good_pod(), BASELINE) == []


@pytest.mark.parametrize(("name", "mutate"), RESTRICTED_GOOD, ids=[c[0] for c in RESTRICTED_GOOD])
def test_allowed_variations_pass_restricted(name, mutate):
    assert restricted_violations(mutated(mutate), RESTRICTED) == []


@pytest.mark.parametrize(("name", "control", "mutate"), BASELINE_BAD, ids=[c[0] for c in BASELINE_BAD])
def test_baseline_violation_is_caught_at_baseline_and_restricted(name, control, mutate):
    pod = mutated(mutate)
    for labels in (BASELINE, RESTRICTED, None):
        found = restricted_violations(pod, labels)
        assert any(v.startswith(f"{control}:") for v in found), (labels, found)
    assert restricted_violations(pod, PRIVILEGED) == []


@pytest.mark.parametrize(("name", "control", "mutate"), RESTRICTED_BAD, ids=[c[0] for c in RESTRICTED_BAD])
def test_restricted_violation_is_caught_at_restricted_only(name, control, mutate):
    pod = mutated(mutate)
    found = restricted_violations(pod, RESTRICTED)
    assert any(v.startswith(f"{control}:") for v in found), found
    assert restricted_violations(pod, BASELINE) == []


def test_apparmor_annotation_is_checked_through_pod_metadata():
    bad = {"annotations": {"container.apparmor.security.beta.kubernetes.io/app": "unconfined"}}
    ok = {
        "annotations": {
            "container.apparmor.security.beta.kubernetes.io/app": "runtime/default",
            "container.apparmor.security.beta.kubernetes.io/init": "localhost/profile",
        }
    }
    assert any(v.startswith("appArmorProfile:") for v in restricted_violations(good_pod(), metadata=bad))
    assert restricted_violations(good_pod(), metadata=ok) == []
    # A pod template ({metadata, spec}) carries its annotations itself.
    assert any(v.startswith("appArmorProfile:") for v in restricted_violations({"metadata": bad, "spec": good_pod()}))


def test_windows_pods_are_exempt_from_linux_only_restricted_controls():
    pod = good_pod()
    pod["os"] = {"name": "windows"}
    for container in pod["containers"]:
        container["securityContext"] = {}
    assert restricted_violations(pod, RESTRICTED) == []
    del pod["os"]
    assert {v.split(":")[0] for v in restricted_violations(pod, RESTRICTED)} == {
        "allowPrivilegeEscalation",
        "capabilities",
    }


def test_policy_version_gates_newer_controls():
    probe_host = mutated(_set("containers.0.livenessProbe.httpGet.host", "10.0.0.1"))
    assert restricted_violations(probe_host, {ENFORCE: "baseline", ENFORCE_VERSION: "v1.33"}) == []
    assert restricted_violations(probe_host, {ENFORCE: "baseline", ENFORCE_VERSION: "v1.34"}) != []
    rmem = mutated(_set("securityContext.sysctls", [{"name": "net.ipv4.tcp_rmem", "value": "4096 87380 6291456"}]))
    assert restricted_violations(rmem, {ENFORCE: "baseline", ENFORCE_VERSION: "v1.31"}) != []
    assert restricted_violations(rmem, {ENFORCE: "baseline", ENFORCE_VERSION: "v1.32"}) == []
    image = mutated(_add_volume({"name": "model", "image": {"reference": "models:1"}}))
    assert restricted_violations(image, {ENFORCE: "restricted", ENFORCE_VERSION: "v1.32"}) != []
    assert restricted_violations(image, {ENFORCE: "restricted", ENFORCE_VERSION: "v1.33"}) == []


def test_a_minimal_pod_fails_restricted_but_passes_baseline():
    """The default (minimally specified) pod is what baseline allows and restricted does not."""
    minimal = {"containers": [{"name": "app", "image": "app:1.0"}]}
    assert baseline_violations(minimal) == []
    assert {v.split(":")[0] for v in violations(minimal)} == {
        "runAsNonRoot",
        "allowPrivilegeEscalation",
        "seccompProfile",
        "capabilities",
    }


def test_namespace_level_reads_the_labels():
    assert namespace_level(None)[0] == "restricted"
    assert namespace_level(PRIVILEGED)[0] == "privileged"
    with pytest.raises(ValueError):
        namespace_level({ENFORCE: "strict"})


# --- the rendered stacks -------------------------------------------------------------------

WORKLOADS = ("Deployment", "DaemonSet", "StatefulSet", "ReplicaSet", "Job", "ReplicationController")


def pod_templates(recording: Recording) -> Iterator[tuple[str, str, dict[str, Any]]]:
    """(kind/name, namespace, pod template {metadata, spec}) for every pod the stack declares."""
    for manifest in manifests(recording):
        kind, metadata = manifest["kind"], manifest.get("metadata", {})
        label = f"{kind}/{metadata.get('name')}"
        namespace = metadata.get("namespace", "default")
        if kind in WORKLOADS:
            yield label, namespace, manifest["spec"]["template"]
        elif kind == "CronJob":
            yield label, namespace, manifest["spec"]["jobTemplate"]["spec"]["template"]
        elif kind == "Pod":
            yield label, namespace, {"metadata": metadata, "spec": manifest["spec"]}


def namespace_labels(recording: Recording) -> dict[str, dict[str, str]]:
    return {
        m["metadata"]["name"]: dict(m["metadata"].get("labels") or {})
        for m in manifests(recording)
        if m["kind"] == "Namespace"
    }


def test_every_pod_meets_its_namespace_level(rendered: Recording):
    """Restricted namespaces: no violations; lower levels: that level. A namespace without an
    enforce label (or not declared by the program) is held to restricted."""
    labels = namespace_labels(rendered)
    templates = list(pod_templates(rendered))
    assert templates, "the stack declares no pods"
    problems = {
        f"{name} in {namespace}": found
        for name, namespace, template in templates
        if (found := restricted_violations(template, labels.get(namespace)))
    }
    assert problems == {}


def test_the_cat_watcher_deployments_pass_restricted(rendered: Recording):
    deployments = [(n, t) for n, _, t in pod_templates(rendered) if n.startswith("Deployment/")]
    assert deployments
    for name, template in deployments:
        assert restricted_violations(template, RESTRICTED) == [], name


def test_the_restart_job_passes_restricted_in_the_privileged_namespace(rendered: Recording):
    jobs = [(n, ns, t) for n, ns, t in pod_templates(rendered) if n.startswith("Job/device-plugin-restart-")]
    assert len(jobs) == 1
    name, namespace, template = jobs[0]
    assert namespace_labels(rendered)[namespace].get(ENFORCE) == "privileged"
    assert restricted_violations(template, RESTRICTED) == [], name


def test_the_operator_namespace_is_privileged(rendered: Recording):
    """The operator's DaemonSets load kernel modules and mount host paths: privileged, no lower."""
    assert namespace_labels(rendered)["gpu-operator"].get(ENFORCE) == "privileged"


def test_the_cat_watcher_namespace_enforces_restricted(rendered: Recording):
    assert namespace_labels(rendered)["cat-watcher"].get(ENFORCE) == "restricted"
