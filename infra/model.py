"""Typed stack config: what a user writes in stacks/Pulumi.<stack>.yaml, and the GPU presets.

Every model forbids unknown keys, so a typo is an error instead of a silently ignored setting.
Field names are snake_case in Python and camelCase in the stack files (the Pulumi convention).
"""

from __future__ import annotations

import ipaddress
import re
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, SecretStr, StringConstraints, model_validator
from pydantic.alias_generators import to_camel

from inference import contract

SharingMode = Literal["none", "time-slicing", "mps", "mig", "hami"]
MigStrategy = Literal["single", "mixed"]
Distribution = Literal["kubeadm", "k3s", "rke2", "microk8s", "k0s", "talos"]

# Patterns are ASCII-only on purpose: `\d` would also match "２" or "٣".
DNS_LABEL = r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$"
DnsLabel = Annotated[str, StringConstraints(pattern=DNS_LABEL)]
# A Service name (what `app.name` becomes) starts with a letter.
Dns1035Label = Annotated[str, StringConstraints(pattern=r"^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$")]
# A node name: `gpu-1.home.arpa` is valid.
Dns1123Subdomain = Annotated[
    str, StringConstraints(max_length=253, pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
]
MigProfileName = Annotated[str, StringConstraints(pattern=r"^[0-9]+g\.[0-9]+gb$")]
ComputeCapability = Annotated[str, StringConstraints(pattern=r"^[0-9]{1,2}\.[0-9]$")]
MebiBytes = Annotated[int, Field(gt=0, le=1_048_576)]
# Kubernetes object names we create in these namespaces; the cluster's own are off limits.
RESERVED_NAMESPACES = frozenset({"default", "kube-system", "kube-public", "kube-node-lease"})

# apimachinery's quantity grammar: <signed number><suffix>, suffix binary (Ki..Ei), decimal
# (n u m "" k M G T P E) or an exponent (e3).
QUANTITY = re.compile(
    r"^([+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+))(Ki|Mi|Gi|Ti|Pi|Ei|n|u|m|k|M|G|T|P|E|[eE][+-]?[0-9]+)?$"
)
QUANTITY_FACTORS = {
    "": 1,
    "n": 1e-9,
    "u": 1e-6,
    "m": 1e-3,
    "k": 1e3,
    "M": 1e6,
    "G": 1e9,
    "T": 1e12,
    "P": 1e15,
    "E": 1e18,
    "Ki": 2**10,
    "Mi": 2**20,
    "Gi": 2**30,
    "Ti": 2**40,
    "Pi": 2**50,
    "Ei": 2**60,
}
MIN_MEMORY_BYTES = 64 * 2**20  # no inference pod starts in less; `2048m` is 2 bytes, not 2 GiB
MIN_CPU = 0.01


def parse_quantity(text: str) -> float:
    """A Kubernetes quantity as a number ("500m" -> 0.5, "2Gi" -> 2147483648, "1e3" -> 1000)."""
    match = QUANTITY.fullmatch(text)
    if match is None:
        raise ValueError(f"'{text}' is not a Kubernetes quantity (e.g. 500m, 2, 1Gi, 512Mi)")
    number, suffix = match.groups()
    suffix = suffix or ""
    if suffix[:1] in ("e", "E") and suffix not in QUANTITY_FACTORS:
        exponent = int(suffix[1:])
        if abs(exponent) > 30:
            raise ValueError(f"'{text}' is out of range")
        return float(number) * 10.0**exponent
    return float(number) * QUANTITY_FACTORS[suffix]


def _cpu(text: str) -> str:
    if parse_quantity(text) < MIN_CPU:
        raise ValueError(f"'{text}' is less than {MIN_CPU} CPU (10m); e.g. 500m or 2")
    return text


def _memory(text: str) -> str:
    value = parse_quantity(text)
    if value < MIN_MEMORY_BYTES:
        hint = " (the m suffix means thousandths: write Mi or Gi)" if text.endswith("m") else ""
        raise ValueError(f"'{text}' is {value:g} bytes, less than 64Mi{hint}; e.g. 512Mi or 2Gi")
    return text


QuantityText = Annotated[str, StringConstraints(max_length=64)]
CpuQuantity = Annotated[QuantityText, AfterValidator(_cpu)]
MemoryQuantity = Annotated[QuantityText, AfterValidator(_memory)]

# OCI / distribution reference grammar: [registry[:port]/]path[/path...][:tag][@digest]
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_PATH_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
IMAGE_REFERENCE = re.compile(
    rf"^(?P<name>(?:{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*(?::[0-9]+)?/)?{_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*)"
    r"(?::(?P<tag>[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}))?"
    r"(?:@(?P<digest>sha256:[a-f0-9]{64}|sha512:[a-f0-9]{128}))?$"
)


def _image(text: str) -> str:
    match = IMAGE_REFERENCE.fullmatch(text)
    if match is None:
        raise ValueError(
            f"'{text}' is not an image reference: registry/path:tag or registry/path@sha256:<64 hex> "
            "(lowercase path, no '//', one tag)"
        )
    if len(match.group("name")) > 255:
        raise ValueError("image name longer than 255 characters")
    return text


ImageRef = Annotated[str, StringConstraints(max_length=512), AfterValidator(_image)]
KUBECTL_WAIT_FOR_CREATE = (1, 31)


def _kubectl_image(text: str) -> str:
    """The restart Job runs `kubectl wait --for=create` (kubectl 1.31 or newer): the tag says which."""
    reference = IMAGE_REFERENCE.fullmatch(text)  # ImageRef's own check has refused anything else
    tag = (reference.group("tag") if reference else None) or ""
    version = re.match(r"^v?([0-9]+)\.([0-9]+)(?:\.[0-9]+)?(?:[-+][A-Za-z0-9_.-]*)?$", tag)
    if version is None:
        raise ValueError(
            f"the tag of '{text}' must name its kubectl version (e.g. registry.k8s.io/kubectl:v1.33.4): "
            "the restart Job needs kubectl 1.31 or newer for `kubectl wait --for=create`"
        )
    if (int(version.group(1)), int(version.group(2))) < KUBECTL_WAIT_FOR_CREATE:
        raise ValueError(
            f"kubectl {version.group(1)}.{version.group(2)} lacks `kubectl wait --for=create` (1.31 or newer); "
            "e.g. registry.k8s.io/kubectl:v1.33.4"
        )
    return text


def _namespace(text: str) -> str:
    if text in RESERVED_NAMESPACES:
        raise ValueError(f"'{text}' is reserved for the cluster itself; pick a namespace of its own, e.g. cat-watcher")
    return text


OwnNamespace = Annotated[DnsLabel, AfterValidator(_namespace)]
# Helm: a release name is a DNS-1123 subdomain of at most 53 characters.
HelmReleaseName = Annotated[
    str, StringConstraints(max_length=53, pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
]


def _semver_at_least(floor: tuple[int, int, int], prefix: str, example: str):
    def check(text: str) -> str:
        match = re.fullmatch(rf"{prefix}([0-9]{{1,4}})\.([0-9]{{1,4}})\.([0-9]{{1,4}})", text)
        if match is None:
            raise ValueError(f"'{text}' is not a chart version like {example}")
        if tuple(map(int, match.groups())) < floor:
            raise ValueError(
                f"{text} is older than {prefix}{'.'.join(map(str, floor))}, the chart whose values this program "
                "sets (older charts lack some of them)"
            )
        return text

    return AfterValidator(check)


def _https_url(text: str) -> str:
    parsed = urlsplit(text)
    if parsed.scheme not in ("http", "https", "oci") or not parsed.hostname or any(c.isspace() for c in text):
        raise ValueError(f"'{text}' is not a URL with a host, e.g. https://helm.ngc.nvidia.com/nvidia")
    return text


def _http_url(text: str) -> str:
    try:
        parsed = urlsplit(text)
        port = parsed.port
    except ValueError:
        port, parsed = -1, None
    if (
        parsed is None
        or port == -1
        or parsed.scheme not in ("http", "https")
        or not parsed.hostname
        or any(c.isspace() for c in text)
    ):
        raise ValueError(f"'{text}' is not an http(s) URL with a host, e.g. http://frigate.frigate.svc:5000")
    return text


HOSTNAME = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([-A-Za-z0-9]{0,61}[A-Za-z0-9])?)*$")


def _host(text: str) -> str:
    if "://" in text or "/" in text:
        raise ValueError(f"'{text}' is a URL; give the host alone (e.g. mqtt.home.arpa) and the port in port")
    try:
        ipaddress.ip_address(text)
        return text
    except ValueError:
        pass
    if len(text) > 253 or not HOSTNAME.fullmatch(text):
        raise ValueError(f"'{text}' is not a host name or IP address, e.g. mqtt.home.arpa or 192.168.1.10")
    return text


Host = Annotated[str, StringConstraints(min_length=1, max_length=253), AfterValidator(_host)]
# Kubernetes label keys and values (the ServiceMonitor carries these labels for Prometheus to select).
LABEL_KEY = (
    r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?"  # optional DNS subdomain prefix
    r"[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$"  # name
)
LabelKey = Annotated[str, StringConstraints(max_length=317, pattern=LABEL_KEY)]
LabelValue = Annotated[str, StringConstraints(pattern=r"^([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?$")]
UserName = Annotated[str, StringConstraints(min_length=1, max_length=256, pattern=r"^[!-~]+$")]
Password = Annotated[SecretStr, StringConstraints(min_length=1, max_length=1024)]


class StrictModel(BaseModel):
    """Base for every config model: camelCase keys, unknown keys refused, immutable."""

    model_config = ConfigDict(
        # Only the camelCase spelling is accepted: `memory_per_pod_mb` in a stack file is a typo.
        extra="forbid",
        frozen=True,
        alias_generator=to_camel,
        populate_by_name=False,
        # No coercion: `replicas: true`, `count: 2.0`, `enabled: "off"` are type errors, not 1, 2, False.
        strict=True,
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
    # Absent: the preset's recommended layout. An empty {} is refused (min_length), not "the default".
    layout: Annotated[dict[MigProfileName, Annotated[int, Field(gt=0, le=64)]], Field(min_length=1)] | None = None
    # The profile Cat Watcher pods request (mixed strategy); defaults to the layout's smallest.
    workload_profile: MigProfileName | None = None
    # Time-slice each of Cat Watcher's MIG devices this many ways (>= 2); both strategies.
    time_slicing_replicas: Annotated[int, Field(ge=1, le=64)] | None = None


class GpuSpec(StrictModel):
    """A GPU preset plus a sharing mode; every preset value may be overridden here."""

    preset: Annotated[str, StringConstraints(min_length=1, max_length=64)] = Field(
        description="A name `catwatcher-infra presets` lists, or custom "
        "(then set displayName, vramMb, computeCapability)"
    )
    count: int = Field(default=1, gt=0, le=16, description="GPUs per node")
    sharing: SharingMode | None = None
    # The lower bound depends on the sharing mode (>= 2 to share, 1 for none): the plan checks it.
    replicas: int | None = Field(default=None, le=1024, description="Pods that share one GPU")
    memory_per_pod_mb: MebiBytes | None = Field(default=None, description="ONNX Runtime arena per pod (MiB)")
    reserve_mb: Annotated[int, Field(ge=0, le=1_048_576)] | None = None
    overhead_mb: Annotated[int, Field(ge=0, le=1_048_576)] | None = Field(
        default=None,
        description="GPU MiB a pod holds outside its arena (CUDA context, libraries); default: the preset's",
    )
    vram_mb: MebiBytes | None = None
    compute_capability: ComputeCapability | None = None
    display_name: str | None = Field(default=None, description="The card's name; required with preset: custom")
    architecture: str | None = Field(default=None, description="Default with preset: custom: from computeCapability")
    rename_shared: bool = Field(default=False, description="Advertise shared GPUs as nvidia.com/gpu.shared")
    mig: MigSpec | None = None
    gpu_cores_per_pod: int | None = Field(
        default=None, ge=1, le=100, description="sharing: hami only; each pod's share of the GPU's SMs, percent"
    )


class NodeGroupSpec(StrictModel):
    """GPU nodes of one kind: their names, their GPU and sharing, and the pods they run."""

    name: DnsLabel
    nodes: list[Dns1123Subdomain] = Field(min_length=1, max_length=1000)
    gpu: GpuSpec
    inference_replicas: int | None = Field(default=None, ge=1, le=10_000)


class ClusterSpec(StrictModel):
    """The Kubernetes distribution implies where containerd lives, what the operator installs
    and which runtime class pods name (infra/distributions.py)."""

    # Required: the provider is built from this alone, never from the kubeconfig's current context.
    kube_context: Annotated[str, StringConstraints(pattern=r"^[!-~]{1,253}$")] = Field(
        description="the kubeconfig context to deploy to; list them with `kubectl config get-contexts`"
    )
    distribution: Distribution = "kubeadm"
    # 1.31 or newer: the restart Job's `kubectl wait --for=create` needs it.
    kubernetes_version: Annotated[str, StringConstraints(pattern=r"^1\.(3[1-9]|[4-9][0-9])$")] = "1.33"
    use_nri_plugin: bool = Field(
        default=False, description="CDI + NRI plugin: no containerd config changes, no runtime class"
    )


class OperatorSpec(StrictModel):
    namespace: OwnNamespace = "gpu-operator"
    release_name: HelmReleaseName = "gpu-operator"
    # The format here; which versions this project has chart data for: infra/operator_chart.py.
    chart_version: Annotated[str, _semver_at_least((0, 0, 0), "v", "v26.7.0")] = "v26.7.0"
    repository: Annotated[str, StringConstraints(max_length=2048), AfterValidator(_https_url)] = (
        "https://helm.ngc.nvidia.com/nvidia"
    )
    # None: the distribution's default (infra/distributions.py); an explicit value wins.
    install_driver: bool | None = None
    install_toolkit: bool | None = None
    # The driver the operator installs (`driver.version`); None: the chart's default (595.x),
    # which no longer drives Pascal or Volta GPUs: they need a 580.x driver here.
    driver_version: Annotated[str, StringConstraints(pattern=r"^[0-9]{1,4}\.[0-9]{1,4}(\.[0-9]{1,4})?$")] | None = None
    timeout_seconds: int = Field(default=900, gt=0, le=86_400)
    restart_image: Annotated[ImageRef, AfterValidator(_kubectl_image)] = "registry.k8s.io/kubectl:v1.33.4"
    # How long the restart Job waits for every GPU node to advertise the sharing config.
    verify_timeout_seconds: int = Field(default=600, gt=0, le=86_400)


class ResourceSpec(StrictModel):
    cpu_request: CpuQuantity = "500m"
    cpu_limit: CpuQuantity = "2"
    memory_request: MemoryQuantity = "1Gi"
    memory_limit: MemoryQuantity = "2Gi"


class NetworkPolicySpec(StrictModel):
    """Who may reach the service port (which also serves /metrics)."""

    enabled: bool = True
    client_namespaces: list[DnsLabel] = Field(default_factory=list, max_length=100, description="Besides the app's own")
    monitoring_namespace: DnsLabel = "monitoring"


class AppSpec(StrictModel):
    namespace: OwnNamespace = "cat-watcher"
    # Becomes the Service's name: a DNS-1035 label.
    name: Dns1035Label = "cat-watcher"
    image: ImageRef = contract.IMAGE
    # For GPUs below compute capability 7.5, which the CUDA 13 image cannot drive.
    image_cuda12: ImageRef = contract.IMAGE_CUDA12
    replicas: int | None = Field(default=None, ge=1, le=10_000, description="Inference pods (default: one per slice)")
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
    prometheus_labels: Annotated[dict[LabelKey, LabelValue], Field(max_length=32)] = {
        "release": "kube-prometheus-stack"
    }
    exporter: Literal["operator", "standalone"] = Field(
        default="operator",
        description="DCGM exporter: the GPU Operator's own, or the standalone dcgm-exporter chart (operator's off)",
    )
    standalone_chart_version: Annotated[str, _semver_at_least((4, 8, 2), "", "4.8.2")] = "4.8.2"
    dashboards: bool = Field(default=True, description='Grafana sidecar ConfigMaps (label grafana_dashboard: "1")')
    dashboard_namespace: DnsLabel | None = Field(default=None, description="Default: the app's namespace")


class MqttCredentials(StrictModel):
    host: Host
    port: int = Field(default=1883, gt=0, lt=65536)
    username: UserName | None = None
    password: Password | None = None


class FrigateCredentials(StrictModel):
    url: Annotated[str, StringConstraints(max_length=2048), AfterValidator(_http_url)]
    username: UserName | None = None
    password: Password | None = None


class CredentialsSpec(StrictModel):
    """Connection settings for Frigate and MQTT; set passwords with `pulumi config set --secret`."""

    mqtt: MqttCredentials | None = None
    frigate: FrigateCredentials | None = None


class StackConfig(StrictModel):
    """The whole `catwatcher:*` config of one stack."""

    cluster: ClusterSpec = Field(description="the target cluster, at least {kubeContext: <context>}")
    gpu: GpuSpec | None = None
    node_groups: list[NodeGroupSpec] | None = None
    operator: OperatorSpec = OperatorSpec()
    app: AppSpec = AppSpec()
    monitoring: MonitoringSpec = MonitoringSpec()
    credentials: CredentialsSpec | None = None

    @model_validator(mode="before")
    @classmethod
    def _empty_section_is_unset(cls, data: Any) -> Any:
        """Pulumi.yaml's defaults ({} and []) reach the program as values: they mean "not set"."""
        if isinstance(data, dict):
            known = {field.alias or name for name, field in cls.model_fields.items()}
            return {
                key: value
                for key, value in data.items()
                if not (key in known and isinstance(value, (dict, list)) and not value)
            }
        return data


def is_image_pinned(image: str) -> bool:
    """A pinned image names a digest or a tag other than `latest`."""
    if "@sha256:" in image:
        return True
    match = re.search(r":([^/:]+)$", image)
    return match is not None and match.group(1) != "latest"
