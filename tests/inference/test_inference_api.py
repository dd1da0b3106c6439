"""Every endpoint through an ASGI test client, with the real models (loaded on CPU)."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from inference_support import (
    CAT_NAMES,
    FakeCudaFactory,
    TestClient,
    encode,
    make_settings,
    photo_like,
    png_header_only_for_api,
    wait_until,
)

from inference import contract
from inference.app import create_app
from inference.engine import CatWatcherEngine, PreparedImage
from inference.runtime import DeviceStatus
from inference.settings import Settings


@contextmanager
def running(settings: Settings, **app_options: Any) -> Iterator[TestClient]:
    app = create_app(settings, **app_options)
    with TestClient(app) as client:
        assert wait_until(lambda: client.get(contract.READY_PATH).status_code == 200, timeout=30)
        yield client


@pytest.fixture(scope="module")
def client(model_dir: Path) -> Iterator[TestClient]:
    """Scripted detector (two known cats) + the generated identifier."""
    with running(
        make_settings(
            model_dir, detector="scripted_detector.onnx", max_request_bytes=2_000_000, max_image_pixels=20_000_000
        )
    ) as client:
        yield client


@pytest.fixture(scope="module")
def placeholder_client(model_dir: Path) -> Iterator[TestClient]:
    """The generated YOLOv8n-like detector, detector only."""
    with running(make_settings(model_dir, identifier=None)) as client:
        yield client


def metric_value(client: TestClient, line_prefix: str) -> float:
    for line in client.get(contract.METRICS_PATH).text.splitlines():
        if line.startswith(line_prefix + " "):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"{line_prefix} not exposed")


def test_healthz_reports_device_and_degraded(client: TestClient) -> None:
    response = client.get(contract.HEALTH_PATH)
    assert response.status_code == 200
    assert response.json() == {
        "status": "ok",
        "ready": True,
        "device": "cpu",
        "degraded": False,
        "degraded_reason": None,
    }


def test_detect_returns_scripted_cats_in_source_coordinates_with_identities(
    client: TestClient, jpeg_720p: bytes
) -> None:
    response = client.post(contract.DETECT_PATH, content=jpeg_720p, headers={"content-type": "image/jpeg"})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["image"] == {"width": 1280, "height": 720}
    assert (body["device"], body["degraded"]) == ("cpu", False)
    assert set(body["timings_ms"]) == {"decode", "preprocess", "detect", "identify", "total"}
    assert body["timings_ms"]["total"] >= body["timings_ms"]["detect"] > 0
    # Detector boxes [150,260,250,340] and [470,290,530,350] at scale 0.5 with 140 px bars.
    assert [d["box"] for d in body["detections"]] == [[300.0, 240.0, 500.0, 400.0], [940.0, 300.0, 1060.0, 420.0]]
    assert [d["behaviour"] for d in body["detections"]] == ["eating", "present"]
    assert [d["confidence"] for d in body["detections"]] == [0.9, 0.3]
    for detection in body["detections"]:
        assert detection["cat_id"] in (*CAT_NAMES, "unknown")
        assert 1 / len(CAT_NAMES) <= detection["cat_confidence"] <= 1


def test_identifier_sees_each_crop_in_one_batch(model_dir: Path, jpeg_720p: bytes) -> None:
    batches: list[tuple[int, ...]] = []

    def loader(on_status: Callable[[DeviceStatus], None]) -> CatWatcherEngine:
        engine = CatWatcherEngine.load(
            make_settings(model_dir, detector="scripted_detector.onnx").inference, on_status_change=on_status
        )
        run = engine.runtime.run

        def recording_run(name: str, feeds: Mapping[str, np.ndarray]) -> list[np.ndarray]:
            batches.extend(feed.shape for feed in feeds.values() if name == "identifier")
            return run(name, feeds)

        engine.runtime.run = recording_run  # type: ignore[method-assign]
        return engine

    with running(make_settings(model_dir), load_engine=loader) as client:
        assert (
            client.post(contract.DETECT_PATH, content=jpeg_720p, headers={"content-type": "image/jpeg"}).status_code
            == 200
        )
    assert batches == [(2, 3, 224, 224)]


@pytest.mark.parametrize(
    ("content_type", "image_format"),
    [
        ("image/jpeg", "JPEG"),
        ("application/octet-stream", "JPEG"),
        ("image/png", "PNG"),
        ("image/webp", "WEBP"),
        ("image/jpeg; charset=binary", "JPEG"),
    ],
)
def test_raw_body_content_types(client: TestClient, content_type: str, image_format: str) -> None:
    data = encode(photo_like(320, 240), image_format)
    response = client.post(contract.DETECT_PATH, content=data, headers={"content-type": content_type})
    assert response.status_code == 200, response.text
    assert response.json()["image"] == {"width": 320, "height": 240}


def test_multipart_image_field(client: TestClient) -> None:
    data = encode(photo_like(800, 600))
    response = client.post(
        contract.DETECT_PATH,
        files={"image": ("frame.jpg", data, "image/jpeg"), "thumbnail": ("t.jpg", b"\xff\xd8", "image/jpeg")},
        data={"camera": "kitchen"},
    )
    assert response.status_code == 200, response.text
    assert response.json()["image"] == {"width": 800, "height": 600}


def test_multipart_image_part_without_filename(client: TestClient) -> None:
    boundary = "catwatcher"
    data = encode(photo_like(640, 480))
    body = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="image"\r\n\r\n'.encode()
        + data
        + f"\r\n--{boundary}--\r\n".encode()
    )
    response = client.post(
        contract.DETECT_PATH, content=body, headers={"content-type": f"multipart/form-data; boundary={boundary}"}
    )
    assert response.status_code == 200, response.text
    assert response.json()["image"] == {"width": 640, "height": 480}


def test_placeholder_detector_runs_end_to_end(placeholder_client: TestClient, jpeg_720p: bytes) -> None:
    response = placeholder_client.post(contract.DETECT_PATH, content=jpeg_720p, headers={"content-type": "image/jpeg"})
    assert response.status_code == 200
    body = response.json()
    # Random weights score far below the presence threshold; identification is off.
    assert body["detections"] == []
    assert body["timings_ms"]["detect"] > 1


def chunked(data: bytes, size: int = 65536) -> Iterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


BAD_REQUESTS: list[tuple[str, dict[str, Any], int, str]] = [
    ("empty body", {"content": b"", "headers": {"content-type": "image/jpeg"}}, 400, "empty_body"),
    ("not an image", {"content": b"hello, cat" * 50, "headers": {"content-type": "image/jpeg"}}, 422, "invalid_image"),
    (
        "truncated jpeg",
        {"content": encode(photo_like(640, 480))[:3000], "headers": {"content-type": "image/jpeg"}},
        422,
        "invalid_image",
    ),
    (
        "decompression bomb",
        {"content": png_header_only_for_api(6000, 6000), "headers": {"content-type": "image/png"}},
        413,
        "image_too_large",
    ),
    (
        "declared too large",
        {"content": b"\xff" * 2_000_001, "headers": {"content-type": "image/jpeg"}},
        413,
        "body_too_large",
    ),
    (
        "streamed too large",
        {"content": chunked(b"\xff" * 3_000_000), "headers": {"content-type": "image/jpeg"}},
        413,
        "body_too_large",
    ),
    (
        "wrong content type",
        {"content": b"{}", "headers": {"content-type": "application/json"}},
        415,
        "unsupported_media_type",
    ),
    ("no content type", {"content": b"\xff\xd8"}, 415, "unsupported_media_type"),
    ("multipart without image", {"files": {"photo": ("a.jpg", b"\xff\xd8", "image/jpeg")}}, 400, "missing_image_field"),
    (
        "multipart image field not an image",
        {"data": {"image": "not a file"}, "files": {"other": ("a", b"x")}},
        422,
        "invalid_image",
    ),
    (
        "multipart without boundary",
        {"content": b"--x\r\nnonsense", "headers": {"content-type": "multipart/form-data"}},
        400,
        "invalid_multipart",
    ),
    (
        "multipart garbage",
        {"content": b"--x\r\nnonsense", "headers": {"content-type": "multipart/form-data; boundary=x"}},
        400,
        "missing_image_field",
    ),
]


@pytest.mark.parametrize(
    ("case", "request_kwargs", "status", "error"), BAD_REQUESTS, ids=[case[0] for case in BAD_REQUESTS]
)
def test_bad_input_is_a_json_4xx_and_service_keeps_serving(
    client: TestClient, jpeg_720p: bytes, case: str, request_kwargs: dict[str, Any], status: int, error: str
) -> None:
    errors_before = metric_value(client, 'catwatcher_requests_total{outcome="client_error"}')
    response = client.post(contract.DETECT_PATH, **request_kwargs)
    assert response.status_code == status, response.text
    body = response.json()
    assert body["error"] == error and isinstance(body["detail"], str) and body["detail"]
    assert " object at 0x" not in body["detail"], "an internal object's repr reached the client"
    assert metric_value(client, 'catwatcher_requests_total{outcome="client_error"}') == errors_before + 1
    follow_up = client.post(contract.DETECT_PATH, content=jpeg_720p, headers={"content-type": "image/jpeg"})
    assert follow_up.status_code == 200


def test_unknown_paths_and_methods_answer_json(client: TestClient) -> None:
    assert client.get("/v2/detect").json()["error"] == "http_error"
    response = client.get(contract.DETECT_PATH)
    assert response.status_code == 405 and response.json()["error"] == "http_error"


def test_metrics_expose_the_contract_names(client: TestClient, jpeg_720p: bytes) -> None:
    client.post(contract.DETECT_PATH, content=jpeg_720p, headers={"content-type": "image/jpeg"})
    response = client.get(contract.METRICS_PATH)
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain")
    text = response.text
    for sample in [
        'catwatcher_requests_total{outcome="ok"}',
        'catwatcher_requests_total{outcome="client_error"}',
        'catwatcher_requests_total{outcome="server_error"}',
        'catwatcher_request_duration_seconds_bucket{le="0.1",outcome="ok"}',
        'catwatcher_inference_duration_seconds_bucket{le="0.1",stage="detect"}',
        'catwatcher_inference_duration_seconds_count{stage="identify"}',
        'catwatcher_inference_device_info{device="cpu"} 1.0',
        'catwatcher_inference_device_info{device="cuda"} 0.0',
        "catwatcher_degraded 0.0",
        "catwatcher_gpu_memory_limit_bytes 0.0",
        "catwatcher_model_runs_in_flight 0.0",
    ]:
        assert sample in text, sample
    assert metric_value(client, 'catwatcher_inference_duration_seconds_count{stage="identify"}') >= 1


def test_gpu_memory_limit_gauge_is_in_bytes(model_dir: Path) -> None:
    with running(make_settings(model_dir, identifier=None, gpu_memory_limit=1536)) as client:
        assert metric_value(client, "catwatcher_gpu_memory_limit_bytes") == 1536 * 1024 * 1024


def test_real_cuda_fallback_is_reported_by_health_and_metrics(model_dir: Path, jpeg_720p: bytes) -> None:
    with running(make_settings(model_dir, detector="scripted_detector.onnx", device="cuda")) as client:
        health = client.get(contract.HEALTH_PATH).json()
        assert (health["device"], health["degraded"]) == ("cpu", True) and "CUDA" in health["degraded_reason"]
        assert metric_value(client, "catwatcher_degraded") == 1
        assert metric_value(client, 'catwatcher_inference_device_info{device="cpu"}') == 1
        response = client.post(contract.DETECT_PATH, content=jpeg_720p, headers={"content-type": "image/jpeg"})
        assert response.status_code == 200 and response.json()["degraded"] is True


def test_gpu_failing_mid_run_falls_back_and_keeps_serving(model_dir: Path, jpeg_720p: bytes) -> None:
    """CUDA starts, then every CUDA run fails with OOM: the request that hits it still succeeds."""
    settings = make_settings(model_dir, detector="scripted_detector.onnx", device="cuda")

    def loader(on_status: Callable[[DeviceStatus], None]) -> CatWatcherEngine:
        # Warm-up runs succeed on the "GPU" (2 models x 1 run); the first request's run fails.
        return CatWatcherEngine.load(
            settings.inference, session_factory=FakeCudaFactory(failures_after=1), on_status_change=on_status
        )

    with running(settings, load_engine=loader) as client:
        assert client.get(contract.HEALTH_PATH).json()["device"] == "cuda"
        assert metric_value(client, 'catwatcher_inference_device_info{device="cuda"}') == 1
        for _ in range(3):
            response = client.post(contract.DETECT_PATH, content=jpeg_720p, headers={"content-type": "image/jpeg"})
            assert response.status_code == 200 and len(response.json()["detections"]) == 2
            assert (response.json()["device"], response.json()["degraded"]) == ("cpu", True)
        health = client.get(contract.HEALTH_PATH).json()
        assert health["degraded"] and "detector run failed on CUDA" in health["degraded_reason"]
        assert metric_value(client, "catwatcher_degraded") == 1
        assert metric_value(client, 'catwatcher_inference_device_info{device="cuda"}') == 0
        assert metric_value(client, 'catwatcher_requests_total{outcome="ok"}') == 3


def test_not_ready_until_models_are_loaded(model_dir: Path, jpeg_720p: bytes) -> None:
    release = threading.Event()

    def slow_loader(on_status: Callable[[DeviceStatus], None]) -> CatWatcherEngine:
        assert release.wait(timeout=30)
        return CatWatcherEngine.load(make_settings(model_dir, identifier=None).inference, on_status_change=on_status)

    with TestClient(create_app(make_settings(model_dir), load_engine=slow_loader)) as client:
        response = client.get(contract.READY_PATH)
        assert response.status_code == 503 and response.json() == {"error": "not_ready", "detail": "models are loading"}
        assert client.get(contract.HEALTH_PATH).json()["ready"] is False
        early = client.post(contract.DETECT_PATH, content=jpeg_720p, headers={"content-type": "image/jpeg"})
        assert early.status_code == 503 and early.json()["error"] == "not_ready"
        assert metric_value(client, 'catwatcher_requests_total{outcome="server_error"}') == 1
        release.set()
        assert wait_until(lambda: client.get(contract.READY_PATH).status_code == 200, timeout=30)
        assert (
            client.post(contract.DETECT_PATH, content=jpeg_720p, headers={"content-type": "image/jpeg"}).status_code
            == 200
        )


def test_failed_load_is_never_ready_and_calls_on_fatal(model_dir: Path) -> None:
    fatal: list[BaseException] = []
    settings = make_settings(model_dir, detector="missing.onnx", identifier=None)
    with TestClient(create_app(settings, on_fatal=fatal.append)) as client:
        assert wait_until(lambda: bool(fatal), timeout=10)
        response = client.get(contract.READY_PATH)
        assert response.status_code == 503
        assert "CAT_WATCHER__INFERENCE__DETECTOR_MODEL_PATH: cannot read model" in response.json()["detail"]


class SlowEngine:
    """Engine double that records how many model runs overlap and how many decoded images exist."""

    identifier = None
    status = DeviceStatus("cpu", degraded=False)

    def __init__(self, real_prepare: Callable[[bytes], PreparedImage]) -> None:
        self.real_prepare = real_prepare
        self.lock = threading.Lock()
        self.running = self.peak_running = 0
        self.decoded = self.peak_decoded = 0

    def prepare(self, data: bytes) -> PreparedImage:
        with self.lock:
            self.decoded += 1
            self.peak_decoded = max(self.peak_decoded, self.decoded)
        return self.real_prepare(data)

    def infer(self, prepared: PreparedImage) -> dict[str, Any]:
        with self.lock:
            self.running += 1
            self.peak_running = max(self.peak_running, self.running)
        time.sleep(0.05)
        with self.lock:
            self.running -= 1
            self.decoded -= 1
        prepared.timings.update(detect=50.0, identify=0.0)
        return {"detections": []}


@pytest.mark.parametrize("limit", [1, 2])
def test_model_runs_are_bounded_while_requests_are_concurrent(model_dir: Path, jpeg_720p: bytes, limit: int) -> None:
    engine = SlowEngine(CatWatcherEngine.load(make_settings(model_dir, identifier=None).inference).prepare)
    settings = make_settings(model_dir, identifier=None, max_concurrent_runs=limit)
    app = create_app(settings, load_engine=lambda on_status: engine)  # type: ignore[arg-type,return-value]

    async def burst() -> list[int]:
        state = app.state.service
        state.engine = engine
        state.open_slots(limit)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
            responses = await asyncio.gather(
                *(
                    http.post(contract.DETECT_PATH, content=jpeg_720p, headers={"content-type": "image/jpeg"})
                    for _ in range(8)
                )
            )
        return [r.status_code for r in responses]

    assert asyncio.run(burst()) == [200] * 8
    assert engine.peak_running == limit
    # Waiting requests hold their compressed body only: decoded images are bounded too.
    assert limit < engine.peak_decoded <= 2 * limit
