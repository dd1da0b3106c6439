"""Property tests: no stack file and no value of any key ever ends in a traceback. Random YAML
documents go through `catwatcher-infra render`; random values for every key of the model go
through the program under mocks and through the pure path. Bounded: a few hundred examples."""

from __future__ import annotations

import json
import shutil
import typing
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from infra import cli
from infra.errors import ConfigError
from infra.model import StackConfig
from infra.offline import RenderError, run_program
from infra.plan import plan_rollout
from infra.presets import catalogue
from infra.stack_config import parse_stack_config
from tests.conftest import ROOT

SETTINGS = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture]
)

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False),
    st.text(max_size=20),
    st.sampled_from(
        [
            "on",
            "yes",
            "1.33",
            "2048m",
            "rtx-3060",
            "mps",
            "mig",
            "",
            " ",
            "２",
            "gpu-1.home.arpa",
            "registry.k8s.io/kubectl:v1.33.4",
            "1e20",
            "latest",
            "kube-system",
            "{secure: x}",
        ]
    ),
)
junk = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=8), inner, max_size=3)),
    max_leaves=8,
)


def _inner_model(annotation: typing.Any) -> tuple[type[BaseModel] | None, bool]:
    """(model, is a list of it) for a field annotation."""
    origin = typing.get_origin(annotation)
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation, False
    if origin is list:
        model, _ = _inner_model(typing.get_args(annotation)[0])
        return model, True
    for arg in typing.get_args(annotation):
        model, many = _inner_model(arg)
        if model:
            return model, many
    return None, False


def model_values(model: type[BaseModel], depth: int = 0) -> st.SearchStrategy[dict]:
    """A mapping with a random subset of the model's keys, each a nested mapping or random junk."""
    fields = {}
    for name, field in model.model_fields.items():
        inner, many = _inner_model(field.annotation)
        value = junk
        if inner is not None and depth < 4:
            nested = model_values(inner, depth + 1)
            value = st.one_of(st.lists(nested, max_size=2) if many else nested, junk)
        fields[field.alias or name] = value
    return st.fixed_dictionaries({}, optional=fields)


@SETTINGS
@given(model_values(StackConfig))
def test_random_values_for_every_key_never_raise_anything_but_a_config_error(values):
    try:
        plan_rollout(parse_stack_config(values), catalogue())
    except ConfigError as error:
        assert str(error) and all(line.startswith(("catwatcher:", "kubernetes:")) for line in str(error).splitlines())


@SETTINGS
@given(model_values(StackConfig))
def test_random_values_never_make_the_program_raise_anything_but_a_render_error(values):
    values = {**values, "cluster": values.get("cluster", {"kubeContext": "fuzz"})}
    flat = {f"catwatcher:{key}": json.dumps(value) for key, value in values.items()}
    try:
        run_program(ROOT, "fuzz", config=flat)
    except RenderError as error:
        assert str(error)


documents = st.one_of(
    junk,
    st.fixed_dictionaries(
        {
            "config": st.dictionaries(
                st.sampled_from(
                    [
                        "catwatcher:gpu",
                        "catwatcher:cluster",
                        "catwatcher:nodeGroups",
                        "catwatcher:app",
                        "catwatcher:monitoring",
                        "catwatcher:credentials",
                        "catwatcher:operator",
                        "kubernetes:context",
                        "catwatchr:gpu",
                        "gpu",
                        "a:b:c",
                    ]
                ),
                junk,
                max_size=5,
            )
        }
    ),
)


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("fuzz-project")
    (root / "stacks").mkdir()
    shutil.copy(ROOT / "Pulumi.yaml", root)
    return root


@SETTINGS
@given(
    document=documents,
    style=st.sampled_from([None, False, True]),
    noise=st.text(max_size=3),
    at=st.integers(min_value=0, max_value=400),
)
def test_random_yaml_documents_never_end_in_a_traceback(project, monkeypatch, capsys, document, style, noise, at):
    text = yaml.safe_dump(document, default_flow_style=style, allow_unicode=True)
    text = text[:at] + noise + text[at:]  # and sometimes a stray character breaks the syntax
    (project / "stacks" / "Pulumi.fuzz.yaml").write_text(text, encoding="utf-8")
    monkeypatch.chdir(project)
    out = project / "out"
    code = cli.main(["render", "fuzz", "--out", str(out)])
    err = capsys.readouterr().err
    assert code in (0, 1)
    assert "Traceback" not in err
    if code == 1:
        assert err.startswith("fuzz: ") and not out.exists()
    shutil.rmtree(out, ignore_errors=True)
