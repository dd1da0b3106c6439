"""The PR preview workflow: actionlint, and the structure that keeps it safe (least
permissions, no secrets or home-lab runner for forks, one comment)."""

from __future__ import annotations

import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from infra.cli import build_parser
from tests.conftest import ROOT

WORKFLOW = ROOT / ".github" / "workflows" / "preview.yml"
FORK_GUARD = "github.event.pull_request.head.repo.full_name == github.repository"
DIFF_COMMAND = 'catwatcher-infra diff --all --git-base "origin/${BASE_REF}" --format markdown'


def actionlint() -> str | None:
    """actionlint from the test extra (installed beside this Python), else from PATH."""
    beside = Path(sys.executable).with_name("actionlint")
    return str(beside) if beside.exists() else shutil.which("actionlint")


@pytest.fixture(scope="module")
def workflow() -> dict:
    document = yaml.safe_load(WORKFLOW.read_text())
    # YAML 1.1 reads the key `on` as True.
    document["on"] = document.pop(True, document.get("on"))
    return document


def steps(job: dict) -> list[dict]:
    return job["steps"]


def scripts(job: dict) -> str:
    return "\n".join(step.get("run", "") for step in steps(job))


@pytest.mark.skipif(actionlint() is None, reason="actionlint not installed (pip install -e '.[test]')")
def test_actionlint_accepts_the_workflow():
    result = subprocess.run([actionlint(), "-no-color", str(WORKFLOW)], capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.skipif(actionlint() is None, reason="actionlint not installed (pip install -e '.[test]')")
def test_actionlint_catches_secrets_in_a_job_condition(tmp_path):
    """Why the gate job exists: `secrets` is not available in a job's `if`."""
    broken = WORKFLOW.read_text().replace(
        "if: needs.gate.outputs.preview == 'true' && ", "if: secrets.KUBECONFIG != '' && "
    )
    assert broken != WORKFLOW.read_text()
    path = tmp_path / ".github" / "workflows" / "preview.yml"
    path.parent.mkdir(parents=True)
    path.write_text(broken)
    result = subprocess.run([actionlint(), "-no-color", str(path)], capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode != 0 and "secrets" in result.stdout


def test_runs_on_pull_requests_only_never_with_the_base_repositorys_secrets(workflow):
    assert set(workflow["on"]) == {"pull_request"}
    assert "pull_request_target" not in WORKFLOW.read_text()


def test_least_permissions(workflow):
    assert workflow["permissions"] == {"contents": "read"}
    for name, job in workflow["jobs"].items():
        granted = job.get("permissions", {})
        assert set(granted.values()) <= {"read", "write"}, name
        assert {k for k, v in granted.items() if v == "write"} <= {"pull-requests"}, name


def test_render_diff_posts_one_comment_with_the_diff_command(workflow):
    job = workflow["jobs"]["render-diff"]
    assert job["runs-on"] == "ubuntu-latest"
    assert job["permissions"]["pull-requests"] == "write"
    assert DIFF_COMMAND in scripts(job)
    checkout = next(s for s in steps(job) if s.get("uses", "").startswith("actions/checkout@"))
    assert checkout["with"]["fetch-depth"] == 0  # the base revision must be there to render it
    comments = [s for s in steps(job) if s.get("uses", "").startswith("actions/github-script@")]
    assert len(comments) == 1
    script = comments[0]["with"]["script"]
    assert "updateComment" in script and "createComment" in script and "marker" in script
    # A fork's token cannot comment: the step is skipped there (the diff is in the summary).
    assert comments[0]["if"] == FORK_GUARD
    assert "GITHUB_STEP_SUMMARY" in scripts(job)
    # It runs the PR's code, forks included: no secrets near it.
    assert "secrets." not in yaml.safe_dump(job)


def test_the_diff_command_matches_the_cli():
    words = shlex.split(DIFF_COMMAND.replace("${BASE_REF}", "main"))
    assert words[0] == "catwatcher-infra"
    args = build_parser().parse_args(words[1:])
    assert (args.command, args.all, args.git_base, args.format) == ("diff", True, "origin/main", "markdown")


def test_live_preview_needs_the_secrets_a_non_fork_pr_and_a_self_hosted_runner(workflow):
    gate = workflow["jobs"]["gate"]
    check = next(s for s in steps(gate) if s.get("id") == "check")
    assert "secrets.PULUMI_BACKEND_URL" in check["env"]["HAS_BACKEND"]
    assert "secrets.KUBECONFIG" in check["env"]["HAS_KUBECONFIG"]
    assert "secrets.PULUMI_CONFIG_PASSPHRASE" in check["env"]["HAS_PASSPHRASE"]
    assert "head.repo.full_name != github.repository" in check["env"]["FROM_FORK"]

    job = workflow["jobs"]["pulumi-preview"]
    assert job["needs"] == "gate"
    assert "needs.gate.outputs.preview == 'true'" in job["if"] and FORK_GUARD in job["if"]
    assert "self-hosted" in job["runs-on"]
    assert job["strategy"]["matrix"]["stack"] == "${{ fromJSON(needs.gate.outputs.stacks) }}"
    action = next(s for s in steps(job) if s.get("uses", "").startswith("pulumi/actions@"))
    assert action["uses"] == "pulumi/actions@v7"
    assert (
        action["with"]
        | {
            "command": "preview",
            "diff": True,
            "comment-on-pr": True,
            "edit-pr-comment": True,
            "stack-name": "${{ matrix.stack }}",
        }
        == action["with"]
    )
    assert action["with"]["cloud-url"] == "${{ secrets.PULUMI_BACKEND_URL }}"
    assert action["with"]["github-token"] == "${{ secrets.GITHUB_TOKEN }}"
    # The kubeconfig never outlives the job on a persistent runner.
    cleanup = steps(job)[-1]
    assert cleanup["if"] == "always()" and "kubeconfig" in cleanup["run"]


FAKE_PYTHON = """#!/bin/sh
# Stands in for `python -m venv .venv`: a virtualenv whose catwatcher-infra reports two stacks.
mkdir -p .venv/bin
printf '#!/bin/sh\\nexit 0\\n' > .venv/bin/pip
printf '#!/bin/sh\\necho "$*" > diff-args\\nprintf "homelab-3060\\\\nk3s-3060\\\\n"\\n' > .venv/bin/catwatcher-infra
chmod +x .venv/bin/pip .venv/bin/catwatcher-infra
"""


@pytest.mark.parametrize(
    ("preview", "preview_stacks", "expected"),
    [
        ("true", "", ["homelab-3060", "k3s-3060"]),
        ("true", "k3s-3060 talos-4090", ["k3s-3060"]),
        ("false", "", []),
    ],
)
def test_gate_previews_the_stacks_whose_render_changes(workflow, tmp_path, preview, preview_stacks, expected):
    """The matrix is the stacks `catwatcher-infra diff --format names` reports, narrowed by
    PREVIEW_STACKS; nothing without the secrets."""
    script = next(s for s in steps(workflow["jobs"]["gate"]) if s.get("id") == "stacks")["run"]
    if shutil.which("jq") is None or shutil.which("bash") is None:
        pytest.skip("jq or bash missing")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "python").write_text(FAKE_PYTHON)
    (bin_dir / "python").chmod(0o755)
    work = tmp_path / "work"
    work.mkdir()
    output = tmp_path / "out"
    subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script],
        cwd=work,
        check=True,
        env={
            "PATH": f"{bin_dir}:/usr/bin:/bin",
            "GITHUB_OUTPUT": str(output),
            "RUNNER_TEMP": str(tmp_path),
            "PREVIEW": preview,
            "PREVIEW_STACKS": preview_stacks,
            "BASE_REF": "main",
        },
    )
    assert yaml.safe_load(output.read_text().removeprefix("stacks=")) == expected
    if preview == "true":
        assert (work / "diff-args").read_text().split() == [
            "diff",
            "--all",
            "--git-base",
            "origin/main",
            "--format",
            "names",
        ]
