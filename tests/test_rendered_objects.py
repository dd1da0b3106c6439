"""Every rendered object of every stack: valid Kubernetes, valid chart values."""

from __future__ import annotations

import kubernetes_validate
import yaml

from components.sharing_config import MIG_LAYOUT_KEY
from infra.model import StackConfig
from infra.offline import load_stack_config
from infra.operator_chart import unknown_value_paths, value_paths
from infra.render import helm_releases, manifests
from infra.stack_config import decode_config
from tests.conftest import ROOT
from tests.upstream_rules import device_plugin_violations, mig_layout_violations

CUSTOM_RESOURCE_GROUPS = ("monitoring.coreos.com/",)


def kubernetes_version(stack: str) -> str:
    config, _ = load_stack_config(ROOT, stack)
    return StackConfig.model_validate(decode_config(config)).cluster.kubernetes_version


def test_every_object_is_valid_in_strict_mode(stack, rendered):
    version = kubernetes_version(stack) + ".0"
    builtin = [m for m in manifests(rendered) if not m["apiVersion"].startswith(CUSTOM_RESOURCE_GROUPS)]
    assert builtin
    for manifest in builtin:
        kubernetes_validate.validate(manifest, version, strict=True)


def test_every_helm_value_exists_in_the_chart(rendered):
    from infra import hami_chart

    for release in helm_releases(rendered).values():
        # Each chart is checked against its own keys: HAMi's (infra/hami_chart.py) or the operator's.
        unknown = (
            hami_chart.unknown_value_paths if release["chart"] == hami_chart.facts().chart else unknown_value_paths
        )
        assert unknown(release["values"]) == []
        assert list(value_paths(release["values"]))


def test_sharing_configs_follow_upstream_rules(rendered):
    for manifest in manifests(rendered):
        if manifest["kind"] != "ConfigMap":
            continue
        if "grafana_dashboard" in manifest["metadata"].get("labels", {}):
            continue  # a Grafana dashboard (DcgmMonitoring), not a sharing config
        for key, text in manifest["data"].items():
            document = yaml.safe_load(text)
            if key == MIG_LAYOUT_KEY:
                assert mig_layout_violations(document) == [], key
            else:
                assert device_plugin_violations(document) == [], key
