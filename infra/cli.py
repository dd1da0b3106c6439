"""`catwatcher-infra`: render stacks offline, diff two renders, export the config schema."""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

from infra.offline import RenderError, available_stacks, project_root, run_program
from infra.render import write_outputs


def _print_error(error: Exception) -> None:
    """One problem per line, each prefixed so it stands out in CI logs."""
    for line in str(error).splitlines() or [type(error).__name__]:
        print(f"error: {line}", file=sys.stderr)


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
        _print_error(error)
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
                _print_error(error)
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

    schema = commands.add_parser("schema", help="JSON schema of a stack file, for editors")
    schema.add_argument("--out", help="write to this file instead of stdout")
    schema.set_defaults(func=_schema)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
