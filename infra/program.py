"""The Pulumi program: read the stack config, validate all of it, then compose the components.

`pulumi up` runs it through infra/__main__.py; `catwatcher-infra render` runs the same entry
under Pulumi's mock engine.
"""

from __future__ import annotations

import pulumi
import pulumi_kubernetes as k8s
from pulumi.runtime import config as runtime_config

from components import (
    CatWatcher,
    CatWatcherArgs,
    DcgmMonitoring,
    DcgmMonitoringArgs,
    GpuOperator,
    GpuOperatorArgs,
    SharingConfig,
    SharingConfigArgs,
)
from components.cat_watcher import selector_labels
from components.dcgm_monitoring import exporter_env
from infra.config_rules import config_key_problems
from infra.errors import PROJECT, ConfigError
from infra.plan import RolloutPlan, plan_rollout
from infra.presets import catalogue
from infra.stack_config import decode_config, parse_stack_config


def all_config() -> dict[str, str]:
    """Every config value the engine passed, of every namespace."""
    return {**runtime_config.get_config_env(), **runtime_config.CONFIG.get()}


def project_config() -> dict[str, str]:
    """Every `catwatcher:*` value the engine passed, so unknown keys can be refused too."""
    return {key: value for key, value in all_config().items() if key.startswith(f"{PROJECT}:")}


def secret_config_keys() -> set[str]:
    """Top-level `catwatcher:*` keys the engine marks secret (their values are never echoed)."""
    prefix = f"{PROJECT}:"
    engine_secrets = set(runtime_config.get_config_secret_keys_env())
    return {
        key[len(prefix):]
        for key in project_config()
        if runtime_config.is_config_secret(key) or key in engine_secrets
    }


def load_plan() -> RolloutPlan:
    try:
        # Keys we would silently ignore (`kubernetes:context`, `catwatchr:app`) come first.
        if problems := config_key_problems(all_config()):
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
        SharingConfigArgs(namespace=operator_namespace.metadata["name"], groups=plan.groups),
        opts=on_cluster,
    )
    operator = GpuOperator(
        "gpu-operator",
        GpuOperatorArgs(
            namespace=operator_namespace.metadata["name"],
            release_name=config.operator.release_name,
            chart_version=config.operator.chart_version,
            repository=config.operator.repository,
            sharing_config_map=sharing.config_map_name,
            sharing_default_key=sharing.default_key,
            sharing_content_hash=sharing.content_hash,
            mig_strategy=plan.mig_strategy,
            mig_config_map=sharing.mig_config_map_name,
            install_driver=plan.node_runtime.install_driver,
            install_toolkit=plan.node_runtime.install_toolkit,
            toolkit_env=plan.node_runtime.toolkit_env,
            cdi_nri_plugin=plan.node_runtime.cdi_nri_plugin,
            dcgm_exporter=config.monitoring.enabled and config.monitoring.exporter == "operator",
            dcgm_exporter_env=exporter_env(
                [group.resource_name for group in plan.groups],
                shared_gpus=any(group.replicas_per_device > 1 for group in plan.groups),
            ),
            timeout_seconds=config.operator.timeout_seconds,
            restart_image=config.operator.restart_image,
        ),
        opts=on_cluster,
    )
    app = CatWatcher(
        "cat-watcher",
        CatWatcherArgs(
            namespace=config.app.namespace,
            app_name=config.app.name,
            image=config.app.image,
            image_cuda12=config.app.image_cuda12,
            groups=plan.groups,
            resources=config.app.resources,
            gpu_ready=operator.ready,
            runtime_class=plan.node_runtime.runtime_class,
            credentials=config.credentials,
            network_policy=config.app.network_policy,
            pod_security_version=f"v{config.cluster.kubernetes_version}",
        ),
        opts=on_cluster,
    )
    if config.monitoring.enabled:
        DcgmMonitoring(
            "monitoring",
            DcgmMonitoringArgs(
                operator_namespace=operator_namespace.metadata["name"],
                app_namespace=app.namespace,
                app_selector=selector_labels(config.app.name),
                service_monitor=config.monitoring.service_monitor,
                prometheus_labels=config.monitoring.prometheus_labels,
                exporter=config.monitoring.exporter,
                standalone_chart_version=config.monitoring.standalone_chart_version,
                gpu_resources=tuple(group.resource_name for group in plan.groups),
                shared_gpus=any(group.replicas_per_device > 1 for group in plan.groups),
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
    pulumi.export(
        "slices",
        {group.name: {"resource": group.resource_name, "pods": group.inference_replicas, "slices": group.slices,
                      "gpuMemoryLimitMb": group.memory_per_pod_mb} for group in plan.groups},
    )


def main() -> None:
    compose(load_plan())
