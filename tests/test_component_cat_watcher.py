"""CatWatcher alone: hand-made inference groups in, Deployments sized to them out."""

from __future__ import annotations

from components.cat_watcher import CatWatcher, CatWatcherArgs, InferenceGroup, NetworkPolicy, PodResources
from infra.render import manifests
from tests.component_harness import build, children_of
from tests.pod_security import restricted_violations

SMALL = InferenceGroup(
    name="small",
    deployment_name="cw-small",
    replicas=3,
    slices=4,
    image="registry.example/cw:1",
    node_selector={"pool": "small"},
    gpu_resources={"nvidia.com/gpu.shared": "1"},
    env=[{"name": "X", "value": "1"}],
)
FULL = InferenceGroup(
    name="full",
    deployment_name="cw-full",
    replicas=2,
    slices=2,
    image="registry.example/cw-cuda12:1",
    node_selector={"pool": "full"},
    gpu_resources={"nvidia.com/gpu": "1"},
)


def render(**overrides):
    args = CatWatcherArgs(
        namespace="cats",
        app_name="cw",
        groups=[SMALL, FULL],
        resources=PodResources(cpu_request="100m", cpu_limit="1", memory_request="256Mi", memory_limit="512Mi"),
        **overrides,
    )
    return build(lambda: CatWatcher("cat-watcher", args))


def deployments(recording):
    return {m["metadata"]["name"]: m for m in manifests(recording) if m["kind"] == "Deployment"}


def test_one_deployment_per_group_with_its_image_selector_resources_and_env():
    found = deployments(render())
    assert set(found) == {"cw-small", "cw-full"}
    small = found["cw-small"]["spec"]
    container = small["template"]["spec"]["containers"][0]
    assert small["replicas"] == 3
    assert container["image"] == "registry.example/cw:1"
    assert small["template"]["spec"]["nodeSelector"] == {"pool": "small"}
    assert container["resources"]["limits"] == {"cpu": "1", "memory": "512Mi", "nvidia.com/gpu.shared": "1"}
    assert container["env"] == [{"name": "X", "value": "1"}]
    # A free slice allows a surge pod; with every slice taken a surge pod would never schedule.
    assert small["strategy"]["rollingUpdate"]["maxSurge"] == 1
    assert found["cw-full"]["spec"]["strategy"]["rollingUpdate"]["maxSurge"] == 0


def test_pods_meet_restricted_and_credentials_go_to_a_secret_never_the_spec():
    recording = render(credentials={"CAT_WATCHER__MQTT__PASSWORD": "hunter2"})
    for deployment in deployments(recording).values():
        assert restricted_violations(deployment["spec"]["template"]) == []
        assert "hunter2" not in str(deployment)
    (secret,) = [m for m in manifests(recording) if m["kind"] == "Secret"]
    assert secret["stringData"] == {"CAT_WATCHER__MQTT__PASSWORD": "[secret]"}


def test_network_policy_follows_its_args_and_every_object_is_a_child():
    with_policy = render(network_policy=NetworkPolicy(client_namespaces=("frigate",)))
    (policy,) = [m for m in manifests(with_policy) if m["kind"] == "NetworkPolicy"]
    sources = [
        s["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"]
        for s in policy["spec"]["ingress"][0]["from"]
    ]
    assert sources == ["cats", "frigate", "monitoring"]
    assert not [
        m for m in manifests(render(network_policy=NetworkPolicy(enabled=False))) if m["kind"] == "NetworkPolicy"
    ]
    (component,) = with_policy.of_type("catwatcher:index:CatWatcher")
    assert len(children_of(with_policy, component)) == len(with_policy.resources) - 1
