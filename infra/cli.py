"""`catwatcher-infra`: render stacks offline, diff two renders, list the GPU presets, plan pods per
GPU, export the config schema.

Every foreseeable failure ends as short lines on stderr and exit 1 (2 for a usage error); with
several stacks, every stack is checked and each failing line starts with its stack's name.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

import yaml

from infra.offline import (
    Recording,
    RenderError,
    available_stacks,
    load_stack_config,
    project_root,
    run_program,
    stacks_dir,
)
from infra.render import OutputDirError, check_output_dir, write_outputs

PROG = "catwatcher-infra"


class UsageError(Exception):
    """The arguments contradict each other or are missing: exit 2."""


class CommandError(Exception):
    """The command cannot do its work: exit 1. Each line is one problem."""

    def __init__(self, lines: str | Sequence[str]):
        self.lines = [lines] if isinstance(lines, str) else list(lines)
        super().__init__("\n".join(self.lines))


class FailedStacksError(CommandError):
    """Lines that already start with the name of the stack they are about."""


def _project_root() -> Path:
    try:
        return project_root()
    except RenderError:
        raise CommandError(
            f"no Pulumi.yaml in {Path.cwd()} or any folder above it: "
            f"run {PROG} inside the project (the folder with Pulumi.yaml and stacks/)"
        ) from None


def _shown(path: Path) -> str:
    """A path as the user would type it: relative to the working directory when inside it."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def _under_project(message: str, root: Path) -> str:
    """The loaders name absolute paths; show those under the project as the user would type them."""
    shown_root = _shown(root)
    return message.replace(str(root) + os.sep, "" if shown_root == "." else shown_root + os.sep)


def describe_load_failure(stack_file: Path, error: BaseException) -> str:
    """One line naming the stack file and what is wrong with it, whatever the loader raised."""
    message = " ".join(str(error).split())
    if stack_file.name in message:  # the loader already names the file (and line, column)
        return message
    where = _shown(stack_file)
    if isinstance(error, yaml.MarkedYAMLError) and error.problem_mark is not None:
        mark = error.problem_mark
        problem = error.problem or error.context or "syntax error"
        return f"{where}:{mark.line + 1}:{mark.column + 1}: not valid YAML: {problem}"
    if isinstance(error, yaml.YAMLError):
        return f"{where}: not valid YAML: {message}"
    if isinstance(error, UnicodeDecodeError):
        return f"{where}: not UTF-8 text (byte {error.start})"
    if isinstance(error, OSError):
        return f"{where}: cannot read it: {error.strerror}"
    return f"{where}: not a usable stack file: {message or type(error).__name__}"


def run_stacks(root: Path, stacks: Sequence[str]) -> tuple[list[Recording], list[str]]:
    """Run every stack; return the recordings and, for those that failed, `stack: problem` lines."""
    recordings, failures = [], []
    for stack in stacks:
        try:
            config, secret_keys = load_stack_config(root, stack)
        except RenderError as error:  # no such stack, or the file's line and column: as typed
            failures.append(f"{stack}: {_under_project(str(error), root)}")
            continue
        except Exception as error:  # noqa: BLE001 - whatever the loader raises, name the file
            failures.append(f"{stack}: {describe_load_failure(stacks_dir(root) / f'Pulumi.{stack}.yaml', error)}")
            continue
        try:
            recordings.append(run_program(root, stack, config, secret_keys))
        except RenderError as error:
            failures += [f"{stack}: {line}" for line in str(error).splitlines() if line.strip()]
    return recordings, failures


def _unique(names: Sequence[str]) -> list[str]:
    return list(dict.fromkeys(names))


def _render(args: argparse.Namespace) -> int:
    if args.all and args.stacks:
        raise UsageError("name stacks or pass --all, not both")
    root = _project_root()
    stacks = available_stacks(root) if args.all else _unique(args.stacks)
    if not stacks:
        raise UsageError("name a stack or pass --all; stacks: " + ", ".join(available_stacks(root)))
    out = Path(args.out)
    try:
        check_output_dir(out)
    except OutputDirError as error:
        raise CommandError(f"--out {args.out}: {error}") from None
    # Run every stack first: one bad stack writes nothing at all, and every bad one is named.
    recordings, failures = run_stacks(root, stacks)
    if failures:
        raise FailedStacksError(failures)
    for recording in recordings:
        try:
            target = write_outputs(recording, out)
        except OSError as error:
            raise CommandError(f"--out {args.out}: cannot write {error.filename or out}: {error.strerror}") from None
        print(f"{recording.stack}: {len(recording.resources)} resources -> {target}")
    return 0


def _check_diff_arguments(args: argparse.Namespace) -> None:
    if args.git_head and not args.git_base:
        raise UsageError("--git-head needs --git-base (the revision to compare it with)")
    if args.all and not args.git_base:
        raise UsageError("--all needs --git-base: without it, diff compares two stacks (BASE HEAD)")
    if args.all and args.stacks:
        raise UsageError(f"--all compares every stack; drop it or drop the stack names ({' '.join(args.stacks)})")
    if not args.git_base and len(args.stacks) != 2:
        raise UsageError(f"diff needs two stacks (BASE HEAD), or --git-base REV; got {len(args.stacks)} stack(s)")


def _diff(args: argparse.Namespace) -> int:
    from infra.diff import (
        RevisionError,
        check_revision,
        diff_against,
        diff_renders,
        format_markdown,
        format_names,
        format_text,
        load_render,
        render_of,
        render_revision,
        rendered_stacks,
    )

    _check_diff_arguments(args)
    root = _project_root()
    formatter = {"markdown": format_markdown, "names": format_names, "text": format_text}[args.format]
    named = _unique(args.stacks)
    try:
        for option, revision in (("--git-base", args.git_base), ("--git-head", args.git_head)):
            if revision:
                check_revision(root, revision, option)
        with tempfile.TemporaryDirectory(prefix="catwatcher-diff-") as scratch:
            base_dir, head_dir = Path(scratch) / "base", Path(scratch) / "head"
            if args.git_head:
                render_revision(root, args.git_head, head_dir, named)
                rendered = rendered_stacks(head_dir)
                stacks = named or rendered
                head = {stack: load_render(head_dir / stack) for stack in stacks if stack in rendered}
            else:
                stacks = named or available_stacks(root)
                recordings, failures = run_stacks(root, stacks)
                if failures:
                    raise FailedStacksError(failures)
                head = {recording.stack: render_of(recording) for recording in recordings}
            if args.git_base:
                render_revision(root, args.git_base, base_dir, named)
                based = rendered_stacks(base_dir)
                unknown = [stack for stack in named if stack not in head and stack not in based]
                if unknown:
                    raise FailedStacksError(
                        [
                            f"{stack}: no such stack at {args.git_head or 'the working tree'} or at {args.git_base}"
                            for stack in unknown
                        ]
                    )
                # Without names, stacks the base had and the head dropped show as removed.
                names = named if named else sorted(set(stacks) | set(based))
                diffs = diff_against(base_dir, head, names)
            else:
                base_stack, head_stack = named if len(named) == 2 else named * 2
                diffs = [diff_renders(f"{base_stack} -> {head_stack}", head[base_stack], head[head_stack])]
    except RevisionError as error:
        raise CommandError(str(error).splitlines()) from None
    sys.stdout.write(formatter(diffs))
    return 0


def _presets(args: argparse.Namespace) -> int:
    from infra.presets import catalogue_document, catalogue_text

    if args.format == "json":
        sys.stdout.write(json.dumps(catalogue_document(), indent=2) + "\n")
    else:
        sys.stdout.write(catalogue_text())
    return 0


def _schema(args: argparse.Namespace) -> int:
    from infra.schema import stack_file_schema

    text = json.dumps(stack_file_schema(), indent=2, sort_keys=True) + "\n"
    if not args.out:
        sys.stdout.write(text)
        return 0
    out = Path(args.out)
    if out.is_dir():
        raise CommandError(
            f"--out {args.out}: is a folder; name the file to write (e.g. stacks/stack-config.schema.json)"
        )
    try:
        out.write_text(text)
    except OSError as error:
        raise CommandError(f"--out {args.out}: cannot write it: {error.strerror}") from None
    return 0


def _plan(args: argparse.Namespace) -> int:
    from infra.footprint import FootprintError, model_footprint
    from infra.planner import PlanInputError, PlanReport, arena_for_models, plan_modes, resolve_gpu
    from infra.presets import catalogue

    overrides = {
        "vram_mb": args.vram_mb,
        "reserve_mb": args.reserve_mb,
        "overhead_mb": args.overhead_mb,
        "compute_capability": args.compute_capability,
    }
    try:
        gpu = resolve_gpu(catalogue(), args.preset, overrides)
        if args.identifier and not args.model:
            raise PlanInputError("--identifier needs --model (the detector it runs beside)")
        models = []
        if args.model:
            models.append(model_footprint(Path(args.model), args.batch, args.input_size))
        if args.identifier:
            models.append(model_footprint(Path(args.identifier), args.identifier_batch, None))
        if args.arena_mb is not None:
            arena_mb, source = args.arena_mb, "--arena-mb"
        elif models:
            arena_mb = arena_for_models(*models)
            source = "the models' estimate" + (", split 75/25 as the service splits it" if len(models) > 1 else "")
        elif args.preset == "custom":
            raise PlanInputError("--preset custom needs --model or --arena-mb (the arena one pod needs)")
        else:
            arena_mb, source = gpu.recommended.memory_per_pod_mb, f"{gpu.key}'s recommended memoryPerPodMb"
        report = PlanReport(gpu, arena_mb, source, models, plan_modes(gpu, arena_mb))
    except PlanInputError as error:
        raise UsageError(str(error)) from None
    except FootprintError as error:
        raise CommandError(str(error)) from None
    if args.format == "json":
        sys.stdout.write(json.dumps(report.as_dict(), indent=2) + "\n")
    else:
        sys.stdout.write(report.text())
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)

    render = commands.add_parser("render", help="run the program offline and write manifests, Helm values, graph")
    render.add_argument("stacks", nargs="*", metavar="STACK")
    render.add_argument("--all", action="store_true", help="every stack under stacks/")
    render.add_argument("--out", default="build/rendered", help="output folder (default: build/rendered)")
    render.set_defaults(func=_render)

    diff = commands.add_parser("diff", help="object-level and Helm-values diff of two renders")
    diff.add_argument(
        "stacks", nargs="*", metavar="STACK", help="BASE HEAD stacks, or the stacks to compare with --git-base"
    )
    diff.add_argument(
        "--git-base", metavar="REV", help="compare with the render of this git revision (commit, branch, tag)"
    )
    diff.add_argument(
        "--git-head", metavar="REV", help="with --git-base: render this revision instead of the working tree"
    )
    diff.add_argument("--all", action="store_true", help="with --git-base and no stack names: every stack")
    diff.add_argument(
        "--format",
        choices=("text", "markdown", "names"),
        default="text",
        help="names: only the stacks that change, one a line",
    )
    diff.set_defaults(func=_diff)

    presets = commands.add_parser("presets", help="the GPU preset catalogue: every value each preset sets")
    presets.add_argument("--format", choices=("text", "json"), default="text")
    presets.set_defaults(func=_presets)

    plan = commands.add_parser("plan", help="how many Cat Watcher pods fit one GPU, per sharing mode")
    plan.add_argument(
        "--preset", required=True, help="a GPU preset, or custom (with --vram-mb and --compute-capability)"
    )
    plan.add_argument("--model", help="the detector ONNX file: its weights and activations size the arena")
    plan.add_argument("--identifier", help="the identifier ONNX file that runs beside the detector")
    plan.add_argument("--batch", type=int, default=1, help="detector batch (default 1)")
    plan.add_argument("--identifier-batch", type=int, default=8, help="cat crops identified at once (default 8)")
    plan.add_argument("--input-size", type=int, help="detector input size when the model's is dynamic")
    plan.add_argument("--arena-mb", type=int, help="arena per pod, instead of a model's estimate or the preset's")
    plan.add_argument("--vram-mb", type=int, help="override the preset's VRAM")
    plan.add_argument("--reserve-mb", type=int, help="override the preset's reserve")
    plan.add_argument("--overhead-mb", type=int, help="override the per-pod overhead (measure yours: see the README)")
    plan.add_argument("--compute-capability", help="override the preset's compute capability, e.g. 8.6")
    plan.add_argument("--format", choices=("text", "json"), default="text")
    plan.set_defaults(func=_plan)

    schema = commands.add_parser("schema", help="JSON schema of a stack file, for editors")
    schema.add_argument("--out", help="write to this file instead of stdout")
    schema.set_defaults(func=_schema)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)  # usage errors: argparse prints them and exits 2
    try:
        return args.func(args)
    except UsageError as error:
        print(f"{PROG} {args.command}: {error}", file=sys.stderr)
        return 2
    except CommandError as error:
        prefix = "" if isinstance(error, FailedStacksError) else "error: "
        for line in error.lines:
            print(f"{prefix}{line}", file=sys.stderr)
        return 1
    except BrokenPipeError:
        # The reader stopped early (`| head`): nothing to say; keep the exit-time flush quiet too.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except OSError as error:  # disk full, a file vanished mid-run: say which, no traceback
        print(f"error: {error.filename or ''}: {error.strerror or error}".replace(": : ", ": "), file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
