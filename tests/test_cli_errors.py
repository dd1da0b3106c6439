"""Every foreseeable failure of `catwatcher-infra` is a short message and exit 1 (2 for usage),
checked by running the real CLI in a subprocess on a fresh copy of the project."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from tests.newcomer import GIT_IDENTITY, assert_clean_failure, cli, fresh_copy

GOOD = "homelab-3060"


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return fresh_copy(tmp_path_factory.mktemp("cli-errors") / "catwatcher")


@pytest.fixture
def scratch_stacks(project: Path):
    """Stack files a test adds to the working tree; removed afterwards (never committed)."""
    added: list[Path] = []

    def add(name: str, text: str) -> str:
        path = project / "stacks" / f"Pulumi.{name}.yaml"
        path.write_text(text)
        added.append(path)
        return name

    yield add
    for path in added:
        path.unlink(missing_ok=True)


# --- output paths ------------------------------------------------------------------------------


def test_out_under_a_file_is_refused_before_rendering(project, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    result = cli("render", GOOD, "--out", str(blocker / "rendered"), project=project)
    assert_clean_failure(result, 1, f"{blocker} is a file, so no folder can be made under it")


def test_unwritable_out_folder(project, tmp_path):
    if os.geteuid() == 0:
        # Permission bits do not stop root; a sysfs folder does (a real write is refused).
        if not Path("/sys/kernel").is_dir():
            pytest.skip("running as root without /sys: no folder root cannot write to")
        target = Path("/sys/kernel/catwatcher-render")
        where = "/sys/kernel"
    else:
        locked = tmp_path / "locked"
        locked.mkdir()
        locked.chmod(stat.S_IRUSR | stat.S_IXUSR)
        target, where = locked / "rendered", str(locked)
    result = cli("render", GOOD, "--out", str(target), project=project)
    assert_clean_failure(result, 1, f"--out {target}: cannot write into {where}")


def test_rendered_output_follows_the_umask(project, tmp_path):
    for umask, folder_mode, file_mode in ((0o022, 0o755, 0o644), (0o027, 0o750, 0o640)):
        out = tmp_path / f"umask-{umask:o}"
        result = subprocess.run(
            [
                "sh",
                "-c",
                f'umask {umask:o} && exec "$0" -m infra.cli render {GOOD} --out "$1"',
                sys.executable,
                str(out),
            ],
            cwd=project,
            env={**os.environ, "PYTHONPATH": str(project)},
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert result.returncode == 0, result.stderr
        rendered = out / GOOD
        assert stat.S_IMODE(rendered.stat().st_mode) == folder_mode
        assert stat.S_IMODE((rendered / "helm").stat().st_mode) == folder_mode
        assert stat.S_IMODE((rendered / "manifests.yaml").stat().st_mode) == file_mode


def test_schema_out_naming_a_folder(project, tmp_path):
    assert_clean_failure(cli("schema", "--out", str(tmp_path), project=project), 1, "is a folder")


# --- stack files ---------------------------------------------------------------------------------


def test_a_stack_file_that_is_not_a_mapping_is_named(project, scratch_stacks, tmp_path):
    name = scratch_stacks("listy", "- preset: rtx-3060\n")
    result = cli("render", name, "--out", str(tmp_path / "out"), project=project)
    assert_clean_failure(result, 1, f"{name}: stacks/Pulumi.{name}.yaml: ")


def test_every_problem_of_a_stack_on_its_own_line(project, scratch_stacks, tmp_path):
    name = scratch_stacks(
        "two-problems",
        "config:\n  catwatcher:cluster:\n    kubeContext: homelab\n"
        "  catwatcher:gpu:\n    preset: rtx-3060\n    sharing: mps\n    replicas: 1\n"
        "  catwatcher:app:\n    image: docker.io/jeefy/cat-watcher:latest\n",
    )
    result = cli("render", name, "--out", str(tmp_path / "out"), project=project)
    said = assert_clean_failure(result, 1, lines=None)
    assert len(said) >= 2 and all(line.startswith(f"{name}: catwatcher:") for line in said), said
    assert not any("; catwatcher:" in line for line in said)


def test_diff_of_two_stacks_names_the_broken_one(project, scratch_stacks):
    name = scratch_stacks("broken", "config:\n  catwatcher:gpu:\n    preset: rtx-3060\n   sharing: mps\n")
    result = cli("diff", GOOD, name, project=project)
    assert_clean_failure(result, 1, f"{name}: stacks/Pulumi.{name}.yaml:4:4: not valid YAML")


# --- git ---------------------------------------------------------------------------------------


def test_a_bad_git_head_is_named(project):
    result = cli("diff", GOOD, "--git-base", "HEAD", "--git-head", "no-such-branch", project=project)
    assert_clean_failure(result, 1, "--git-head no-such-branch: no such revision")


def test_missing_git(project, tmp_path):
    empty = tmp_path / "bin"
    empty.mkdir()
    result = cli("diff", GOOD, "--git-base", "HEAD", project=project, env={"PATH": str(empty)})
    assert_clean_failure(result, 1, "git is not installed")


def test_not_a_git_checkout(project, tmp_path):
    copy = tmp_path / "no-git"
    shutil.copytree(project, copy, ignore=shutil.ignore_patterns(".git"))
    # GIT_CEILING_DIRECTORIES: no repository above the temp folder is found by accident.
    result = cli("diff", GOOD, "--git-base", "HEAD", project=copy, env={"GIT_CEILING_DIRECTORIES": str(tmp_path)})
    assert_clean_failure(result, 1, "is not a git checkout", "diff STACK_A STACK_B")


def test_a_named_stack_in_neither_revision(project):
    result = cli("diff", "homelab-9999", "--git-base", "HEAD", project=project)
    assert_clean_failure(result, 1, "homelab-9999: no stack 'homelab-9999'")


def test_a_base_revision_that_cannot_render_is_reported_not_shown_as_new(tmp_path):
    project = fresh_copy(tmp_path / "catwatcher")
    broken = project / "stacks" / "Pulumi.homelab-1070.yaml"
    good_text = broken.read_text()
    broken.write_text(good_text.replace("preset: gtx-1070", "preset: gtx-1070\n    replicas: 1"))
    subprocess.run(["git", "-C", str(project), *GIT_IDENTITY, "commit", "-qam", "break 1070"], check=True)
    broken.write_text(good_text)
    result = cli("diff", "--all", "--git-base", "HEAD", project=project)
    assert_clean_failure(result, 1, "error: HEAD: homelab-1070: catwatcher:gpu.replicas")
    # Naming only good stacks, the broken one does not get in the way.
    assert cli("diff", GOOD, "--git-base", "HEAD", project=project).returncode == 0


# --- arguments ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("diff", "--all", GOOD, "homelab-1070", "--git-base", "HEAD"), "--all compares every stack"),
        (("diff", "--all", GOOD, "homelab-1070"), "--all needs --git-base"),
        (("diff", GOOD), "diff needs two stacks"),
        (("diff", GOOD, "homelab-1070", "homelab-1660"), "diff needs two stacks"),
        (("diff", GOOD, "--git-head", "HEAD"), "--git-head needs --git-base"),
        (("render", "--all", GOOD), "name stacks or pass --all, not both"),
        (("render",), "name a stack or pass --all"),
    ],
)
def test_contradictory_arguments_are_usage_errors(project, args, message):
    assert_clean_failure(cli(*args, project=project), 2, message)


# --- the event loop --------------------------------------------------------------------------------


def test_no_unclosed_event_loop_at_exit(project, tmp_path):
    result = cli(
        "render",
        GOOD,
        "homelab-3090-mps",
        "--out",
        str(tmp_path),
        project=project,
        env={"PYTHONWARNINGS": "always::ResourceWarning"},
    )
    assert result.returncode == 0, result.stderr
    assert "unclosed event loop" not in result.stderr and "Exception ignored" not in result.stderr, result.stderr


def test_a_reader_that_stops_early_gets_no_traceback(project):
    # `catwatcher-infra presets --format json | head -1`: the pipe closes before the output ends.
    process = subprocess.Popen(
        [sys.executable, "-m", "infra.cli", "presets", "--format", "json"],
        cwd=project,
        env={**os.environ, "PYTHONPATH": str(project)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    process.stdout.close()
    stderr = process.stderr.read().decode()
    process.stderr.close()
    assert process.wait(timeout=120) == 1
    assert stderr == ""
