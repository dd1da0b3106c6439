"""`catwatcher-infra diff`: two stacks, or a stack against a git revision."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from infra.diff import FieldChange, field_changes
from tests.conftest import ROOT


def cli(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(cwd)}
    return subprocess.run(
        [sys.executable, "-m", "infra.cli", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=600
    )


def test_field_changes_pair_named_list_items_by_name():
    old = {"env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}]}
    new = {"env": [{"name": "B", "value": "3"}, {"name": "A", "value": "1"}]}
    assert list(field_changes(old, new)) == [FieldChange("env[B].value", "2", "3")]


def test_diff_of_two_stacks_lists_objects_and_values(tmp_path):
    result = cli("diff", "homelab-3060", "homelab-3090-mps")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "~ ConfigMap gpu-operator/cat-watcher-sharing-config" in out
    assert "+  mps:" in out and "-  timeSlicing:" in out
    assert "CUDA_MPS_PINNED_DEVICE_MEM_LIMIT" in out
    assert "Namespace" not in out


@pytest.fixture(scope="module")
def clone(tmp_path_factory) -> Path:
    if subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True).returncode != 0:
        pytest.skip("not a git checkout")
    target = tmp_path_factory.mktemp("clone") / "repo"
    subprocess.run(["git", "clone", "-q", str(ROOT), str(target)], check=True)
    subprocess.run(["git", "-C", str(target), "config", "user.email", "t@example.com"], check=True)
    subprocess.run(["git", "-C", str(target), "config", "user.name", "test"], check=True)
    return target


def test_git_base_diff_shows_only_what_a_commit_changes(clone):
    unchanged = cli("diff", "homelab-3060", "--git-base", "HEAD", cwd=clone)
    assert unchanged.returncode == 0, unchanged.stderr
    assert "no changes" in unchanged.stdout
    stack = clone / "stacks" / "Pulumi.homelab-3060.yaml"
    stack.write_text(stack.read_text().replace("sharing: time-slicing", "sharing: mps"))
    changed = cli("diff", "--all", "--git-base", "HEAD", "--format", "markdown", cwd=clone)
    assert changed.returncode == 0, changed.stderr
    assert "1 of" in changed.stdout and "<b>homelab-3060</b>" in changed.stdout
    assert "~ Deployment cat-watcher/cat-watcher" in changed.stdout


def test_diff_between_two_revisions(clone):
    stack = clone / "stacks" / "Pulumi.homelab-1070.yaml"
    stack.write_text(stack.read_text().replace("preset: gtx-1070", "preset: gtx-1070\n    memoryPerPodMb: 3000"))
    subprocess.run(["git", "-C", str(clone), "commit", "-qam", "1070: smaller pods"], check=True)
    result = cli("diff", "homelab-1070", "--git-base", "HEAD~1", "--git-head", "HEAD", cwd=clone)
    assert result.returncode == 0, result.stderr
    assert "CAT_WATCHER__INFERENCE__GPU_MEMORY_LIMIT].value: 3492 -> 3420" in result.stdout
    assert "ConfigMap" not in result.stdout  # the sharing config itself is unchanged


def test_names_format_lists_only_changed_stacks():
    from infra.diff import Change, StackDiff, format_names

    diffs = [
        StackDiff("same"),
        StackDiff("changed", [Change("Deployment a/b", "changed")]),
        StackDiff("new", note="new stack"),
    ]
    assert format_names(diffs) == "changed\nnew\n"
