"""GpuOperator: NVIDIA's GPU Operator as a Helm release, plus the device-plugin restart.

Why a restart Job: the device plugin's config-manager reloads only when a node's
`nvidia.com/device-plugin.config` label changes, never when the ConfigMap content under the same
key changes. A patch of the DaemonSet's pod template cannot be applied on first install (the
operator creates the DaemonSet minutes after the release) and the operator may reconcile foreign
annotations away. So a Job whose name carries the sharing config's content hash waits for the
DaemonSet to exist, stamps the hash on its pod template and waits for the rollout: a new hash
means a new Job and one rollout; anything else leaves the finished Job untouched, and a Job
re-run for any other reason (a new restart image, a refresh) stamps the same hash again, which
changes nothing and restarts nothing.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from components.sharing_config import MIG_ALL_DISABLED

CHART = "gpu-operator"
DEVICE_PLUGIN_DAEMONSET = "nvidia-device-plugin-daemonset"
RESTART_NAME = "device-plugin-restart"
RESTART_WAIT_FOR_CREATE = "20m"
RESTART_ROLLOUT_TIMEOUT = "10m"


@dataclass(frozen=True)
class GpuOperatorArgs:
    namespace: pulumi.Input[str]
    chart_version: str
    repository: str
    sharing_config_map: pulumi.Input[str]
    sharing_content_hash: str
    sharing_default_key: str | None = None
    mig_strategy: str | None = None
    mig_config_map: pulumi.Input[str] | None = None
    release_name: str = "gpu-operator"
    install_driver: bool = True
    install_toolkit: bool = True
    toolkit_env: Sequence[Mapping[str, str]] = field(default_factory=tuple)
    cdi_nri_plugin: bool = False
    dcgm_exporter: bool = True
    # Extra exporter env (pod attribution on shared devices; see components/dcgm_monitoring.py).
    dcgm_exporter_env: Sequence[Mapping[str, str]] = field(default_factory=tuple)
    timeout_seconds: int = 900
    restart_image: str = "registry.k8s.io/kubectl:v1.33.4"


def operator_values(args: GpuOperatorArgs) -> dict[str, Any]:
    """The chart values we set; every key path exists in the chart's values.yaml."""
    device_plugin_config: dict[str, Any] = {"name": args.sharing_config_map}
    if args.sharing_default_key is not None:
        device_plugin_config["default"] = args.sharing_default_key
    values: dict[str, Any] = {
        "driver": {"enabled": args.install_driver},
        "toolkit": {"enabled": args.install_toolkit},
        "devicePlugin": {"config": device_plugin_config},
        # Our DcgmMonitoring component owns the ServiceMonitor (labels, honorLabels).
        "dcgmExporter": {"enabled": args.dcgm_exporter, "serviceMonitor": {"enabled": False}},
    }
    if args.dcgm_exporter and args.dcgm_exporter_env:
        values["dcgmExporter"]["env"] = [dict(item) for item in args.dcgm_exporter_env]
    if args.toolkit_env:
        values["toolkit"]["env"] = [dict(item) for item in args.toolkit_env]
    if args.cdi_nri_plugin:
        values["cdi"] = {"enabled": True, "nriPluginEnabled": True}
    if args.mig_strategy is not None:
        values["mig"] = {"strategy": args.mig_strategy}
    if args.mig_config_map is not None:
        values["migManager"] = {
            # The ClusterPolicy accepts only all-disabled (or "") here; layouts reach nodes
            # through their nvidia.com/mig.config label (SharingConfig's node patches).
            "config": {"name": args.mig_config_map, "default": MIG_ALL_DISABLED}
        }
    return values


def value_paths(values: Mapping[str, Any], prefix: str = "") -> Iterator[str]:
    """Leaf key paths of a values tree (`devicePlugin.config.name`); lists are leaves."""
    for key, value in values.items():
        path = f"{prefix}.{key}" if prefix else key
        if isinstance(value, Mapping) and value:
            yield from value_paths(value, path)
        else:
            yield path


@cache
def chart_value_paths() -> frozenset[str]:
    """Every leaf key path of the chart's own values.yaml (derived data, see its header)."""
    text = resources.files("components.data").joinpath("gpu_operator_value_paths.txt").read_text()
    return frozenset(line for line in text.splitlines() if line and not line.startswith("#"))


def unknown_value_paths(values: Mapping[str, Any]) -> list[str]:
    """Keys the chart does not have: Helm would ignore them silently, so we refuse them."""
    return sorted(set(value_paths(values)) - chart_value_paths())


def restart_job_name(content_hash: str) -> str:
    return f"{RESTART_NAME}-{content_hash[:10]}"


def restart_rbac_rules() -> list[dict[str, Any]]:
    return [
        {
            "apiGroups": ["apps"],
            "resources": ["daemonsets"],
            "verbs": ["get", "list", "watch", "patch"],
        }
    ]


HASH_ANNOTATION = "catwatcher.io/sharing-config-hash"


def restart_patch(content_hash: str) -> str:
    """Stamp the plugin's pod template with the config hash: a new hash rolls the pods, the
    same hash again is a no-op (so re-running the Job never restarts anything twice)."""
    return json.dumps({"spec": {"template": {"metadata": {"annotations": {HASH_ANNOTATION: content_hash}}}}})


def restart_job_spec(content_hash: str, image: str, service_account: str) -> dict[str, Any]:
    """Wait for the operator's DaemonSet, stamp it with the config hash, wait for the rollout.
    No shell needed: the kubectl image is distroless, so each step is its own container."""
    target = f"daemonset/{DEVICE_PLUGIN_DAEMONSET}"

    def step(name: str, *kubectl_args: str) -> dict[str, Any]:
        return {
            "name": name,
            "image": image,
            "command": ["kubectl", *kubectl_args],
            "securityContext": {
                "runAsNonRoot": True,
                "runAsUser": 65532,
                "allowPrivilegeEscalation": False,
                "readOnlyRootFilesystem": True,
                "capabilities": {"drop": ["ALL"]},
            },
            "resources": {"requests": {"cpu": "10m", "memory": "32Mi"}, "limits": {"memory": "128Mi"}},
        }

    return {
        "backoffLimit": 3,
        "template": {
            "metadata": {"annotations": {HASH_ANNOTATION: content_hash}},
            "spec": {
                "serviceAccountName": service_account,
                "restartPolicy": "OnFailure",
                "securityContext": {"seccompProfile": {"type": "RuntimeDefault"}},
                "initContainers": [
                    step("wait-for-daemonset", "wait", "--for=create", target, f"--timeout={RESTART_WAIT_FOR_CREATE}"),
                    step("stamp-config-hash", "patch", target, "--type=merge", "-p", restart_patch(content_hash)),
                ],
                "containers": [
                    step("wait-for-rollout", "rollout", "status", target, f"--timeout={RESTART_ROLLOUT_TIMEOUT}"),
                ],
            },
        },
    }


class GpuOperator(pulumi.ComponentResource):
    """Creates the `gpu-operator` Helm release wired to the sharing (and MIG) ConfigMaps, and the
    device-plugin restart: a ServiceAccount, Role and RoleBinding, and a Job keyed by the sharing
    config's content hash.

    Outputs: `release_name`, `restart_job_name`. `ready` lists what workloads must wait for.
    """

    def __init__(self, name: str, args: GpuOperatorArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("catwatcher:index:GpuOperator", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)

        values = operator_values(args)
        if unknown := unknown_value_paths(values):
            raise ValueError(f"gpu-operator {args.chart_version} has no values {', '.join(unknown)}")
        release = k8s.helm.v3.Release(
            name,
            name=args.release_name,
            chart=CHART,
            version=args.chart_version,
            repository_opts={"repo": args.repository},
            namespace=args.namespace,
            values=values,
            timeout=args.timeout_seconds,
            opts=child,
        )

        service_account = k8s.core.v1.ServiceAccount(
            f"{name}-{RESTART_NAME}",
            metadata={"name": RESTART_NAME, "namespace": args.namespace},
            opts=child,
        )
        role = k8s.rbac.v1.Role(
            f"{name}-{RESTART_NAME}",
            metadata={"name": RESTART_NAME, "namespace": args.namespace},
            rules=restart_rbac_rules(),
            opts=child,
        )
        binding = k8s.rbac.v1.RoleBinding(
            f"{name}-{RESTART_NAME}",
            metadata={"name": RESTART_NAME, "namespace": args.namespace},
            role_ref={"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": RESTART_NAME},
            subjects=[{"kind": "ServiceAccount", "name": RESTART_NAME, "namespace": args.namespace}],
            opts=child,
        )
        job_name = restart_job_name(args.sharing_content_hash)
        restart = k8s.batch.v1.Job(
            f"{name}-{RESTART_NAME}",
            metadata={
                "name": job_name,
                "namespace": args.namespace,
            },
            spec=restart_job_spec(args.sharing_content_hash, args.restart_image, RESTART_NAME),
            opts=pulumi.ResourceOptions(
                parent=self,
                depends_on=[release, service_account, role, binding],
                # Waiting for the operator to create the DaemonSet (driver builds included).
                custom_timeouts=pulumi.CustomTimeouts(create="40m", update="40m"),
            ),
        )

        self.release_name: pulumi.Output[str] = release.name
        self.restart_job_name: str = job_name
        self.ready: list[pulumi.Resource] = [release, restart]
        self.register_outputs({"release_name": self.release_name, "restart_job_name": job_name})
