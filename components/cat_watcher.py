"""CatWatcher: the inference workload, one Deployment per GPU node group, sized to its slice."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from inference import contract
from infra.model import ResourceSpec
from infra.plan import SINGLE_GROUP, NodeGroupPlan

GPU_PRESENT_LABEL = "nvidia.com/gpu.present"
DEVICE_PLUGIN_CONFIG_LABEL = "nvidia.com/device-plugin.config"


@dataclass(frozen=True)
class CatWatcherArgs:
    namespace: str
    app_name: str
    image: str
    groups: Sequence[NodeGroupPlan]
    resources: ResourceSpec = ResourceSpec()
    runtime_class: str | None = None
    # Resources that must be ready before pods may ask for a GPU slice (the plugin restart).
    gpu_ready: Sequence[pulumi.Resource] = field(default_factory=tuple)


def deployment_name(app_name: str, group: NodeGroupPlan) -> str:
    return app_name if group.name == SINGLE_GROUP else f"{app_name}-{group.name}"


def selector_labels(app_name: str) -> dict[str, str]:
    return {"app.kubernetes.io/name": app_name, "app.kubernetes.io/component": "inference"}


def gpu_env(group: NodeGroupPlan) -> list[dict[str, str]]:
    """The slice the service must stay in, told to ONNX Runtime (and to the MPS client)."""
    env = [
        {"name": contract.GPU_MEMORY_LIMIT_ENV, "value": str(group.memory_per_pod_mb)},
        {"name": contract.DEVICE_ENV, "value": "auto"},
    ]
    if group.sharing == "mps":
        # The MPS daemon already splits memory evenly (total / replicas); this caps the
        # client lower still, at the per-pod limit this stack asks for.
        env.append({"name": "CUDA_MPS_PINNED_DEVICE_MEM_LIMIT", "value": f"0={group.memory_per_pod_mb}M"})
    return env


def node_selector(group: NodeGroupPlan) -> dict[str, str]:
    if group.nodes:
        return {DEVICE_PLUGIN_CONFIG_LABEL: group.config_key}
    return {GPU_PRESENT_LABEL: "true"}


def pod_spec(args: CatWatcherArgs, group: NodeGroupPlan) -> dict[str, Any]:
    probe = {"httpGet": {"path": contract.HEALTH_PATH, "port": contract.PORT_NAME}, "periodSeconds": 10, "timeoutSeconds": 3}
    spec: dict[str, Any] = {
        "automountServiceAccountToken": False,
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": contract.RUN_AS_USER,
            "runAsGroup": contract.RUN_AS_USER,
            "fsGroup": contract.RUN_AS_USER,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "nodeSelector": node_selector(group),
        "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
        "containers": [
            {
                "name": "inference",
                "image": args.image,
                "command": list(contract.COMMAND),
                "ports": [{"name": contract.PORT_NAME, "containerPort": contract.DEFAULT_PORT, "protocol": "TCP"}],
                "env": gpu_env(group),
                "resources": {
                    "requests": {"cpu": args.resources.cpu_request, "memory": args.resources.memory_request},
                    "limits": {
                        "cpu": args.resources.cpu_limit,
                        "memory": args.resources.memory_limit,
                        group.resource_name: "1",
                    },
                },
                "startupProbe": {**probe, "httpGet": {"path": contract.READY_PATH, "port": contract.PORT_NAME}, "failureThreshold": 30},
                "livenessProbe": {**probe, "failureThreshold": 3},
                "readinessProbe": {**probe, "httpGet": {"path": contract.READY_PATH, "port": contract.PORT_NAME}, "failureThreshold": 2},
                "securityContext": {
                    "allowPrivilegeEscalation": False,
                    "readOnlyRootFilesystem": True,
                    "capabilities": {"drop": ["ALL"]},
                },
                "volumeMounts": [{"name": "tmp", "mountPath": contract.WRITABLE_TMP_PATH}],
            }
        ],
        "volumes": [{"name": "tmp", "emptyDir": {"sizeLimit": "256Mi"}}],
    }
    if args.runtime_class:
        spec["runtimeClassName"] = args.runtime_class
    return spec


def deployment_spec(args: CatWatcherArgs, group: NodeGroupPlan) -> dict[str, Any]:
    labels = {**selector_labels(args.app_name), "catwatcher.io/node-group": group.name}
    # Every slice may be taken: a surge pod would wait forever for a free one.
    max_surge = 1 if group.inference_replicas < group.slices else 0
    return {
        "replicas": group.inference_replicas,
        "selector": {"matchLabels": labels},
        "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": max_surge, "maxUnavailable": 1}},
        "template": {"metadata": {"labels": labels}, "spec": pod_spec(args, group)},
    }


class CatWatcher(pulumi.ComponentResource):
    """Creates the `cat-watcher` namespace, one inference Deployment per GPU node group (GPU
    resource, per-pod GPU memory limit, probes, non-root read-only pods) and a Service.

    Outputs: `namespace`, `deployments` (names), `service_name`.
    """

    def __init__(self, name: str, args: CatWatcherArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("catwatcher:index:CatWatcher", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)

        namespace = k8s.core.v1.Namespace(
            name,
            metadata={"name": args.namespace, "labels": {"app.kubernetes.io/part-of": args.app_name}},
            opts=child,
        )
        deployments = [
            k8s.apps.v1.Deployment(
                f"{name}-{group.name}",
                metadata={"name": deployment_name(args.app_name, group), "namespace": namespace.metadata["name"]},
                spec=deployment_spec(args, group),
                opts=pulumi.ResourceOptions(parent=self, depends_on=list(args.gpu_ready)),
            )
            for group in args.groups
        ]
        service = k8s.core.v1.Service(
            name,
            metadata={
                "name": args.app_name,
                "namespace": namespace.metadata["name"],
                "labels": selector_labels(args.app_name),
            },
            spec={
                "selector": selector_labels(args.app_name),
                "ports": [{"name": contract.PORT_NAME, "port": contract.DEFAULT_PORT, "targetPort": contract.PORT_NAME, "protocol": "TCP"}],
            },
            opts=child,
        )

        self.namespace: pulumi.Output[str] = namespace.metadata["name"]
        self.deployments: list[str] = [deployment_name(args.app_name, group) for group in args.groups]
        self.service_name: pulumi.Output[str] = service.metadata["name"]
        self.register_outputs(
            {"namespace": self.namespace, "deployments": self.deployments, "service_name": self.service_name}
        )
