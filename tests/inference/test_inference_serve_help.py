"""`serve --help` lists every setting with its variable name and default; make-models output is ignored by git."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from inference.settings import Settings, known_variables

ROOT = Path(__file__).resolve().parents[2]


def test_serve_help_lists_every_variable_with_its_default() -> None:
    completed = subprocess.run(
        [sys.executable, "-c", "import sys; from inference.cli import main; sys.exit(main(['serve', '--help']))"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert completed.returncode == 0 and not completed.stderr
    lines = {
        line.split()[0]: line for line in completed.stdout.splitlines() if line.strip().startswith("CAT_WATCHER__")
    }
    assert set(lines) == known_variables()
    assert "default auto (one of auto, cuda, cpu)" in lines["CAT_WATCHER__INFERENCE__DEVICE"]
    assert lines["CAT_WATCHER__SERVER__PORT"].endswith(f"default {Settings().server.port}")
    assert lines["CAT_WATCHER__SERVER__BODY_TIMEOUT"].endswith(f"default {Settings().server.body_timeout}")
    assert lines["CAT_WATCHER__INFERENCE__IDENTIFIER_MODEL_PATH"].endswith("default unset")
    assert lines["CAT_WATCHER__SERVER__ACCESS_LOG"].endswith("default false")


@pytest.mark.skipif(not (ROOT / ".git").exists(), reason="not a git checkout")
def test_models_from_make_models_are_git_ignored() -> None:
    completed = subprocess.run(["git", "check-ignore", "-q", "models/detector.onnx"], cwd=ROOT, timeout=30, check=False)
    assert completed.returncode == 0, "models/ (written by make-models --out ./models) is not ignored"
