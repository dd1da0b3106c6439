"""GpuOperator alone: hand-made args in, the Helm release and the restart Job out."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest

from components.gpu_operator import (
    VERIFY_FAILED_EXIT_CODE,
    VERIFY_SCRIPT,
    AllocatableCheck,
    GpuOperator,
    GpuOperatorArgs,
    restart_job_name,
    verify_arguments,
)
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
    recording = render(
        sharing_default_key="default", sharing_values={"mig": {"strategy": "mixed"}}, install_driver=False
    )
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
        "kubernetes:rbac.authorization.k8s.io/v1:ClusterRole",
        "kubernetes:rbac.authorization.k8s.io/v1:ClusterRoleBinding",
        "kubernetes:batch/v1:Job",
    }


def test_readers_restart_in_the_order_given_then_the_nodes_are_verified():
    checks = (AllocatableCheck("nvidia.com/gpu", 4, ("n1",), "group g: 1 GPU x 4 replicas"),)
    recording = render(
        config_readers=(
            "gpu-feature-discovery",
            "nvidia-device-plugin-mps-control-daemon",
            "nvidia-device-plugin-daemonset",
        ),
        allocatable_checks=checks,
    )
    (job,) = [m for m in manifests(recording) if m["kind"] == "Job"]
    pod = job["spec"]["template"]["spec"]
    steps = [
        (c["command"][1], next(a for a in c["command"] if a.startswith("daemonset/"))) for c in pod["initContainers"]
    ]
    assert steps == [
        (verb, f"daemonset/{ds}")
        for ds in ("gpu-feature-discovery", "nvidia-device-plugin-mps-control-daemon", "nvidia-device-plugin-daemonset")
        for verb in ("wait", "patch", "rollout")
    ]
    (verify,) = pod["containers"]
    assert verify["command"][:2] == ["bash", "-c"]
    assert verify["command"][-2:] == ["600", "nvidia.com/gpu|4|n1|group g: 1 GPU x 4 replicas"]
    rule = job["spec"]["podFailurePolicy"]["rules"][0]
    assert rule["onExitCodes"] == {
        "containerName": "verify-allocatable",
        "operator": "In",
        "values": [VERIFY_FAILED_EXIT_CODE],
    }
    assert pod["restartPolicy"] == "Never"  # podFailurePolicy requires it


# --- the verification script, run by bash against a fake kubectl -----------------------------

FAKE_KUBECTL = """\
#!{python}
import json, os, sys
nodes = json.loads(os.environ["FAKE_NODES"])  # name -> {{resource: count}}
args = sys.argv[1:]
if args[:2] == ["get", "nodes"]:
    print(" ".join(n for n, r in nodes.items() if r.get("present", True)), end="")
elif args[:2] == ["get", "node"]:
    node = args[2]
    if node not in nodes:
        sys.exit("Error from server (NotFound)")
    expression = args[-1]
    prefix = "jsonpath={{.status.allocatable."
    assert expression.startswith(prefix) and expression.endswith("}}"), expression
    escaped = expression[len(prefix):-1]
    assert "\\." in escaped and "." not in escaped.replace("\\.", ""), expression  # dots escaped
    print(nodes[node].get(escaped.replace("\\.", "."), ""), end="")
else:
    sys.exit(f"unexpected kubectl {{args}}")
"""


@pytest.fixture
def kubectl(tmp_path):
    if shutil.which("bash") is None:
        pytest.skip("no bash")
    fake = tmp_path / "kubectl"
    fake.write_text(FAKE_KUBECTL.format(python=sys.executable))
    fake.chmod(0o755)

    def run(nodes, checks, timeout=0):
        env = {**os.environ, "PATH": f"{tmp_path}:{os.environ['PATH']}", "FAKE_NODES": json.dumps(nodes)}
        return subprocess.run(
            ["bash", "-c", VERIFY_SCRIPT, "verify", *verify_arguments(checks, timeout)],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )

    return run


SHARED = AllocatableCheck("nvidia.com/gpu.shared", 4, ("n1", "n2"), "group g: 1 GPU x 4 replicas")
EVERY_GPU_NODE = AllocatableCheck("nvidia.com/gpu", 2, (), "group default: 1 GPU x 2 replicas")


def test_verification_passes_when_every_node_advertises_its_share(kubectl):
    result = kubectl({"n1": {"nvidia.com/gpu.shared": "4"}, "n2": {"nvidia.com/gpu.shared": "4"}}, [SHARED])
    assert result.returncode == 0, result.stderr
    assert "every GPU node advertises" in result.stdout


def test_verification_fails_naming_what_a_node_advertises_and_what_was_expected(kubectl):
    result = kubectl({"n1": {"nvidia.com/gpu.shared": "4"}, "n2": {"nvidia.com/gpu": "1"}}, [SHARED])
    assert result.returncode == VERIFY_FAILED_EXIT_CODE
    assert "node n2 advertises no nvidia.com/gpu.shared, expected 4 (group g: 1 GPU x 4 replicas)" in result.stderr
    assert "n1" not in result.stderr.replace("n1 GPU", "")


def test_groups_without_node_names_cover_every_gpu_node_and_need_one(kubectl):
    ok = kubectl({"a": {"nvidia.com/gpu": "2"}, "b": {"nvidia.com/gpu": "2"}}, [EVERY_GPU_NODE])
    assert ok.returncode == 0, ok.stderr
    stale = kubectl({"a": {"nvidia.com/gpu": "2"}, "b": {"nvidia.com/gpu": "1"}}, [EVERY_GPU_NODE])
    assert "node b advertises 1 nvidia.com/gpu, expected 2" in stale.stderr
    none = kubectl({"cpu-only": {"present": False}}, [EVERY_GPU_NODE])
    assert none.returncode == VERIFY_FAILED_EXIT_CODE
    assert "no node is labelled nvidia.com/gpu.present=true" in none.stderr


def test_pulumi_waits_long_enough_for_every_step():
    from components.gpu_operator import restart_job_timeout

    # 20 min for the DaemonSets to appear, 10 per rollout, the verification, 10 spare.
    assert restart_job_timeout(3, 600) == "70m"
    assert restart_job_timeout(2, 3601) == "111m"
