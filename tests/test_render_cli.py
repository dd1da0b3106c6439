"""`catwatcher-infra render`: the three outputs, determinism, and refusal without writing."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

from tests.conftest import ROOT


def render(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "infra.cli", "render", *args], cwd=cwd, capture_output=True, text=True, timeout=300
    )


def files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_render_writes_manifests_helm_values_and_graph_deterministically(tmp_path):
    first, second = tmp_path / "a", tmp_path / "b"
    assert render("homelab-3060", "--out", str(first)).returncode == 0
    assert render("homelab-3060", "--out", str(second)).returncode == 0
    assert files(first) == files(second)
    out = first / "homelab-3060"
    documents = list(yaml.safe_load_all((out / "manifests.yaml").read_text()))
    keys = [(d["kind"], d["metadata"].get("namespace", ""), d["metadata"]["name"]) for d in documents]
    assert keys == sorted(keys)
    release = yaml.safe_load((out / "helm" / "gpu-operator.yaml").read_text())
    assert set(release) == {"chart", "repository", "version", "namespace", "values"}
    nodes = json.loads((out / "graph.json").read_text())["resources"]
    assert all({"type", "name", "parent", "dependencies"} <= set(n) for n in nodes)


def test_invalid_config_exits_non_zero_and_writes_nothing(tmp_path):
    project = tmp_path / "project"
    shutil.copytree(ROOT / "stacks", project / "stacks")
    shutil.copy(ROOT / "Pulumi.yaml", project)
    (project / "stacks" / "Pulumi.broken.yaml").write_text(
        "config:\n  catwatcher:cluster:\n    kubeContext: test\n"
        "  catwatcher:gpu:\n    preset: rtx-3060\n    replicas: 1\n"
    )
    out = tmp_path / "out"
    result = render("broken", "--out", str(out), cwd=project)
    assert result.returncode == 1
    assert "catwatcher:gpu.replicas" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert not out.exists()


def test_missing_stack_names_the_stacks_that_exist(tmp_path):
    result = render("homelab-9999", "--out", str(tmp_path))
    assert result.returncode == 1
    assert "homelab-3060" in result.stderr and "homelab-9999" in result.stderr
