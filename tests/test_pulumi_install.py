"""`pulumi install` does what the Python language host does: with `main: infra/` the program
directory is infra/, and the host runs `python -m pip install -r requirements.txt` there, in a
fresh virtualenv (pulumi/pulumi sdk/python/toolchain/pip.go). A missing file installs nothing."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

from infra.engine_config import read_project
from tests.conftest import ROOT

PROGRAM_DIR = ROOT / read_project(ROOT)["main"].rstrip("/")


def test_the_program_directory_holds_the_requirements_the_language_host_reads():
    assert (PROGRAM_DIR / "__main__.py").is_file()
    lines = [line.strip() for line in (PROGRAM_DIR / "requirements.txt").read_text().splitlines()]
    assert "-e .." in lines, "installs this project (and its dependencies) from the program directory"
    if (ROOT / "constraints.txt").is_file():
        assert "-c ../constraints.txt" in lines, "the versions the project was checked with"


@pytest.mark.install
def test_a_fresh_virtualenv_from_the_program_directory_imports_and_runs_the_program(tmp_path):
    """Slow (a real pip install into a new virtualenv; pip's cache makes reruns quicker):
    deselect with `-m "not install"` while iterating."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = venv / "bin" / "python"
    env = {key: value for key, value in os.environ.items() if key not in ("PYTHONPATH", "VIRTUAL_ENV")}
    install = subprocess.run(
        [str(python), "-m", "pip", "install", "-q", "-r", "requirements.txt"],
        cwd=PROGRAM_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert install.returncode == 0, install.stderr[-2000:]
    # Run from elsewhere, so nothing is imported from the working directory by accident.
    script = textwrap.dedent(f"""
        from pathlib import Path
        import pulumi, pulumi_kubernetes
        from infra.offline import run_program
        recording = run_program(Path({str(ROOT)!r}), "homelab-3060")
        print(len(recording.of_type("kubernetes:helm.sh/v3:Release")), len(recording.resources))
    """)
    run = subprocess.run(
        [str(python), "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300
    )
    assert run.returncode == 0, run.stderr[-2000:]
    releases, resources = map(int, run.stdout.split())
    assert releases >= 1 and resources > 10
