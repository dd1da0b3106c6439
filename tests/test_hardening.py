"""Workload hardening: Pod Security labels, disruption budget, network policy, credentials."""

from __future__ import annotations

from pathlib import Path

import pytest

from infra.offline import RenderError
from infra.render import write_outputs
from tests.conftest import objects, one, render_config, render_stack

BASE = {"gpu": {"preset": "rtx-3060", "sharing": "time-slicing", "replicas": 4}}
PASSWORD = "correct-horse-battery-staple"
CREDENTIALS = {
    "mqtt": {"host": "mqtt.local", "username": "cw", "password": PASSWORD},
    "frigate": {"url": "http://frigate:5000", "password": PASSWORD + "-frigate"},
}


def rendered_text(recording, tmp_path: Path) -> str:
    folder = write_outputs(recording, tmp_path)
    return "\n".join(p.read_text() for p in sorted(folder.rglob("*")) if p.is_file())


def test_namespace_enforces_restricted_pod_security(rendered):
    labels = one(rendered, "Namespace", "cat-watcher")["metadata"]["labels"]
    assert labels["pod-security.kubernetes.io/enforce"] == "restricted"
    assert labels["pod-security.kubernetes.io/enforce-version"].startswith("v1.")


def test_disruption_budget_and_network_policy(rendered):
    budget = one(rendered, "PodDisruptionBudget", "cat-watcher")
    deployment_labels = objects(rendered, "Deployment")[0]["spec"]["template"]["metadata"]["labels"]
    assert budget["spec"]["maxUnavailable"] == 1
    assert budget["spec"]["selector"]["matchLabels"].items() <= deployment_labels.items()
    policy = one(rendered, "NetworkPolicy", "cat-watcher")["spec"]
    assert policy["policyTypes"] == ["Ingress"]
    assert [p["port"] for rule in policy["ingress"] for p in rule["ports"]] == ["http"]
    sources = {
        peer["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"]
        for rule in policy["ingress"]
        for peer in rule["from"]
    }
    assert {"cat-watcher", "monitoring"} <= sources


def test_credentials_land_in_a_secret_the_deployment_references_and_never_in_clear(tmp_path):
    recording = render_config({**BASE, "credentials": CREDENTIALS}, secret_keys=("credentials",))
    secret = one(recording, "Secret")
    assert set(secret["stringData"]) == {
        "CAT_WATCHER__MQTT__HOST",
        "CAT_WATCHER__MQTT__PORT",
        "CAT_WATCHER__MQTT__USERNAME",
        "CAT_WATCHER__MQTT__PASSWORD",
        "CAT_WATCHER__FRIGATE__URL",
        "CAT_WATCHER__FRIGATE__PASSWORD",
    }
    assert set(secret["stringData"].values()) == {"[secret]"}
    pod = one(recording, "Deployment")["spec"]["template"]["spec"]
    assert pod["containers"][0]["envFrom"] == [{"secretRef": {"name": secret["metadata"]["name"]}}]
    text = rendered_text(recording, tmp_path)
    assert PASSWORD not in text


def test_a_password_the_stack_forgot_to_encrypt_is_refused_naming_it_without_echoing_it():
    with pytest.raises(RenderError) as caught:
        render_config({**BASE, "credentials": CREDENTIALS})
    message = str(caught.value)
    assert "catwatcher:credentials.mqtt.password: in clear text" in message
    assert "pulumi config set --secret --path 'catwatcher:credentials.mqtt.password'" in message
    assert PASSWORD not in message


def test_encrypted_passwords_are_masked():
    recording = render_config({**BASE, "credentials": CREDENTIALS}, secret_keys=("credentials",))
    assert set(one(recording, "Secret")["stringData"].values()) == {"[secret]"}


def test_the_example_stack_masks_its_encrypted_values(tmp_path):
    text = rendered_text(render_stack("homelab-3060-frigate"), tmp_path)
    assert "placeholder0" not in text and "[secret]" in text


def test_a_bad_secret_value_is_named_but_not_echoed():
    bad = {**BASE, "credentials": {"mqtt": {"host": "mqtt.local", "port": PASSWORD}}}
    with pytest.raises(RenderError) as caught:
        render_config(bad, secret_keys=("credentials",))
    assert "catwatcher:credentials.mqtt.port" in str(caught.value)
    assert PASSWORD not in str(caught.value)
    with pytest.raises(RenderError) as plain:
        render_config(bad)
    assert "catwatcher:credentials.mqtt.port" in str(plain.value)
    assert PASSWORD not in str(plain.value)  # credentials are never echoed, secret or not
    with pytest.raises(RenderError) as other:
        render_config({"gpu": {"preset": "rtx-3060", "replicas": "lots"}})
    assert "'lots'" in str(other.value)  # elsewhere, echoing the bad value helps


def test_no_secret_and_no_env_from_without_credentials():
    recording = render_config(BASE)
    assert objects(recording, "Secret") == []
    assert "envFrom" not in one(recording, "Deployment")["spec"]["template"]["spec"]["containers"][0]
