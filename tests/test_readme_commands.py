"""Every command the README gives a user is exercised.

The README's fenced shell blocks (`bash`, `sh`, `console`, `text` lines starting with `$ `, or
no language) and its indented code lines are parsed into commands (chains split at `&&`, pipes
to `grep` dropped, `# comments` and `VAR=value` prefixes taken off). Each command is then:

- RUN here, in a fresh copy of the project, and its result checked (fast ones only);
- MAPPED to the named test that runs it (the test must exist); or
- CHECKED, for `pulumi`, `kubectl`, `helm`, `docker`, `curl` commands that need a cluster, a
  registry or a GPU host: every stack, namespace, object, container, label, chart value,
  Dockerfile argument and image tag they name must be what the code declares.

A README command that is none of these fails `test_every_readme_command_is_run_mapped_or_checked`.
"""

from __future__ import annotations

import ast
import json
import os
import re
import shlex
import subprocess
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from inference import contract
from infra import distributions, presets
from infra.gpu_impact import gfd_sharing_labels
from infra.operator_chart import chart_value_paths
from infra.schema import SCHEMA_FILE, stack_file_schema
from tests.conftest import ROOT, STACKS
from tests.newcomer import cli, fresh_copy

README = ROOT / "README.md"
SHELL_LANGUAGES = {"bash", "sh", "shell", "console", "text", ""}
PROMPT_LANGUAGES = {"console", "text"}  # only `$ ` lines are commands; the rest is output
QUICK_START_STACK = "yours"  # what `<yours>` stands for: the Quick start's own stack file


@dataclass(frozen=True)
class Command:
    line: int
    argv: tuple[str, ...]
    env: tuple[tuple[str, str], ...] = ()

    @property
    def program(self) -> str:
        return Path(self.argv[0]).name

    @property
    def key(self) -> str:
        """The command as the tables below name it: program name without its folder, then args."""
        return shlex.join([self.program, *self.argv[1:]])


def _split_chain(text: str) -> list[str]:
    """One shell line into its commands: `a && b` gives a and b; `a | grep x` gives a."""
    parts = []
    for part in text.split(" && "):
        first, *filters = part.split(" | ")
        assert all(f.strip().startswith("grep ") for f in filters), f"unexpected pipe in README: {part}"
        parts.append(first)
    return parts


def _command(line: int, text: str) -> Command | None:
    words = shlex.split(text, comments=True)
    env = []
    while words and re.fullmatch(r"[A-Z_][A-Z0-9_]*=.*", words[0]):
        name, value = words.pop(0).split("=", 1)
        env.append((name, value))
    return Command(line, tuple(words), tuple(env)) if words else None


def readme_commands(text: str | None = None) -> list[Command]:
    text = README.read_text() if text is None else text
    found: list[Command] = []
    fence: tuple[str, str] | None = None
    previous_blank = True
    in_indented_block = False
    for number, line in enumerate(text.splitlines(), 1):
        stripped = line.strip()
        opening = re.match(r"^\s*(`{3,}|~{3,})(\S*)\s*$", line)
        if fence is None and opening:
            fence = (opening.group(1), opening.group(2).lower())
            continue
        if fence is not None:
            if stripped == fence[0]:
                fence = None
            elif fence[1] in SHELL_LANGUAGES and stripped:
                if fence[1] in PROMPT_LANGUAGES:
                    if stripped.startswith("$ "):
                        found += [c for c in (_command(number, p) for p in _split_chain(stripped[2:])) if c]
                elif not stripped.startswith("#"):
                    found += [c for c in (_command(number, p) for p in _split_chain(stripped)) if c]
            previous_blank = False
            continue
        # An indented code block: 4+ spaces after a blank line, outside any list item.
        if (
            line.startswith("    ")
            and stripped
            and (previous_blank or in_indented_block)
            and not stripped.startswith(("-", "*"))
        ):
            if previous_blank or in_indented_block:
                in_indented_block = True
                found += [c for c in (_command(number, p) for p in _split_chain(stripped)) if c]
        else:
            in_indented_block = False if stripped else in_indented_block
        previous_blank = not stripped
    return found


# --- MAPPED: commands another test runs ---------------------------------------------------------

LINTERS_IN_CI = "tests/test_lint_setup.py::test_ci_runs_the_linters_after_the_install_and_ends_with_the_tests"
MAPPED: dict[str, str] = {
    # The Development section's checks: .ci/run runs all three before the tests.
    "ruff format .": LINTERS_IN_CI,
    "ruff check --fix .": LINTERS_IN_CI,
    "mypy": LINTERS_IN_CI,
    # The set-up's test command: .ci/run runs it on a fresh clone, and this test checks both say the same.
    "pytest": "tests/test_pulumi_internals.py::test_ci_and_the_readme_install_with_the_constraints",
    # Every `.venv/bin/catwatcher-infra diff` line of the README, on a fresh clone with two commits.
    "catwatcher-infra diff --git-base HEAD homelab-3060": (
        "tests/test_newcomer_path.py::test_the_readme_diff_examples_work_on_a_fresh_clone"
    ),
    "catwatcher-infra diff homelab-3060 homelab-3090-mps": (
        "tests/test_newcomer_path.py::test_the_readme_diff_examples_work_on_a_fresh_clone"
    ),
    "catwatcher-infra diff homelab-3060 homelab-3060-hami": (
        "tests/test_newcomer_path.py::test_the_readme_diff_examples_work_on_a_fresh_clone"
    ),
    "catwatcher-infra diff homelab-3060 --git-base 'HEAD~1' --git-head HEAD": (
        "tests/test_newcomer_path.py::test_the_readme_diff_examples_work_on_a_fresh_clone"
    ),
    "catwatcher-infra diff homelab-3060 --git-base HEAD --format markdown": (
        "tests/test_readme_commands.py::test_the_gpu_impact_example_is_real_output"
    ),
    # The Troubleshooting examples: each asserts the exact line the README shows.
    "catwatcher-infra render homelab-3060 mine": (
        "tests/test_newcomer_path.py::test_a_yaml_syntax_error_names_the_file_line_and_column"
    ),
    "catwatcher-infra diff homelab-3060 --git-base v1": (
        "tests/test_newcomer_path.py::test_the_readme_revision_example_names_the_missing_revision"
    ),
    # The service: started as a process, answers /healthz, POST /v1/detect (a JPEG body) and /metrics.
    "catwatcher-inference serve": (
        "tests/inference/test_inference_cli.py::test_serve_answers_over_http_and_stops_cleanly"
    ),
    "curl -H 'Content-Type: image/jpeg' --data-binary @frame.jpg localhost:8000/v1/detect": (
        "tests/inference/test_inference_cli.py::test_serve_answers_over_http_and_stops_cleanly"
    ),
    # `pulumi install` runs `pip install -r requirements.txt` in the program directory (infra/).
    "pulumi install": (
        "tests/test_pulumi_install.py::test_a_fresh_virtualenv_from_the_program_directory_imports_and_runs_the_program"
    ),
    # The int8 copy of the detector for the CPU path, and its agreement with fp32.
    "catwatcher-inference quantize ./models/detector.onnx --calibration ./frames --out ./models/detector.int8.onnx": (
        "tests/inference/test_inference_quantize.py::test_quantize_writes_an_int8_detector_that_agrees_with_fp32"
    ),
    # The planner, with the make-models detector and identifier, text and JSON, and a custom GPU.
    "catwatcher-infra plan --preset rtx-3060 --model models/detector.onnx": (
        "tests/test_planner.py::test_cli_plans_the_issues_example_in_text_and_json"
    ),
    "catwatcher-infra plan --preset rtx-3060 --model models/detector.onnx "
    "--identifier models/identifier.onnx --identifier-batch 8 --format json": (
        "tests/test_planner.py::test_cli_plans_the_issues_example_in_text_and_json"
    ),
    # `serve --help`: every CAT_WATCHER__ variable with its default.
    "catwatcher-inference serve --help": (
        "tests/inference/test_inference_serve_help.py::test_serve_help_lists_every_variable_with_its_default"
    ),
    # Benchmark scripts with a test of their own: a short run of the script, or (memory after a
    # burst, minutes long) the attack test that bounds the same RSS against a real serve process.
    "python tests/bench/decode_memory.py": (
        "tests/inference/test_inference_image_limits.py::test_header_estimate_is_not_below_the_measured_decode_peak"
    ),
    "python tests/bench/memory_after_burst.py": (
        "tests/inference/test_inference_attacks.py::test_memory_stays_inside_the_pod_and_returns_near_baseline_then_the_log_is_quiet"
    ),
    "python tests/bench/load_service.py --seconds 60": (
        "tests/inference/test_inference_load.py::test_short_load_has_no_server_errors_and_flat_memory"
    ),
}


def _test_exists(node: str) -> bool:
    path, _, name = node.partition("::")
    source = ROOT / path
    return (
        source.is_file()
        and re.search(rf"^(async )?def {re.escape(name.split('[')[0])}\(", source.read_text(), re.M) is not None
    )


def test_every_mapped_test_exists():
    assert [node for node in MAPPED.values() if not _test_exists(node)] == []


def test_every_mapping_names_a_command_the_readme_still_gives():
    keys = {command.key for command in readme_commands()}
    assert sorted(set(MAPPED) - keys) == []


# --- RUN: commands run here, in a fresh copy --------------------------------------------------------


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    project = fresh_copy(tmp_path_factory.mktemp("readme") / "catwatcher")
    (project / "stacks" / f"Pulumi.{QUICK_START_STACK}.yaml").write_text(quick_start_stack())
    return project


def quick_start_stack() -> str:
    """The Quick start's minimal stack file, as a user would copy it."""
    section = README.read_text().split("## Quick start", 1)[1]
    block = re.search(r"^( *)```yaml\n(.*?)^\1```", section, re.M | re.S)
    assert block, "the Quick start has no yaml stack example"
    return "\n".join(line[len(block.group(1)) :] for line in block.group(2).splitlines()) + "\n"


def run(command: Command, project: Path) -> subprocess.CompletedProcess:
    argv = [QUICK_START_STACK if word == "<yours>" else word for word in command.argv[1:]]
    env = dict(command.env)
    if command.program == "catwatcher-infra":
        return cli(*argv, project=project, env=env)
    if command.program == "catwatcher-inference":
        return subprocess.run(
            [sys.executable, "-m", "inference.cli", *argv],
            cwd=project,
            capture_output=True,
            text=True,
            timeout=600,
            env={**_env(project), **env},
        )
    if command.program in ("python", "python3"):
        return subprocess.run(
            [sys.executable, *argv],
            cwd=project,
            capture_output=True,
            text=True,
            timeout=600,
            env={**_env(project), **env},
        )
    raise AssertionError(f"README line {command.line}: no way to run {command.key}")


def _env(project: Path) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(project)}


def _rendered(project: Path, stack: str, out: str = "build/rendered") -> None:
    folder = project / out / stack
    for name in ("manifests.yaml", "helm/gpu-operator.yaml", "graph.json", "outputs.json"):
        assert (folder / name).is_file(), f"{folder / name} missing"


def _check_render_homelab_3060(result, project):
    _rendered(project, "homelab-3060")


def _check_render_yours(result, project):
    _rendered(project, QUICK_START_STACK)
    slices = json.loads((project / "build/rendered" / QUICK_START_STACK / "outputs.json").read_text())["slices"]
    assert slices["default"]["slices"] == 4 and slices["default"]["pods"] == 4


def _check_render_custom(result, project):
    _rendered(project, "homelab-4070-custom")


def _check_render_all(result, project):
    for stack in STACKS:
        _rendered(project, stack)


def _check_presets_table(result, project):
    assert all(key in result.stdout for key in presets.catalogue())


def _check_plan_custom(result, project):
    assert "time-slicing" in result.stdout and "1024" in result.stdout, result.stdout


def _check_presets_json(result, project):
    assert set(json.loads(result.stdout)["presets"]) == set(presets.catalogue())


def _check_schema(result, project):
    assert json.loads((project / SCHEMA_FILE).read_text()) == stack_file_schema()


def _check_preset_table_code(result, project):
    assert result.stdout.strip() == presets.markdown_table().strip()
    assert result.stdout.strip() in README.read_text()


def _check_distribution_table_code(result, project):
    assert result.stdout.strip() == distributions.markdown_table().strip()
    assert result.stdout.strip() in README.read_text()


def _check_make_models(result, project):
    for name in ("detector.onnx", "identifier.onnx", "cat_names.json"):
        assert (project / "models" / name).stat().st_size > 0, name


def _check_bench_service(result, project):
    assert re.search(r"service/raw throughput ratio: \d+\.\d+", result.stdout), result.stdout


def _check_hostile_clients(result, project):
    rows = {line.split("  ")[0]: line for line in result.stdout.splitlines()}
    assert "5 idle connections" in rows and rows["5 idle connections"].split()[-3] == "200", result.stdout
    assert "503" in rows["32 stalled bodies (admission full)"], result.stdout


PRESET_TABLE_CODE = "from infra.presets import markdown_table; print(markdown_table())"
DISTRIBUTION_TABLE_CODE = "from infra.distributions import markdown_table; print(markdown_table())"

RUN: dict[str, Any] = {
    "catwatcher-infra render homelab-3060 --out build/rendered": _check_render_homelab_3060,
    "catwatcher-infra render homelab-3060": _check_render_homelab_3060,
    "catwatcher-infra render '<yours>'": _check_render_yours,
    "catwatcher-infra render homelab-4070-custom": _check_render_custom,
    "catwatcher-infra render --all --out build/rendered": _check_render_all,
    "catwatcher-infra presets": _check_presets_table,
    "catwatcher-infra plan --preset custom --vram-mb 16384 --compute-capability 8.9 "
    "--arena-mb 1024": _check_plan_custom,
    "catwatcher-infra presets --format json": _check_presets_json,
    "catwatcher-infra schema --out stacks/stack-config.schema.json": _check_schema,
    f"python -c {shlex.quote(PRESET_TABLE_CODE)}": _check_preset_table_code,
    f"python -c {shlex.quote(DISTRIBUTION_TABLE_CODE)}": _check_distribution_table_code,
    "catwatcher-inference make-models --out ./models": _check_make_models,
    "catwatcher-inference make-models --out models": _check_make_models,
}

# Benchmarks run here in a short variant (the README's full run takes minutes).
SHORT_VARIANTS: dict[str, tuple[str, ...]] = {
    "python tests/bench/bench_service.py": ("--requests", "2", "--rounds", "1", "--skip-batching", "--skip-int8"),
    "python tests/bench/hostile_clients.py": ("--idle", "5", "--probes", "2"),
}
RUN.update(
    {
        "python tests/bench/bench_service.py": _check_bench_service,
        "python tests/bench/hostile_clients.py": _check_hostile_clients,
    }
)


# The refused-config examples (Settings): each stack as its comment describes it, and the
# line the README shows after the command is the one the command prints.
FAILING_EXAMPLES: dict[str, str] = {
    "catwatcher-infra render homelab-x": (
        "config:\n  catwatcher:cluster:\n    kubeContext: x\n"
        "  catwatcher:gpu:\n    preset: rtx-3060\n    replicas: 1000\n"
    ),
    "catwatcher-infra render homelab-y": (
        "config:\n  catwatcher:cluster:\n    kubeContext: x\n  catwatcher:gpu:\n    preset: rtx-3060\n"
        "  catwatcher:app:\n    resources:\n      memoryLimit: 2048m\n"
    ),
}


@pytest.mark.parametrize("key", sorted(FAILING_EXAMPLES))
def test_readme_refused_config_examples_print_what_the_readme_shows(key: str, project: Path):
    lines = README.read_text().splitlines()
    index = next(i for i, line in enumerate(lines) if line.startswith(f"$ {key} ") or line == f"$ {key}")
    stack = key.split()[-1]
    stack_file = project / "stacks" / f"Pulumi.{stack}.yaml"
    stack_file.write_text(FAILING_EXAMPLES[key])
    try:
        result = cli(*key.split()[1:], "--out", str(project / "build" / "refused"), project=project)
    finally:
        stack_file.unlink()  # the other commands render --all in this copy
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines() == [lines[index + 1]]


def run_commands() -> list[Command]:
    return [c for c in readme_commands() if c.key in RUN]


@pytest.mark.parametrize("command", run_commands(), ids=lambda c: c.key)
def test_readme_command_runs(command: Command, project: Path):
    runnable = Command(command.line, command.argv + SHORT_VARIANTS.get(command.key, ()), command.env)
    result = run(runnable, project)
    assert result.returncode == 0, f"README line {command.line}: {command.key}\n{result.stderr[-2000:]}"
    assert "Traceback" not in result.stderr
    RUN[command.key](result, project)


def test_the_gpu_impact_example_is_real_output(project: Path, tmp_path: Path):
    """The PR-preview example: the README's edit of homelab-3060, then its diff command; the GPU
    impact section the README shows is what the command prints today."""
    readme = README.read_text()
    example = re.search(r"````markdown\n(## GPU impact\n.*?)\n````", readme, re.S)
    assert example, "README has no GPU impact example"
    clone = fresh_copy(tmp_path / "clone")
    stack = clone / "stacks" / "Pulumi.homelab-3060.yaml"
    text = stack.read_text()
    edited = text.replace("    replicas: 4\n    memoryPerPodMb: 2304", "    replicas: 2\n    memoryPerPodMb: 5120")
    edited = edited.replace("  catwatcher:app:\n    replicas: 4", "  catwatcher:app:\n    replicas: 2")
    assert edited.count("replicas: 2") == 2 and "memoryPerPodMb: 5120" in edited, (
        "homelab-3060 no longer has the values the example edits"
    )
    stack.write_text(edited)
    result = cli("diff", "homelab-3060", "--git-base", "HEAD", "--format", "markdown", project=clone)
    assert result.returncode == 0, result.stderr
    impact = result.stdout.split("\n## Offline render diff", 1)[0].strip()
    assert impact == example.group(1).strip()


# --- CHECKED: commands that need a cluster, a registry or a GPU host --------------------------------


@pytest.fixture(scope="module")
def homelab_3060(project: Path) -> dict[str, Any]:
    """What homelab-3060 (the README's example stack) declares: objects by (kind, namespace, name),
    Helm releases, outputs."""
    out = project / "build" / "checked"
    result = cli("render", "homelab-3060", "--out", str(out), project=project)
    assert result.returncode == 0, result.stderr
    objects: dict[tuple[str, str | None, str], dict] = {}
    releases: dict[str, dict] = {}
    outputs: dict[str, Any] = {}
    for stack in ("homelab-3060",):
        for manifest in yaml.safe_load_all((out / stack / "manifests.yaml").read_text()):
            meta = manifest["metadata"]
            objects[(manifest["kind"], meta.get("namespace"), meta["name"])] = manifest
        for path in (out / stack / "helm").glob("*.yaml"):
            releases[path.stem] = yaml.safe_load(path.read_text())
        outputs.update(json.loads((out / stack / "outputs.json").read_text()))
    sharing = objects[("ConfigMap", "gpu-operator", "cat-watcher-sharing-config")]["data"]["default"]
    labels = _label_keys_in_code() | set(gfd_sharing_labels(yaml.safe_load(sharing), "nvidia.com/gpu"))
    return {"objects": objects, "releases": releases, "outputs": outputs, "labels": labels}


def _flag(argv: tuple[str, ...], *names: str) -> str | None:
    for index, word in enumerate(argv):
        if word in names and index + 1 < len(argv):
            return argv[index + 1]
        for name in names:
            if name.startswith("--") and word.startswith(name + "="):
                return word.split("=", 1)[1]
    return None


def _stack_ok(stack: str | None) -> bool:
    return stack == "<yours>" or stack in STACKS


PULUMI_COMMANDS = (
    ["version"],
    ["login"],
    ["install"],
    ["up"],
    ["preview"],
    ["stack", "init"],
    ["stack", "select"],
    ["stack", "output"],
    ["config", "set"],
)


def check_pulumi(command: Command, declared: dict[str, Any]) -> list[str]:
    argv, problems = command.argv[1:], []
    stack = _flag(argv, "-s", "--stack")
    words = [w for w in argv if not w.startswith("-")]
    if not any(words[: len(c)] == c for c in PULUMI_COMMANDS):
        problems.append(f"pulumi {' '.join(words[:2])}: not a command this README may use")
    if words[:2] in (["stack", "init"], ["stack", "select"]):
        stack = words[2] if len(words) > 2 else None
    if stack is not None and not _stack_ok(stack):
        problems.append(f"stack {stack!r} does not exist in stacks/")
    if words[:1] in (["up"], ["preview"]) and stack is None:
        problems.append("name the stack (-s): Pulumi.yaml keeps one file per stack")
    if words[:1] == ["login"] and argv != ("login", "--local"):
        problems.append("the README's backend is the local one")
    if words[:2] == ["stack", "output"] and words[2:] and words[2] not in declared["outputs"]:
        problems.append(f"the program exports no {words[2]!r} (exports: {sorted(declared['outputs'])})")
    if words[:2] == ["config", "set"]:
        key = words[2]
        namespace, _, path = key.partition(":")
        if namespace != "catwatcher" or "--path" not in argv:
            problems.append(f"{key}: expected catwatcher:<dotted path> with --path")
        schema = stack_file_schema()["properties"]["config"]["properties"]
        node = schema.get(f"catwatcher:{path.split('.')[0]}")
        for part in path.split(".")[1:]:
            node = _schema_child(node, part)
        if node is None:
            problems.append(f"{key}: no such key in the stack-file schema")
        elif "--secret" not in argv and "password" in key:
            problems.append(f"{key}: a password must be set with --secret")
    if "--diff" in argv and words[:1] != ["preview"]:
        problems.append("--diff is a pulumi preview flag")
    return problems


def _schema_child(node: dict | None, name: str) -> dict | None:
    schema = stack_file_schema()
    while node is not None and "$ref" in node:
        node = schema["$defs"][node["$ref"].rsplit("/", 1)[1]]
    if node is None:
        return None
    for option in node.get("anyOf", []):
        found = _schema_child(option, name)
        if found is not None:
            return found
    return node.get("properties", {}).get(name)


# Label keys a README kubectl command may show: the ones the program writes or waits for, and the
# ones GPU feature discovery derives from the rendered sharing config (infra.gpu_impact's model of
# k8s-device-plugin's labelers, which the GPU impact section reads too).
def _label_keys_in_code() -> set[str]:
    code = "\n".join(p.read_text() for folder in ("infra", "components") for p in (ROOT / folder).rglob("*.py"))
    return set(re.findall(r"nvidia\.com/[a-z0-9.\-]+", code))


# DaemonSets the GPU Operator v26.7.0 creates that the README names: the driver's comes from
# NVIDIA/gpu-operator assets/state-driver/0500_daemonset.yaml (not covered by the derived
# contract); the others are in infra/data/gpu_operator_v26.7.0_contract.yaml.
OPERATOR_DRIVER_DAEMONSET = "nvidia-driver-daemonset"


def _operator_daemonsets() -> set[str]:
    contract_file = yaml.safe_load((ROOT / "infra/data/gpu_operator_v26.7.0_contract.yaml").read_text())
    owned = {entry["name"] for entry in contract_file["owned"] if entry["kind"] == "DaemonSet"}
    return owned | {OPERATOR_DRIVER_DAEMONSET}


def check_kubectl(command: Command, declared: dict[str, Any]) -> list[str]:
    argv, problems = command.argv[1:], []
    objects = declared["objects"]
    namespace = _flag(argv, "-n", "--namespace")
    namespaces = {ns for (_, ns, _) in objects if ns}
    if namespace is not None and namespace not in namespaces:
        problems.append(f"namespace {namespace!r} is not one the program deploys into ({sorted(namespaces)})")
    verb = next(w for w in argv if not w.startswith("-") and w != namespace)
    if argv[:2] == ("config", "get-contexts"):
        return problems
    if verb not in ("get", "describe", "logs", "exec"):
        problems.append(f"kubectl {verb}: not a read-only command")
    labels = _flag(argv, "-L", "--label-columns")
    for key in labels.split(",") if labels else []:
        if key not in declared["labels"]:
            problems.append(f"label {key}: neither written nor read by the program")
    selector = _flag(argv, "-l", "--selector")
    if selector:
        _, _, value = selector.partition("=")
        if value not in _operator_daemonsets():
            problems.append(f"-l {selector}: no operator DaemonSet is labelled so")
    for word in argv:
        kind, _, name = word.partition("/")
        if not name or "." in kind:
            continue
        if kind == "deploy" and ("Deployment", namespace, name) not in objects:
            problems.append(f"{word}: no Deployment {namespace}/{name} is rendered")
        if kind == "ds" and name not in _operator_daemonsets():
            problems.append(f"{word}: the operator creates no such DaemonSet")
        if kind == "job":
            prefix = name.split("<", 1)[0]
            jobs = [n for (k, ns, n) in objects if k == "Job" and ns == namespace and n.startswith(prefix)]
            if not jobs:
                problems.append(f"{word}: no Job {namespace}/{prefix}* is rendered")
            container = _flag(argv, "-c", "--container")
            if container and jobs:
                spec = objects[("Job", namespace, jobs[0])]["spec"]["template"]["spec"]
                names = {c["name"] for c in [*spec.get("initContainers", []), *spec["containers"]]}
                if container not in names:
                    problems.append(f"-c {container}: the Job has containers {sorted(names)}")
    return problems


def check_helm(command: Command, declared: dict[str, Any]) -> list[str]:
    argv, problems = command.argv[1:], []
    words = [w for w in argv if not w.startswith("-")]
    release = declared["releases"].get("gpu-operator")
    if words[0] != "upgrade" or "--reuse-values" not in argv:
        problems.append("only `helm upgrade ... --reuse-values` keeps what the program set")
    if words[1] != "gpu-operator" or words[2] != f"nvidia/{release['chart']}":
        problems.append(f"release/chart {words[1]} {words[2]}: the program installs {release['chart']} as gpu-operator")
    if _flag(argv, "-n", "--namespace") != release["namespace"]:
        problems.append(f"namespace: the release is in {release['namespace']}")
    setting = _flag(argv, "--set-json")
    if setting:
        path, _, value = setting.partition("=")
        if path not in chart_value_paths(release["version"]):
            problems.append(f"{path}: gpu-operator {release['version']} reads no such value")
        json.loads(value)
    return problems


def _same_image(tag: str | None, image: str) -> bool:
    """The image itself, or the same name and tag under your own `<registry>`."""
    if tag is None:
        return False
    return tag == image or tag.startswith("<registry>/") and tag.split("/")[-1] == image.split("/")[-1]


def check_docker(command: Command, declared: dict[str, Any]) -> list[str]:
    argv, problems = command.argv[1:], []
    if argv[0] == "push":
        return (
            []
            if _same_image(argv[1], contract.IMAGE) or _same_image(argv[1], contract.IMAGE_CUDA12)
            else [f"push {argv[1]}: not an image the Deployment runs"]
        )
    dockerfile = ROOT / (_flag(argv, "-f", "--file") or "Dockerfile")
    if argv[0] != "build" or not dockerfile.is_file() or argv[-1] != ".":
        return [f"docker {' '.join(argv)}: expected `docker build -f <Dockerfile> ... .` from the project"]
    tag = _flag(argv, "-t", "--tag")
    build_arg = _flag(argv, "--build-arg")
    if build_arg:
        name = build_arg.split("=", 1)[0]
        if not re.search(rf"^ARG {name}\b", dockerfile.read_text(), re.M):
            problems.append(f"--build-arg {name}: {dockerfile.name} declares no such ARG")
        if not _same_image(tag, contract.IMAGE_CUDA12):
            problems.append(f"the CUDA 12 build must be tagged {contract.IMAGE_CUDA12}")
    elif not _same_image(tag, contract.IMAGE):
        problems.append(f"-t {tag}: the Deployment runs {contract.IMAGE}")
    return problems


# Pulumi's own variables for the passphrase secrets provider (the PR workflow sets the first).
PULUMI_PASSPHRASE_VARIABLES = ("PULUMI_CONFIG_PASSPHRASE", "PULUMI_CONFIG_PASSPHRASE_FILE")


def check_export(command: Command, declared: dict[str, Any]) -> list[str]:
    names = [word.split("=", 1)[0] for word in command.argv[1:]]
    workflow = (ROOT / ".github/workflows/preview.yml").read_text()
    return (
        []
        if all(n in PULUMI_PASSPHRASE_VARIABLES for n in names) and PULUMI_PASSPHRASE_VARIABLES[0] in workflow
        else [f"export {names}"]
    )


def check_pip(command: Command, declared: dict[str, Any]) -> list[str]:
    argv, problems = command.argv[1:], []
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    if argv[0] != "install" or _flag(argv, "-c") != "constraints.txt" or not (ROOT / "constraints.txt").is_file():
        problems.append("pip install must use -c constraints.txt")
    target = _flag(argv, "-e")
    match = re.fullmatch(r"\.(?:\[(\w+)\])?", target or "")
    if not match:
        problems.append(f"-e {target}: expected the project (`.` or `.[extra]`)")
    elif match.group(1) and match.group(1) not in extras:
        problems.append(f"extra {match.group(1)!r} is not in pyproject.toml ({sorted(extras)})")
    return problems


def check_venv(command: Command, declared: dict[str, Any]) -> list[str]:
    # `python3 -m venv .venv`: Pulumi.yaml's runtime options name that same virtualenv.
    project_file = yaml.safe_load((ROOT / "Pulumi.yaml").read_text())
    folder = project_file["runtime"]["options"]["virtualenv"]
    return [] if command.argv[1:] == ("-m", "venv", folder) else [f"expected python3 -m venv {folder}"]


CHECKED = {
    "pulumi": check_pulumi,
    "kubectl": check_kubectl,
    "helm": check_helm,
    "docker": check_docker,
    "pip": check_pip,
    "export": check_export,
}


def _is_venv(command: Command) -> bool:
    return command.program in ("python", "python3") and command.argv[1:3] == ("-m", "venv")


def checked_commands() -> list[Command]:
    return [c for c in readme_commands() if c.program in CHECKED or _is_venv(c)]


@pytest.mark.parametrize("command", checked_commands(), ids=lambda c: c.key)
def test_cluster_and_registry_commands_name_what_the_code_declares(command: Command, homelab_3060):
    check = check_venv if _is_venv(command) else CHECKED[command.program]
    assert check(command, homelab_3060) == [], f"README line {command.line}: {command.key}"


def test_every_readme_command_is_run_mapped_or_checked():
    commands = readme_commands()
    assert len(commands) > 30, "the README parser found almost no commands"
    neither = [
        f"line {c.line}: {c.key}"
        for c in commands
        if c.key not in RUN
        and c.key not in MAPPED
        and c.key not in FAILING_EXAMPLES
        and c.program not in CHECKED
        and not _is_venv(c)
    ]
    assert neither == []


def test_the_parser_reads_fences_prompts_chains_and_indented_blocks():
    text = "\n".join(
        [
            "Intro.",
            "",
            "```bash",
            "a --x && VAR=1 b y | grep z   # comment",
            "```",
            "",
            "```text",
            "$ c",
            "output line",
            "```",
            "",
            "```yaml",
            "d: e",
            "```",
            "",
            "    f g",
            "    h",
            "",
            "- a list item",
            "    continued",
            "",
            "   ```bash",
            "   i",
            "   ```",
        ]
    )
    assert [(c.line, c.argv, c.env) for c in readme_commands(text)] == [
        (4, ("a", "--x"), ()),
        (4, ("b", "y"), (("VAR", "1"),)),
        (8, ("c",), ()),
        (16, ("f", "g"), ()),
        (17, ("h",), ()),
        (23, ("i",), ()),
    ]


def test_readme_names_no_material_a_user_does_not_have():
    readme = README.read_text()
    for phrase in ("../shared", "the brief", "shared reference", "2-vCPU", "this project's 2"):
        assert phrase not in readme, phrase


def test_readme_config_keys_exist():
    """Every `section.key` the README names under catwatcher: is a key of the stack-file schema."""
    schema = stack_file_schema()["properties"]["config"]["properties"]
    sections = {name.split(":", 1)[1] for name in schema if name.startswith("catwatcher:")}
    unknown = []
    for match in sorted(
        set(re.findall(r"`(?:catwatcher:)?((?:{})\.[a-zA-Z0-9.]+)`".format("|".join(sections)), README.read_text()))
    ):
        section, *parts = match.split(".")
        node = schema[f"catwatcher:{section}"]
        for part in parts:
            node = _schema_child(node, part) if node is not None else None
        if node is None:
            unknown.append(match)
    assert unknown == []


def test_the_table_of_contents_links_resolve():
    readme = README.read_text()
    anchors = {_anchor(h) for h in re.findall(r"^#{2,4} (.+)$", readme, re.M)}
    links = re.findall(r"\]\(#([^)]+)\)", readme)
    assert links and sorted(set(links) - anchors) == []


def _anchor(heading: str) -> str:
    """GitHub's heading anchor: lower case, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def _tests_needing_the_reference() -> dict[str, int]:
    """Test functions that take the `reference` fixture (they skip without the upstream files),
    with how many tests each one is (one per stack when it also takes `rendered` or `stack`)."""
    found = {}
    for path in sorted([*(ROOT / "tests").glob("test_*.py"), *(ROOT / "tests" / "inference").glob("test_*.py")]):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef) and node.name.startswith("test_"):
                arguments = {a.arg for a in node.args.args}
                if "reference" in arguments:
                    found[node.name] = len(STACKS) if arguments & {"rendered", "stack"} else 1
    return found


def test_the_skipped_tests_section_lists_every_test_that_needs_the_reference_files():
    readme = README.read_text()
    skipping = _tests_needing_the_reference()
    count = re.search(r"reports (\d+) tests as skipped", readme)
    assert count and int(count.group(1)) == sum(skipping.values())
    section = readme.split("## Tests that skip in a fresh clone", 1)[1]
    assert [name for name in skipping if name not in section] == []
