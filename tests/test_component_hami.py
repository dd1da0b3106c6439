"""Hami alone: the chart facts against HAMi's own files, the values we set, and the component
built from hand-made args under Pulumi's mocks."""

from __future__ import annotations

from typing import Any

import jsonschema
import pytest
import yaml

from components import hami as component
from components.hami import (
    DEPLOY_DEVICE_PLUGIN_LABEL,
    GPU_PRESENT_LABEL,
    Hami,
    HamiArgs,
    alert_rules,
    hami_values,
    monitor_job,
    node_labels,
    prometheus_rule_spec,
    selector_labels,
)
from infra.hami_chart import facts, unknown_value_paths, value_paths
from tests.component_harness import build, children_of
from tests.monitoring_schema import SCHEMAS
from tests.promql_check import violations
from tests.promtool import assert_alerts, needs_promtool

HAMI_REFERENCE = "hami-v2.10.0"
TARGET_LABELS = frozenset({"job", "instance", "endpoint", "service", "namespace", "pod", "container"})


def reference_values(reference) -> dict[str, Any]:
    return yaml.safe_load((reference / HAMI_REFERENCE / "values.yaml").read_text())


# --- the facts file against HAMi's files -----------------------------------------------------


def test_value_paths_are_the_charts(reference):
    listed = frozenset(value_paths(reference_values(reference)))
    assert facts().value_paths - facts().template_only_paths == listed
    # What values.yaml does not list, the templates read (charts/hami/templates at v2.10.0).
    assert facts().template_only_paths == {
        "scheduler.nodeLabelSelector",
        "scheduler.nodeSelector",
        "scheduler.admissionWebhook.objectSelector.matchLabels",
    }
    assert not facts().template_only_paths & listed


def test_chart_identity_is_pinned(reference):
    chart = yaml.safe_load((reference / HAMI_REFERENCE / "Chart.yaml").read_text())
    assert (chart["name"], str(chart["version"])) == (facts().chart, facts().version)
    assert facts().repository == "https://project-hami.github.io/HAMi/"
    assert facts().repository in (reference / HAMI_REFERENCE / "README.md").read_text()


def test_resource_names_and_defaults_are_the_charts(reference):
    values = reference_values(reference)
    assert (values["resourceName"], values["resourceMem"], values["resourceCores"]) == (
        facts().gpu_resource,
        facts().memory_resource,
        facts().cores_resource,
    )
    assert values["schedulerName"] == facts().scheduler_name
    assert values["devicePlugin"]["deviceSplitCount"] == facts().device_split_count
    assert values["devicePlugin"]["nvidiaNodeSelector"] == dict(facts().node_selector) == {"gpu": "on"}


def test_the_components_chart_constants_are_the_facts():
    assert component.CHART == facts().chart and component.SCHEDULER_NAME == facts().scheduler_name
    assert component.NODE_SELECTOR == dict(facts().node_selector)
    assert component.COMPONENT_LABELS == dict(facts().components)
    assert component.METRICS_PORTS == dict(facts().metrics_ports)
    assert {component.VGPU_MEMORY_USED, component.VGPU_MEMORY_LIMIT} <= set(facts().device_plugin_metrics)


def test_the_examples_ask_only_for_resources_we_know(reference):
    known = {
        facts().gpu_resource,
        facts().memory_resource,
        facts().cores_resource,
        "nvidia.com/gpumem-percentage",
        "nvidia.com/priority",
    }
    seen = set()
    for path in (reference / HAMI_REFERENCE / "examples").glob("*.yaml"):
        for document in yaml.safe_load_all(path.read_text()):
            spec = document["spec"].get("template", {}).get("spec", document["spec"])
            for container in spec["containers"]:
                seen |= set(container["resources"]["limits"])
    assert seen <= known and {facts().gpu_resource, facts().memory_resource} <= seen


# --- values ----------------------------------------------------------------------------------


def args(**overrides) -> HamiArgs:
    return HamiArgs(
        **{
            "namespace": "hami-system",
            "chart_version": "2.10.0",
            "runtime_class": "nvidia",
            "repository": "https://project-hami.github.io/HAMi/",
            "device_split_count": 10,
            **overrides,
        }
    )


@pytest.mark.parametrize("nodes", [(), ("gpu-1", "gpu-2")], ids=["every-gpu-node", "named-nodes"])
def test_values_name_only_keys_the_chart_has(nodes):
    assert unknown_value_paths(hami_values(args(nodes=nodes))) == []


def test_values_exist_in_the_reference_chart(reference):
    listed = frozenset(value_paths(reference_values(reference)))
    for nodes in ((), ("gpu-1",)):
        for path in value_paths(hami_values(args(nodes=nodes))):
            assert path in listed or path.startswith("devicePlugin.nvidiaNodeSelector."), path


def test_unknown_keys_are_caught():
    values = hami_values(args())
    values["devicePlugin"]["deviceSplitCnt"] = 4
    values["scheduler"]["kubeScheduler"]["imageTag"] = "v1.33.0"  # the pre-2.9 spelling
    assert unknown_value_paths(values) == ["devicePlugin.deviceSplitCnt", "scheduler.kubeScheduler.imageTag"]


def test_every_gpu_node_without_labels_or_only_the_labelled_ones():
    everywhere = hami_values(args())["devicePlugin"]["nvidiaNodeSelector"]
    # null drops the chart's default `gpu: "on"` in Helm's merge of user values over defaults.
    assert everywhere == {"gpu": None, GPU_PRESENT_LABEL: "true"}
    named = hami_values(args(nodes=("gpu-1",)))["devicePlugin"]["nvidiaNodeSelector"]
    assert named == {"gpu": "on"}
    assert node_labels() == {"gpu": "on", DEPLOY_DEVICE_PLUGIN_LABEL: "false"}


def test_runtime_class_follows_the_distribution():
    assert hami_values(args())["devicePlugin"]["runtimeClassName"] == "nvidia"
    assert "runtimeClassName" not in hami_values(args(runtime_class=None))["devicePlugin"]
    assert hami_values(args())["devicePlugin"]["createRuntimeClass"] is False


def test_kube_scheduler_comes_from_the_kubernetes_registry_with_the_charts_tag():
    image = hami_values(args())["scheduler"]["kubeScheduler"]["image"]
    assert image == {"registry": "registry.k8s.io", "repository": "kube-scheduler"}


def test_device_split_count_is_passed_through():
    assert hami_values(args(device_split_count=4))["devicePlugin"]["deviceSplitCount"] == 4
    assert hami_values(args())["devicePlugin"]["deviceSplitCount"] == 10


# --- the component alone, under mocks ---------------------------------------------------------


def of_kind(recording, type_: str) -> list[dict]:
    return [dict(r.inputs) for r in recording.of_type(type_)]


def test_component_for_every_gpu_node():
    resources = build(lambda: Hami("hami", args(prometheus_labels={"release": "kube-prometheus-stack"})))
    [release] = of_kind(resources, "kubernetes:helm.sh/v3:Release")
    assert (release["chart"], release["version"], release["repositoryOpts"]["repo"]) == (
        "hami",
        "2.10.0",
        "https://project-hami.github.io/HAMi/",
    )
    assert release["namespace"] == "hami-system" and release["name"] == "hami"
    assert unknown_value_paths(release["values"]) == []
    [namespace] = of_kind(resources, "kubernetes:core/v1:Namespace")
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "privileged"
    assert of_kind(resources, "kubernetes:core/v1:NodePatch") == []
    monitors = of_kind(resources, "kubernetes:monitoring.coreos.com/v1:ServiceMonitor")
    assert {m["metadata"]["name"] for m in monitors} == {"hami-device-plugin", "hami-scheduler"}
    for manifest in monitors + of_kind(resources, "kubernetes:monitoring.coreos.com/v1:PrometheusRule"):
        jsonschema.validate(manifest, SCHEMAS[manifest["kind"]])
        assert manifest["metadata"]["labels"] == {"release": "kube-prometheus-stack"}


def test_component_for_named_nodes_waits_for_what_it_is_given():
    import pulumi

    def make():
        labels = pulumi.CustomResource("test:index:NodeLabels", "labels")
        return Hami("hami", args(nodes=("gpu-1", "gpu-2"), depends_on=(labels,)))

    recording = build(make)
    assert of_kind(recording, "kubernetes:core/v1:NodePatch") == []
    (release,) = recording.of_type("kubernetes:helm.sh/v3:Release")
    (labels,) = recording.of_type("test:index:NodeLabels")
    # HAMi's plugin registers only after the operator's is told off these nodes.
    assert labels.urn in release.dependencies
    assert release.inputs["values"]["devicePlugin"]["nvidiaNodeSelector"] == {"gpu": "on"}
    assert node_labels() == {"gpu": "on", DEPLOY_DEVICE_PLUGIN_LABEL: "false"}


def test_component_children_and_outputs():
    recording = build(lambda: Hami("hami", args()))
    (component,) = recording.of_type("catwatcher:index:Hami")
    assert {r.type for r in children_of(recording, component)} == {
        "kubernetes:core/v1:Namespace",
        "kubernetes:helm.sh/v3:Release",
        "kubernetes:monitoring.coreos.com/v1:ServiceMonitor",
        "kubernetes:monitoring.coreos.com/v1:PrometheusRule",
    }


def test_component_without_prometheus_operator_makes_no_crd_objects():
    resources = build(lambda: Hami("hami", args(service_monitor=False)))
    assert [r for r in resources.resources if r.type.startswith("kubernetes:monitoring.coreos.com")] == []


def test_service_monitors_select_the_charts_services_with_workload_labels():
    resources = build(lambda: Hami("hami", args()))
    monitors = {
        m["metadata"]["name"]: m["spec"]
        for m in of_kind(resources, "kubernetes:monitoring.coreos.com/v1:ServiceMonitor")
    }
    plugin = monitors["hami-device-plugin"]
    assert plugin["selector"]["matchLabels"] == {
        "app.kubernetes.io/component": "hami-device-plugin",
        "app.kubernetes.io/name": "hami",
        "app.kubernetes.io/instance": "hami",
    }
    assert plugin["endpoints"][0]["port"] == "monitorport" and plugin["endpoints"][0]["honorLabels"] is True
    assert plugin["namespaceSelector"] == {"matchNames": ["hami-system"]}
    assert monitors["hami-scheduler"]["endpoints"][0]["port"] == "monitor"
    assert selector_labels("gpu", "scheduler")["app.kubernetes.io/instance"] == "gpu"


def test_monitoring_objects_validate_against_the_crds(reference):
    from tests.test_monitoring import crd_schema

    resources = build(lambda: Hami("hami", args()))
    for kind, plural in (("ServiceMonitor", "servicemonitors"), ("PrometheusRule", "prometheusrules")):
        validator = jsonschema.Draft7Validator(crd_schema(reference, plural))
        for manifest in of_kind(resources, f"kubernetes:monitoring.coreos.com/v1:{kind}"):
            validator.validate(manifest)


# --- the alerts -------------------------------------------------------------------------------


def known_series() -> dict[str, frozenset[str]]:
    known = {name: labels | TARGET_LABELS for name, labels in facts().device_plugin_metrics.items()}
    known.update({name: labels | TARGET_LABELS for name, labels in facts().scheduler_metrics.items()})
    known["up"] = TARGET_LABELS
    return known


@pytest.mark.parametrize("rule", alert_rules("cat-watcher", "hami"), ids=lambda r: r["alert"])
def test_alert_queries_use_only_hami_metrics_and_labels(rule):
    assert violations(rule["expr"], known_series()) == []


def test_the_checker_knows_a_wrong_hami_metric():
    assert violations('hami_vgpu_memory_usage_bytes{namespace="x"}', known_series()) != []
    assert violations('hami_vgpu_memory_used_bytes{podname="x"}', known_series()) != []


def test_the_absent_alert_names_the_monitor_services_job():
    assert monitor_job("hami") == "hami-device-plugin-monitor"
    assert monitor_job("gpu") == "gpu-hami-device-plugin-monitor"


@needs_promtool
def test_promtool_cap_alert_fires_near_the_cap_only(tmp_path):
    """Pod a uses 2400 of its 2560 MiB cap: alert. Pod b uses 1000: no alert. Pod c has no cap
    (limit 0): no alert, whatever it uses. Another namespace is not ours."""
    mib = 2**20
    target = (
        'job="hami-device-plugin-monitor",instance="10.0.0.5:9394",zone="vGPU",vdevice_index="0",device_uuid="GPU-0"'
    )
    series = []
    for namespace, pod, used, limit in (
        ("cat-watcher", "cat-watcher-a", 2400, 2560),
        ("cat-watcher", "cat-watcher-b", 1000, 2560),
        ("cat-watcher", "cat-watcher-c", 5000, 0),
        ("other", "x", 2550, 2560),
    ):
        labels = f'{target},namespace="{namespace}",pod="{pod}",container="inference"'
        series.append((f"hami_vgpu_memory_used_bytes{{{labels}}}", f"{used * mib}x20"))
        series.append((f"hami_vgpu_memory_limit_bytes{{{labels}}}", f"{limit * mib}x20"))
    series.append(('up{job="hami-device-plugin-monitor",instance="10.0.0.5:9394"}', "1x20"))
    alert_tests = [
        {
            "eval_time": "10m",
            "alertname": "CatWatcherPodNearGpuMemCap",
            "exp_alerts": [
                {
                    "exp_labels": {
                        "severity": "warning",
                        "namespace": "cat-watcher",
                        "pod": "cat-watcher-a",
                        "container": "inference",
                    }
                }
            ],
        },
        {"eval_time": "10m", "alertname": "CatWatcherHamiMetricsAbsent", "exp_alerts": []},
        {
            "eval_time": "40m",
            "alertname": "CatWatcherHamiMetricsAbsent",
            "exp_alerts": [{"exp_labels": {"severity": "warning"}}],
        },
    ]
    assert_alerts(tmp_path, prometheus_rule_spec("cat-watcher", "hami"), series, alert_tests)
