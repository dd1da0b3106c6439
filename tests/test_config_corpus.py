"""Our own corpus of stack files (tests/config_corpus.yaml, written by tests/make_config_corpus.py):
every class of issue 11, invalid and unusual-but-valid. Each goes through `catwatcher-infra render`
exactly as a user runs it: an invalid stack exits 1 naming its key, one problem per line, with no
traceback and nothing written; a valid one renders."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from infra import cli
from tests.conftest import ROOT

CORPUS = yaml.safe_load((Path(__file__).with_name("config_corpus.yaml")).read_text())
CLASSES = {
    "file",
    "types",
    "empty",
    "names",
    "quantity",
    "helm",
    "image",
    "kubectl",
    "mig",
    "contradiction",
    "stack-file",
    "credentials",
    "derived",
    "valid",
}
STACK = "corpus"


def stack_text(case: dict[str, Any]) -> str:
    if "text" in case:
        return case["text"]
    config = dict(case["config"])
    cluster = config.get("cluster", {})
    if isinstance(cluster, dict) and "kubeContext" not in cluster:
        config["cluster"] = {"kubeContext": "homelab", **cluster}
    if "gpu" not in config and "nodeGroups" not in config:
        config["gpu"] = {"preset": "rtx-3060"}
    # JSON is YAML 1.2 and reads the same everywhere (PyYAML would write `1e9` unquoted, a float in 1.2).
    return json.dumps(
        {"config": {f"catwatcher:{key}": value for key, value in config.items()}}, ensure_ascii=False, indent=2
    )


def render(tmp_path: Path, text: str, monkeypatch, capsys) -> tuple[int, str, Path]:
    project = tmp_path / "project"
    (project / "stacks").mkdir(parents=True)
    shutil.copy(ROOT / "Pulumi.yaml", project)
    (project / "stacks" / f"Pulumi.{STACK}.yaml").write_text(text, encoding="utf-8")
    out = tmp_path / "out"
    monkeypatch.chdir(project)
    code = cli.main(["render", STACK, "--out", str(out)])
    return code, capsys.readouterr().err, out


def test_the_corpus_covers_every_class():
    names = [case["name"] for case in CORPUS]
    assert len(names) == len(set(names)) >= 150
    assert {case["class"] for case in CORPUS} == CLASSES
    invalid = [case for case in CORPUS if not case.get("valid")]
    assert len(invalid) >= 100 and len(CORPUS) - len(invalid) >= 30
    for case in invalid:
        assert case["key"] and case["fragment"], case["name"]


@pytest.mark.parametrize("case", [c for c in CORPUS if not c.get("valid")], ids=lambda c: c["name"])
def test_an_invalid_stack_exits_1_naming_its_key(case, tmp_path, monkeypatch, capsys):
    code, err, out = render(tmp_path, stack_text(case), monkeypatch, capsys)
    assert code == 1, err
    assert "Traceback" not in err
    assert not out.exists(), "nothing is written for a refused stack"
    # One problem a line, each `<stack>: <key>: <what is wrong and what would be valid>`.
    lines = err.splitlines()
    assert lines and all(line.startswith(f"{STACK}: ") for line in lines), err
    key = case["key"]
    if case["class"] != "file" and not key.startswith("'"):
        assert any(line.startswith(f"{STACK}: {key}: ") for line in lines), f"{key} does not start a line of:\n{err}"
    else:
        assert key in err, err
    assert case["fragment"] in err, err


@pytest.mark.parametrize("case", [c for c in CORPUS if c.get("valid")], ids=lambda c: c["name"])
def test_an_unusual_but_valid_stack_renders(case, tmp_path, monkeypatch, capsys):
    code, err, out = render(tmp_path, stack_text(case), monkeypatch, capsys)
    assert code == 0, err
    assert (out / STACK).is_dir() and any((out / STACK).iterdir())
