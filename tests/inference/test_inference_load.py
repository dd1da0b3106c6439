"""Short run of tests/bench/load_service.py: concurrent clients, no 5xx, memory stays flat."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

LOAD_SCRIPT = Path(__file__).resolve().parents[1] / "bench" / "load_service.py"


def test_short_load_has_no_server_errors_and_flat_memory() -> None:
    # The image sets MALLOC_ARENA_MAX=2; mirror it so memory behaves as deployed.
    env = {**os.environ, "MALLOC_ARENA_MAX": "2"}
    completed = subprocess.run(
        [sys.executable, str(LOAD_SCRIPT), "--clients", "8", "--seconds", "5", "--warmup", "3", "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr[-2000:]
    report = json.loads(completed.stdout.strip().splitlines()[-1])
    assert report["server_errors"] == 0, report
    assert report["statuses"].get("200", 0) > 0 and set(report["statuses"]) <= {"200", "422"}, report
    assert report["rss_growth_percent"] < 10, report
