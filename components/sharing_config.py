"""SharingConfig: the device-plugin sharing ConfigMap, MIG layouts, and node labels.

The sharing backends (infra/sharing/) work out the upstream documents (device plugin `version: v1`
configs, the mig-parted `version: v1` layout file) and the node labels; this component publishes
them and hashes the sharing config, the restart trigger.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import pulumi
import pulumi_kubernetes as k8s
import yaml

DEVICE_PLUGIN_CONFIG_LABEL = "nvidia.com/device-plugin.config"
MIG_CONFIG_LABEL = "nvidia.com/mig.config"
MIG_LAYOUT_KEY = "config.yaml"
MIG_ALL_DISABLED = "all-disabled"
# The device plugin's default resource for a whole GPU (or a MIG instance, single strategy).
GPU_RESOURCE = "nvidia.com/gpu"


def to_yaml(document: Mapping[str, Any]) -> str:
    return yaml.safe_dump(dict(document), sort_keys=False, default_flow_style=False)


def content_hash(data: Mapping[str, str]) -> str:
    """A stable digest of ConfigMap data: the restart trigger for the device plugin."""
    canonical = json.dumps(dict(data), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


@dataclass(frozen=True)
class SharingConfigArgs:
    namespace: pulumi.Input[str]
    # ConfigMap key (one per node group) -> the device plugin's `version: v1` config.
    device_plugin_configs: Mapping[str, Mapping[str, Any]]
    # Node name -> labels pointing it at its key (and MIG layout).
    node_labels: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    # The key nodes without a label use (the operator's `devicePlugin.config.default`).
    default_key: str | None = None
    # A mig-parted `version: v1` layout file, when a group uses MIG.
    mig_layouts: Mapping[str, Any] | None = None
    config_map_name: str = "cat-watcher-sharing-config"
    mig_config_map_name: str = "cat-watcher-mig-parted-config"


class SharingConfig(pulumi.ComponentResource):
    """Creates the device-plugin sharing ConfigMap (one key per node group), the mig-parted
    layout ConfigMap when a group uses MIG, and a label patch on every named node.

    Outputs: `config_map_name`, `default_key` (the key nodes without a label use, or None),
    `content_hash` (changes exactly when the sharing ConfigMap's data changes),
    `mig_config_map_name` (None without MIG).
    """

    def __init__(self, name: str, args: SharingConfigArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("catwatcher:index:SharingConfig", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)

        data = {key: to_yaml(config) for key, config in args.device_plugin_configs.items()}

        config_map = k8s.core.v1.ConfigMap(
            f"{name}-device-plugin",
            metadata={"name": args.config_map_name, "namespace": args.namespace},
            data=data,
            opts=child,
        )
        self.config_map_name: pulumi.Output[str] = config_map.metadata.apply(lambda m: m["name"])
        self.default_key: str | None = args.default_key
        self.content_hash: str = content_hash(data)

        self.mig_config_map_name: pulumi.Output[str] | None = None
        mig_layouts = args.mig_layouts
        if mig_layouts is not None:
            mig_map = k8s.core.v1.ConfigMap(
                f"{name}-mig-parted",
                metadata={"name": args.mig_config_map_name, "namespace": args.namespace},
                data={MIG_LAYOUT_KEY: to_yaml(mig_layouts)},
                opts=child,
            )
            self.mig_config_map_name = mig_map.metadata.apply(lambda m: m["name"])

        published = [config_map] + ([mig_map] if mig_layouts is not None else [])
        self.node_patches = [
            k8s.core.v1.NodePatch(
                f"{name}-node-{node}",
                metadata={
                    "name": node,
                    "labels": dict(labels),
                    # Node objects belong to the kubelet: only take over the label fields.
                    "annotations": {"pulumi.com/patchForce": "true"},
                },
                # A label naming a key the ConfigMap does not have yet makes the plugin's
                # config-manager exit: publish the configs first.
                opts=pulumi.ResourceOptions(parent=self, depends_on=published),
            )
            for node, labels in args.node_labels.items()
        ]

        self.register_outputs(
            {
                "config_map_name": self.config_map_name,
                "default_key": self.default_key,
                "content_hash": self.content_hash,
                "mig_config_map_name": self.mig_config_map_name,
            }
        )
