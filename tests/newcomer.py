"""Helpers to run the real `catwatcher-infra` on a fresh copy of the project, as a new user would."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from tests.conftest import ROOT

GIT_IDENTITY = ["-c", "user.email=newcomer@example.com", "-c", "user.name=newcomer"]


def fresh_copy(target: Path) -> Path:
    """The project's files as a clone would have them (tracked or new, not ignored), committed
    once in a repository of their own, so git revisions resolve as in a user's clone."""
    listed = subprocess.run(
        ["git", "-C", str(ROOT), "ls-files", "-co", "--exclude-standard", "-z"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split("\0")
    for name in filter(None, listed):
        source = ROOT / name
        if source.is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name)
    subprocess.run(["git", "init", "-q", str(target)], check=True)
    subprocess.run(["git", "-C", str(target), "add", "-A"], check=True)
    subprocess.run(["git", "-C", str(target), *GIT_IDENTITY, "commit", "-qm", "fresh clone"], check=True)
    return target


def cli(
    *args: str, project: Path, cwd: Path | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess:
    """`catwatcher-infra ARGS` with `project`'s code, run from `cwd` (default: the project)."""
    environment = {**os.environ, "PYTHONPATH": str(project), **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "infra.cli", *args],
        cwd=cwd or project,
        env=environment,
        capture_output=True,
        text=True,
        timeout=600,
    )


def assert_clean_failure(
    result: subprocess.CompletedProcess, code: int, *fragments: str, lines: int | None = 1
) -> list[str]:
    """Exit `code`, no traceback, `lines` lines on stderr (None: any number), each fragment said."""
    stderr = result.stderr
    assert result.returncode == code, f"exit {result.returncode}, wanted {code}:\n{stderr}"
    assert "Traceback" not in stderr and "Exception ignored" not in stderr, stderr
    said = stderr.strip().splitlines()
    if lines is not None:
        assert len(said) == lines, f"wanted {lines} line(s):\n{stderr}"
    for fragment in fragments:
        assert fragment in stderr, f"{fragment!r} not in:\n{stderr}"
    return said
