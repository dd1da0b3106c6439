"""JSON schema of a stack file (stacks/Pulumi.<stack>.yaml), so editors can validate them."""

from __future__ import annotations

from typing import Any

from infra.custom_gpu import CUSTOM, REQUIRED_KEYS
from infra.errors import PROJECT
from infra.model import StackConfig
from infra.presets import catalogue

SCHEMA_FILE = "stacks/stack-config.schema.json"


SECURE_VALUE = {
    "type": "object",
    "properties": {"secure": {"type": "string"}},
    "required": ["secure"],
    "additionalProperties": False,
}


def _accept_secure_values(node: Any) -> Any:
    """Secret fields appear in stack files encrypted, as `{secure: <ciphertext>}`."""
    if isinstance(node, dict):
        node = {key: _accept_secure_values(value) for key, value in node.items()}
        if node.get("format") == "password":
            return {"anyOf": [node, SECURE_VALUE]}
        return node
    if isinstance(node, list):
        return [_accept_secure_values(item) for item in node]
    return node


def _name_the_presets(gpu_spec: dict[str, Any]) -> dict[str, Any]:
    """The model keeps `preset` a string (the plan names the valid ones in its error); editors get
    the list itself, and `custom` makes the keys that describe the GPU required."""
    properties = dict(gpu_spec["properties"])
    properties["preset"] = {**properties["preset"], "enum": [*catalogue(), CUSTOM]}
    return {
        **gpu_spec,
        "properties": properties,
        "if": {"properties": {"preset": {"const": CUSTOM}}, "required": ["preset"]},
        "then": {"required": [key for _, key, _ in REQUIRED_KEYS]},
    }


def stack_file_schema() -> dict[str, Any]:
    """`config:` maps `catwatcher:<key>` to the matching part of StackConfig."""
    model = _accept_secure_values(StackConfig.model_json_schema(by_alias=True, mode="validation"))
    definitions = model.pop("$defs", {})
    definitions["GpuSpec"] = _name_the_presets(definitions["GpuSpec"])
    properties = {f"{PROJECT}:{key}": value for key, value in model["properties"].items()}
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "Cat Watcher GPU slicing stack file",
        "type": "object",
        "properties": {
            "config": {
                "type": "object",
                "properties": properties,
                # Other namespaces (kubernetes:, pulumi:) are the engine's business.
                "patternProperties": {f"^(?!{PROJECT}:)": {}},
                "additionalProperties": False,
            },
            "secretsprovider": {"type": "string"},
            "encryptedkey": {"type": "string"},
            "encryptionsalt": {"type": "string"},
        },
        "$defs": definitions,
    }
