"""Generated documentation and the stack-file JSON schema stay in sync with the code."""

from __future__ import annotations

import json

import jsonschema
import yaml

from infra.presets import markdown_table
from infra.schema import SCHEMA_FILE, stack_file_schema
from tests.conftest import ROOT


def test_readme_preset_table_is_generated_from_the_catalogue():
    assert markdown_table() in (ROOT / "README.md").read_text()


def test_exported_schema_is_current():
    assert json.loads((ROOT / SCHEMA_FILE).read_text()) == stack_file_schema()


def test_every_stack_file_validates_against_the_schema():
    schema = stack_file_schema()
    for path in sorted((ROOT / "stacks").glob("Pulumi.*.yaml")):
        jsonschema.validate(yaml.safe_load(path.read_text()), schema)


def test_schema_catches_a_typo_in_an_editor():
    document = {"config": {"catwatcher:gpu": {"preset": "rtx-3060", "replicsa": 4}}}
    errors = list(jsonschema.Draft202012Validator(stack_file_schema()).iter_errors(document))
    assert any("replicsa" in error.message for error in errors)
