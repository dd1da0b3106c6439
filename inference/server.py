"""The server around the app: uvicorn's h11 protocol with a deadline for every request head.

uvicorn closes a connection only after answering on it (then after `timeout_keep_alive`), so a
client that connects and sends nothing, or sends its headers a byte at a time, holds the
connection for ever, and its `limit_concurrency` counted such connections and answered every
endpoint, probes included, with a plain-text 503. Here there is no connection cap: a connection
that has not completed a request head within `header_timeout` seconds (from connecting, or from
the end of its previous response) is closed, and admission is decided per request by the app
(`inference.app.RequestGuard`), which never refuses probes or metrics.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import functools
import json
import logging
import time
from collections.abc import Callable
from typing import Any

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol


class IntervalLog:
    """Logs a recurring warning at most once per `interval` seconds, with how often it recurred.

    A client can trigger these as fast as it likes; the log must not become the attack.
    """

    def __init__(self, logger: logging.Logger, interval: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.logger = logger
        self.interval = interval
        self.clock = clock
        self._last: dict[str, float] = {}
        self._suppressed: dict[str, int] = {}

    def warning(self, key: str, message: str) -> bool:
        """Logs `message` unless `key` was logged less than `interval` ago; True if logged."""
        now = self.clock()
        last = self._last.get(key)
        if last is not None and now - last < self.interval:
            self._suppressed[key] = self._suppressed.get(key, 0) + 1
            return False
        suppressed = self._suppressed.pop(key, 0)
        self._last[key] = now
        suffix = f" ({suppressed} more in the last {now - last:.0f} s)" if suppressed and last is not None else ""
        self.logger.warning("%s%s", message, suffix)
        return True


class IntervalFilter(logging.Filter):
    """Lets each of `messages` through at most once per `interval` seconds.

    uvicorn logs a WARNING for every malformed request ("Invalid HTTP request received."): one
    line per request a client cares to send.
    """

    def __init__(self, messages: frozenset[str], interval: float, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self.messages = messages
        self.interval = interval
        self.clock = clock
        self._last: dict[str, float] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if message not in self.messages:
            return True
        now = self.clock()
        last = self._last.get(message)
        if last is not None and now - last < self.interval:
            return False
        self._last[message] = now
        return True


UVICORN_PER_REQUEST_WARNINGS = frozenset({"Invalid HTTP request received."})


def head_deadline_protocol(header_timeout: float, on_timeout: Callable[[], None]) -> type[H11Protocol]:
    """An H11Protocol that closes connections which do not complete a request head in time."""

    class HeadDeadlineProtocol(H11Protocol):
        _head_timer: asyncio.TimerHandle | None = None

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self._arm_head_timer()

        def connection_lost(self, exc: Exception | None) -> None:
            self._cancel_head_timer()
            super().connection_lost(exc)

        def on_response_complete(self) -> None:
            super().on_response_complete()
            if not self.transport.is_closing():
                self._arm_head_timer()

        def _arm_head_timer(self) -> None:
            self._cancel_head_timer()
            self._head_timer = self.loop.call_later(header_timeout, self._head_timed_out)

        def _cancel_head_timer(self) -> None:
            if self._head_timer is not None:
                self._head_timer.cancel()
                self._head_timer = None

        def send_400_response(self, msg: str) -> None:
            """uvicorn's answer to a malformed request (or an oversized head), as JSON."""
            body = json.dumps({"error": "invalid_http_request", "detail": msg}).encode()
            headers = [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
            ]
            for event in (
                h11.Response(status_code=400, headers=headers, reason=b"Bad Request"),
                h11.Data(data=body),
                h11.EndOfMessage(),
            ):
                self.transport.write(self.conn.send(event))
            self.transport.close()

        def _head_timed_out(self) -> None:
            self._head_timer = None
            if self.transport.is_closing():
                return
            if self.cycle is not None and not self.cycle.response_complete:
                # The app is handling a request: its own deadlines (body_timeout) apply.
                self._arm_head_timer()
                return
            on_timeout()
            self.transport.close()

    return HeadDeadlineProtocol


@functools.cache
def _malloc_trim() -> Callable[[int], Any] | None:
    name = ctypes.util.find_library("c")
    try:
        return getattr(ctypes.CDLL(name), "malloc_trim", None) if name else None
    except OSError:
        return None


def release_free_memory() -> bool:
    """Returns freed heap pages to the system (glibc's malloc_trim); False where unavailable.

    Decoded images are freed into malloc's arenas, which keep the pages: after a burst of large
    images the RSS would otherwise stay near its peak.
    """
    trim = _malloc_trim()
    if trim is None:
        return False
    trim(0)
    return True
