"""Session construction and the CPU fallback, with the real onnxruntime-gpu and with fakes."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
from inference_support import OOM_MESSAGE, FakeCudaFactory

from inference.runtime import (
    CPU_PROVIDER,
    CUDA_PROVIDER,
    DeviceStatus,
    ModelRuntime,
    Provider,
    Session,
    create_session,
    cuda_provider_options,
    execution_providers,
    is_gpu_failure,
)
from inference.settings import Device, InferenceSettings


def test_cuda_options_convert_mebibytes_to_bytes_with_memory_safe_defaults() -> None:
    options = cuda_provider_options(InferenceSettings(gpu_memory_limit=2048, device_id=1))
    assert options == {
        "device_id": "1",
        "gpu_mem_limit": "2147483648",
        "arena_extend_strategy": "kSameAsRequested",
        "cudnn_conv_algo_search": "HEURISTIC",
    }


def test_cuda_options_leave_the_arena_unbounded_without_a_limit() -> None:
    options = cuda_provider_options(
        InferenceSettings(arena_extend_strategy="kNextPowerOfTwo", cudnn_conv_algo_search="EXHAUSTIVE")
    )
    assert "gpu_mem_limit" not in options
    assert (options["arena_extend_strategy"], options["cudnn_conv_algo_search"]) == ("kNextPowerOfTwo", "EXHAUSTIVE")


@pytest.mark.parametrize(
    ("device", "available", "expected"),
    [
        ("cpu", [CUDA_PROVIDER, CPU_PROVIDER], [CPU_PROVIDER]),
        ("auto", [CPU_PROVIDER], [CPU_PROVIDER]),
        ("auto", [CUDA_PROVIDER, CPU_PROVIDER], [CUDA_PROVIDER, CPU_PROVIDER]),
        ("cuda", [CPU_PROVIDER], [CUDA_PROVIDER, CPU_PROVIDER]),
    ],
)
def test_execution_providers_follow_the_device_setting(
    device: Device, available: list[str], expected: list[str]
) -> None:
    providers = execution_providers(InferenceSettings(device=device, gpu_memory_limit=512), available)
    assert [p if isinstance(p, str) else p[0] for p in providers] == expected
    if CUDA_PROVIDER in expected:
        assert providers[0] == (CUDA_PROVIDER, cuda_provider_options(InferenceSettings(gpu_memory_limit=512)))


@pytest.mark.parametrize(
    ("message", "gpu"),
    [
        (OOM_MESSAGE, True),
        ("CUBLAS failure 3: CUBLAS_STATUS_ALLOC_FAILED", True),
        ("CUDNN failure 4: CUDNN_STATUS_INTERNAL_ERROR", True),
        ("Failed to allocate memory for requested buffer of size 123: out of memory", True),
        # Real arena-limit errors (microsoft/onnxruntime#23121, #9939): no "CUDA", no "out of memory".
        (
            "[ONNXRuntimeError] : 6 : RUNTIME_EXCEPTION : Non-zero status code returned while running Conv node. "
            "Name:'/model.0/conv/Conv' Status Message: /onnxruntime_src/onnxruntime/core/framework/bfc_arena.cc:376 "
            "void* onnxruntime::BFCArena::AllocateRawInternal(size_t, bool, onnxruntime::Stream*, bool, "
            "onnxruntime::WaitNotificationFn) Available memory of 0 is smaller than requested bytes of 2359296",
            True,
        ),
        (
            "[ONNXRuntimeError] : 6 : RUNTIME_EXCEPTION : Failed to "
            "allocate memory for requested buffer of size 8388608000",
            True,
        ),
        ("[ONNXRuntimeError] : 2 : INVALID_ARGUMENT : Got invalid dimensions for input: images", False),
        ("[ONNXRuntimeError] : 7 : INVALID_PROTOBUF : Load model failed: Protobuf parsing failed.", False),
    ],
)
def test_gpu_failures_are_told_from_request_errors(message: str, gpu: bool) -> None:
    assert is_gpu_failure(RuntimeError(message)) is gpu


def test_real_cuda_provider_that_cannot_start_falls_back_to_cpu_once(
    model_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """onnxruntime-gpu lists CUDA here but has no CUDA libraries: the real "fails to start" path,
    reached when the up-front check passes (it cannot foresee every failure)."""
    assert CUDA_PROVIDER in ort.get_available_providers()
    statuses: list[DeviceStatus] = []
    runtime = ModelRuntime(
        InferenceSettings(device="cuda", gpu_memory_limit=1024),
        on_status_change=statuses.append,
        cuda_check=lambda: None,
    )
    with caplog.at_level(logging.WARNING, logger="inference.runtime"):
        runtime.load("detector", (model_dir / "detector.onnx").read_bytes())
        runtime.load("identifier", (model_dir / "identifier.onnx").read_bytes())
    assert runtime.status.device == "cpu" and runtime.status.degraded
    assert "CUDA provider failed to start" in (runtime.status.reason or "")
    assert [record.getMessage() for record in caplog.records if "degraded" in record.getMessage()] == [
        f"serving on CPU, degraded: {runtime.status.reason}"
    ]
    assert statuses[0] == DeviceStatus("cuda", False) and statuses[-1].degraded
    assert runtime.session("identifier").get_providers() == [CPU_PROVIDER]
    output = runtime.run("detector", {"images": np.zeros((1, 3, 640, 640), np.float32)})[0]
    assert output.shape == (1, 11, 8400)


def test_cpu_device_is_not_degraded(model_dir: Path) -> None:
    runtime = ModelRuntime(InferenceSettings(device="cpu"))
    runtime.load("detector", (model_dir / "detector.onnx").read_bytes())
    assert runtime.status == DeviceStatus("cpu", degraded=False)


def test_auto_without_a_cuda_build_is_plain_cpu(model_dir: Path) -> None:
    runtime = ModelRuntime(InferenceSettings(device="auto"), available_providers=[CPU_PROVIDER])
    runtime.load("detector", (model_dir / "detector.onnx").read_bytes())
    assert runtime.status == DeviceStatus("cpu", degraded=False)


def test_out_of_memory_mid_run_rebuilds_every_model_on_cpu_and_retries(
    model_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    factory = FakeCudaFactory()
    statuses: list[DeviceStatus] = []
    runtime = ModelRuntime(InferenceSettings(device="cuda"), session_factory=factory, on_status_change=statuses.append)
    runtime.load("detector", (model_dir / "detector.onnx").read_bytes())
    runtime.load("identifier", (model_dir / "identifier.onnx").read_bytes())
    assert runtime.status == DeviceStatus("cuda", degraded=False)

    with caplog.at_level(logging.WARNING, logger="inference.runtime"):
        output = runtime.run("detector", {"images": np.zeros((1, 3, 640, 640), np.float32)})[0]
        logits = runtime.run("identifier", {"input": np.zeros((2, 3, 224, 224), np.float32)})[0]
    assert output.shape == (1, 11, 8400) and logits.shape == (2, 3)
    assert runtime.status.device == "cpu" and runtime.status.degraded
    assert (
        runtime.status.reason is not None
        and "detector run failed on CUDA: " in runtime.status.reason
        and "out of memory" in runtime.status.reason
    )
    # Both models moved to CPU together; the identifier never ran on the broken GPU.
    assert factory.created[-2:] == [(CPU_PROVIDER,), (CPU_PROVIDER,)]
    assert len([r for r in caplog.records if "degraded" in r.getMessage()]) == 1
    assert statuses[-1] == runtime.status


def test_request_errors_on_cuda_do_not_trigger_fallback(model_dir: Path) -> None:
    runtime = ModelRuntime(
        InferenceSettings(device="cuda"), session_factory=FakeCudaFactory(error="", failures_after=10**6)
    )
    runtime.load("detector", (model_dir / "detector.onnx").read_bytes())
    with pytest.raises(Exception, match="(?i)invalid"):
        runtime.run("detector", {"images": np.zeros((1, 3, 320, 320), np.float32)})
    assert runtime.status == DeviceStatus("cuda", degraded=False)


def test_session_creation_error_from_cuda_falls_back(model_dir: Path) -> None:
    def factory(model: bytes, providers: Sequence[Provider], options: ort.SessionOptions) -> Session:
        if any(not isinstance(p, str) for p in providers):
            raise RuntimeError("CUDA driver version is insufficient for CUDA runtime version")
        return create_session(model, providers, options)

    runtime = ModelRuntime(InferenceSettings(device="cuda"), session_factory=factory)
    runtime.load("detector", (model_dir / "detector.onnx").read_bytes())
    assert runtime.status.degraded and "CUDA driver version is insufficient" in (runtime.status.reason or "")


def test_a_corrupt_model_is_an_error_not_a_fallback(model_dir: Path) -> None:
    runtime = ModelRuntime(InferenceSettings(device="cuda"), cuda_check=lambda: None)
    with pytest.raises(Exception, match="(?i)protobuf|invalid|load model"):
        runtime.load("detector", (model_dir / "detector.onnx").read_bytes()[:5000])
    assert runtime.status == DeviceStatus("cuda", degraded=False)


def test_each_session_gets_its_share_of_the_pod_limit() -> None:
    settings = InferenceSettings(gpu_memory_limit=2048)
    detector = cuda_provider_options(settings, 0.75)
    identifier = cuda_provider_options(settings, 0.25)
    assert int(detector["gpu_mem_limit"]) + int(identifier["gpu_mem_limit"]) == 2048 * 1024 * 1024
    assert cuda_provider_options(settings)["gpu_mem_limit"] == str(2048 * 1024 * 1024)


def test_runtime_builds_each_model_with_its_arena_share() -> None:
    from inference.runtime import ModelRuntime

    seen: dict[bytes, list] = {}

    class CudaSession:
        def get_providers(self) -> list[str]:
            return [CUDA_PROVIDER]

    def factory(model, providers, options):
        seen[model] = list(providers)
        return CudaSession()

    runtime = ModelRuntime(
        InferenceSettings(gpu_memory_limit=1000),
        factory,
        [CUDA_PROVIDER],
        arena_shares={"detector": 0.75, "identifier": 0.25},
    )
    runtime.load("detector", b"d")
    runtime.load("identifier", b"i")
    limits = {model: int(providers[0][1]["gpu_mem_limit"]) for model, providers in seen.items()}
    assert limits == {b"d": int(1000 * 2**20 * 0.75), b"i": int(1000 * 2**20 * 0.25)}
