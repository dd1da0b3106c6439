"""Decoding threads at a lower priority than the model runs (inference/decode_pool.py)."""

from __future__ import annotations

import asyncio
import os
import sys
import threading
from pathlib import Path
from typing import Any

import httpx
import pytest
from inference_support import encode, make_settings, photo_like

from inference import contract
from inference.app import create_app
from inference.decode_pool import DecodePool, lower_thread_priority
from inference.engine import CatWatcherEngine
from inference.settings import SettingsError, load_settings

linux_only = pytest.mark.skipif(sys.platform != "linux", reason="per-thread nice values are Linux's")


def thread_nice() -> int:
    return os.getpriority(os.PRIO_PROCESS, threading.get_native_id())


@linux_only
def test_decode_threads_run_below_the_process_and_the_caller_keeps_its_priority() -> None:
    process_nice = os.getpriority(os.PRIO_PROCESS, os.getpid())

    async def scenario() -> tuple[int, int]:
        pool = DecodePool(workers=2, nice=10)
        try:
            return await pool.run(thread_nice), thread_nice()
        finally:
            pool.close()

    decoding, event_loop = asyncio.run(scenario())
    assert decoding == min(19, process_nice + 10)
    assert event_loop == process_nice


@linux_only
def test_nice_zero_leaves_the_threads_alone_and_nice_is_capped_at_19() -> None:
    process_nice = os.getpriority(os.PRIO_PROCESS, os.getpid())

    async def scenario(nice: int) -> int:
        pool = DecodePool(workers=1, nice=nice)
        try:
            return await pool.run(thread_nice)
        finally:
            pool.close()

    assert asyncio.run(scenario(0)) == process_nice
    assert asyncio.run(scenario(19)) == 19


def test_a_refused_priority_change_is_not_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: Any) -> None:
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(os, "setpriority", refuse)
    lower_thread_priority(10)  # no exception: the thread simply keeps its priority


def test_results_and_errors_come_back_to_the_caller() -> None:
    def fail() -> None:
        raise ValueError("corrupt frame")

    async def scenario() -> int:
        pool = DecodePool(workers=1, nice=0)
        try:
            with pytest.raises(ValueError, match="corrupt frame"):
                await pool.run(fail)
            return await pool.run(lambda a, b: a + b, 2, 3)
        finally:
            pool.close()

    assert asyncio.run(scenario()) == 5


def test_a_cancelled_caller_waits_until_the_decode_is_over() -> None:
    """What the caller holds (an admission slot) must bound the decodes really running."""
    release = threading.Event()
    finished = threading.Event()

    def slow_decode() -> str:
        release.wait(10)
        finished.set()
        return "decoded"

    async def scenario() -> tuple[bool, bool, bool]:
        pool = DecodePool(workers=1, nice=0)
        try:
            task = asyncio.create_task(pool.run(slow_decode))
            await asyncio.sleep(0.05)
            task.cancel()
            await asyncio.sleep(0.1)
            still_waiting = not task.done()
            release.set()
            try:
                await task
            except asyncio.CancelledError:
                cancelled = True
            else:
                cancelled = False
            return still_waiting, finished.is_set(), cancelled
        finally:
            pool.close()

    still_waiting, decode_finished, cancelled = asyncio.run(scenario())
    assert still_waiting and decode_finished and cancelled


@linux_only
def test_the_service_decodes_requests_in_the_lowered_threads(model_dir: Path) -> None:
    settings = make_settings(model_dir, identifier=None, decode_nice=7)
    engine = CatWatcherEngine.load(settings.inference)
    seen: list[tuple[str, int]] = []
    real_prepare = engine.prepare

    def recording_prepare(data: bytes) -> Any:
        seen.append((threading.current_thread().name, thread_nice()))
        return real_prepare(data)

    engine.prepare = recording_prepare  # type: ignore[method-assign]
    app = create_app(settings, load_engine=lambda on_status: engine)
    process_nice = os.getpriority(os.PRIO_PROCESS, os.getpid())

    async def request() -> httpx.Response:
        state = app.state.service
        state.engine = engine
        state.open_slots(1, 1, 0.0, settings.inference.decode_nice)
        transport = httpx.ASGITransport(app=app)
        try:
            async with httpx.AsyncClient(transport=transport, base_url="http://test", timeout=60) as http:
                return await http.post(
                    contract.DETECT_PATH,
                    content=encode(photo_like(320, 240, 1)),
                    headers={"content-type": "image/jpeg"},
                )
        finally:
            state.close_slots()

    response = asyncio.run(request())
    assert response.status_code == 200
    assert seen == [(seen[0][0], min(19, process_nice + 7))]
    assert seen[0][0].startswith("catwatcher-decode")


@pytest.mark.parametrize("value", ["-1", "20", "high"])
def test_decode_nice_outside_0_to_19_is_refused(value: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CAT_WATCHER__INFERENCE__DECODE_NICE", value)
    with pytest.raises(SettingsError, match="CAT_WATCHER__INFERENCE__DECODE_NICE"):
        load_settings()
