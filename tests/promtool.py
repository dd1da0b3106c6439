"""Prometheus's own rule checker and unit tester (Debian's prometheus package), for alert rules."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest
import yaml

PROMTOOL = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(PROMTOOL is None, reason="promtool not installed (apt-get install prometheus)")


def check_rules(path: Path) -> None:
    """`promtool check rules`: the file loads as Prometheus would load it."""
    assert PROMTOOL is not None
    result = subprocess.run([PROMTOOL, "check", "rules", str(path)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def assert_alerts(
    directory: Path,
    rule_spec: Mapping[str, Any],
    series: Sequence[tuple[str, str]],
    alert_tests: Sequence[Mapping[str, Any]],
) -> None:
    """`promtool test rules`: `series` (selector, promtool values) sampled every minute, and
    each of `alert_tests` (eval_time, alertname, exp_alerts) as promtool evaluates it.

    Annotations are dropped first: promtool compares them too, and their templates are checked
    by `check_rules` on the rules as shipped.
    """
    assert PROMTOOL is not None
    spec = {**rule_spec, "groups": [dict(group) for group in rule_spec["groups"]]}
    for group in spec["groups"]:
        group["rules"] = [{k: v for k, v in rule.items() if k != "annotations"} for rule in group["rules"]]
    (directory / "rules.yaml").write_text(yaml.safe_dump(spec))
    check_rules(directory / "rules.yaml")
    tests = {
        "rule_files": ["rules.yaml"],
        "evaluation_interval": "1m",
        "tests": [
            {
                "interval": "1m",
                "input_series": [{"series": selector, "values": values} for selector, values in series],
                "alert_rule_test": list(alert_tests),
            }
        ],
    }
    (directory / "tests.yaml").write_text(yaml.safe_dump(tests))
    result = subprocess.run([PROMTOOL, "test", "rules", "tests.yaml"], cwd=directory, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
