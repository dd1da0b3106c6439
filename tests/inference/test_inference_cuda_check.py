"""CUDA is checked before a CUDA session is created: one plain line, no onnxruntime error lines.

This machine has onnxruntime-gpu (CUDA listed as available) but no NVIDIA driver or CUDA
libraries, which is exactly the laptop case.
"""

from __future__ import annotations

import logging
from pathlib import Path

import httpx
import onnxruntime as ort
import pytest
from inference_support import ENV_PREFIX, free_port, serve_process, wait_until

from inference.runtime import CPU_PROVIDER, CUDA_PROVIDER, DeviceStatus, ModelRuntime, cuda_unavailable_reason
from inference.settings import InferenceSettings

ORT_LOG_MARKERS = ("[E:onnxruntime", "[W:onnxruntime", "Failed to load", "ONNXRuntimeError", "Traceback")

REASON = cuda_unavailable_reason()
needs_no_cuda = pytest.mark.skipif(REASON is None, reason="CUDA is usable on this machine")


@needs_no_cuda
def test_the_check_names_what_is_missing() -> None:
    assert CUDA_PROVIDER in ort.get_available_providers()
    assert REASON is not None and ("libcuda.so.1" in REASON or "CUDA" in REASON or "GPU" in REASON)
    assert "\n" not in REASON


@needs_no_cuda
@pytest.mark.parametrize(("device", "degraded"), [("auto", False), ("cuda", True)])
def test_unusable_cuda_gives_one_plain_line_and_degraded_follows_the_setting(
    device: str, degraded: bool, model_dir: Path, caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]
) -> None:
    statuses: list[DeviceStatus] = []
    with caplog.at_level(logging.INFO, logger="inference.runtime"):
        runtime = ModelRuntime(InferenceSettings(device=device), on_status_change=statuses.append)  # type: ignore[arg-type]
        runtime.load("detector", (model_dir / "detector.onnx").read_bytes())
    messages = [record.getMessage() for record in caplog.records]
    assert messages == [f"CUDA unavailable: {REASON}; running on CPU"]
    assert caplog.records[0].levelno == (logging.WARNING if degraded else logging.INFO)
    assert runtime.status.device == "cpu" and runtime.status.degraded is degraded
    assert (runtime.status.reason is not None) is degraded
    assert statuses == [runtime.status]  # never "cuda" for a moment
    assert runtime.session("detector").get_providers() == [CPU_PROVIDER]
    captured = capfd.readouterr()
    for marker in ORT_LOG_MARKERS:
        assert marker not in captured.err + captured.out


@needs_no_cuda
def test_serve_with_device_auto_prints_no_onnxruntime_error_line(model_dir: Path) -> None:
    port = free_port()
    process = serve_process({f"{ENV_PREFIX}INFERENCE__DETECTOR_MODEL_PATH": str(model_dir / "detector.onnx")}, port)
    try:

        def ready() -> bool:
            try:
                return httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200
            except httpx.HTTPError:
                return process.poll() is not None

        assert wait_until(ready, timeout=40) and process.poll() is None
        health = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=5).json()
        assert health["device"] == "cpu" and health["degraded"] is False
    finally:
        process.terminate()
        _, stderr = process.communicate(timeout=15)
    log = stderr.decode(errors="replace")
    assert log.count("CUDA unavailable: ") == 1 and "; running on CPU" in log
    for marker in ORT_LOG_MARKERS:
        assert marker not in log, log
