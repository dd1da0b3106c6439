"""Pure generators: device-plugin config text and MIG layouts, parsed back and checked."""

from __future__ import annotations

from typing import Any

import yaml

from components.sharing_config import content_hash, to_yaml
from infra.plan import plan_rollout
from infra.presets import catalogue
from infra.sharing.mig import mig_parted_config
from infra.stack_config import parse_stack_config
from tests.conftest import with_cluster
from tests.upstream_rules import device_plugin_violations, mig_layout_violations


def device_plugin_config(group):
    return group.backend.device_plugin_config(group)


def group(gpu: dict):
    if gpu.get("sharing") == "mig":  # MIG layouts are applied to named nodes
        config: dict[str, Any] = {"nodeGroups": [{"name": "mig", "nodes": ["gpu-node-1"], "gpu": gpu}]}
    else:
        config = {"gpu": gpu}
    return plan_rollout(parse_stack_config(with_cluster(config)), catalogue()).groups[0]


def test_time_slicing_text_round_trips_and_follows_upstream_rules():
    text = to_yaml(device_plugin_config(group({"preset": "rtx-3060", "sharing": "time-slicing", "replicas": 4})))
    parsed = yaml.safe_load(text)
    assert device_plugin_violations(parsed) == []
    assert parsed == {
        "version": "v1",
        "flags": {"migStrategy": "none"},
        "sharing": {
            "timeSlicing": {
                "renameByDefault": False,
                "failRequestsGreaterThanOne": True,
                "resources": [{"name": "nvidia.com/gpu", "replicas": 4}],
            }
        },
    }


def test_rules_catch_what_upstream_silently_ignores():
    bad = {
        "version": "v1",
        "flags": {"migStrategy": "none", "renameByDefault": True},
        "sharing": {"mps": {"resources": [{"name": "nvidia.com/gpu", "replicas": 1, "memoryGB": 2}]}},
    }
    problems = device_plugin_violations(bad)
    assert any("flags.renameByDefault" in p for p in problems)
    assert any("memoryGB" in p for p in problems)
    assert any("replicas must be an integer >= 2" in p for p in problems)


def test_rename_shared_advertises_the_shared_resource():
    shared = group({"preset": "rtx-3060", "renameShared": True})
    assert device_plugin_config(shared)["sharing"]["timeSlicing"]["renameByDefault"] is True
    assert shared.resource_name == "nvidia.com/gpu.shared"


def test_content_hash_changes_with_content_only():
    a = {"default": to_yaml(device_plugin_config(group({"preset": "rtx-3060", "replicas": 4})))}
    b = {"default": to_yaml(device_plugin_config(group({"preset": "rtx-3060", "replicas": 3})))}
    assert content_hash(a) == content_hash(dict(a))
    assert content_hash(a) != content_hash(b)


def test_mig_layout_follows_mig_parted_rules():
    a100 = group({"preset": "a100-40gb", "sharing": "mig"})
    document = mig_parted_config([a100])
    assert mig_layout_violations(document, a100.gpu.mig.profiles) == []
    assert document["mig-configs"][a100.mig.layout_name] == [
        {"devices": "all", "mig-enabled": True, "mig-devices": {"1g.5gb": 7}}
    ]


def test_no_mig_layout_without_mig_groups():
    assert mig_parted_config([group({"preset": "rtx-3060"})]) is None
