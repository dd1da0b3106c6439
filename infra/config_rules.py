"""Rules across fields and files that a field's own type cannot express: settings that would be
silently ignored, clear-text secrets, keys in the wrong namespace, clashing Helm releases.

Pure functions: each returns `(key path, message)` problems; an empty list means "fine".
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from typing import Any

from infra.errors import PROJECT, key_path
from infra.model import StackConfig

Problem = tuple[str, str]

STACK_FILE_KEYS = ("config", "secretsprovider", "encryptedkey", "encryptionsalt", "environment")
# Namespaces a stack of this project may set besides its own (what the engine itself reads).
OTHER_NAMESPACES = frozenset({"pulumi"})
SECRET_FIELDS = frozenset({"password"})


def _distance(a: str, b: str) -> int:
    """Levenshtein distance (case-insensitive), as the engine uses for "did you mean"."""
    a, b = a.lower(), b.lower()
    previous = list(range(len(b) + 1))
    for i, char_a in enumerate(a, 1):
        current = [i]
        for j, char_b in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (char_a != char_b)))
        previous = current
    return previous[-1]


def stack_file_problems(document: Mapping[str, Any]) -> list[Problem]:
    """Top-level keys of a stack file: the engine ignores unknown ones, so a typo (`confg:`) would
    silently drop the whole config."""
    problems = []
    for key in document:
        if key not in STACK_FILE_KEYS:
            close = min(STACK_FILE_KEYS, key=lambda known: _distance(str(key), known))
            hint = f"; did you mean '{close}'?" if _distance(str(key), close) <= 2 else ""
            problems.append((str(key), f"not a stack file key (valid: {', '.join(STACK_FILE_KEYS)}){hint}"))
    return problems


def config_key_problems(keys: Iterable[str], project: str = PROJECT) -> list[Problem]:
    """Config keys outside our namespace that we would silently ignore."""
    problems = []
    for key in keys:
        namespace, _, name = key.partition(":")
        if not name or namespace == project or namespace in OTHER_NAMESPACES:
            continue
        if namespace == "kubernetes" and name == "context":
            problems.append(
                (
                    key,
                    (
                        f"ignored: the program's provider targets {project}:cluster.kubeContext only; "
                        f"move the context there and remove {key}"
                    ),
                )
            )
        elif namespace == "kubernetes":
            problems.append(
                (key, "ignored: the program builds its own Kubernetes provider (Pulumi.yaml disables the default one)")
            )
        elif _distance(namespace, project) <= 3:
            problems.append((key, f"unknown namespace '{namespace}'; did you mean {project}:{name}?"))
    return problems


def clear_text_secrets(value: Any, path: tuple[str | int, ...]) -> list[Problem]:
    """`password: hunter2` in a stack file: passwords must be `secure:` (pulumi config set --secret)."""
    problems: list[Problem] = []
    if isinstance(value, dict):
        if set(value) == {"secure"}:
            return problems
        for key, item in value.items():
            if key in SECRET_FIELDS and item is not None and not (isinstance(item, dict) and set(item) == {"secure"}):
                where = key_path(*path, key)
                problems.append(
                    (where, f"in clear text; set it encrypted: pulumi config set --secret --path '{where}' '<value>'")
                )
            else:
                problems.extend(clear_text_secrets(item, (*path, key)))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            problems.extend(clear_text_secrets(item, (*path, index)))
    return problems


def secret_problems(config: StackConfig, secret_keys: Collection[str]) -> list[Problem]:
    """The engine marks a top-level key secret when any part of it is `secure:`; a password in a
    key the engine does not mark secret was written in clear text."""
    if config.credentials is None or "credentials" in secret_keys:
        return []
    problems = []
    for name in ("mqtt", "frigate"):
        section = getattr(config.credentials, name)
        if section is not None and section.password is not None:
            where = key_path("credentials", name, "password")
            problems.append(
                (where, f"in clear text; set it encrypted: pulumi config set --secret --path '{where}' '<value>'")
            )
    return problems


def _set_but_ignored(model: Any, fields: Iterable[str], path: tuple[str, ...], reason: str) -> list[Problem]:
    problems = []
    for field in fields:
        if field in model.model_fields_set:
            alias = type(model).model_fields[field].alias or field
            problems.append((key_path(*path, alias), f"ignored because {reason}: remove it, or change that setting"))
    return problems


def contradiction_problems(config: StackConfig) -> list[Problem]:
    """Settings that would be silently ignored because another setting turns their feature off."""
    monitoring, problems = config.monitoring, []
    others = [name for name in type(monitoring).model_fields if name != "enabled"]
    if not monitoring.enabled:
        problems += _set_but_ignored(monitoring, others, ("monitoring",), "monitoring.enabled is false")
    else:
        if monitoring.exporter == "operator":
            problems += _set_but_ignored(
                monitoring,
                ["standalone_chart_version"],
                ("monitoring",),
                "monitoring.exporter is operator (the standalone chart is not installed)",
            )
        if not monitoring.service_monitor:
            problems += _set_but_ignored(
                monitoring, ["prometheus_labels"], ("monitoring",), "monitoring.serviceMonitor is false"
            )
        if not monitoring.dashboards:
            problems += _set_but_ignored(
                monitoring, ["dashboard_namespace"], ("monitoring",), "monitoring.dashboards is false"
            )
    policy = config.app.network_policy
    if not policy.enabled:
        problems += _set_but_ignored(
            policy,
            ["client_namespaces", "monitoring_namespace"],
            ("app", "networkPolicy"),
            "app.networkPolicy.enabled is false",
        )
    return problems


def release_problems(config: StackConfig, standalone_release: str = "dcgm-exporter") -> list[Problem]:
    """Helm release names are unique per namespace; this stack's releases share the operator's."""
    monitoring = config.monitoring
    if (
        monitoring.enabled
        and monitoring.exporter == "standalone"
        and config.operator.release_name == standalone_release
    ):
        return [
            (
                key_path("operator", "releaseName"),
                f"'{standalone_release}' is the standalone DCGM exporter's "
                "release in the same namespace; pick another name",
            )
        ]
    return []


def config_problems(config: StackConfig, secret_keys: Collection[str] = ()) -> list[Problem]:
    return [*contradiction_problems(config), *release_problems(config), *secret_problems(config, secret_keys)]
