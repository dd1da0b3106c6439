"""Micro-batching: requests waiting for a model run share it.

Every request queues its prepared frame, then takes a run slot (at most `max_concurrent_runs`
runs at once). The slot holder runs the oldest queued frames, up to `max_batch`, as one batch;
a request whose frame went into someone else's batch just collects its result. A holder with
room in its batch waits up to `max_batch_wait` for more frames first. With `max_batch=1` this is
exactly one run per request in arrival order, with no waiting.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

import anyio.to_thread

Item = TypeVar("Item")
Result = TypeVar("Result")


@dataclass(eq=False)
class _Entry(Generic[Item, Result]):
    item: Item
    future: asyncio.Future[Result] = field(default_factory=lambda: asyncio.get_running_loop().create_future())


class MicroBatcher(Generic[Item, Result]):
    """Runs `run_batch(items) -> results` (same order) in a worker thread, batching waiting items."""

    def __init__(
        self,
        run_batch: Callable[[Sequence[Item]], list[Result]],
        max_batch: int,
        max_batch_wait: float,
        max_concurrent_runs: int,
        on_run: Callable[[int], None] | None = None,
    ) -> None:
        self._run_batch = run_batch
        self.max_batch = max_batch
        self._max_wait = max_batch_wait
        self._slots = asyncio.Semaphore(max_concurrent_runs)
        self._queue: deque[_Entry[Item, Result]] = deque()
        self._arrived = asyncio.Event()
        # Called in the worker thread with +1 before a model run and -1 after it.
        self._on_run = on_run

    async def submit(self, item: Item) -> Result:
        entry: _Entry[Item, Result] = _Entry(item)
        self._queue.append(entry)
        self._arrived.set()
        try:
            async with self._slots:
                while entry in self._queue:
                    await self._run_next()
            return await entry.future
        finally:
            if entry in self._queue:  # cancelled while waiting: its frame is not run
                self._queue.remove(entry)

    async def _run_next(self) -> None:
        """Runs one batch of the oldest frames (after waiting briefly for a fuller batch)."""
        if self.max_batch > 1 and len(self._queue) < self.max_batch and self._max_wait > 0:
            loop = asyncio.get_running_loop()
            deadline = loop.time() + self._max_wait
            while len(self._queue) < self.max_batch and (remaining := deadline - loop.time()) > 0:
                self._arrived.clear()
                try:
                    await asyncio.wait_for(self._arrived.wait(), remaining)
                except TimeoutError:
                    break
        entries = [self._queue.popleft() for _ in range(min(self.max_batch, len(self._queue)))]
        if not entries:
            return
        loop = asyncio.get_running_loop()

        def run_and_deliver() -> None:
            # Results are handed over from the worker thread, so they reach every waiting request
            # even if the one holding the slot was cancelled meanwhile.
            if self._on_run is not None:
                self._on_run(1)
            try:
                results = self._run_batch([entry.item for entry in entries])
            except BaseException as error:  # noqa: BLE001 - handed to every waiting request, which raises it
                loop.call_soon_threadsafe(_fail, entries, error)
                return
            finally:
                if self._on_run is not None:
                    self._on_run(-1)
            loop.call_soon_threadsafe(_deliver, entries, results)

        await anyio.to_thread.run_sync(run_and_deliver)


def _deliver(entries: Sequence[_Entry[Item, Result]], results: Sequence[Result]) -> None:
    if len(results) != len(entries):
        _fail(entries, RuntimeError(f"a batch of {len(entries)} gave {len(results)} results"))
        return
    for entry, result in zip(entries, results, strict=True):
        if not entry.future.done():
            entry.future.set_result(result)


def _fail(entries: Sequence[_Entry[Item, Result]], error: BaseException) -> None:
    for entry in entries:
        if not entry.future.done():
            entry.future.set_exception(error)
