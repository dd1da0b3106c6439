"""Object-level diff of two renders: which Kubernetes objects and Helm values change, and how.

Works on rendered folders (DIR/STACK/manifests.yaml, DIR/STACK/helm/*.yaml), so a base render
made by an older revision of the code compares just as well as two stacks of this one.
"""

from __future__ import annotations

import difflib
import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from infra.gpu_impact import GpuImpact, format_impact_markdown, format_impact_text, gpu_impact
from infra.offline import Recording, available_stacks
from infra.render import helm_releases, manifests

ObjectKey = tuple[str, str, str]  # kind, namespace, name
MISSING = object()


@dataclass(frozen=True)
class FieldChange:
    path: str
    old: Any
    new: Any


@dataclass(frozen=True)
class Change:
    what: str  # "Deployment cat-watcher/cat-watcher" or "helm gpu-operator"
    status: str  # added | removed | changed
    fields: tuple[FieldChange, ...] = ()


@dataclass
class StackDiff:
    stack: str
    changes: list[Change] = field(default_factory=list)
    note: str = ""
    impact: GpuImpact = field(default_factory=GpuImpact)

    @property
    def empty(self) -> bool:
        return not self.changes


@dataclass(frozen=True)
class Render:
    objects: Mapping[ObjectKey, Mapping[str, Any]]
    releases: Mapping[str, Mapping[str, Any]]
    outputs: Mapping[str, Any] = field(default_factory=dict)  # stack exports (none from older renders)


def _object_key(document: Mapping[str, Any]) -> ObjectKey:
    metadata = document.get("metadata", {})
    return document["kind"], metadata.get("namespace", ""), metadata.get("name", "")


def load_render(folder: Path) -> Render:
    documents = (
        yaml.safe_load_all((folder / "manifests.yaml").read_text()) if (folder / "manifests.yaml").exists() else []
    )
    objects = {_object_key(document): document for document in documents if document}
    releases = (
        {path.stem: yaml.safe_load(path.read_text()) for path in sorted((folder / "helm").glob("*.yaml"))}
        if (folder / "helm").is_dir()
        else {}
    )
    outputs = json.loads((folder / "outputs.json").read_text()) if (folder / "outputs.json").is_file() else {}
    return Render(objects=objects, releases=releases, outputs=outputs)


def _keyed(items: list[Any]) -> dict[str, Any] | None:
    """Lists of named things (containers, env, ports, volumes) compare by name, not position."""
    if items and all(isinstance(i, Mapping) and "name" in i for i in items):
        names = [str(i["name"]) for i in items]
        if len(set(names)) == len(names):
            return dict(zip(names, items, strict=True))
    return None


def field_changes(old: Any, new: Any, path: str = "") -> Iterator[FieldChange]:
    if isinstance(old, Mapping) and isinstance(new, Mapping):
        for key in sorted(set(old) | set(new), key=str):
            sub = f"{path}.{key}" if path else str(key)
            yield from field_changes(old.get(key, MISSING), new.get(key, MISSING), sub)
        return
    if isinstance(old, list) and isinstance(new, list):
        old_keyed, new_keyed = _keyed(old), _keyed(new)
        if old_keyed is not None and new_keyed is not None:
            for name in sorted(set(old_keyed) | set(new_keyed)):
                yield from field_changes(old_keyed.get(name, MISSING), new_keyed.get(name, MISSING), f"{path}[{name}]")
            return
    if old != new:
        yield FieldChange(path, old, new)


def _object_label(key: ObjectKey) -> str:
    kind, namespace, name = key
    return f"{kind} {namespace + '/' if namespace else ''}{name}"


def _release_label(name: str) -> str:
    return f"helm release {name}"


def _compare(base: Mapping[Any, Any], head: Mapping[Any, Any], label) -> Iterator[Change]:
    for key in sorted(set(base) | set(head)):
        if key not in base:
            yield Change(label(key), "added")
        elif key not in head:
            yield Change(label(key), "removed")
        elif fields := tuple(field_changes(base[key], head[key])):
            yield Change(label(key), "changed", fields)


def diff_renders(stack: str, base: Render, head: Render) -> StackDiff:
    changes = [
        *_compare(base.objects, head.objects, _object_label),
        *_compare(base.releases, head.releases, _release_label),
    ]
    return StackDiff(stack, changes, impact=gpu_impact(base, head))


def rendered_stacks(folder: Path) -> list[str]:
    """Stacks a `render --all` wrote into `folder` (none if it wrote nothing)."""
    return sorted(p.name for p in folder.iterdir() if p.is_dir()) if folder.is_dir() else []


def render_of(recording: Recording) -> Render:
    """What a program run would write, without writing it."""
    objects = {_object_key(document): document for document in manifests(recording)}
    return Render(objects=objects, releases=helm_releases(recording), outputs=recording.outputs)


def diff_against(base_dir: Path, head: Mapping[str, Render], stacks: list[str]) -> list[StackDiff]:
    """Each stack's render in `base_dir` (as written by `render`) against its `head` render."""
    diffs = []
    for stack in stacks:
        base = base_dir / stack
        if stack not in head:
            impact = gpu_impact(load_render(base), NOTHING) if base.is_dir() else GpuImpact()
            diffs.append(StackDiff(stack, note="removed (no longer rendered)", impact=impact))
        elif not base.is_dir():
            diffs.append(
                StackDiff(
                    stack,
                    [Change(what, "added") for what in _all_objects(head[stack])],
                    note="new stack",
                    impact=gpu_impact(NOTHING, head[stack]),
                )
            )
        else:
            diffs.append(diff_renders(stack, load_render(base), head[stack]))
    return diffs


NOTHING = Render(objects={}, releases={})


def _all_objects(render: Render) -> list[str]:
    return [_object_label(key) for key in sorted(render.objects)] + [_release_label(n) for n in sorted(render.releases)]


# --- formatting ------------------------------------------------------------------------------

SYMBOL = {"added": "+", "removed": "-", "changed": "~"}


def _show(value: Any) -> str:
    if value is MISSING:
        return "(absent)"
    if isinstance(value, str) and "\n" not in value:
        return value
    if isinstance(value, (int, float, bool)) or value is None:
        return yaml.safe_dump(value).strip().removesuffix("...").strip()
    return yaml.safe_dump(value, sort_keys=True, default_flow_style=True).strip()


def _field_lines(change: FieldChange) -> list[str]:
    if isinstance(change.old, str) and isinstance(change.new, str) and ("\n" in change.old or "\n" in change.new):
        lines = difflib.unified_diff(change.old.splitlines(), change.new.splitlines(), lineterm="", n=1)
        return [f"    {change.path}:"] + [f"      {line}" for line in list(lines)[2:]]
    return [f"    {change.path}: {_show(change.old)} -> {_show(change.new)}"]


def format_names(diffs: list[StackDiff]) -> str:
    """The stacks that change, one a line (for CI: which stacks to preview against a cluster)."""
    return "".join(f"{diff.stack}\n" for diff in diffs if not diff.empty or diff.note)


def _impact_section(diffs: list[StackDiff], formatter, heading: list[str]) -> list[str]:
    """The GPU impact of every stack, before any object diff; the stacks it leaves alone in one line."""
    touched = [diff for diff in diffs if diff.impact.touches_gpu]
    out = list(heading)
    for diff in touched:
        out += formatter(diff.stack, diff.impact)
    untouched = [diff.stack for diff in diffs if not diff.impact.touches_gpu]
    if untouched:
        names = ", ".join(untouched) if len(untouched) <= 3 else f"{len(untouched)} {'other ' if touched else ''}stacks"
        out += formatter(names, GpuImpact())
    return out


def format_text(diffs: list[StackDiff]) -> str:
    out = _impact_section(diffs, format_impact_text, ["GPU impact"]) + [""]
    for diff in diffs:
        header = f"== {diff.stack}" + (f" ({diff.note})" if diff.note else "")
        out.append(header)
        if diff.empty:
            out.append("  no changes" if not diff.note else "")
        for change in diff.changes:
            out.append(f"  {SYMBOL[change.status]} {change.what}")
            for field_change in change.fields:
                out.extend(_field_lines(field_change))
    return "\n".join(line for line in out if line != "") + "\n"


def format_markdown(diffs: list[StackDiff]) -> str:
    changed = [d for d in diffs if not d.empty or d.note]
    out = _impact_section(diffs, format_impact_markdown, ["## GPU impact", ""]) + ["", "## Offline render diff", ""]
    if not changed:
        out.append(f"No stack changes ({len(diffs)} stacks rendered).")
        return "\n".join(out) + "\n"
    out.append(f"{len(changed)} of {len(diffs)} stacks change.")
    for diff in changed:
        counts = {status: sum(c.status == status for c in diff.changes) for status in SYMBOL}
        summary = ", ".join(f"{n} {status}" for status, n in counts.items() if n)
        out += [
            "",
            f"<details><summary><b>{diff.stack}</b>{' — ' + diff.note if diff.note else ''}: {summary}</summary>",
            "",
            "```diff",
        ]
        for change in diff.changes:
            out.append(f"{SYMBOL[change.status]} {change.what}")
            for field_change in change.fields:
                out.extend(_field_lines(field_change))
        out += ["```", "", "</details>"]
    return "\n".join(out) + "\n"


# --- rendering a git revision ----------------------------------------------------------------


class RevisionError(Exception):
    """A git revision cannot be rendered: no git, not a checkout, no such revision, or its render failed."""


def _git(root: Path, *args: str) -> subprocess.CompletedProcess:
    try:
        return subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True)
    except FileNotFoundError:
        raise RevisionError("git is not installed (or not on PATH); comparing with a revision needs it") from None


def check_revision(root: Path, revision: str, option: str = "--git-base") -> None:
    """Refuse a revision git cannot resolve to a commit, naming it, before anything is rendered."""
    if _git(root, "rev-parse", "--git-dir").returncode != 0:
        raise RevisionError(
            f"{option} {revision}: {root} is not a git checkout; compare two stacks instead (diff STACK_A STACK_B)"
        )
    if _git(root, "rev-parse", "--verify", "--quiet", "--end-of-options", f"{revision}^{{commit}}").returncode != 0:
        raise RevisionError(
            f"{option} {revision}: no such revision in this repository; "
            "name a commit, branch or tag (e.g. HEAD, HEAD~1, main; `git tag` lists the tags)"
        )


def render_revision(root: Path, revision: str, out_dir: Path, stacks: Sequence[str] = ()) -> None:
    """Render `stacks` (default: every stack) as `revision` of this repository renders them (its
    own code). Named stacks the revision does not have are left out: they show as new."""
    with tempfile.TemporaryDirectory(prefix="catwatcher-base-") as scratch:
        tree = Path(scratch) / "tree"
        added = _git(root, "worktree", "add", "--detach", str(tree), revision)
        if added.returncode != 0:
            raise RevisionError(f"{revision}: git could not check it out: {_last_line(added.stderr)}")
        try:
            if stacks:
                # Only what was asked for: a broken stack elsewhere in the revision does not matter.
                present = set(available_stacks(tree))
                selection = [stack for stack in stacks if stack in present]
                if not selection:
                    return
            else:
                selection = ["--all"]
            rendered = subprocess.run(
                [sys.executable, "-m", "infra.cli", "render", *selection, "--out", str(out_dir)],
                cwd=tree,
                env={**_clean_env(), "PYTHONPATH": str(tree)},
                check=False,
                capture_output=True,
                text=True,
            )
        finally:
            _git(root, "worktree", "remove", "--force", str(tree))
    if rendered.returncode != 0:
        # A half-rendered base would show every stack as new: refuse, with the revision's own words.
        problems = [line for line in rendered.stderr.splitlines() if line.strip()] or [f"exit {rendered.returncode}"]
        if "Traceback (most recent call last)" in rendered.stderr:  # older code: its last line says why
            problems = problems[-1:]
        raise RevisionError("\n".join(f"{revision}: {line}" for line in problems))


def _last_line(text: str) -> str:
    lines = [line for line in text.splitlines() if line.strip()]
    return lines[-1].strip() if lines else "no message"


def _clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
