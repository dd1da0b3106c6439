"""The engine's config load and merge (infra/engine_config.py), checked with the cases of the
engine's own tests (pulumi/pulumi pkg/workspace/config_project_test.go) and go-yaml v3's YAML
rules, then applied to this project's Pulumi.yaml and every shipped stack."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import jsonschema
import pytest

from infra import engine_config
from infra.engine_config import EngineError, YamlError, merge_config, parse_yaml, read_stack_file, validate_project
from infra.errors import ConfigError
from infra.model import StackConfig
from infra.offline import RenderError, available_stacks, load_stack_config, run_program
from infra.stack_config import decode_config, parse_stack_config
from tests.conftest import REFERENCE, ROOT

STACKS = available_stacks(ROOT)


def project_from(text: str) -> dict:
    return parse_yaml(textwrap.dedent(text), "Pulumi.yaml")


def merged(tmp_path: Path, project_yaml: str, stack_yaml: str, stack: str = "dev") -> dict[str, str]:
    project = project_from(project_yaml)
    path = tmp_path / f"Pulumi.{stack}.yaml"
    path.write_text(textwrap.dedent(stack_yaml))
    values = merge_config(stack, project, read_stack_file(path, project["name"]).config)
    return {key: value.text for key, value in values.items()}


def refused(tmp_path: Path, project_yaml: str, stack_yaml: str) -> str:
    with pytest.raises(EngineError) as caught:
        merged(tmp_path, project_yaml, stack_yaml)
    return str(caught.value)


# --- the engine's own cases (config_project_test.go) -----------------------------------------


def test_stack_config_is_inherited_from_project_config(tmp_path):
    values = merged(
        tmp_path,
        "name: test\nruntime: dotnet\nconfig:\n  instanceSize: t3.micro\n  instanceCount: 20\n  protect: true\n",
        "config:\n  test:instanceSize: t4.large\n",
    )
    assert values == {"test:instanceSize": "t4.large", "test:instanceCount": "20", "test:protect": "true"}


def test_namespaced_config_values_are_inherited(tmp_path):
    values = merged(
        tmp_path,
        "name: test\nruntime: dotnet\nconfig:\n  aws:region: us-west-1\n"
        '  pulumi:disable-default-providers: ["*"]\n  instanceSize: t3.micro\n',
        "config:\n  test:instanceSize: t4.large\n",
    )
    assert values["aws:region"] == "us-west-1"
    assert values["pulumi:disable-default-providers"] == '["*"]'
    assert json.loads(values["pulumi:disable-default-providers"]) == ["*"]
    assert len(values) == 3


def test_stack_keys_without_a_namespace_belong_to_the_project(tmp_path):
    values = merged(
        tmp_path,
        "name: test\nruntime: dotnet\nconfig:\n  aws:region: us-west-1\n  instanceSize: t3.micro\n",
        "config:\n  instanceSize: t4.large\n",
    )
    assert values == {"test:instanceSize": "t4.large", "aws:region": "us-west-1"}


def test_untyped_project_values_are_not_validated(tmp_path):
    values = merged(
        tmp_path,
        "name: test\nruntime: dotnet\nconfig:\n  instanceSize: t3.micro\n  aws:region: us-west-1\n",
        "config:\n  instanceSize: 9999\n  aws:region: 42\n",
    )
    assert values == {"test:instanceSize": "9999", "aws:region": "42"}


def test_only_default_or_only_value(tmp_path):
    values = merged(
        tmp_path,
        "name: test\nruntime: dotnet\nconfig:\n  instanceSize:\n"
        "    default: t3.micro\n  region:\n    value: us-west-1\n",
        "config:\n  aws:answer: 42\n",
    )
    assert values == {"test:instanceSize": "t3.micro", "test:region": "us-west-1", "aws:answer": "42"}


def test_undeclared_stack_values_pass_through(tmp_path):
    values = merged(
        tmp_path, "name: test\nruntime: dotnet\nconfig:\n  createVpc: true\n", "config:\n  instanceSize: 42\n"
    )
    assert values == {"test:instanceSize": "42", "test:createVpc": "true"}


def test_object_values_reach_the_stack_as_json(tmp_path):
    values = merged(
        tmp_path,
        "name: test\nruntime: dotnet\nconfig:\n  instanceSize:\n    value:\n"
        "      hello: world\n  aws:config:\n    value:\n      region: us-west-1\n",
        "config:\n  aws:whatever: 42\n",
    )
    assert values == {
        "test:instanceSize": '{"hello":"world"}',
        "aws:config": '{"region":"us-west-1"}',
        "aws:whatever": "42",
    }


def test_a_stack_value_of_the_wrong_type_is_refused(tmp_path):
    message = refused(
        tmp_path,
        "name: test\nruntime: dotnet\nconfig:\n  values:\n    type: array\n"
        "    items:\n      type: string\n    default: [value]\n",
        "config:\n  test:values: someValue\n",
    )
    assert message == "Stack 'dev' with configuration key 'values' must be of type 'array<string>'"


def test_integer_type_is_validated(tmp_path):
    project = "name: test\nruntime: dotnet\nconfig:\n  importantNumber:\n    type: integer\n"
    assert merged(tmp_path, project, "config:\n  test:importantNumber: 20\n") == {"test:importantNumber": "20"}
    assert refused(tmp_path, project, "config:\n  test:importantNumber: hello\n") == (
        "Stack 'dev' with configuration key 'importantNumber' must be of type 'integer'"
    )


@pytest.mark.parametrize(
    ("declared", "message"),
    [
        (
            "  values:\n    type: array\n    items:\n      type: string\n",
            "Stack 'dev' is missing configuration value 'values'",
        ),
        (
            "  another:\n    type: string\n  values:\n    type: array\n    items:\n      type: string\n",
            "Stack 'dev' is missing configuration values 'another' and 'values'",
        ),
        (
            "  hello:\n    type: integer\n  values:\n    type: array\n"
            "    items:\n      type: string\n  world:\n    type: string\n",
            "Stack 'dev' is missing configuration values 'hello', 'values' and 'world'",
        ),
    ],
)
def test_declared_keys_without_default_or_value_are_required(tmp_path, declared, message):
    assert refused(tmp_path, "name: test\nruntime: dotnet\nconfig:\n" + declared, "") == message


def test_no_project_config_accepts_any_stack_values(tmp_path):
    assert (
        len(merged(tmp_path, "name: test\nruntime: dotnet\n", "config:\n  hello: 21\n  world: 42\n  another: 42\n"))
        == 3
    )


def test_a_secret_key_must_be_encrypted(tmp_path):
    project = "name: test\nruntime: dotnet\nconfig:\n  importantNumber:\n    type: integer\n    secret: true\n"
    assert merged(tmp_path, project, "config:\n  test:importantNumber:\n    secure: MjA=\n")
    assert refused(tmp_path, project, "config:\n  test:importantNumber: 20\n") == (
        "Stack 'dev' with configuration key 'importantNumber' must be encrypted as it's secret"
    )


def test_a_uint64_keeps_its_text(tmp_path):
    assert merged(
        tmp_path, "name: test\nruntime: dotnet\n", "config:\n  test:instanceSize: 18446744073709551615\n"
    ) == {"test:instanceSize": "18446744073709551615"}


# --- Project.Validate() ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("config", "message"),
    [
        (
            "  nodeGroups:\n    type: array\n",
            "The configuration key 'nodeGroups' declares an array but "
            "does not specify the underlying type via the 'items' attribute",
        ),
        (
            "  size:\n    default: a\n    value: b\n",
            "project config 'size' cannot have both a 'default' and 'value' attribute",
        ),
        (
            "  count:\n    type: integer\n    default: many\n",
            "The default value specified for configuration key 'count' is not of the expected type 'integer'",
        ),
        (
            "  kubernetes:context:\n    type: string\n    value: x\n",
            "Configuration key 'kubernetes:context' is not namespaced by the project and should not define a type",
        ),
        (
            "  kubernetes:context:\n    default: x\n",
            "Configuration key 'kubernetes:context' is not namespaced by the project and should "
            "not define a default value. Did you mean to use the 'value' attribute instead of 'default'?",
        ),
        (
            "  kubernetes:context:\n    description: the cluster\n",
            "Configuration key 'kubernetes:context' is namespaced and must provide an attribute 'value'",
        ),
    ],
)
def test_project_validate_rules(config, message):
    with pytest.raises(EngineError) as caught:
        validate_project(project_from("name: test\nruntime: python\nconfig:\n" + config))
    assert str(caught.value) == message


def test_object_typed_and_nested_array_defaults_are_accepted():
    validate_project(
        project_from(
            "name: test\nruntime: python\nconfig:\n  a:\n    type: object\n    default: {}\n"
            "  b:\n    type: array\n    items:\n      type: array\n"
            "      items:\n        type: integer\n    default: [[1, 2]]\n"
        )
    )


# --- YAML as go-yaml v3 reads it -------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("on", "on"),
        ("yes", "yes"),
        ("no", "no"),
        ("off", "off"),
        ("y", "y"),  # YAML 1.1 booleans: strings in 1.2
        ("true", True),
        ("True", True),
        ("FALSE", False),
        ("~", None),
        ("null", None),
        ("20", 20),
        ("+5", 5),
        ("0x1F", 31),
        ("0o17", 15),
        ("0755", 493),
        ("1_000", 1000),
        ("1.5", 1.5),
        ("1e20", 1e20),
        (".5", 0.5),
        ("08", 8.0),
        ("2024-01-01", "2024-01-01"),  # a date decoded into interface{} stays a string
        ("1:30", "1:30"),  # no YAML 1.1 sexagesimal numbers
        ("18446744073709551615", 18446744073709551615),
        ("1" + "0" * 30, 1e30),
        ("1.33", 1.33),
        ('"1.33"', "1.33"),
    ],
)
def test_scalars_resolve_as_in_yaml_1_2(text, value):
    assert parse_yaml(f"key: {text}\n", "t.yaml") == {"key": value}


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("a: 1\na: 2\n", 'mapping key "a" already defined at line 1'),
        (
            "config:\n  catwatcher:gpu: {preset: x}\n  catwatcher:gpu: {preset: y}\n",
            'mapping key "catwatcher:gpu" already defined at line 2',
        ),
        ("a: !!python/object/apply:os.system [ls]\n", "YAML tag !!python/object/apply:os.system is not allowed"),
        ("a: !!set {x: null}\n", "YAML tag !!set is not allowed"),
        ("a: &x [*x]\n", "refers to the node that contains it"),
        ("a:\n\tb: 1\n", "t.yaml:2:1"),
        ("a: 1\x00\n", "t.yaml:1:5: character #x0000"),
        ("? [1, 2]\n: x\n", "is not a string"),
        ("1: x\n", "mapping key '1' is not a string"),
        ("a: !!int abc\n", "cannot decode `abc` as a !!int"),
    ],
)
def test_yaml_the_engine_refuses_is_refused_with_file_and_line(text, fragment):
    with pytest.raises(YamlError) as caught:
        parse_yaml(text, "t.yaml")
    assert fragment in str(caught.value)
    assert "\n" not in str(caught.value)


def test_alias_bombs_are_bounded():
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 8)]
    with pytest.raises(YamlError, match="excessive aliasing"):
        parse_yaml("\n".join(lines) + "\n", "t.yaml")


def test_top_level_scalars_keep_their_text_and_structures_become_go_json(tmp_path):
    path = tmp_path / "Pulumi.dev.yaml"
    path.write_text(
        "config:\n  test:a: on\n  test:b: 0x10\n  test:c: True\n"
        "  test:d:\n    n: 1e20\n    f: 2.0\n    s: 'on'\n  test:e:\n"
    )
    values = read_stack_file(path, "test").config
    assert {key: value.text for key, value in values.items()} == {
        "test:a": "on",
        "test:b": "0x10",
        "test:c": "True",
        "test:d": '{"f":2,"n":100000000000000000000,"s":"on"}',
        "test:e": "",
    }


def test_a_boolean_typed_key_needs_lowercase_true_as_written(tmp_path):
    project = "name: test\nruntime: python\nconfig:\n  flag:\n    type: boolean\n"
    assert merged(tmp_path, project, "config:\n  test:flag: true\n") == {"test:flag": "true"}
    assert "must be of type 'boolean'" in refused(tmp_path, project, "config:\n  test:flag: on\n")


# --- this project ----------------------------------------------------------------------------


def project_yaml() -> dict:
    return engine_config.read_project(ROOT)


def test_pulumi_yaml_is_valid_against_the_engines_schema_or_our_derived_rules():
    project = project_yaml()
    if REFERENCE.is_dir():
        schema = json.loads((REFERENCE / "pulumi" / "project.schema.json").read_text())
        jsonschema.validate(project, schema)
    assert engine_config.project_shape_problems(project) == []
    validate_project(project)


def test_our_derived_rules_agree_with_the_engines_schema(reference):
    schema = json.loads((reference / "pulumi" / "project.schema.json").read_text())
    broken = [
        {"name": "x", "runtime": "python", "config": {"a": {"type": "map"}}},
        {"name": "x", "runtime": "python", "config": {"a": {"type": "object", "requried": True}}},
        {"name": "x", "runtime": "python", "config": {"a": {"nested": "object"}}},
        {"name": "x", "runtime": "python", "config": {"a": {"type": "array", "items": {"type": "array"}}}},
    ]
    for project in broken:
        assert engine_config.project_shape_problems(project), project
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(project, schema)


def test_every_key_has_a_description_and_required_keys_match_the_model():
    declarations = project_yaml()["config"]
    ours = {key: value for key, value in declarations.items() if ":" not in key}
    assert all(value.get("description") for value in ours.values())
    required_by_engine = {key for key, value in ours.items() if "default" not in value and "value" not in value}
    required_by_model = {field.alias for field in StackConfig.model_fields.values() if field.is_required()}
    assert required_by_engine == required_by_model == {"cluster"}
    assert set(ours) == {field.alias for field in StackConfig.model_fields.values()}


def test_every_declared_default_means_exactly_not_set():
    base = {"cluster": {"kubeContext": "ctx"}, "gpu": {"preset": "rtx-3060"}}
    for key, declaration in project_yaml()["config"].items():
        if "default" not in declaration or key == "gpu":
            continue
        assert parse_stack_config({**base, key: declaration["default"]}) == parse_stack_config(base), key
    groups = {
        "cluster": {"kubeContext": "ctx"},
        "nodeGroups": [{"name": "a", "nodes": ["n1"], "gpu": {"preset": "rtx-3060"}}],
    }
    assert parse_stack_config({**groups, "gpu": project_yaml()["config"]["gpu"]["default"]}) == parse_stack_config(
        groups
    )


@pytest.mark.parametrize("stack", STACKS)
def test_every_stack_loads_and_merges_as_under_the_engine(stack):
    values = engine_config.load_stack_config(ROOT, stack)
    assert values["pulumi:disable-default-providers"].text == '["kubernetes"]'
    decoded = decode_config({key: value.text for key, value in values.items()})
    assert decoded["cluster"]["kubeContext"], "every stack names its cluster"
    flat, _ = load_stack_config(ROOT, stack)
    assert set(flat) == set(values)


def make_project(tmp_path: Path, pulumi_yaml: str | None = None, stacks: dict[str, str] | None = None) -> Path:
    (tmp_path / "stacks").mkdir()
    (tmp_path / "Pulumi.yaml").write_text(
        pulumi_yaml if pulumi_yaml is not None else (ROOT / "Pulumi.yaml").read_text()
    )
    for name, text in (stacks or {}).items():
        (tmp_path / "stacks" / f"Pulumi.{name}.yaml").write_text(textwrap.dedent(text))
    return tmp_path


def test_a_pulumi_yaml_the_engine_cannot_load_stops_the_render(tmp_path):
    text = (ROOT / "Pulumi.yaml").read_text().replace("    items:\n      type: object\n", "")
    root = make_project(tmp_path, text, {"s": (ROOT / "stacks" / "Pulumi.homelab-3060.yaml").read_text()})
    with pytest.raises(RenderError, match="'nodeGroups' declares an array but does not specify"):
        run_program(root, "s")


def test_a_stack_without_a_cluster_is_refused_naming_the_key_and_how_to_find_it(tmp_path):
    root = make_project(tmp_path, stacks={"s": "config:\n  catwatcher:gpu:\n    preset: rtx-3060\n"})
    with pytest.raises(RenderError) as caught:
        run_program(root, "s")
    message = str(caught.value)
    assert message.startswith("Stack 's' is missing configuration value 'cluster'")
    assert "kubeContext" in message and "kubectl config get-contexts" in message


def test_a_cluster_without_a_kube_context_is_refused_naming_it(tmp_path):
    root = make_project(
        tmp_path,
        stacks={
            "s": "config:\n  catwatcher:cluster:\n    distribution: k3s\n  catwatcher:gpu:\n    preset: rtx-3060\n"
        },
    )
    with pytest.raises(RenderError) as caught:
        run_program(root, "s")
    assert "catwatcher:cluster.kubeContext: Field required" in str(caught.value)
    assert "kubectl config get-contexts" in str(caught.value)


def test_the_provider_is_built_from_the_kube_context_alone(tmp_path):
    root = make_project(
        tmp_path,
        stacks={
            "s": """\
        config:
          catwatcher:cluster:
            kubeContext: homelab-admin
          catwatcher:gpu:
            preset: rtx-3060
        """
        },
    )
    recording = run_program(root, "s")
    (provider,) = [r for r in recording.resources if r.type == "pulumi:providers:kubernetes"]
    assert provider.inputs["context"] == "homelab-admin"
    assert not {"kubeconfig", "cluster"} & set(provider.inputs)


def test_kubernetes_context_in_a_stack_is_refused_because_the_provider_ignores_it(tmp_path):
    root = make_project(
        tmp_path,
        stacks={
            "s": "config:\n  kubernetes:context: ambient\n  catwatcher:cluster:\n"
            "    kubeContext: c\n  catwatcher:gpu:\n    preset: rtx-3060\n"
        },
    )
    with pytest.raises(RenderError, match="^kubernetes:context: ignored: .*catwatcher:cluster.kubeContext"):
        run_program(root, "s")


def test_a_wrongly_typed_stack_value_stops_the_render_with_the_engines_words(tmp_path):
    root = make_project(
        tmp_path, stacks={"s": "config:\n  catwatcher:cluster:\n    kubeContext: c\n  catwatcher:gpu: rtx-3060\n"}
    )
    with pytest.raises(RenderError, match="^Stack 's' with configuration key 'gpu' must be of type 'object'$"):
        run_program(root, "s")


def test_a_duplicate_key_in_a_stack_file_stops_the_render(tmp_path):
    root = make_project(
        tmp_path,
        stacks={
            "s": "config:\n  catwatcher:cluster:\n    kubeContext: a\n"
            "    kubeContext: b\n  catwatcher:gpu:\n    preset: rtx-3060\n"
        },
    )
    with pytest.raises(RenderError, match='Pulumi.s.yaml:4:5: mapping key "kubeContext" already defined at line 3'):
        run_program(root, "s")


def test_yaml_1_1_booleans_reach_the_program_as_strings(tmp_path):
    root = make_project(
        tmp_path,
        stacks={
            "s": "config:\n  catwatcher:cluster:\n    kubeContext: c\n  catwatcher:gpu:\n"
            "    preset: rtx-3060\n  catwatcher:monitoring:\n    enabled: off\n"
        },
    )
    with pytest.raises(RenderError) as caught:
        run_program(root, "s")
    assert "catwatcher:monitoring.enabled" in str(caught.value) and "'off'" in str(caught.value)


def test_the_program_refuses_a_config_the_model_refuses():
    with pytest.raises(ConfigError):
        parse_stack_config({"gpu": {"preset": "rtx-3060"}})
