"""SharingConfig: the device-plugin sharing ConfigMap, MIG layouts, and node labels.

The pure functions here turn node-group plans into the upstream formats (device plugin
`version: v1` config, mig-parted `version: v1` layouts); the component only publishes them.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_kubernetes as k8s
import yaml

from infra.plan import NodeGroupPlan

DEVICE_PLUGIN_CONFIG_LABEL = "nvidia.com/device-plugin.config"
MIG_CONFIG_LABEL = "nvidia.com/mig.config"
MIG_LAYOUT_KEY = "config.yaml"
MIG_ALL_DISABLED = "all-disabled"


def device_plugin_config(group: NodeGroupPlan) -> dict[str, Any]:
    """The device plugin's `version: v1` config for one node group."""
    mig_strategy = group.mig.strategy if group.mig else "none"
    config: dict[str, Any] = {"version": "v1", "flags": {"migStrategy": mig_strategy}}
    if group.replicas_per_device < 2:
        return config
    if group.mig and group.mig.strategy == "mixed":
        # Only Cat Watcher's profile is time-sliced; other MIG devices stay whole.
        names = [f"nvidia.com/mig-{group.mig.workload_profile.name}"]
    else:
        names = ["nvidia.com/gpu"]
    sharing_key = "mps" if group.sharing == "mps" else "timeSlicing"
    config["sharing"] = {
        sharing_key: {
            "renameByDefault": group.rename_shared,
            # A pod asking for two shares would get no more GPU than with one: refuse it.
            "failRequestsGreaterThanOne": True,
            "resources": [{"name": name, "replicas": group.replicas_per_device} for name in names],
        }
    }
    return config


def mig_parted_config(groups: Sequence[NodeGroupPlan]) -> dict[str, Any] | None:
    """A mig-parted `version: v1` layout file holding each MIG group's layout, or None."""
    layouts: dict[str, Any] = {MIG_ALL_DISABLED: [{"devices": "all", "mig-enabled": False}]}
    for group in groups:
        if group.mig is None:
            continue
        layouts[group.mig.layout_name] = [
            {
                "devices": "all",
                "mig-enabled": True,
                "mig-devices": {profile: count for profile, count in sorted(group.mig.layout.items())},
            }
        ]
    if len(layouts) == 1:
        return None
    return {"version": "v1", "mig-configs": layouts}


def to_yaml(document: Mapping[str, Any]) -> str:
    return yaml.safe_dump(dict(document), sort_keys=False, default_flow_style=False)


def content_hash(data: Mapping[str, str]) -> str:
    """A stable digest of ConfigMap data: the restart trigger for the device plugin."""
    canonical = json.dumps(dict(data), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def node_labels(group: NodeGroupPlan) -> dict[str, str]:
    """Labels that point a node at its group's device-plugin config (and MIG layout)."""
    labels = {DEVICE_PLUGIN_CONFIG_LABEL: group.config_key}
    if group.mig is not None:
        labels[MIG_CONFIG_LABEL] = group.mig.layout_name
    return labels


@dataclass(frozen=True)
class SharingConfigArgs:
    namespace: pulumi.Input[str]
    groups: Sequence[NodeGroupPlan]
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

        data = {group.config_key: to_yaml(device_plugin_config(group)) for group in args.groups}

        config_map = k8s.core.v1.ConfigMap(
            f"{name}-device-plugin",
            metadata={"name": args.config_map_name, "namespace": args.namespace},
            data=data,
            opts=child,
        )
        self.config_map_name: pulumi.Output[str] = config_map.metadata.apply(lambda m: m["name"])
        # Nodes without a label use the operator's default: the (single) group that names no nodes.
        self.default_key: str | None = next((g.config_key for g in args.groups if not g.nodes), None)
        self.content_hash: str = content_hash(data)

        self.mig_config_map_name: pulumi.Output[str] | None = None
        mig_layouts = mig_parted_config(args.groups)
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
                    "labels": node_labels(group),
                    # Node objects belong to the kubelet: only take over the label fields.
                    "annotations": {"pulumi.com/patchForce": "true"},
                },
                # A label naming a key the ConfigMap does not have yet makes the plugin's
                # config-manager exit: publish the configs first.
                opts=pulumi.ResourceOptions(parent=self, depends_on=published),
            )
            for group in args.groups
            for node in group.nodes
        ]

        self.register_outputs(
            {
                "config_map_name": self.config_map_name,
                "default_key": self.default_key,
                "content_hash": self.content_hash,
                "mig_config_map_name": self.mig_config_map_name,
            }
        )
