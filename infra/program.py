"""The Pulumi program: read the stack config, validate all of it, then compose the components.

`pulumi up` runs it through infra/__main__.py; `catwatcher-infra render` runs the same entry
under Pulumi's mock engine.
"""

from __future__ import annotations

import pulumi
import pulumi_kubernetes as k8s

from components import (
    CatWatcher,
    CatWatcherArgs,
    DcgmMonitoring,
    DcgmMonitoringArgs,
    GpuOperator,
    SharingConfig,
    SharingConfigArgs,
)
from components.cat_watcher import InferenceGroup, NetworkPolicy, PodResources, selector_labels
from components.hami import Hami
from infra.config_rules import config_key_problems
from infra.errors import PROJECT, ConfigError
from infra.hami_chart import hami_args
from infra.operator_chart import gpu_operator_args
from infra.plan import NodeGroupPlan, RolloutPlan, plan_rollout
from infra.presets import catalogue
from infra.pulumi_internals import engine_config, engine_secret_keys
from infra.stack_config import decode_config, parse_stack_config


def project_config() -> dict[str, str]:
    """Every `catwatcher:*` value the engine passed, so unknown keys can be refused too."""
    return {key: value for key, value in engine_config().items() if key.startswith(f"{PROJECT}:")}


def secret_config_keys() -> set[str]:
    """Top-level `catwatcher:*` keys the engine marks secret (their values are never echoed)."""
    prefix = f"{PROJECT}:"
    return {key[len(prefix) :] for key in engine_secret_keys() if key.startswith(prefix)}


def load_plan() -> RolloutPlan:
    try:
        # Keys we would silently ignore (`kubernetes:context`, `catwatchr:app`) come first.
        if problems := config_key_problems(engine_config()):
            raise ConfigError(problems)
        config = parse_stack_config(decode_config(project_config()), secret_config_keys())
        return plan_rollout(config, catalogue())
    except ConfigError as error:
        # RunError: the CLI prints the message alone, no traceback; nothing was registered.
        raise pulumi.RunError(str(error)) from None


def compose(plan: RolloutPlan) -> None:
    config = plan.config
    # The one way to the cluster: Pulumi.yaml disables the default provider, so nothing can
    # deploy through whatever kubeconfig context happens to be current by accident.
    cluster = k8s.Provider(
        "cluster",
        context=config.cluster.kube_context,
        # Sharing config and dashboards update in place instead of delete-then-create (their
        # names are fixed): the restart Job, not a new name, makes the plugin reload. Secrets
        # stay immutable, so new credentials mean a new Secret and rolled pods.
        enable_config_map_mutable=True,
    )
    on_cluster = pulumi.ResourceOptions(providers=[cluster])
    operator_namespace = k8s.core.v1.Namespace(
        "gpu-operator",
        metadata={
            "name": config.operator.namespace,
            # The operator's DaemonSets load kernel modules and touch host devices.
            "labels": {"pod-security.kubernetes.io/enforce": "privileged"},
        },
        opts=pulumi.ResourceOptions(provider=cluster),
    )
    sharing = SharingConfig(
        "sharing",
        SharingConfigArgs(
            namespace=operator_namespace.metadata["name"],
            device_plugin_configs=plan.device_plugin_configs,
            node_labels=plan.node_labels,
            default_key=plan.default_config_key,
            mig_layouts=plan.mig_layouts,
        ),
        opts=on_cluster,
    )
    operator = GpuOperator(
        "gpu-operator",
        gpu_operator_args(
            plan,
            namespace=operator_namespace.metadata["name"],
            sharing_config_map=sharing.config_map_name,
            sharing_content_hash=sharing.content_hash,
            mig_config_map=sharing.mig_config_map_name,
        ),
        opts=on_cluster,
    )
    gpu_ready: list[pulumi.Resource] = list(operator.ready)
    if plan.hami_groups:
        # After the operator (driver and toolkit first) and the node labels that keep its plugin
        # off HAMi's nodes.
        hami = Hami("hami", hami_args(plan, depends_on=[*operator.ready, *sharing.node_patches]), opts=on_cluster)
        gpu_ready += hami.ready
    app_config = config.app
    app = CatWatcher(
        "cat-watcher",
        CatWatcherArgs(
            namespace=app_config.namespace,
            app_name=app_config.name,
            groups=[
                InferenceGroup(
                    name=group.name,
                    deployment_name=plan.workload_name(group),
                    replicas=group.inference_replicas,
                    slices=group.slices,
                    image=plan.image_for(group),
                    node_selector=group.backend.node_selector(group),
                    gpu_resources=group.backend.pod_resources(group),
                    env=group.backend.pod_env(group),
                    scheduler_name=group.backend.scheduler_name(group),
                    runtime_class=plan.runtime_class(group),
                )
                for group in plan.groups
            ],
            resources=PodResources(**app_config.resources.model_dump()),
            gpu_ready=gpu_ready,
            runtime_class=plan.node_runtime.runtime_class,
            credentials=plan.credential_variables,
            network_policy=NetworkPolicy(
                enabled=app_config.network_policy.enabled,
                client_namespaces=tuple(app_config.network_policy.client_namespaces),
                monitoring_namespace=app_config.network_policy.monitoring_namespace,
            ),
            pod_security_version=f"v{config.cluster.kubernetes_version}",
            read_only_root_filesystem=app_config.read_only_root_filesystem,
        ),
        opts=on_cluster,
    )
    if config.monitoring.enabled:
        DcgmMonitoring(
            "monitoring",
            DcgmMonitoringArgs(
                operator_namespace=operator_namespace.metadata["name"],
                app_namespace=app.namespace,
                app_selector=selector_labels(app_config.name),
                service_monitor=config.monitoring.service_monitor,
                prometheus_labels=config.monitoring.prometheus_labels,
                exporter=config.monitoring.exporter,
                standalone_chart_version=config.monitoring.standalone_chart_version,
                gpu_resources=plan.gpu_resources,
                shared_gpus=plan.shared_gpus,
                dashboards=config.monitoring.dashboards,
                dashboard_namespace=config.monitoring.dashboard_namespace,
                runtime_class=plan.node_runtime.runtime_class,
                exporter_depends_on=[operator],
            ),
            opts=on_cluster,
        )

    pulumi.export("sharingConfigHash", sharing.content_hash)
    pulumi.export("devicePluginRestartJob", operator.restart_job_name)
    pulumi.export("deployments", app.deployments)
    pulumi.export("slices", {group.name: slice_facts(group) for group in plan.groups})


def slice_facts(group: NodeGroupPlan) -> dict[str, object]:
    """What one node group's GPUs hold: the facts a PR preview needs that no Kubernetes object
    carries (GPU count, the memory of one shared device, the reserve kept free on it)."""
    return {
        "resource": group.resource_name,
        "pods": group.inference_replicas,
        "slices": group.slices,
        # The pod's whole GPU budget (arena + overhead), as its GPU_MEMORY_LIMIT env says.
        "gpuMemoryLimitMb": group.budget_mb,
        "arenaMb": group.memory_per_pod_mb,
        "overheadMb": group.overhead_mb,
        "sharing": group.sharing,
        "gpus": group.gpus,
        "replicasPerDevice": group.replicas_per_device,
        # The device pods share: the GPU, or the MIG instance Cat Watcher's pods get.
        "deviceMemoryMb": group.mig.workload_profile.memory_mb if group.mig else group.gpu.vram_mb,
        "reserveMb": group.gpu.reserve_mb,
    }


def main() -> None:
    compose(load_plan())
