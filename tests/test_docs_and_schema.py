"""Generated documentation and the stack-file JSON schema stay in sync with the code."""

from __future__ import annotations

import fnmatch
import json
import re

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


def test_schema_rejects_a_preset_typo_and_lists_the_presets():
    from infra.presets import catalogue

    schema = stack_file_schema()
    assert schema["$defs"]["GpuSpec"]["properties"]["preset"]["enum"] == [*catalogue(), "custom"]
    validator = jsonschema.Draft202012Validator(schema)
    typo = {"config": {"catwatcher:gpu": {"preset": "rtx-306"}}}
    assert any("rtx-306" in error.message for error in validator.iter_errors(typo))
    listed = {"config": {"catwatcher:nodeGroups": [{"name": "a", "nodes": ["n"], "gpu": {"preset": "rtx-3060"}}]}}
    assert not list(validator.iter_errors(listed))


def test_schema_requires_the_gpu_description_with_a_custom_preset():
    validator = jsonschema.Draft202012Validator(stack_file_schema())
    incomplete = {"config": {"catwatcher:gpu": {"preset": "custom", "displayName": "RTX 4070"}}}
    # `gpu` is anyOf [GpuSpec, null]: GpuSpec's own complaints are in each error's context.
    said = {cause.message for error in validator.iter_errors(incomplete) for cause in error.context}
    assert {"'vramMb' is a required property", "'computeCapability' is a required property"} <= said
    assert "'displayName' is a required property" not in said
    complete = {
        "config": {
            "catwatcher:gpu": {
                "preset": "custom",
                "displayName": "RTX 4070",
                "vramMb": 12282,
                "computeCapability": "8.9",
            }
        }
    }
    assert not list(validator.iter_errors(complete))


# yaml-language-server (redhat-developer, src/languageservice/services/modelineUtil.ts): a comment
# line matching this is a modeline, `$schema=` (or `$schema: `) names the schema, and a relative
# path resolves against the stack file's own folder (yamlSchemaService.getSchemaForResource).
MODELINE = re.compile(r"^#\s+(?:yaml-language-server\s*:|\$schema:)")
MODELINE_SCHEMA = re.compile(r"\$schema(?:=|:\s*)(\S+)")


def test_every_stack_file_names_the_schema_for_editors():
    schema = (ROOT / SCHEMA_FILE).resolve()
    for path in sorted((ROOT / "stacks").glob("Pulumi.*.yaml")):
        modelines = [line for line in path.read_text().splitlines() if MODELINE.match(line)]
        assert len(modelines) == 1, f"{path.name}: no yaml-language-server modeline"
        target = MODELINE_SCHEMA.search(modelines[0]).group(1)
        assert (path.parent / target).resolve() == schema, f"{path.name}: $schema={target} is not {SCHEMA_FILE}"


def test_vscode_settings_map_every_stack_file_to_the_schema():
    # VS Code's YAML extension: yaml.schemas maps a schema (path relative to the workspace) to globs.
    settings = json.loads((ROOT / ".vscode" / "settings.json").read_text())
    mapping = settings["yaml.schemas"]
    assert [(ROOT / schema).resolve() for schema in mapping] == [(ROOT / SCHEMA_FILE).resolve()]
    (glob,) = mapping.values()
    for path in sorted((ROOT / "stacks").glob("Pulumi.*.yaml")):
        assert fnmatch.fnmatch(str(path.relative_to(ROOT)), glob), path
