"""CatWatcher: the inference workload, one Deployment per GPU node group, sized to its slice."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from inference import contract


@dataclass(frozen=True)
class InferenceGroup:
    """The inference pods of one GPU node group, sized to its slice."""

    name: str  # the node group (label `catwatcher.io/node-group`)
    deployment_name: str
    replicas: int
    slices: int  # GPU slices the group offers (replicas <= slices)
    image: str
    node_selector: Mapping[str, str]
    gpu_resources: Mapping[str, str]  # extended-resource limits, e.g. {"nvidia.com/gpu": "1"}
    env: Sequence[Mapping[str, str]] = ()  # the slice the service must stay in
    # The scheduler the pods name (HAMi's places pods by GPU memory); None: the default one.
    scheduler_name: str | None = None
    # The RuntimeClass the pods name; None: CatWatcherArgs.runtime_class.
    runtime_class: str | None = None


@dataclass(frozen=True)
class PodResources:
    cpu_request: str = "500m"
    cpu_limit: str = "2"
    memory_request: str = "1Gi"
    memory_limit: str = "2Gi"


@dataclass(frozen=True)
class NetworkPolicy:
    """Who may reach the service port (which also serves /metrics)."""

    enabled: bool = True
    client_namespaces: Sequence[str] = ()  # besides the app's own
    monitoring_namespace: str = "monitoring"


@dataclass(frozen=True)
class CatWatcherArgs:
    namespace: str
    app_name: str
    groups: Sequence[InferenceGroup]
    resources: PodResources = PodResources()
    runtime_class: str | None = None
    # Resources that must be ready before pods may ask for a GPU slice (the plugin restart).
    gpu_ready: Sequence[pulumi.Resource] = field(default_factory=tuple)
    # The service's CAT_WATCHER__MQTT__* / CAT_WATCHER__FRIGATE__* settings, kept in a Secret.
    credentials: Mapping[str, str] = field(default_factory=dict)
    network_policy: NetworkPolicy = NetworkPolicy()
    # Pod Security Standards version the namespace enforces, e.g. "v1.33".
    pod_security_version: str = "latest"
    # Off only where a container toolkit's CDI hook cannot start a read-only container.
    read_only_root_filesystem: bool = True


def namespace_labels(app_name: str, pod_security_version: str) -> dict[str, str]:
    """`restricted` in every mode: the device plugin injects GPU, MPS pipe and shm itself,
    so no sharing mode needs host access from Cat Watcher pods."""
    labels = {"app.kubernetes.io/part-of": app_name}
    for mode in ("enforce", "audit", "warn"):
        labels[f"pod-security.kubernetes.io/{mode}"] = "restricted"
        labels[f"pod-security.kubernetes.io/{mode}-version"] = pod_security_version
    return labels


def network_policy_spec(app_name: str, namespace: str, policy: NetworkPolicy) -> dict[str, Any]:
    """Ingress only to the service port, from the app's namespace, the named client
    namespaces, and the monitoring namespace (Prometheus scrapes /metrics on that port)."""
    sources = [namespace, *policy.client_namespaces, policy.monitoring_namespace]
    return {
        "podSelector": {"matchLabels": selector_labels(app_name)},
        "policyTypes": ["Ingress"],
        "ingress": [
            {
                "from": [
                    {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": source}}}
                    for source in dict.fromkeys(sources)
                ],
                "ports": [{"protocol": "TCP", "port": contract.PORT_NAME}],
            }
        ],
    }


def disruption_budget_spec(app_name: str) -> dict[str, Any]:
    return {"maxUnavailable": 1, "selector": {"matchLabels": selector_labels(app_name)}}


def selector_labels(app_name: str) -> dict[str, str]:
    return {"app.kubernetes.io/name": app_name, "app.kubernetes.io/component": "inference"}


def pod_spec(
    args: CatWatcherArgs, group: InferenceGroup, credentials_secret: pulumi.Input[str] | None = None
) -> dict[str, Any]:
    probe = {
        "httpGet": {"path": contract.HEALTH_PATH, "port": contract.PORT_NAME},
        "periodSeconds": 10,
        "timeoutSeconds": 3,
    }
    spec: dict[str, Any] = {
        "automountServiceAccountToken": False,
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": contract.RUN_AS_USER,
            "runAsGroup": contract.RUN_AS_USER,
            "fsGroup": contract.RUN_AS_USER,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "nodeSelector": dict(group.node_selector),
        "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
        "containers": [
            {
                "name": "inference",
                "image": group.image,
                "command": list(contract.COMMAND),
                "ports": [{"name": contract.PORT_NAME, "containerPort": contract.DEFAULT_PORT, "protocol": "TCP"}],
                "env": [dict(variable) for variable in group.env],
                "resources": {
                    "requests": {"cpu": args.resources.cpu_request, "memory": args.resources.memory_request},
                    "limits": {
                        "cpu": args.resources.cpu_limit,
                        "memory": args.resources.memory_limit,
                        **group.gpu_resources,
                    },
                },
                "startupProbe": {
                    **probe,
                    "httpGet": {"path": contract.READY_PATH, "port": contract.PORT_NAME},
                    "failureThreshold": 30,
                },
                "livenessProbe": {**probe, "failureThreshold": 3},
                "readinessProbe": {
                    **probe,
                    "httpGet": {"path": contract.READY_PATH, "port": contract.PORT_NAME},
                    "failureThreshold": 2,
                },
                "securityContext": {
                    "allowPrivilegeEscalation": False,
                    "readOnlyRootFilesystem": args.read_only_root_filesystem,
                    "capabilities": {"drop": ["ALL"]},
                },
                "volumeMounts": [{"name": "tmp", "mountPath": contract.WRITABLE_TMP_PATH}],
            }
        ],
        "volumes": [{"name": "tmp", "emptyDir": {"sizeLimit": "256Mi"}}],
    }
    if runtime_class := group.runtime_class or args.runtime_class:
        spec["runtimeClassName"] = runtime_class
    if group.scheduler_name:
        spec["schedulerName"] = group.scheduler_name
    if credentials_secret is not None:
        spec["containers"][0]["envFrom"] = [{"secretRef": {"name": credentials_secret}}]
    return spec


def deployment_spec(
    args: CatWatcherArgs, group: InferenceGroup, credentials_secret: pulumi.Input[str] | None = None
) -> dict[str, Any]:
    labels = {**selector_labels(args.app_name), "catwatcher.io/node-group": group.name}
    # Every slice may be taken: a surge pod would wait forever for a free one.
    max_surge = 1 if group.replicas < group.slices else 0
    return {
        "replicas": group.replicas,
        "selector": {"matchLabels": labels},
        "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": max_surge, "maxUnavailable": 1}},
        "template": {"metadata": {"labels": labels}, "spec": pod_spec(args, group, credentials_secret)},
    }


class CatWatcher(pulumi.ComponentResource):
    """Creates the `cat-watcher` namespace (Pod Security `restricted`), one inference Deployment
    per GPU node group (GPU resource, per-pod GPU memory limit, probes, non-root read-only pods),
    a Service, a PodDisruptionBudget, a NetworkPolicy, and a Secret with the Frigate/MQTT
    credentials when the stack has any.

    Outputs: `namespace`, `deployments` (names), `service_name`.
    """

    def __init__(self, name: str, args: CatWatcherArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("catwatcher:index:CatWatcher", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)

        namespace = k8s.core.v1.Namespace(
            name,
            metadata={"name": args.namespace, "labels": namespace_labels(args.app_name, args.pod_security_version)},
            opts=child,
        )
        namespace_name = namespace.metadata["name"]

        credentials_secret = None
        if variables := args.credentials:
            # Auto-named: a credentials change makes a new Secret name, so the Deployments
            # roll to pick it up (env vars are read once, at container start).
            secret = k8s.core.v1.Secret(
                f"{args.app_name}-credentials",
                metadata={"namespace": namespace_name, "labels": selector_labels(args.app_name)},
                type="Opaque",
                string_data={key: pulumi.Output.secret(value) for key, value in sorted(variables.items())},
                opts=child,
            )
            credentials_secret = secret.metadata["name"]

        for group in args.groups:
            k8s.apps.v1.Deployment(
                f"{name}-{group.name}",
                metadata={"name": group.deployment_name, "namespace": namespace_name},
                spec=deployment_spec(args, group, credentials_secret),
                opts=pulumi.ResourceOptions(parent=self, depends_on=list(args.gpu_ready)),
            )
        service = k8s.core.v1.Service(
            name,
            metadata={"name": args.app_name, "namespace": namespace_name, "labels": selector_labels(args.app_name)},
            spec={
                "selector": selector_labels(args.app_name),
                "ports": [
                    {
                        "name": contract.PORT_NAME,
                        "port": contract.DEFAULT_PORT,
                        "targetPort": contract.PORT_NAME,
                        "protocol": "TCP",
                    }
                ],
            },
            opts=child,
        )
        k8s.policy.v1.PodDisruptionBudget(
            name,
            metadata={"name": args.app_name, "namespace": namespace_name},
            spec=disruption_budget_spec(args.app_name),
            opts=child,
        )
        if args.network_policy.enabled:
            k8s.networking.v1.NetworkPolicy(
                name,
                metadata={"name": args.app_name, "namespace": namespace_name},
                spec=network_policy_spec(args.app_name, args.namespace, args.network_policy),
                opts=child,
            )

        self.namespace: pulumi.Output[str] = namespace_name
        self.deployments: list[str] = [group.deployment_name for group in args.groups]
        self.service_name: pulumi.Output[str] = service.metadata["name"]
        self.register_outputs(
            {"namespace": self.namespace, "deployments": self.deployments, "service_name": self.service_name}
        )
