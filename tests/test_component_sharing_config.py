"""SharingConfig alone: hand-made configs and labels in, ConfigMaps and node patches out."""

from __future__ import annotations

import yaml

from components.sharing_config import (
    DEVICE_PLUGIN_CONFIG_LABEL,
    MIG_LAYOUT_KEY,
    SharingConfig,
    SharingConfigArgs,
    content_hash,
    to_yaml,
)
from infra.render import manifests
from tests.component_harness import build, children_of

TIME_SLICED = {
    "version": "v1",
    "flags": {"migStrategy": "none"},
    "sharing": {"timeSlicing": {"resources": [{"name": "nvidia.com/gpu", "replicas": 3}]}},
}
WHOLE = {"version": "v1", "flags": {"migStrategy": "none"}}


def test_publishes_each_config_under_its_key_and_labels_named_nodes_after_it():
    built = {}

    def make():
        built["component"] = SharingConfig(
            "sharing",
            SharingConfigArgs(
                namespace="gpus",
                device_plugin_configs={"small": TIME_SLICED, "big": WHOLE},
                node_labels={
                    "node-a": {DEVICE_PLUGIN_CONFIG_LABEL: "small"},
                    "node-b": {DEVICE_PLUGIN_CONFIG_LABEL: "big"},
                },
            ),
        )

    recording = build(make)
    (config_map,) = [m for m in manifests(recording) if m["kind"] == "ConfigMap"]
    assert config_map["metadata"] == {"name": "cat-watcher-sharing-config", "namespace": "gpus"}
    assert {key: yaml.safe_load(text) for key, text in config_map["data"].items()} == {
        "small": TIME_SLICED,
        "big": WHOLE,
    }
    patches = {r.inputs["metadata"]["name"]: r for r in recording.of_type("kubernetes:core/v1:NodePatch")}
    assert {name: r.inputs["metadata"]["labels"] for name, r in patches.items()} == {
        "node-a": {DEVICE_PLUGIN_CONFIG_LABEL: "small"},
        "node-b": {DEVICE_PLUGIN_CONFIG_LABEL: "big"},
    }
    (config_map_resource,) = recording.of_type("kubernetes:core/v1:ConfigMap")
    # A label naming a key the ConfigMap lacks makes the plugin exit: the map comes first.
    assert all(config_map_resource.urn in r.dependencies for r in patches.values())
    component = built["component"]
    assert component.default_key is None and component.mig_config_map_name is None
    assert component.content_hash == content_hash({"small": to_yaml(TIME_SLICED), "big": to_yaml(WHOLE)})
    (parent,) = recording.of_type("catwatcher:index:SharingConfig")
    assert len(children_of(recording, parent)) == 3


def test_mig_layouts_get_their_own_config_map_and_the_hash_follows_content_only():
    layouts = {"version": "v1", "mig-configs": {"all-disabled": [{"devices": "all", "mig-enabled": False}]}}
    hashes = []

    def make(configs):
        def program():
            component = SharingConfig(
                "sharing",
                SharingConfigArgs(
                    namespace="gpus", device_plugin_configs=configs, default_key="default", mig_layouts=layouts
                ),
            )
            hashes.append(component.content_hash)

        return program

    recording = build(make({"default": WHOLE}))
    build(make({"default": WHOLE}))
    build(make({"default": TIME_SLICED}))
    maps = {m["metadata"]["name"]: m for m in manifests(recording) if m["kind"] == "ConfigMap"}
    assert yaml.safe_load(maps["cat-watcher-mig-parted-config"]["data"][MIG_LAYOUT_KEY]) == layouts
    assert hashes[0] == hashes[1] != hashes[2]
