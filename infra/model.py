"""Typed stack config: what a user writes in stacks/Pulumi.<stack>.yaml, and the GPU presets.

Every model forbids unknown keys, so a typo is an error instead of a silently ignored setting.
Field names are snake_case in Python and camelCase in the stack files (the Pulumi convention).
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, StringConstraints
from pydantic.alias_generators import to_camel

from inference import contract

SharingMode = Literal["none", "time-slicing", "mps", "mig"]
MigStrategy = Literal["single", "mixed"]
Distribution = Literal["kubeadm", "k3s", "rke2", "microk8s", "k0s", "talos"]

DnsLabel = Annotated[str, StringConstraints(pattern=r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")]
MigProfileName = Annotated[str, StringConstraints(pattern=r"^\d+g\.\d+gb$")]
Quantity = Annotated[str, StringConstraints(pattern=r"^\d+(\.\d+)?(m|Ki|Mi|Gi|Ti)?$")]
ImageRef = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9._/:-]*(@sha256:[a-f0-9]{64})?$")]
ComputeCapability = Annotated[str, StringConstraints(pattern=r"^\d+\.\d+$")]
MebiBytes = Annotated[int, Field(gt=0)]


class StrictModel(BaseModel):
    """Base for every config model: camelCase keys, unknown keys refused, immutable."""

    model_config = ConfigDict(
        # Only the camelCase spelling is accepted: `memory_per_pod_mb` in a stack file is a typo.
        extra="forbid", frozen=True, alias_generator=to_camel, populate_by_name=False
    )


# --- GPU presets (data in infra/data/gpu_presets.yaml) -------------------------------------


class MigProfile(StrictModel):
    name: MigProfileName
    compute_slices: int = Field(gt=0)
    memory_slices: int = Field(gt=0)
    max_count: int = Field(gt=0)
    memory_mb: MebiBytes


class MigGeometry(StrictModel):
    pci_device_ids: list[str]
    compute_slices: int = Field(gt=0)
    memory_slices: int = Field(gt=0)
    profiles: dict[str, MigProfile]
    recommended_layout: dict[str, int]


class Recommendation(StrictModel):
    sharing: SharingMode
    replicas: int
    memory_per_pod_mb: MebiBytes  # ONNX Runtime's arena per pod; the budget adds overhead_mb
    note: str | None = None  # why the recommendation is what it is (shown in the README table)


class GpuPreset(StrictModel):
    key: str
    display_name: str
    architecture: str
    vram_mb: MebiBytes
    compute_capability: ComputeCapability
    reserve_mb: int = Field(ge=0)
    # GPU memory a process holds outside ONNX Runtime's arena (CUDA context, libraries); see
    # infra/budget.py and the sources in infra/data/gpu_presets.yaml.
    overhead_mb: int = Field(ge=0)
    recommended: Recommendation
    mig: MigGeometry | None = None

    @property
    def capability(self) -> tuple[int, int]:
        major, minor = self.compute_capability.split(".")
        return int(major), int(minor)

    @property
    def mps_capable(self) -> bool:
        """MPS on full GPUs needs Volta (compute capability 7.0) or newer."""
        return self.capability >= (7, 0)

    @property
    def mig_capable(self) -> bool:
        return self.mig is not None

    @property
    def mps_max_replicas(self) -> int:
        """The device plugin caps MPS clients at 48 from compute capability 7.5, 16 below."""
        return 48 if self.capability >= (7, 5) else 16


# --- Stack config ---------------------------------------------------------------------------


class MigSpec(StrictModel):
    """A MIG layout for every GPU of a node group: profile -> instances per GPU."""

    strategy: MigStrategy = "single"
    layout: dict[MigProfileName, Annotated[int, Field(gt=0)]] | None = None
    # The profile Cat Watcher pods request (mixed strategy); defaults to the layout's smallest.
    workload_profile: MigProfileName | None = None
    # Time-slice each of Cat Watcher's MIG devices this many ways (>= 2); both strategies.
    time_slicing_replicas: int | None = None


class GpuSpec(StrictModel):
    """A GPU preset plus a sharing mode; every preset value may be overridden here."""

    preset: str = Field(description="A name `catwatcher-infra presets` lists, or custom (then set displayName, vramMb, computeCapability)")
    count: int = Field(default=1, gt=0, description="GPUs per node")
    sharing: SharingMode | None = None
    replicas: int | None = Field(default=None, description="Pods that share one GPU")
    memory_per_pod_mb: int | None = Field(default=None, description="ONNX Runtime arena per pod (MiB)")
    reserve_mb: int | None = None
    overhead_mb: int | None = Field(
        default=None, description="GPU MiB a pod holds outside its arena (CUDA context, libraries); default: the preset's"
    )
    vram_mb: int | None = None
    compute_capability: ComputeCapability | None = None
    display_name: str | None = Field(default=None, description="The card's name; required with preset: custom")
    architecture: str | None = Field(default=None, description="Default with preset: custom: from computeCapability")
    rename_shared: bool = Field(
        default=False, description="Advertise shared GPUs as nvidia.com/gpu.shared"
    )
    mig: MigSpec | None = None


class NodeGroupSpec(StrictModel):
    """GPU nodes of one kind: their names, their GPU and sharing, and the pods they run."""

    name: DnsLabel
    nodes: list[DnsLabel] = Field(min_length=1)
    gpu: GpuSpec
    inference_replicas: int | None = Field(default=None, ge=1)


class ClusterSpec(StrictModel):
    """The Kubernetes distribution implies where containerd lives, what the operator installs
    and which runtime class pods name (infra/distributions.py)."""

    distribution: Distribution = "kubeadm"
    # kubeconfig context to deploy to; unset: the kubeconfig's current context.
    kube_context: str | None = None
    # 1.31 or newer: the restart Job's `kubectl wait --for=create` needs it.
    kubernetes_version: Annotated[str, StringConstraints(pattern=r"^1\.(3[1-9]|[4-9]\d)$")] = "1.33"
    use_nri_plugin: bool = Field(
        default=False, description="CDI + NRI plugin: no containerd config changes, no runtime class"
    )


class OperatorSpec(StrictModel):
    namespace: DnsLabel = "gpu-operator"
    release_name: DnsLabel = "gpu-operator"
    chart_version: Annotated[str, StringConstraints(pattern=r"^v\d+\.\d+\.\d+$")] = "v26.7.0"
    repository: str = "https://helm.ngc.nvidia.com/nvidia"
    # None: the distribution's default (infra/distributions.py); an explicit value wins.
    install_driver: bool | None = None
    install_toolkit: bool | None = None
    # The driver the operator installs (`driver.version`); None: the chart's default (595.x),
    # which no longer drives Pascal or Volta GPUs: they need a 580.x driver here.
    driver_version: Annotated[str, StringConstraints(pattern=r"^\d+\.\d+(\.\d+)?$")] | None = None
    timeout_seconds: int = Field(default=900, gt=0)
    restart_image: ImageRef = "registry.k8s.io/kubectl:v1.33.4"
    # How long the restart Job waits for every GPU node to advertise the sharing config.
    verify_timeout_seconds: int = Field(default=600, gt=0)


class ResourceSpec(StrictModel):
    cpu_request: Quantity = "500m"
    cpu_limit: Quantity = "2"
    memory_request: Quantity = "1Gi"
    memory_limit: Quantity = "2Gi"


class NetworkPolicySpec(StrictModel):
    """Who may reach the service port (which also serves /metrics)."""

    enabled: bool = True
    client_namespaces: list[DnsLabel] = Field(default_factory=list, description="Besides the app's own")
    monitoring_namespace: DnsLabel = "monitoring"


class AppSpec(StrictModel):
    namespace: DnsLabel = "cat-watcher"
    name: DnsLabel = "cat-watcher"
    image: ImageRef = contract.IMAGE
    # For GPUs below compute capability 7.5, which the CUDA 13 image cannot drive.
    image_cuda12: ImageRef = contract.IMAGE_CUDA12
    replicas: int | None = Field(default=None, ge=1, description="Inference pods (default: one per slice)")
    resources: ResourceSpec = ResourceSpec()
    network_policy: NetworkPolicySpec = NetworkPolicySpec()
    read_only_root_filesystem: bool = Field(
        default=True,
        description="Inference containers' root filesystem read-only (writable /tmp only); "
        "false if a container toolkit's CDI hook fails to start GPU pods (toolkit v1.20.0 and older)",
    )


class MonitoringSpec(StrictModel):
    enabled: bool = True
    service_monitor: bool = Field(
        default=True, description="ServiceMonitors and the PrometheusRule; need the Prometheus operator CRDs"
    )
    prometheus_labels: dict[str, str] = {"release": "kube-prometheus-stack"}
    exporter: Literal["operator", "standalone"] = Field(
        default="operator",
        description="DCGM exporter: the GPU Operator's own, or the standalone dcgm-exporter chart (operator's off)",
    )
    standalone_chart_version: Annotated[str, StringConstraints(pattern=r"^\d+\.\d+\.\d+$")] = "4.8.2"
    dashboards: bool = Field(default=True, description="Grafana sidecar ConfigMaps (label grafana_dashboard: \"1\")")
    dashboard_namespace: DnsLabel | None = Field(default=None, description="Default: the app's namespace")


class MqttCredentials(StrictModel):
    host: str
    port: int = Field(default=1883, gt=0, lt=65536)
    username: str | None = None
    password: SecretStr | None = None


class FrigateCredentials(StrictModel):
    url: Annotated[str, StringConstraints(pattern=r"^https?://")]
    username: str | None = None
    password: SecretStr | None = None


class CredentialsSpec(StrictModel):
    """Connection settings for Frigate and MQTT; set passwords with `pulumi config set --secret`."""

    mqtt: MqttCredentials | None = None
    frigate: FrigateCredentials | None = None


class StackConfig(StrictModel):
    """The whole `catwatcher:*` config of one stack."""

    cluster: ClusterSpec = ClusterSpec()
    gpu: GpuSpec | None = None
    node_groups: list[NodeGroupSpec] | None = None
    operator: OperatorSpec = OperatorSpec()
    app: AppSpec = AppSpec()
    monitoring: MonitoringSpec = MonitoringSpec()
    credentials: CredentialsSpec | None = None


def is_image_pinned(image: str) -> bool:
    """A pinned image names a digest or a tag other than `latest`."""
    if "@sha256:" in image:
        return True
    match = re.search(r":([^/:]+)$", image)
    return match is not None and match.group(1) != "latest"
