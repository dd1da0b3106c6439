"""GpuOperator alone: hand-made args in, the Helm release and the restart Job out."""

from __future__ import annotations

from components.gpu_operator import GpuOperator, GpuOperatorArgs, restart_job_name
from infra.render import helm_releases, manifests
from tests.component_harness import build, children_of

HASH = "ab" * 32


def render(**overrides):
    args = GpuOperatorArgs(
        namespace="gpus",
        chart_version="v26.7.0",
        repository="https://helm.example",
        sharing_config_map="sharing",
        sharing_content_hash=HASH,
        **overrides,
    )
    return build(lambda: GpuOperator("gpu-operator", args))


def test_release_points_the_plugin_at_the_sharing_config_and_merges_sharing_values():
    recording = render(sharing_default_key="default", sharing_values={"mig": {"strategy": "mixed"}}, install_driver=False)
    release = helm_releases(recording)["gpu-operator"]
    assert (release["chart"], release["version"], release["namespace"]) == ("gpu-operator", "v26.7.0", "gpus")
    values = release["values"]
    assert values["devicePlugin"]["config"] == {"name": "sharing", "default": "default"}
    assert values["mig"] == {"strategy": "mixed"}
    assert values["driver"] == {"enabled": False}


def test_restart_job_is_named_by_the_hash_and_waits_for_the_release():
    recording = render()
    (job,) = [m for m in manifests(recording) if m["kind"] == "Job"]
    assert job["metadata"]["name"] == restart_job_name(HASH)
    (job_resource,) = recording.of_type("kubernetes:batch/v1:Job")
    (release,) = recording.of_type("kubernetes:helm.sh/v3:Release")
    assert release.urn in job_resource.dependencies
    (component,) = recording.of_type("catwatcher:index:GpuOperator")
    assert {r.type for r in children_of(recording, component)} == {
        "kubernetes:helm.sh/v3:Release",
        "kubernetes:core/v1:ServiceAccount",
        "kubernetes:rbac.authorization.k8s.io/v1:Role",
        "kubernetes:rbac.authorization.k8s.io/v1:RoleBinding",
        "kubernetes:batch/v1:Job",
    }
