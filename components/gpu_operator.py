"""GpuOperator: NVIDIA's GPU Operator as a Helm release, plus the restart of every reader of the
sharing config and a check that the nodes advertise it.

Why a restart Job: three operator DaemonSets read the sharing ConfigMap (GPU feature discovery,
the MPS control daemon, the device plugin), each at start only; their config-manager reacts to a
change of the node's `nvidia.com/device-plugin.config` label, never to new content under the
same key. A patch of their pod templates cannot be applied on first install (the operator creates
the DaemonSets minutes after the release) and the operator rewrites its DaemonSets when its own
spec changes. So a Job whose name carries the sharing config's content hash, for each reader in
order (GFD first: it sets `nvidia.com/mps.capable`, which schedules the MPS daemon; the plugin
last: it needs the MPS daemon), waits for the DaemonSet to exist, stamps the hash on its pod
template and waits for the rollout. A rollout proves little (the plugin has no readiness probe
and loops quietly without its MPS daemon), so the Job then waits until every GPU node advertises
the expected allocatable, and fails, failing `pulumi up`, with what each node advertises if it
does not within the timeout. A new hash means a new Job and one restart of each reader; a Job
re-run for any other reason stamps the same hash again, which restarts nothing.
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
# The operator's DaemonSets that read the sharing config (assets/ of NVIDIA/gpu-operator v26.7.0).
GFD_DAEMONSET = "gpu-feature-discovery"
MPS_DAEMONSET = "nvidia-device-plugin-mps-control-daemon"
DEVICE_PLUGIN_DAEMONSET = "nvidia-device-plugin-daemonset"
GPU_PRESENT_LABEL = "nvidia.com/gpu.present"
RESTART_NAME = "device-plugin-restart"
RESTART_NODE_READER = "catwatcher-device-plugin-restart-nodes"
RESTART_WAIT_FOR_CREATE = "20m"
RESTART_ROLLOUT_TIMEOUT = "10m"
VERIFY_CONTAINER = "verify-allocatable"
# The verification's exit code when nodes still advertise the wrong allocatable at its timeout:
# the Job fails at once (podFailurePolicy) instead of retrying a wait that already ran out.
VERIFY_FAILED_EXIT_CODE = 3
# When the operator builds and loads the driver, a Pascal/Volta GPU's CUDA validation cannot run.
SKIP_CUDA_WORKLOAD_ENV = {"name": "WITH_WORKLOAD", "value": "false"}


@dataclass(frozen=True)
class AllocatableCheck:
    """What the nodes of one group must advertise once their sharing config is live."""

    resource: str  # e.g. nvidia.com/gpu, nvidia.com/gpu.shared, nvidia.com/mig-1g.5gb
    per_node: int  # GPUs x MIG instances x replicas on each node
    nodes: tuple[str, ...] = ()  # empty: every node labelled nvidia.com/gpu.present=true
    reason: str = ""  # how per_node comes about, for the failure message


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
    # DaemonSets to restart after a sharing config change, in this order.
    config_readers: Sequence[str] = (GFD_DAEMONSET, DEVICE_PLUGIN_DAEMONSET)
    allocatable_checks: Sequence[AllocatableCheck] = ()
    verify_timeout_seconds: int = 600
    # False for Pascal/Volta GPUs: the validator's CUDA 13 workload cannot run below 7.5.
    cuda_workload_validation: bool = True
    driver_version: str | None = None  # None: the chart's default driver


def operator_values(args: GpuOperatorArgs) -> dict[str, Any]:
    """The chart values we set (validation checks every key path against the chart's)."""
    device_plugin_config: dict[str, Any] = {"name": args.sharing_config_map}
    if args.sharing_default_key is not None:
        device_plugin_config["default"] = args.sharing_default_key
    driver: dict[str, Any] = {"enabled": args.install_driver}
    if args.install_driver and args.driver_version is not None:
        driver["version"] = args.driver_version
    values: dict[str, Any] = {
        "driver": driver,
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
    if not args.cuda_workload_validation:
        # The chart template passes validator.cuda.env to the validator's cuda container.
        values["validator"] = {"cuda": {"env": [dict(SKIP_CUDA_WORKLOAD_ENV)]}}
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
    """In the operator namespace: find, stamp and watch the readers' DaemonSets."""
    return [
        {
            "apiGroups": ["apps"],
            "resources": ["daemonsets"],
            "verbs": ["get", "list", "watch", "patch"],
        }
    ]


def node_reader_rules() -> list[dict[str, Any]]:
    """Cluster-wide: read what the nodes advertise."""
    return [{"apiGroups": [""], "resources": ["nodes"], "verbs": ["get", "list"]}]


HASH_ANNOTATION = "catwatcher.io/sharing-config-hash"


def restart_patch(content_hash: str) -> str:
    """Stamp a reader's pod template with the config hash: a new hash rolls the pods, the
    same hash again is a no-op (so re-running the Job never restarts anything twice)."""
    return json.dumps({"spec": {"template": {"metadata": {"annotations": {HASH_ANNOTATION: content_hash}}}}})


# Polls the nodes until each advertises what its group's sharing config gives; bash is in the
# kubectl image. Arguments: the timeout in seconds, then one `resource|per-node|nodes|reason`
# per group (nodes comma-separated; empty: every node labelled nvidia.com/gpu.present=true).
VERIFY_SCRIPT = r"""set -uo pipefail
timeout=$1; shift
deadline=$((SECONDS + timeout))
while :; do
  problems=()
  for check in "$@"; do
    IFS='|' read -r resource expected nodes reason <<<"$check"
    escaped=${resource//./\\.}
    if [ -n "$nodes" ]; then
      names=${nodes//,/ }
    else
      names=$(kubectl get nodes -l GPU_PRESENT_LABEL=true -o 'jsonpath={.items[*].metadata.name}') || names=""
      if [ -z "$names" ]; then
        problems+=("no node is labelled GPU_PRESENT_LABEL=true yet (each GPU node should advertise $expected $resource: $reason)")
        continue
      fi
    fi
    for node in $names; do
      have=$(kubectl get node "$node" -o "jsonpath={.status.allocatable.$escaped}") || have="unknown (node not readable)"
      if [ "$have" != "$expected" ]; then
        problems+=("node $node advertises ${have:-no} $resource, expected $expected ($reason)")
      fi
    done
  done
  if [ ${#problems[@]} -eq 0 ]; then
    echo "every GPU node advertises its sharing config"
    exit 0
  fi
  if [ "$SECONDS" -ge "$deadline" ]; then
    (IFS=';'; echo "sharing config not live after ${timeout}s: ${problems[*]}") >&2
    exit EXIT_CODE
  fi
  sleep 10
done
""".replace("GPU_PRESENT_LABEL", GPU_PRESENT_LABEL).replace("EXIT_CODE", str(VERIFY_FAILED_EXIT_CODE))  # noqa: E501 - the Job runs these lines as they are


def restart_job_timeout(readers: int, verify_timeout_seconds: int) -> str:
    """How long Pulumi waits for the Job: the operator creating the DaemonSets (driver builds
    included), each reader's rollout, the verification, and ten minutes to spare."""
    minutes = (
        _minutes(RESTART_WAIT_FOR_CREATE)
        + readers * _minutes(RESTART_ROLLOUT_TIMEOUT)
        + -(-verify_timeout_seconds // 60)
        + 10
    )
    return f"{minutes}m"


def _minutes(duration: str) -> int:
    return int(duration.removesuffix("m"))


def verify_arguments(checks: Sequence[AllocatableCheck], timeout_seconds: int) -> list[str]:
    return [str(timeout_seconds), *(f"{c.resource}|{c.per_node}|{','.join(c.nodes)}|{c.reason}" for c in checks)]


def restart_job_spec(
    content_hash: str,
    image: str,
    service_account: str,
    readers: Sequence[str] = (GFD_DAEMONSET, DEVICE_PLUGIN_DAEMONSET),
    checks: Sequence[AllocatableCheck] = (),
    verify_timeout_seconds: int = 600,
) -> dict[str, Any]:
    """For each reader in order: wait for its DaemonSet, stamp it with the config hash, wait for
    the rollout; then wait until the nodes advertise the expected allocatable. Each step is its
    own container (init containers run in order) so a failure names its step. The image is
    registry.k8s.io/kubectl (debian-base with bash, ENTRYPOINT kubectl; not distroless)."""

    def step(name: str, command: Sequence[str]) -> dict[str, Any]:
        return {
            "name": name,
            "image": image,
            "command": list(command),
            "securityContext": {
                "runAsNonRoot": True,
                "runAsUser": 65532,
                "allowPrivilegeEscalation": False,
                # kubectl then only skips its discovery cache.
                "readOnlyRootFilesystem": True,
                "capabilities": {"drop": ["ALL"]},
            },
            "resources": {"requests": {"cpu": "10m", "memory": "32Mi"}, "limits": {"memory": "128Mi"}},
        }

    restarts = []
    for reader in readers:
        target = f"daemonset/{reader}"
        restarts += [
            step(f"wait-{reader}", ["kubectl", "wait", "--for=create", target, f"--timeout={RESTART_WAIT_FOR_CREATE}"]),
            step(f"stamp-{reader}", ["kubectl", "patch", target, "--type=merge", "-p", restart_patch(content_hash)]),
            step(f"rollout-{reader}", ["kubectl", "rollout", "status", target, f"--timeout={RESTART_ROLLOUT_TIMEOUT}"]),
        ]
    verify = step(
        VERIFY_CONTAINER,
        ["bash", "-c", VERIFY_SCRIPT, VERIFY_CONTAINER, *verify_arguments(checks, verify_timeout_seconds)],
    )
    # The last lines of its output (what each node advertises) become the pod's termination message.
    verify["terminationMessagePolicy"] = "FallbackToLogsOnError"
    return {
        "backoffLimit": 3,
        # Transient API errors retry; a verification that waited its full timeout does not.
        "podFailurePolicy": {
            "rules": [
                {
                    "action": "FailJob",
                    "onExitCodes": {
                        "containerName": VERIFY_CONTAINER,
                        "operator": "In",
                        "values": [VERIFY_FAILED_EXIT_CODE],
                    },
                }
            ]
        },
        "template": {
            "metadata": {"annotations": {HASH_ANNOTATION: content_hash}},
            "spec": {
                "serviceAccountName": service_account,
                # podFailurePolicy needs Never: each retry is a new pod.
                "restartPolicy": "Never",
                "securityContext": {"seccompProfile": {"type": "RuntimeDefault"}},
                "initContainers": restarts,
                "containers": [verify],
            },
        },
    }


class GpuOperator(pulumi.ComponentResource):
    """Creates the `gpu-operator` Helm release wired to the sharing (and MIG) ConfigMaps, and the
    restart of the sharing config's readers: a ServiceAccount, Role and RoleBinding (DaemonSets),
    a ClusterRole and ClusterRoleBinding (reading nodes), and a Job keyed by the sharing config's
    content hash that restarts the readers in order and verifies the nodes' allocatable.

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
        node_reader = k8s.rbac.v1.ClusterRole(
            f"{name}-{RESTART_NODE_READER}",
            metadata={"name": RESTART_NODE_READER},
            rules=node_reader_rules(),
            opts=child,
        )
        node_reader_binding = k8s.rbac.v1.ClusterRoleBinding(
            f"{name}-{RESTART_NODE_READER}",
            metadata={"name": RESTART_NODE_READER},
            role_ref={"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": RESTART_NODE_READER},
            subjects=[{"kind": "ServiceAccount", "name": RESTART_NAME, "namespace": args.namespace}],
            opts=child,
        )
        job_name = restart_job_name(args.sharing_content_hash)
        job_timeout = restart_job_timeout(len(args.config_readers), args.verify_timeout_seconds)
        restart = k8s.batch.v1.Job(
            f"{name}-{RESTART_NAME}",
            metadata={
                "name": job_name,
                "namespace": args.namespace,
            },
            spec=restart_job_spec(
                args.sharing_content_hash,
                args.restart_image,
                RESTART_NAME,
                readers=args.config_readers,
                checks=args.allocatable_checks,
                verify_timeout_seconds=args.verify_timeout_seconds,
            ),
            opts=pulumi.ResourceOptions(
                parent=self,
                depends_on=[release, service_account, role, binding, node_reader, node_reader_binding],
                # Waiting for the operator to create the DaemonSets (driver builds included), the
                # restarts and the verification; a failed verification fails the Job at once.
                custom_timeouts=pulumi.CustomTimeouts(create=job_timeout, update=job_timeout),
            ),
        )

        self.release_name: pulumi.Output[str] = release.name
        self.restart_job_name: str = job_name
        self.ready: list[pulumi.Resource] = [release, restart]
        self.register_outputs({"release_name": self.release_name, "restart_job_name": job_name})
