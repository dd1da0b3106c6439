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
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
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
    # Chart values the sharing modes need (e.g. `mig.strategy`), merged over ours.
    sharing_values: Mapping[str, Any] = field(default_factory=dict)
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
    """The chart values we set (validation checks every key path against the chart's)."""
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
    merge_values(values, args.sharing_values)
    if args.mig_config_map is not None:
        values["migManager"] = {
            # The ClusterPolicy accepts only all-disabled (or "") here; layouts reach nodes
            # through their nvidia.com/mig.config label (SharingConfig's node patches).
            "config": {"name": args.mig_config_map, "default": MIG_ALL_DISABLED}
        }
    return values


def merge_values(target: dict[str, Any], extra: Mapping[str, Any]) -> None:
    """Deep-merge `extra` into `target` (maps merge, anything else replaces)."""
    for key, value in extra.items():
        if isinstance(value, Mapping) and isinstance(target.get(key), dict):
            merge_values(target[key], value)
        else:
            target[key] = dict(value) if isinstance(value, Mapping) else value


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

        # Every key path was checked against the chart version's values during validation.
        values = operator_values(args)
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
