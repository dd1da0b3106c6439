"""Build one component alone, with hand-made Args, under Pulumi's mock engine."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from infra.offline import Recording, Registration, record
from infra.render import manifests


def build(make: Callable[[], Any]) -> Recording:
    return record(make)


def components_of(recording: Recording, type_token: str) -> list[Registration]:
    return recording.of_type(type_token)


def children_of(recording: Recording, parent: Registration) -> list[Registration]:
    return [r for r in recording.resources if r.parent == parent.urn]


def kinds(recording: Recording) -> list[tuple[str, str]]:
    """(kind, name) of every Kubernetes object, sorted."""
    return sorted((m["kind"], m["metadata"]["name"]) for m in manifests(recording))
