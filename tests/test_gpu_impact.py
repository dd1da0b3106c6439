"""The GPU impact section of `catwatcher-infra diff`, on real renders of edited stacks."""

from __future__ import annotations

import copy
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from infra.diff import StackDiff, diff_renders, format_markdown, format_names, format_text, render_of
from infra.gpu_impact import (
    HEADROOM_WARNING_MB,
    NO_IMPACT,
    GroupFacts,
    GroupImpact,
    change,
    gfd_sharing_labels,
    gpu_impact,
    restart_job,
    sharing_strategy,
    stack_facts,
)
from infra.gpu_impact import _warnings as warnings_of
from tests.conftest import ROOT, render_config


def stack_config(stack: str) -> dict[str, Any]:
    """A stack file's config as render_config takes it: `{"gpu": {...}, "app": {...}}`."""
    document = yaml.safe_load((ROOT / "stacks" / f"Pulumi.{stack}.yaml").read_text())
    return {key.removeprefix("catwatcher:"): value for key, value in document["config"].items()}


def edited(stack: str, edit: Callable[[dict[str, Any]], None]) -> tuple[Any, Any]:
    """The render of `stack` and of `stack` after `edit` (base, head)."""
    base = stack_config(stack)
    head = copy.deepcopy(base)
    edit(head)
    return render_of(render_config(base, stack)), render_of(render_config(head, stack))


def impact_of(stack: str, edit: Callable[[dict[str, Any]], None]):
    base, head = edited(stack, edit)
    diff = diff_renders(stack, base, head)
    return diff, diff.impact


def group(impact, name: str) -> GroupImpact:
    return next(g for g in impact.groups if g.name == name)


def impact_section(text: str, end: str) -> str:
    return text[: text.index(end)]


# --- the five changes the issue names ------------------------------------------------------


def halve_3060(config: dict[str, Any]) -> None:
    # 2 x (5028 arena + 420 overhead) = 4 x (2304 + 420): the same VRAM headroom.
    config["gpu"].update(replicas=2, memoryPerPodMb=5028)
    config["app"]["replicas"] = 2


def test_fewer_bigger_slices_show_before_after_and_the_device_plugin_restart():
    diff, impact = impact_of("homelab-3060", halve_3060)
    default = group(impact, "default")
    assert default.status == "changed"
    assert (default.before.slices, default.after.slices) == (4, 2)
    assert (default.before.pods, default.after.pods) == (4, 2)
    assert (default.before.memory_per_pod_mb, default.after.memory_per_pod_mb) == (2724, 5448)  # budgets
    # 12288 MiB - 1024 reserve - 4 x 2724 before, - 2 x 5448 after.
    assert default.before.headroom_mb == default.after.headroom_mb == 368
    text = format_text([diff])
    section = impact_section(text, "== homelab-3060")
    assert section.startswith("GPU impact\n")
    assert "slices:                         4 -> 2" in section
    assert "GPU memory per pod:             2724 -> 5448 MiB" in section
    # Unchanged values are shown once.
    assert (
        "mode:                           time-slicing\n" in section
        and "VRAM headroom per GPU:          368 MiB\n" in section
    )
    assert (
        "rolls DaemonSets gpu-feature-discovery, nvidia-device-plugin-daemonset; "
        "then checks each node's new allocatable"
    ) in section
    assert "Deployment cat-watcher/cat-watcher rolls: its 4 pods replaced by 2" in section
    assert "nvidia.com/gpu.replicas 4 -> 2" in section


def to_mps(config: dict[str, Any]) -> None:
    config["gpu"]["sharing"] = "mps"


def test_time_slicing_to_mps_warns_that_pods_leave_the_gpu():
    diff, impact = impact_of("homelab-3060", to_mps)
    default = group(impact, "default")
    assert (default.before.mode, default.after.mode) == ("time-slicing", "mps")
    assert default.after.gfd_labels["nvidia.com/mps.capable"] == "true"
    assert any("mode time-slicing -> mps" in w and "off the GPU" in w for w in impact.warnings)
    # The restart Job of this revision rolls the plugin alone: GFD never sets mps.capable, the
    # MPS daemon (which selects on it) never starts. The warning follows the Job, not the mode.
    rolled = {d for job in stack_facts(edited("homelab-3060", to_mps)[1]).restart_jobs.values() for d in job.rolls}
    if "gpu-feature-discovery" not in rolled:
        assert any(
            "does not roll gpu-feature-discovery" in w and "MPS control daemon never starts" in w
            for w in impact.warnings
        )
    markdown = format_markdown([diff])
    assert markdown.startswith("## GPU impact\n")
    assert "| time-slicing -> mps |" in markdown
    assert markdown.index("## GPU impact") < markdown.index("## Offline render diff")


def add_a_4090_group(config: dict[str, Any]) -> None:
    config["nodeGroups"].append(
        {
            "name": "ada",
            "nodes": ["gpu-node-4090"],
            "gpu": {"preset": "rtx-4090", "sharing": "mps", "replicas": 4},
            "inferenceReplicas": 3,
        }
    )


def test_an_added_node_group_shows_its_values_once_and_what_starts():
    diff, impact = impact_of("homelab-mixed-nodes", add_a_4090_group)
    ada = group(impact, "ada")
    assert ada.status == "added" and ada.before is None
    assert (ada.after.mode, ada.after.slices, ada.after.pods, ada.after.nodes) == ("mps", 4, 3, ("gpu-node-4090",))
    assert group(impact, "ampere").status == group(impact, "pascal").status == "unchanged"
    text = impact_section(format_text([diff]), "== homelab-mixed-nodes")
    assert "ada (gpu-node-4090): new node group" in text
    ada_block = text.split("ada (gpu-node-4090): new node group\n")[1].split("    ampere")[0]
    assert "slices:                         4\n" in ada_block and "->" not in ada_block
    assert "Deployment cat-watcher/cat-watcher-ada is created: 3 pods start" in text
    assert "gpu-node-4090: nvidia.com/device-plugin.config (none) -> ada" in text


def relayout_a100(config: dict[str, Any]) -> None:
    config["nodeGroups"][0]["gpu"]["mig"]["layout"] = {"2g.10gb": 3}


def test_a_mig_layout_change_warns_that_it_drains_the_gpu():
    diff, impact = impact_of("a100-mig", relayout_a100)
    a100 = group(impact, "a100")
    assert (a100.before.mig_layout, a100.after.mig_layout) == ("7x1g.5gb", "3x2g.10gb")
    assert (a100.before.slices, a100.after.slices) == (7, 3)
    assert any("MIG layout 7x1g.5gb -> 3x2g.10gb drains the GPUs of dgx-a100-1" in w for w in impact.warnings)
    text = impact_section(format_text([diff]), "== a100-mig")
    assert "MIG layout:                     7x1g.5gb -> 3x2g.10gb" in text
    assert "VRAM headroom per MIG instance" in text
    assert "dgx-a100-1: nvidia.com/mig.config catwatcher-7x1g.5gb -> catwatcher-3x2g.10gb" in text
    # The sharing config is the same (single strategy, no replicas): mig-manager does the restarts.
    assert "mig-manager on dgx-a100-1 applies catwatcher-3x2g.10gb: it pauses nvidia-device-plugin-daemonset" in text
    assert "the sharing restart does not run" not in text
    assert "| MIG layout |" in format_markdown([diff])


def more_cpu(config: dict[str, Any]) -> None:
    config["app"]["resources"] = {"cpuLimit": "3"}


def test_a_change_that_touches_no_gpu_fact_says_so_in_one_line():
    diff, impact = impact_of("homelab-3060", more_cpu)
    assert not diff.empty and not impact.touches_gpu
    text = format_text([diff])
    assert text.split("== homelab-3060")[0] == f"GPU impact\n  homelab-3060: {NO_IMPACT}\n"
    markdown = format_markdown([diff])
    assert markdown.split("## Offline render diff")[0] == f"## GPU impact\n\n- **homelab-3060**: {NO_IMPACT}.\n\n"


def test_names_format_stays_one_stack_a_line():
    diff, impact = impact_of("homelab-3060", halve_3060)
    assert impact.touches_gpu
    assert format_names([diff, StackDiff("same")]) == "homelab-3060\n"


def test_render_writes_the_exports_a_later_diff_reads(tmp_path):
    from infra.diff import load_render
    from infra.render import write_outputs

    recording = render_config(stack_config("homelab-mixed-nodes"), "homelab-mixed-nodes")
    folder = write_outputs(recording, tmp_path)
    exported = json.loads((folder / "outputs.json").read_text())
    assert (
        exported["slices"]["pascal"] | {"gpus": 1, "deviceMemoryMb": 8192, "reserveMb": 1024, "slices": 2}
        == exported["slices"]["pascal"]
    )
    assert load_render(folder) == render_of(recording)


def test_new_memory_limits_alone_restart_no_operator_daemonset():
    _, impact = impact_of("homelab-3060", lambda config: config["gpu"].update(memoryPerPodMb=2048))
    assert impact.restarts[0] == "the sharing restart does not run: the sharing config is unchanged"
    assert impact.restarts[1].startswith("Deployment cat-watcher/cat-watcher rolls: all 4 pods replaced")


def test_a_base_render_the_consumers_could_not_parse_still_previews():
    base, head = edited("homelab-3060", halve_3060)
    broken = {
        key: (
            {**document, "data": {"default": "version: v1\nsharing: [unclosed"}}
            if key[2] == "cat-watcher-sharing-config"
            else document
        )
        for key, document in base.objects.items()
    }
    impact = gpu_impact(type(base)(objects=broken, releases=base.releases, outputs=base.outputs), head)
    assert group(impact, "default").before.mode == "none" and group(impact, "default").after.mode == "time-slicing"


# --- the device plugin's and GFD's rules, and the restart Job as kubectl sees it --------------


def test_sharing_strategy_follows_the_device_plugin():
    def config(**sharing: Any) -> dict[str, Any]:
        return {"version": "v1", "sharing": sharing}

    replicated = {"resources": [{"name": "nvidia.com/gpu", "replicas": 4}]}
    single = {"resources": [{"name": "nvidia.com/gpu", "replicas": 1}]}
    assert sharing_strategy(config(mps=replicated)) == "mps"
    assert sharing_strategy(config(timeSlicing=replicated)) == "time-slicing"
    assert sharing_strategy(config(mps=single, timeSlicing=replicated)) == "time-slicing"
    assert sharing_strategy({"version": "v1", "flags": {"migStrategy": "single"}}) == "none"


def test_gfd_labels_mark_shared_products_unless_renamed():
    shared = {"sharing": {"timeSlicing": {"resources": [{"name": "nvidia.com/gpu", "replicas": 4}]}}}
    assert gfd_sharing_labels(shared, "nvidia.com/gpu") == {
        "nvidia.com/gpu.replicas": "4",
        "nvidia.com/gpu.sharing-strategy": "time-slicing",
        "nvidia.com/gpu.product": "<model>-SHARED",
        "nvidia.com/mps.capable": "false",
    }
    renamed = copy.deepcopy(shared)
    renamed["sharing"]["timeSlicing"]["renameByDefault"] = True
    assert gfd_sharing_labels(renamed, "nvidia.com/gpu")["nvidia.com/gpu.product"] == "<model>"
    assert gfd_sharing_labels({"version": "v1"}, "nvidia.com/gpu")["nvidia.com/gpu.sharing-strategy"] == "none"


def kubectl_step(name: str, *words: str) -> dict[str, Any]:
    return {"name": name, "image": "registry.k8s.io/kubectl:v1.33.4", "command": ["kubectl", *words]}


def test_restart_job_reads_which_daemonsets_roll_and_whether_allocatable_is_checked():
    job = {
        "metadata": {"name": "sharing-restart-0123456789"},
        "spec": {
            "template": {
                "spec": {
                    "initContainers": [
                        kubectl_step("wait", "wait", "--for=create", "daemonset/gpu-feature-discovery"),
                        kubectl_step("gfd", "rollout", "restart", "daemonset/gpu-feature-discovery"),
                        kubectl_step("mps", "rollout", "restart", "ds/nvidia-device-plugin-mps-control-daemon"),
                        kubectl_step("plugin", "patch", "daemonset/nvidia-device-plugin-daemonset", "-p", "{}"),
                    ],
                    "containers": [
                        kubectl_step("verify", "get", "nodes", "-o", "jsonpath={.items[*].status.allocatable}")
                    ],
                }
            }
        },
    }
    parsed = restart_job(job)
    assert parsed.rolls == (
        "gpu-feature-discovery",
        "nvidia-device-plugin-mps-control-daemon",
        "nvidia-device-plugin-daemonset",
    )
    assert parsed.verifies_allocatable
    assert (
        restart_job(
            {"metadata": {"name": "x"}, "spec": {"template": {"spec": {"containers": [kubectl_step("a", "version")]}}}}
        )
        is None
    )


def facts(**overrides: Any) -> GroupFacts:
    values = dict(
        name="g",
        mode="time-slicing",
        resource="nvidia.com/gpu",
        replicas_per_device=4,
        slices=4,
        pods=4,
        memory_per_pod_mb=2560,
        device_memory_mb=12288,
        reserve_mb=1024,
        mig_layout=None,
        nodes=("n1",),
        deployment="cat-watcher/cat-watcher",
    )
    return GroupFacts(**{**values, **overrides})


def test_headroom_counts_the_fullest_device():
    assert facts().headroom_mb == 12288 - 1024 - 4 * 2560
    # Two GPUs, 8 slices, 3 pods: one GPU may still hold all three.
    assert facts(replicas_per_device=4, slices=8, pods=3).headroom_mb == 12288 - 1024 - 3 * 2560
    assert facts(device_memory_mb=None).headroom_mb is None


def test_warnings_for_low_headroom_and_too_few_slices():
    tight = facts(memory_per_pod_mb=2700)  # 12288 - 1024 - 4 x 2700 = 464
    assert tight.headroom_mb < HEADROOM_WARNING_MB
    [warning] = warnings_of([GroupImpact("g", "changed", facts(), tight)], rolled=None)
    assert "VRAM headroom 464 MiB per GPU" in warning
    assert warnings_of([GroupImpact("g", "unchanged", tight, tight)], rolled=None) == []
    [short] = warnings_of(
        [GroupImpact("g", "changed", facts(), facts(slices=2, pods=4, memory_per_pod_mb=1000))], rolled=None
    )
    assert "4 pods but 2 slices: 2 pods stay Pending" in short


def test_changes_have_one_form():
    assert change(4, 2) == "4 -> 2"
    assert change(2560, 5120, " MiB") == "2560 -> 5120 MiB"
    assert change("mps", "mps") == "mps"
    assert change(None, 3) == "? -> 3"


def test_a_base_render_without_exports_still_shows_what_objects_carry():
    base, head = edited("homelab-3060", halve_3060)
    old = type(base)(objects=base.objects, releases=base.releases)  # as a revision before the export renders
    default = group(gpu_impact(old, head), "default")
    assert default.before.slices is None and default.before.pods == 4 and default.before.memory_per_pod_mb == 2724
    assert "slices:                         ? -> 2" in format_text([diff_renders("homelab-3060", old, head)])


# --- the command, on a clone with an edited working tree --------------------------------------


def cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(cwd)}
    return subprocess.run(
        [sys.executable, "-m", "infra.cli", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=900
    )


@pytest.fixture(scope="module")
def halved_clone(tmp_path_factory) -> Path:
    if subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True).returncode != 0:
        pytest.skip("not a git checkout")
    target = tmp_path_factory.mktemp("impact") / "repo"
    subprocess.run(["git", "clone", "-q", str(ROOT), str(target)], check=True)
    stack = target / "stacks" / "Pulumi.homelab-3060.yaml"
    text = stack.read_text()
    edited_text = text.replace("replicas: 4", "replicas: 2").replace("memoryPerPodMb: 2304", "memoryPerPodMb: 5028")
    assert edited_text.count("replicas: 2") == 2 and "memoryPerPodMb: 5028" in edited_text
    stack.write_text(edited_text)
    return target


def test_git_base_markdown_opens_with_the_gpu_impact(halved_clone):
    result = cli("diff", "homelab-3060", "--git-base", "HEAD", "--format", "markdown", cwd=halved_clone)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert out.startswith("## GPU impact\n")
    section = impact_section(out, "## Offline render diff")
    assert "| 4 -> 2 | 4 -> 2 | 2724 -> 5448 MiB | 368 MiB |" in section
    assert "nvidia-device-plugin-daemonset" in section
    names = cli("diff", "homelab-3060", "homelab-1070", "--git-base", "HEAD", "--format", "names", cwd=halved_clone)
    assert names.returncode == 0, names.stderr
    assert names.stdout == "homelab-3060\n"


# --- the PR comment ------------------------------------------------------------------------

NODE_HARNESS = """
const fs = require('fs');
const state = JSON.parse(fs.readFileSync(process.env.STATE_FILE, 'utf8'));
const github = {
  paginate: async (method, args) => state.comments.filter((c) => c.issue_number === args.issue_number),
  rest: { issues: {
    listComments: 'listComments',
    updateComment: async ({ comment_id, body }) => { state.comments.find((c) => c.id === comment_id).body = body; },
    createComment: async ({ issue_number, body }) => {
      state.comments.push({ id: state.comments.length + 1, issue_number, body, user: { type: 'Bot' } });
    },
  } },
};
const context = { repo: { owner: 'o', repo: 'r' }, payload: { pull_request: { number: 7 } } };
(async () => {
SCRIPT
  fs.writeFileSync(process.env.STATE_FILE, JSON.stringify(state));
})();
"""


def run_comment_step(script: str, diff_file: Path, state_file: Path) -> list[dict[str, Any]]:
    subprocess.run(
        ["node", "-e", NODE_HARNESS.replace("SCRIPT", script)],
        check=True,
        timeout=60,
        env={**os.environ, "DIFF_FILE": str(diff_file), "STATE_FILE": str(state_file)},
    )
    return json.loads(state_file.read_text())["comments"]


def test_the_pr_comment_leads_with_the_gpu_impact_and_is_updated_in_place(tmp_path):
    """The workflow's own github-script, run under node against a fake GitHub: one comment per
    PR, edited on the next push, starting with the GPU impact (which a truncation keeps)."""
    if shutil.which("node") is None:
        pytest.skip("node missing")
    workflow = yaml.safe_load((ROOT / ".github" / "workflows" / "preview.yml").read_text())
    step = next(
        s for s in workflow["jobs"]["render-diff"]["steps"] if s.get("uses", "").startswith("actions/github-script@")
    )
    state = tmp_path / "state.json"
    state.write_text(
        json.dumps({"comments": [{"id": 99, "issue_number": 8, "body": "other PR", "user": {"type": "Bot"}}]})
    )
    diff_file = tmp_path / "render-diff.md"

    first, _ = impact_of("homelab-3060", halve_3060)
    diff_file.write_text(format_markdown([first]))
    comments = run_comment_step(step["with"]["script"], diff_file, state)
    mine = [c for c in comments if c["issue_number"] == 7]
    assert len(mine) == 1 and mine[0]["body"].startswith("<!-- catwatcher-render-diff -->\n## GPU impact\n")

    second, _ = impact_of("homelab-3060", to_mps)
    huge = format_markdown([second]) + "x" * 70000
    diff_file.write_text(huge)
    comments = run_comment_step(step["with"]["script"], diff_file, state)
    mine = [c for c in comments if c["issue_number"] == 7]
    assert len(mine) == 1 and len(comments) == 2
    assert "time-slicing -> mps" in mine[0]["body"] and "truncated" in mine[0]["body"]


def test_git_head_text_opens_with_the_gpu_impact(halved_clone):
    """Two revisions, each rendered by its own code: the impact reads outputs.json of both."""
    for command in (
        ["config", "user.email", "t@example.com"],
        ["config", "user.name", "test"],
        ["commit", "-qam", "homelab-3060: 2 bigger slices"],
    ):
        subprocess.run(["git", "-C", str(halved_clone), *command], check=True)
    result = cli("diff", "homelab-3060", "--git-base", "HEAD~1", "--git-head", "HEAD", cwd=halved_clone)
    assert result.returncode == 0, result.stderr
    section = impact_section(result.stdout, "== homelab-3060")
    assert section.startswith("GPU impact\n  homelab-3060\n")
    assert "slices:                         4 -> 2" in section and "2724 -> 5448 MiB" in section
