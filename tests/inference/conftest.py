"""Fixtures for the inference service: models made once per session by the real make-models code."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from inference_support import (
    CAT_NAMES,
    ENV_PREFIX,
    encode,
    free_port,
    photo_like,
    scripted_detector,
    serve_process,
    wait_until,
)

from inference.cli import main as cli_main


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("models")
    assert cli_main(["make-models", "--out", str(directory), "--cat-names", ",".join(CAT_NAMES)]) == 0
    scripted_detector(directory / "scripted_detector.onnx")
    return directory


@pytest.fixture(scope="session")
def jpeg_720p() -> bytes:
    return encode(photo_like(1280, 720))


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> Callable[..., None]:
    """Removes every CAT_WATCHER__ variable; returns a setter taking FIELD__PATH=value pairs."""
    for name in list(os.environ):
        if name.upper().startswith(ENV_PREFIX):
            monkeypatch.delenv(name)

    def set_env(**values: object) -> None:
        for key, value in values.items():
            monkeypatch.setenv(ENV_PREFIX + key, str(value))

    return set_env


@pytest.fixture
def served(model_dir: Path) -> Iterator[tuple[subprocess.Popen[bytes], int]]:
    """A running service on CPU with both models; stopped (SIGTERM) after the test."""
    port = free_port()
    process = serve_process(
        {
            f"{ENV_PREFIX}INFERENCE__DEVICE": "cpu",
            f"{ENV_PREFIX}INFERENCE__DETECTOR_MODEL_PATH": str(model_dir / "detector.onnx"),
            f"{ENV_PREFIX}INFERENCE__IDENTIFIER_MODEL_PATH": str(model_dir / "identifier.onnx"),
        },
        port,
    )

    def ready() -> bool:
        try:
            return httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200
        except httpx.HTTPError:
            return process.poll() is not None

    try:
        assert wait_until(ready, timeout=30) and process.poll() is None, (
            process.stderr.read().decode() if process.poll() is not None and process.stderr else "not ready"
        )
        yield process, port
    finally:
        if process.poll() is None:
            process.terminate()
            process.wait(timeout=15)
