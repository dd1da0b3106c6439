"""`catwatcher-infra`: render stacks offline, diff two renders, plan pods per GPU, export the config schema."""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

from infra.offline import RenderError, available_stacks, project_root, run_program
from infra.render import write_outputs


def _render(args: argparse.Namespace) -> int:
    root = project_root()
    stacks = available_stacks(root) if args.all else args.stacks
    if not stacks:
        print("name a stack or pass --all; stacks: " + ", ".join(available_stacks(root)), file=sys.stderr)
        return 2
    # Run every stack first: one bad stack writes nothing at all.
    try:
        recordings = [run_program(root, stack) for stack in stacks]
    except RenderError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    for recording in recordings:
        target = write_outputs(recording, Path(args.out))
        print(f"{recording.stack}: {len(recording.resources)} resources -> {target}")
    return 0


def _diff(args: argparse.Namespace) -> int:
    from infra.diff import (
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

    root = project_root()
    formatter = {"markdown": format_markdown, "names": format_names, "text": format_text}[args.format]
    if not args.git_base and len(args.stacks) != 2:
        print("diff needs two stacks (BASE HEAD), or --git-base REV", file=sys.stderr)
        return 2
    if args.git_head and not args.git_base:
        print("--git-head needs --git-base", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="catwatcher-diff-") as scratch:
        base_dir, head_dir = Path(scratch) / "base", Path(scratch) / "head"
        if args.git_head:
            render_revision(root, args.git_head, head_dir)
            rendered = rendered_stacks(head_dir)
            stacks = rendered if args.all or not args.stacks else args.stacks
            head = {stack: load_render(head_dir / stack) for stack in stacks if stack in rendered}
        else:
            stacks = available_stacks(root) if args.git_base and (args.all or not args.stacks) else args.stacks
            try:
                head = {stack: render_of(run_program(root, stack)) for stack in stacks}
            except RenderError as error:
                print(f"error: {error}", file=sys.stderr)
                return 1
        if args.git_base:
            render_revision(root, args.git_base, base_dir)
            # With --all, stacks the base had and the head dropped show as removed.
            names = stacks if args.stacks else sorted(set(stacks) | set(rendered_stacks(base_dir)))
            diffs = diff_against(base_dir, head, names)
        else:
            base_stack, head_stack = args.stacks
            diffs = [diff_renders(f"{base_stack} -> {head_stack}", head[base_stack], head[head_stack])]
    sys.stdout.write(formatter(diffs))
    return 0


def _schema(args: argparse.Namespace) -> int:
    from infra.schema import stack_file_schema

    text = json.dumps(stack_file_schema(), indent=2, sort_keys=True) + "\n"
    if args.out:
        Path(args.out).write_text(text)
    else:
        sys.stdout.write(text)
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
    except (PlanInputError, FootprintError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if args.format == "json":
        sys.stdout.write(json.dumps(report.as_dict(), indent=2) + "\n")
    else:
        sys.stdout.write(report.text())
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="catwatcher-infra", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    render = commands.add_parser("render", help="run the program offline and write manifests, Helm values, graph")
    render.add_argument("stacks", nargs="*", metavar="STACK")
    render.add_argument("--all", action="store_true", help="every stack under stacks/")
    render.add_argument("--out", default="build/rendered", help="output folder (default: build/rendered)")
    render.set_defaults(func=_render)

    diff = commands.add_parser("diff", help="object-level and Helm-values diff of two renders")
    diff.add_argument("stacks", nargs="*", metavar="STACK", help="BASE HEAD stacks, or the stacks to compare with --git-base")
    diff.add_argument("--git-base", metavar="REV", help="compare with the render of this git revision")
    diff.add_argument("--git-head", metavar="REV", help="with --git-base: render this revision instead of the working tree")
    diff.add_argument("--all", action="store_true", help="with --git-base: every stack")
    diff.add_argument("--format", choices=("text", "markdown", "names"), default="text",
                      help="names: only the stacks that change, one a line")
    diff.set_defaults(func=_diff)

    plan = commands.add_parser("plan", help="how many Cat Watcher pods fit one GPU, per sharing mode")
    plan.add_argument("--preset", required=True, help="a GPU preset, or custom (with --vram-mb and --compute-capability)")
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
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
