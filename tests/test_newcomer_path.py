"""A newcomer's mistakes on a fresh clone: each ends in one clear line, never a traceback."""

from __future__ import annotations

import shlex
import subprocess
from pathlib import Path

import pytest

from tests.conftest import ROOT
from tests.newcomer import GIT_IDENTITY, assert_clean_failure, cli, fresh_copy

BAD_INDENT = "config:\n  catwatcher:gpu:\n    preset: rtx-3060\n   sharing: mps\n"
TOO_FEW_REPLICAS = (
    "config:\n  catwatcher:cluster:\n    kubeContext: homelab\n  catwatcher:gpu:\n"
    "    preset: rtx-3060\n    sharing: time-slicing\n    replicas: 1\n"
)


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    project = fresh_copy(tmp_path_factory.mktemp("newcomer") / "catwatcher")
    stacks = project / "stacks"
    (stacks / "Pulumi.mine.yaml").write_text(BAD_INDENT)
    (stacks / "Pulumi.mine-too.yaml").write_text(TOO_FEW_REPLICAS)
    return project


def test_a_yaml_syntax_error_names_the_file_line_and_column(project, tmp_path):
    result = cli("render", "mine", "--out", str(tmp_path / "out"), project=project)
    assert_clean_failure(result, 1, "mine: stacks/Pulumi.mine.yaml:4:4: not valid YAML")
    assert not (tmp_path / "out").exists()


def test_the_readme_revision_example_names_the_missing_revision(project):
    result = cli("diff", "homelab-3060", "--git-base", "v1", "--git-head", "v2", project=project)
    assert_clean_failure(result, 1, "--git-base v1: no such revision", "HEAD~1")


def test_an_output_path_that_is_a_file(project, tmp_path):
    existing = tmp_path / "rendered.yaml"
    existing.write_text("mine\n")
    result = cli("render", "homelab-3060", "--out", str(existing), project=project)
    assert_clean_failure(result, 1, f"--out {existing}: is a file, not a folder")
    assert existing.read_text() == "mine\n"


def test_outside_the_project(project, tmp_path):
    result = cli("render", "homelab-3060", project=project, cwd=tmp_path)
    assert_clean_failure(result, 1, f"no Pulumi.yaml in {tmp_path.resolve()}", "inside the project")


def test_a_bad_stack_among_good_ones_is_named_and_nothing_is_written(project, tmp_path):
    out = tmp_path / "out"
    result = cli("render", "homelab-3060", "mine", "homelab-1070", "mine-too", "--out", str(out), project=project)
    said = assert_clean_failure(result, 1, lines=2)
    assert said[0].startswith("mine: stacks/Pulumi.mine.yaml:4:4: ")
    assert said[1].startswith("mine-too: catwatcher:gpu.replicas: must be >= 2")
    assert not out.exists()


def test_all_with_bad_stacks_reports_each_and_exits_1(project, tmp_path):
    result = cli("render", "--all", "--out", str(tmp_path / "out"), project=project)
    said = assert_clean_failure(result, 1, lines=2)
    assert [line.split(":")[0] for line in said] == ["mine", "mine-too"]


def readme_diff_commands() -> list[list[str]]:
    """The `catwatcher-infra diff` examples the README gives, as argument lists."""
    commands = []
    for line in (ROOT / "README.md").read_text().splitlines():
        if line.startswith(".venv/bin/catwatcher-infra diff"):
            commands.append(shlex.split(line.split("#")[0])[1:])
    return commands


def test_the_readme_diff_examples_work_on_a_fresh_clone(project):
    commands = readme_diff_commands()
    assert any("--git-head" in command for command in commands)
    # A second commit, so that HEAD~1 exists as in any clone with history.
    stack = project / "stacks" / "Pulumi.homelab-1070.yaml"
    stack.write_text(stack.read_text().replace("preset: gtx-1070", "preset: gtx-1070\n    memoryPerPodMb: 3000"))
    subprocess.run(["git", "-C", str(project), *GIT_IDENTITY, "commit", "-qam", "1070: smaller pods"], check=True)
    for command in commands:
        result = cli(*command, project=project)
        assert result.returncode == 0, f"{command}: {result.stderr}"
        assert "Traceback" not in result.stderr and result.stdout, command
