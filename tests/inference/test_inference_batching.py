"""Micro-batching: batched results equal unbatched ones, and the batcher's queueing rules."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from inference_support import encode, make_settings, photo_like

from inference import contract
from inference.app import create_app
from inference.batching import MicroBatcher
from inference.engine import CatWatcherEngine

# Thresholds low enough that the placeholder detector's faint scores become dozens of detections
# (and identifier crops) per frame, so the comparison covers NMS, box mapping and identification.
FAINT: dict[str, Any] = {"presence_threshold": 0.001, "confidence_threshold": 0.0025}


@pytest.fixture(scope="module")
def frames() -> list[bytes]:
    return [encode(photo_like(1280, 720, seed)) for seed in range(3)] + [encode(photo_like(640, 480, 9))]


def test_batched_frames_give_exactly_the_unbatched_results(model_dir: Path, frames: list[bytes]) -> None:
    engine = CatWatcherEngine.load(make_settings(model_dir, max_batch=4, **FAINT).inference)
    assert engine.detector.batchable and engine.max_batch == 4
    one_by_one = [engine.infer(engine.prepare(frame)) for frame in frames]
    batched = engine.infer_batch([engine.prepare(frame) for frame in frames])
    assert all(len(result["detections"]) > 10 for result in one_by_one)
    assert any(d["cat_id"] is not None for d in one_by_one[0]["detections"])
    assert batched == one_by_one
    tensors = [engine.prepare(frame).tensor for frame in frames]
    stacked = engine.runtime.run("detector", {"images": np.concatenate(tensors)})[0]
    for index, tensor in enumerate(tensors):
        np.testing.assert_allclose(
            stacked[index], engine.runtime.run("detector", {"images": tensor})[0][0], rtol=1e-5, atol=1e-6
        )


def test_a_batch_larger_than_max_batch_runs_in_chunks(model_dir: Path, frames: list[bytes]) -> None:
    engine = CatWatcherEngine.load(make_settings(model_dir, identifier=None, max_batch=2, **FAINT).inference)
    sizes: list[int] = []
    real_run = engine.runtime.run

    def recording_run(name: str, feeds: Mapping[str, np.ndarray]) -> list[np.ndarray]:
        sizes.append(next(iter(feeds.values())).shape[0])
        return real_run(name, feeds)

    engine.runtime.run = recording_run  # type: ignore[method-assign]
    results = engine.infer_batch([engine.prepare(frame) for frame in frames[:3]])
    assert sizes == [2, 1]
    assert results == [engine.infer(engine.prepare(frame)) for frame in frames[:3]]


def test_a_fixed_batch_model_runs_frames_one_by_one(model_dir: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="inference.engine"):
        engine = CatWatcherEngine.load(
            make_settings(model_dir, detector="scripted_detector.onnx", identifier=None, max_batch=4).inference
        )
    assert not engine.detector.batchable and engine.max_batch == 1
    assert "CAT_WATCHER__INFERENCE__MAX_BATCH=4 ignored" in caplog.text


class Recorder:
    """run_batch double: records batch sizes and overlapping runs; result = item * 10."""

    def __init__(self, delay: float = 0.02, fail_on: int | None = None) -> None:
        self.batches: list[list[int]] = []
        self.delay = delay
        self.fail_on = fail_on
        self.running = self.peak_running = 0
        self.lock = threading.Lock()

    def __call__(self, items: Sequence[int]) -> list[int]:
        with self.lock:
            self.batches.append(list(items))
            self.running += 1
            self.peak_running = max(self.peak_running, self.running)
        time.sleep(self.delay)
        with self.lock:
            self.running -= 1
        if self.fail_on in items:
            raise RuntimeError(f"run failed on {self.fail_on}")
        return [item * 10 for item in items]


async def submit_all(batcher: MicroBatcher[int, int], items: Sequence[int]) -> list[object]:
    return await asyncio.gather(*(batcher.submit(item) for item in items), return_exceptions=True)


def test_waiting_frames_share_a_run_and_each_gets_its_own_result() -> None:
    recorder = Recorder()
    results = asyncio.run(
        submit_all(MicroBatcher(recorder, max_batch=4, max_batch_wait=0.5, max_concurrent_runs=1), range(10))
    )
    assert results == [item * 10 for item in range(10)]
    assert [len(batch) for batch in recorder.batches] == [4, 4, 2]
    assert [item for batch in recorder.batches for item in batch] == list(range(10))  # oldest first


def test_max_batch_one_runs_every_frame_alone_in_arrival_order_without_waiting() -> None:
    recorder = Recorder(delay=0.0)
    began = time.perf_counter()
    results = asyncio.run(
        submit_all(MicroBatcher(recorder, max_batch=1, max_batch_wait=5.0, max_concurrent_runs=1), range(5))
    )
    assert results == [0, 10, 20, 30, 40] and recorder.batches == [[0], [1], [2], [3], [4]]
    assert time.perf_counter() - began < 2.0


def test_a_lone_frame_waits_at_most_max_batch_wait() -> None:
    recorder = Recorder(delay=0.0)
    began = time.perf_counter()
    assert asyncio.run(
        submit_all(MicroBatcher(recorder, max_batch=4, max_batch_wait=0.2, max_concurrent_runs=1), [7])
    ) == [70]
    assert 0.15 < time.perf_counter() - began < 2.0


def test_concurrent_runs_stay_bounded_with_batching() -> None:
    recorder = Recorder(delay=0.05)
    results = asyncio.run(
        submit_all(MicroBatcher(recorder, max_batch=2, max_batch_wait=0.01, max_concurrent_runs=2), range(12))
    )
    assert results == [item * 10 for item in range(12)]
    assert recorder.peak_running == 2 and max(len(batch) for batch in recorder.batches) <= 2


def test_a_failed_run_fails_its_frames_only() -> None:
    recorder = Recorder(fail_on=5)
    results = asyncio.run(
        submit_all(MicroBatcher(recorder, max_batch=4, max_batch_wait=0.5, max_concurrent_runs=1), range(8))
    )
    assert results[:4] == [0, 10, 20, 30]
    assert all(isinstance(result, RuntimeError) for result in results[4:])


def test_a_cancelled_request_leaves_the_queue() -> None:
    recorder = Recorder(delay=0.2)

    async def scenario() -> tuple[int | BaseException, ...]:
        batcher: MicroBatcher[int, int] = MicroBatcher(recorder, max_batch=1, max_batch_wait=0.0, max_concurrent_runs=1)
        first = asyncio.ensure_future(batcher.submit(1))
        await asyncio.sleep(0.05)  # 1 is running; 2 waits for the slot
        second = asyncio.ensure_future(batcher.submit(2))
        await asyncio.sleep(0.01)
        second.cancel()
        third = asyncio.ensure_future(batcher.submit(3))
        return await asyncio.gather(first, second, third, return_exceptions=True)

    results = asyncio.run(scenario())
    assert results[0] == 10 and isinstance(results[1], asyncio.CancelledError) and results[2] == 30
    assert recorder.batches == [[1], [3]]


def test_the_service_batches_concurrent_requests(model_dir: Path, frames: list[bytes]) -> None:
    settings = make_settings(model_dir, identifier=None, max_batch=4, max_batch_wait_ms=200, **FAINT)
    engine = CatWatcherEngine.load(settings.inference)
    alone = {frame: engine.infer(engine.prepare(frame))["detections"] for frame in frames}
    sizes: list[int] = []
    real_infer_batch = engine.infer_batch

    def recording_infer_batch(batch: Sequence[Any]) -> list[dict[str, Any]]:
        sizes.append(len(batch))
        return real_infer_batch(batch)

    engine.infer_batch = recording_infer_batch  # type: ignore[method-assign]
    app = create_app(settings, load_engine=lambda on_status: engine)

    async def burst() -> list[httpx.Response]:
        state = app.state.service
        state.engine = engine
        state.open_slots(1, 4, 0.2)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test", timeout=60) as http:
            return await asyncio.gather(
                *(
                    http.post(contract.DETECT_PATH, content=frame, headers={"content-type": "image/jpeg"})
                    for frame in frames
                )
            )

    responses = asyncio.run(burst())
    assert [r.status_code for r in responses] == [200] * 4
    assert sum(sizes) == 4 and max(sizes) > 1
    assert [r.json()["detections"] for r in responses] == [alone[frame] for frame in frames]
