"""The deployment contract module: import-light, and consistent with what the service does."""

from __future__ import annotations

import subprocess
import sys
from importlib.metadata import entry_points

from inference import contract
from inference.metrics import ServiceMetrics
from inference.settings import ServerSettings, env_name


def test_contract_imports_nothing_heavy() -> None:
    probe = (
        "import sys, inference.contract; print(sorted(m for m in ('onnxruntime', "
        "'numpy', 'onnx', 'starlette', 'uvicorn', 'pydantic', 'PIL') if m in sys.modules))"
    )
    completed = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert completed.stdout.strip() == "[]"


def test_command_is_the_installed_console_script() -> None:
    program, subcommand = contract.COMMAND
    (script,) = [entry for entry in entry_points(group="console_scripts") if entry.name == program]
    assert script.value == "inference.cli:main" and subcommand == "serve"


def test_environment_names_and_port_match_the_settings() -> None:
    assert env_name(("inference", "gpu_memory_limit")) == contract.GPU_MEMORY_LIMIT_ENV
    assert env_name(("inference", "device")) == contract.DEVICE_ENV
    assert contract.GPU_MEMORY_LIMIT_ENV.startswith(contract.ENV_PREFIX)
    assert ServerSettings().port == contract.DEFAULT_PORT


def test_metric_names_are_the_ones_exposed() -> None:
    exposed = {metric.name for metric in ServiceMetrics(0).registry.collect()}
    # prometheus_client names a counter family without its _total suffix.
    declared = {
        name.removesuffix("_total")
        for name in (
            contract.METRIC_REQUESTS_TOTAL,
            contract.METRIC_REQUEST_DURATION,
            contract.METRIC_INFERENCE_DURATION,
            contract.METRIC_DEVICE_INFO,
            contract.METRIC_DEGRADED,
            contract.METRIC_GPU_MEMORY_LIMIT,
            contract.METRIC_RUNS_IN_FLIGHT,
            contract.METRIC_REFUSED_TOTAL,
            contract.METRIC_PENDING_REQUESTS,
        )
    }
    assert exposed == declared
