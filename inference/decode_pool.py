"""Decoding threads that give way to model runs.

On CPU the detector's intra-op threads keep both cores busy, but not all the time: between
operators they sleep (spinning is off). Decoding the next request at the same priority takes a
core away from a running model, and the whole run then waits for its slowest thread. At a lower
priority (a higher nice value, which Linux keeps per thread) the decode runs in those gaps, and
at full speed whenever no model runs, so with several clients the decode overlaps the model
almost for free. Only these threads are lowered: the event loop and the threads that call the
model keep the process's priority.

An unprivileged process may raise its threads' nice value but never lower it again, which is
why decoding has threads of its own instead of borrowing anyio's, which also run the models.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

log = logging.getLogger(__name__)

Result = TypeVar("Result")


def lower_thread_priority(nice: int) -> None:
    """Adds `nice` to the calling thread's nice value (Linux: per thread). Never fails: where
    the kernel or platform refuses, the thread keeps its priority and one debug line says why."""
    if nice <= 0 or not hasattr(os, "setpriority"):
        return
    thread_id = threading.get_native_id()
    try:
        current = os.getpriority(os.PRIO_PROCESS, thread_id)
        os.setpriority(os.PRIO_PROCESS, thread_id, min(19, current + nice))
    except OSError as error:
        log.debug("decode thread keeps its priority: %s", error)


class DecodePool:
    """`workers` threads at `nice` below the process, for the CPU work before a model run."""

    def __init__(self, workers: int, nice: int) -> None:
        self.nice = nice
        self._executor = ThreadPoolExecutor(
            max_workers=workers,
            thread_name_prefix="catwatcher-decode",
            initializer=lower_thread_priority,
            initargs=(nice,),
        )

    async def run(self, function: Callable[..., Result], *args: object) -> Result:
        """`function(*args)` in a decode thread. Like anyio.to_thread.run_sync, a cancelled caller
        still waits for the thread to finish, so what it holds (an admission slot, bounding the
        decoded images in memory) is released only when the decode is really over."""
        future = asyncio.get_running_loop().run_in_executor(self._executor, function, *args)
        try:
            return await asyncio.shield(future)
        except asyncio.CancelledError:
            while not future.done():
                try:
                    await asyncio.wait({future})
                except asyncio.CancelledError:
                    continue
            if not future.cancelled():
                future.exception()  # retrieved: the caller is gone, the error needs no log line
            raise

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
