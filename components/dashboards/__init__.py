"""Grafana dashboards for the sidecar of kube-prometheus-stack (ConfigMaps labelled
`grafana_dashboard: "1"`): the project's own Cat Watcher dashboard, kept here as a data file,
and NVIDIA's DCGM exporter dashboard (Grafana.com 12239), provisioned by URL, never copied."""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from typing import Any

SIDECAR_LABEL = {"grafana_dashboard": "1"}

CAT_WATCHER_FILE = "cat-watcher.json"

DCGM_DASHBOARD_ID = 12239
# Revision 2 is the one whose uid and schemaVersion (22) match NVIDIA's
# grafana/dcgm-exporter-dashboard.json in NVIDIA/dcgm-exporter.
DCGM_DASHBOARD_REVISION = 2
DCGM_DASHBOARD_FILE = "nvidia-dcgm-exporter-12239.json"


def dcgm_dashboard_url(revision: int = DCGM_DASHBOARD_REVISION) -> str:
    return f"https://grafana.com/api/dashboards/{DCGM_DASHBOARD_ID}/revisions/{revision}/download"


@cache
def _cat_watcher_text() -> str:
    return resources.files(__name__).joinpath(CAT_WATCHER_FILE).read_text()


def cat_watcher_dashboard() -> dict[str, Any]:
    """The Cat Watcher dashboard (a fresh copy: callers may modify it)."""
    return json.loads(_cat_watcher_text())
