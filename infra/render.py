"""Turn a recorded program run into files: manifests, Helm releases, the resource graph.

Pure functions of a Recording, so the output is the same byte for byte on every run.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml

from infra.offline import Recording, Registration

HELM_RELEASE = "kubernetes:helm.sh/v3:Release"
KUBERNETES_PREFIX = "kubernetes:"


def is_manifest(resource: Registration) -> bool:
    return resource.custom and resource.type.startswith(KUBERNETES_PREFIX) and resource.type != HELM_RELEASE


def _sort_key(manifest: dict[str, Any]) -> tuple[str, str, str]:
    metadata = manifest.get("metadata", {})
    return manifest.get("kind", ""), metadata.get("namespace", ""), metadata.get("name", "")


def manifests(recording: Recording) -> list[dict[str, Any]]:
    """Every Kubernetes object the program declares, as sent to the API server."""
    objects = [dict(r.inputs) for r in recording.resources if is_manifest(r)]
    return sorted(objects, key=_sort_key)


def helm_releases(recording: Recording) -> dict[str, dict[str, Any]]:
    """Release name -> chart, repository, version, namespace, values."""
    releases = {}
    for resource in recording.of_type(HELM_RELEASE):
        inputs = resource.inputs
        releases[inputs.get("name", resource.name)] = {
            "chart": inputs["chart"],
            "repository": inputs.get("repositoryOpts", {}).get("repo", ""),
            "version": inputs.get("version", ""),
            "namespace": inputs.get("namespace", ""),
            "values": inputs.get("values", {}),
        }
    return releases


def _short(urn: str) -> str:
    """`urn:pulumi:stack::project::a$b$type::name` -> `type::name`."""
    if not urn:
        return ""
    qualified_type, name = urn.split("::")[2:4]
    return f"{qualified_type.split('$')[-1]}::{name}"


def graph(recording: Recording) -> dict[str, Any]:
    nodes = [
        {
            "id": _short(r.urn),
            "type": r.type,
            "name": r.name,
            "parent": "" if _short(r.parent).startswith("pulumi:pulumi:Stack::") else _short(r.parent),
            "dependencies": sorted(_short(d) for d in r.dependencies),
        }
        for r in recording.resources
    ]
    return {"stack": recording.stack, "resources": sorted(nodes, key=lambda n: n["id"])}


class _ReadableDumper(yaml.SafeDumper):
    """Multi-line strings (embedded config files) as `|` blocks, so reviewers can read them."""


def _represent_str(dumper: yaml.SafeDumper, text: str) -> yaml.ScalarNode:
    style = "|" if "\n" in text else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", text, style=style)


_ReadableDumper.add_representer(str, _represent_str)


def dump_yaml(document: Any) -> str:
    return yaml.dump(document, Dumper=_ReadableDumper, sort_keys=True, default_flow_style=False)


def dump_yaml_documents(documents: Iterable[dict[str, Any]]) -> str:
    return yaml.dump_all(
        list(documents), Dumper=_ReadableDumper, sort_keys=True, default_flow_style=False, explicit_start=True
    )


class OutputDirError(Exception):
    """The output folder cannot be created or written to."""


def check_output_dir(out_dir: Path) -> None:
    """Refuse, before anything is rendered, a folder that cannot be made or written to.

    Creates nothing: a render that fails later must leave no folder behind.
    """
    if out_dir.exists() and not out_dir.is_dir():
        raise OutputDirError("is a file, not a folder; name a folder (default: build/rendered)")
    existing = out_dir.absolute()
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise OutputDirError(f"{existing} is a file, so no folder can be made under it; name a folder")
    # os.access alone passes for root everywhere; a real probe also catches read-only mounts.
    try:
        if not os.access(existing, os.W_OK | os.X_OK):
            raise PermissionError(13, "Permission denied")
        os.rmdir(tempfile.mkdtemp(prefix=".catwatcher-probe-", dir=existing))
    except OSError as error:
        raise OutputDirError(
            f"cannot write into {existing} ({error.strerror}); pick a folder you can write to"
        ) from None


def write_outputs(recording: Recording, out_dir: Path) -> Path:
    """Write DIR/STACK/{manifests.yaml,helm/*.yaml,graph.json,outputs.json}; replaces an earlier render whole.

    Folders and files get the caller's umask (readable by others under the usual 022).
    """
    target = out_dir / recording.stack
    out_dir.mkdir(parents=True, exist_ok=True)
    # Not tempfile.mkdtemp: it makes the folder 0700, which the rename would keep.
    staging = out_dir / f".{recording.stack}-{secrets.token_hex(6)}"
    staging.mkdir()
    try:
        (staging / "manifests.yaml").write_text(dump_yaml_documents(manifests(recording)))
        (staging / "helm").mkdir()
        for name, release in sorted(helm_releases(recording).items()):
            (staging / "helm" / f"{name}.yaml").write_text(dump_yaml(release))
        (staging / "graph.json").write_text(json.dumps(graph(recording), indent=2, sort_keys=True) + "\n")
        (staging / "outputs.json").write_text(json.dumps(recording.outputs, indent=2, sort_keys=True) + "\n")
        if target.exists():
            shutil.rmtree(target)
        staging.rename(target)
    finally:
        if staging.exists():
            shutil.rmtree(staging)
    return target
