"""JSON schema of a stack file (stacks/Pulumi.<stack>.yaml), so editors can validate them."""

from __future__ import annotations

from typing import Any

from infra.errors import PROJECT
from infra.model import StackConfig

SCHEMA_FILE = "stacks/stack-config.schema.json"


def stack_file_schema() -> dict[str, Any]:
    """`config:` maps `catwatcher:<key>` to the matching part of StackConfig."""
    model = StackConfig.model_json_schema(by_alias=True, mode="validation")
    definitions = model.pop("$defs", {})
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
