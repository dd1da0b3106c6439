"""Read the `catwatcher:*` stack config and turn it into a validated StackConfig.

The Pulumi engine hands a program its config as flat `project:key` strings (structured
values JSON-encoded). We read all of them at once, so that an unknown top-level key is an
error too, and let pydantic check the whole tree.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping
from typing import Any

from pydantic import BaseModel, ValidationError

from infra.config_rules import config_problems
from infra.errors import PROJECT, ConfigError, key_path
from infra.model import StackConfig


def decode_config(flat: Mapping[str, str], project: str = PROJECT) -> dict[str, Any]:
    """`{"catwatcher:gpu": '{"preset": "rtx-3060"}'}` -> `{"gpu": {"preset": "rtx-3060"}}`."""
    prefix = f"{project}:"
    decoded: dict[str, Any] = {}
    for key, raw in flat.items():
        if not key.startswith(prefix):
            continue
        try:
            decoded[key[len(prefix) :]] = json.loads(raw)
        except (json.JSONDecodeError, TypeError):
            decoded[key[len(prefix) :]] = raw
    return decoded


# Sections that hold credentials: never echoed, even when a stack forgot `--secret`.
SECRET_SECTIONS = frozenset({"credentials"})


def parse_stack_config(values: Mapping[str, Any], secret_keys: Collection[str] = ()) -> StackConfig:
    """Validate the whole tree; values under `secret_keys` (top-level names) are never echoed."""
    hidden = SECRET_SECTIONS | set(secret_keys)
    try:
        config = StackConfig.model_validate(dict(values))
    except ValidationError as error:
        raise ConfigError([_describe(item, hidden) for item in error.errors()]) from None
    if problems := config_problems(config, secret_keys):
        raise ConfigError(problems)
    return config


def _describe(item: Mapping[str, Any], secret_keys: Collection[str]) -> tuple[str, str]:
    # pydantic marks an invalid mapping key with a trailing "[key]" step; the key path ends at the key.
    location = tuple(part for part in item["loc"] if part != "[key]")
    if item["type"] == "extra_forbidden":
        valid = _valid_keys(StackConfig, location[:-1])
        hint = f"; valid keys here: {', '.join(valid)}" if valid else ""
        return key_path(*location), f"unknown key{hint}"
    message = item["msg"].removeprefix("Value error, ")
    if (bound := _BOUNDS.get(item["type"])) and bound[1] in item.get("ctx", {}):
        message = f"must be {bound[0]} {item['ctx'][bound[1]]}"
    if item["type"] == "string_pattern_mismatch":
        message = _PATTERN_HINTS.get(item.get("ctx", {}).get("pattern", ""), message)
    if item["type"] == "missing" and (description := _description_at(location)):
        message = f"{message}: {description}"
    secret = location and location[0] in secret_keys
    if not secret and "input" in item and item["type"] != "missing" and not isinstance(item["input"], (dict, list)):
        message = f"{message} (got {item['input']!r})"
    return key_path(*location), message


def _pattern_hints() -> dict[str, str]:
    from infra import model

    dns_label = "a DNS-1123 label: lowercase letters, digits and '-', at most 63, starting and ending alphanumeric"
    hints = {
        model.DNS_LABEL: dns_label,
        model.LABEL_KEY: "a Kubernetes label key: an optional DNS prefix and '/', then at most "
        "63 of letters, digits, '-', '_', '.', starting and ending alphanumeric",
        r"^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$": "a DNS-1035 label (a Service name): lowercase letters, "
        "digits and '-', at most 63, starting with a letter",
        r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$": "a DNS-1123 subdomain: "
        "dot-separated DNS labels, "
        "e.g. gpu-1.home.arpa",
        r"^([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?$": "a Kubernetes label value: at most "
        "63 of letters, digits, '-', '_', "
        "'.', starting and ending alphanumeric",
        r"^[0-9]+g\.[0-9]+gb$": "a MIG profile such as 1g.5gb",
        r"^[0-9]{1,2}\.[0-9]$": "a compute capability such as 8.6",
        r"^1\.(3[1-9]|[4-9][0-9])$": 'a Kubernetes minor version 1.31 or newer, as a string, e.g. "1.33"',
        r"^[!-~]{1,253}$": "a kubeconfig context name (no spaces): one of `kubectl config get-contexts`",
        r"^[!-~]+$": "printable ASCII without spaces",
    }
    return {pattern: f"must be {text}" for pattern, text in hints.items()}


_PATTERN_HINTS = _pattern_hints()
_BOUNDS = {
    "greater_than": (">", "gt"),
    "greater_than_equal": (">=", "ge"),
    "less_than": ("<", "lt"),
    "less_than_equal": ("<=", "le"),
}


def _valid_keys(model: type[BaseModel], location: tuple[str | int, ...]) -> list[str]:
    """The camelCase keys a model accepts at `location` (walking nested models and lists)."""
    current: Any = model
    for part in location:
        if isinstance(part, int):
            continue
        fields = {(f.alias or name): f for name, f in current.model_fields.items()}
        field = fields.get(part)
        if field is None:
            return []
        current = _model_in(field.annotation)
        if current is None:
            return []
    return sorted(f.alias or name for name, f in current.model_fields.items())


def _description_at(location: tuple[str | int, ...]) -> str | None:
    """The description of the field at `location`, e.g. how to find a required value."""
    if not location or isinstance(location[-1], int):
        return None
    model: type[BaseModel] = StackConfig
    for part in location[:-1]:
        if isinstance(part, int):
            continue
        fields = {(f.alias or name): f for name, f in model.model_fields.items()}
        inner = _model_in(fields[part].annotation) if part in fields else None
        if inner is None:
            return None
        model = inner
    fields = {(f.alias or name): f for name, f in model.model_fields.items()}
    field = fields.get(location[-1])
    return field.description if field is not None else None


def _model_in(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()):
        if found := _model_in(arg):
            return found
    return None
