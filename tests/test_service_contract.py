"""The Deployment and the inference service agree: every variable the pod gets is one the
service accepts, with a valid value, and the probes hit paths the service serves."""

from __future__ import annotations

import os

import pytest

from inference import contract
from inference.settings import load_settings, unknown_variables
from tests.conftest import ROOT, objects, render_config, render_stack

CREDENTIALS = {
    "mqtt": {"host": "mqtt.local", "username": "cw", "password": "pw"},
    "frigate": {"url": "http://frigate:5000", "username": "cw", "password": "pw2"},
}


def pod_environment(recording) -> dict[str, str]:
    """The CAT_WATCHER__* environment a pod of the first Deployment starts with."""
    container = objects(recording, "Deployment")[0]["spec"]["template"]["spec"]["containers"][0]
    env = {e["name"]: e["value"] for e in container["env"] if e["name"].startswith(contract.ENV_PREFIX)}
    return env


@pytest.mark.parametrize("sharing", ["time-slicing", "mps", "none"])
def test_the_service_accepts_every_variable_the_pod_gets(monkeypatch, sharing):
    recording = render_config(
        {"gpu": {"preset": "rtx-3060", "sharing": sharing}, "credentials": CREDENTIALS}, secret_keys=("credentials",)
    )
    env = pod_environment(recording)
    # The Secret's keys reach the pod through envFrom; the render masks their values.
    env.update(
        {
            "CAT_WATCHER__MQTT__HOST": "mqtt.local",
            "CAT_WATCHER__MQTT__PORT": "1883",
            "CAT_WATCHER__MQTT__USERNAME": "cw",
            "CAT_WATCHER__MQTT__PASSWORD": "pw",
            "CAT_WATCHER__FRIGATE__URL": "http://frigate:5000",
            "CAT_WATCHER__FRIGATE__USERNAME": "cw",
            "CAT_WATCHER__FRIGATE__PASSWORD": "pw2",
        }
    )
    (secret,) = objects(recording, "Secret")
    assert set(secret["stringData"]) <= set(env)
    assert unknown_variables(env) == []
    for name in list(os.environ):
        if name.startswith(contract.ENV_PREFIX):
            monkeypatch.delenv(name)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    settings = load_settings()
    assert settings.inference.gpu_memory_limit == int(env[contract.GPU_MEMORY_LIMIT_ENV])


def test_probes_and_port_match_the_service():
    recording = render_config({"gpu": {"preset": "rtx-3060"}})
    container = objects(recording, "Deployment")[0]["spec"]["template"]["spec"]["containers"][0]
    assert container["command"] == list(contract.COMMAND)
    assert container["ports"][0]["containerPort"] == contract.DEFAULT_PORT
    assert container["livenessProbe"]["httpGet"]["path"] == contract.HEALTH_PATH
    assert container["readinessProbe"]["httpGet"]["path"] == contract.READY_PATH


def test_pascal_gpus_get_the_cuda12_image():
    recording = render_stack("homelab-mixed-nodes")
    images = {
        d["metadata"]["name"]: d["spec"]["template"]["spec"]["containers"][0]["image"]
        for d in objects(recording, "Deployment")
    }
    assert images == {"cat-watcher-pascal": contract.IMAGE_CUDA12, "cat-watcher-ampere": contract.IMAGE}


def test_dockerfile_builds_the_onnxruntime_the_contract_names():
    dockerfile = (ROOT / "inference" / "Dockerfile").read_text()
    assert f'ARG ONNXRUNTIME="{contract.ONNXRUNTIME_CUDA13}"' in dockerfile
    assert f"--build-arg ONNXRUNTIME='{contract.ONNXRUNTIME_CUDA12}'" in dockerfile
    assert f"-t {contract.IMAGE_CUDA12} ." in dockerfile
    assert "USER 10001:10001" in dockerfile and str(contract.RUN_AS_USER) == "10001"


def test_gpu_pods_insist_on_cuda_so_a_cpu_fallback_is_reported_degraded():
    """`auto` would treat a GPU pod without usable CUDA as a normal CPU machine (no alert)."""
    recording = render_config({"gpu": {"preset": "rtx-3060"}})
    for deployment in objects(recording, "Deployment"):
        env = {e["name"]: e.get("value") for e in deployment["spec"]["template"]["spec"]["containers"][0]["env"]}
        assert env[contract.DEVICE_ENV] == "cuda"
