"""HTTP API (Starlette): health, readiness, metrics and `POST /v1/detect`.

Requests are accepted concurrently; decoding runs in worker threads and model runs are bounded by
a semaphore (`max_concurrent_runs`) so a pod never oversubscribes its GPU slice. Frames waiting
for a run are micro-batched (`max_batch`, see inference/batching.py). The event loop itself never
does CPU-heavy work, and at most 2 x `max_concurrent_runs` x `max_batch` decoded images exist.
`RequestGuard` admits at most `max_pending_requests` detect requests (each holding a body) and
never refuses probes or metrics; every refusal is JSON, counted and logged at most once per
`log_interval`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import anyio.to_thread
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from python_multipart.exceptions import FormParserError
from python_multipart.multipart import Field, File, create_form_parser, parse_options_header
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from inference import contract
from inference.batching import MicroBatcher
from inference.decode_pool import DecodePool
from inference.engine import CatWatcherEngine, PreparedImage
from inference.errors import ClientError
from inference.metrics import ServiceMetrics
from inference.runtime import DeviceStatus
from inference.server import IntervalLog, release_free_memory
from inference.settings import Settings

log = logging.getLogger(__name__)
# python_multipart logs an ERROR line for every malformed body it is given: a client could fill
# the log with them. Malformed bodies are answered 400 and need no log line.
logging.getLogger("python_multipart").setLevel(logging.CRITICAL)

IMAGE_FIELD = "image"
RAW_MEDIA_TYPES = ("application/octet-stream",)
MULTIPART_MEDIA_TYPE = "multipart/form-data"
# Never refused for load: the kubelet and Prometheus must always get an answer.
UNGUARDED_PATHS = frozenset({contract.HEALTH_PATH, contract.READY_PATH, contract.METRICS_PATH})
# Heap returned to the system at most this often, when no detect request is in progress.
TRIM_INTERVAL_SECONDS = 1.0
# Statuses after which the rest of a request body may still be unread: the connection is closed.
CLOSE_AFTER = frozenset({408, 413, 503})

EngineLoader = Callable[[Callable[[DeviceStatus], None]], CatWatcherEngine]


class NotReadyError(Exception):
    pass


@dataclass
class ServiceState:
    settings: Settings
    metrics: ServiceMetrics
    engine: CatWatcherEngine | None = None
    load_error: str | None = None
    batcher: MicroBatcher[PreparedImage, dict[str, Any]] | None = None
    decoder: DecodePool | None = None
    admission: asyncio.Semaphore = field(default_factory=lambda: asyncio.Semaphore(2))
    refusal_log: IntervalLog | None = None

    def refuse(self, reason: str, message: str) -> None:
        """Counts a refusal (REFUSAL_REASONS) and logs it at most once per `log_interval`."""
        self.metrics.refused.labels(reason).inc()
        if self.refusal_log is None:
            self.refusal_log = IntervalLog(log, self.settings.server.log_interval)
        self.refusal_log.warning(reason, message)

    def open_slots(
        self, max_concurrent_runs: int, max_batch: int = 1, max_batch_wait: float = 0.0, decode_nice: int = 0
    ) -> None:
        """Model runs are bounded by `max_concurrent_runs`; decoded images by twice the frames
        those runs take, decoded by as many threads at `decode_nice` (inference/decode_pool.py).

        Twice keeps the next batch decoding while the model runs, yet a burst of clients waits
        holding only its compressed body, not a 5 MB float tensor each.
        """
        self.batcher = MicroBatcher(
            self.run_frames, max_batch, max_batch_wait, max_concurrent_runs, self.metrics.runs_in_flight.inc
        )
        decoding = 2 * max_concurrent_runs * max_batch
        self.admission = asyncio.Semaphore(decoding)
        self.decoder = DecodePool(decoding, decode_nice)

    def close_slots(self) -> None:
        if self.decoder is not None:
            self.decoder.close()

    def run_frames(self, frames: Sequence[PreparedImage]) -> list[dict[str, Any]]:
        assert self.engine is not None
        return [self.engine.infer(frames[0])] if len(frames) == 1 else self.engine.infer_batch(frames)


def error_response(status: int, error: str, detail: str) -> JSONResponse:
    headers = {"Connection": "close"} if status in CLOSE_AFTER else None
    return JSONResponse({"error": error, "detail": detail}, status_code=status, headers=headers)


def head_bytes(scope: Scope) -> int:
    """Request line plus headers, as counted against `max_header_bytes`."""
    return (
        len(scope.get("raw_path") or b"")
        + len(scope.get("query_string") or b"")
        + sum(len(name) + len(value) + 4 for name, value in scope["headers"])
    )


class RequestGuard:
    """Refuses oversized heads (431) and detect requests beyond `max_pending_requests` (503).

    Admission is counted in requests, not connections: idle connections hold no body and are
    closed by the server's head deadline, so they cannot lock anyone out.
    """

    def __init__(self, app: ASGIApp, state: ServiceState) -> None:
        self.app = app
        self.state = state
        self.pending = 0
        self.last_trim = 0.0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        server = self.state.settings.server
        size = head_bytes(scope)
        if size > server.max_header_bytes:
            self.state.refuse(
                "header_too_large",
                f"request head of {size} bytes refused "
                f"(CAT_WATCHER__SERVER__MAX_HEADER_BYTES={server.max_header_bytes})",
            )
            await error_response(
                431,
                "header_too_large",
                f"request line and headers are {size} bytes; the limit is {server.max_header_bytes}",
            )(scope, receive, send)
            return
        if scope["path"] in UNGUARDED_PATHS:
            await self.app(scope, receive, send)
            return
        if self.pending >= server.max_pending_requests:
            self.state.refuse(
                "overloaded",
                f"overloaded: {self.pending} detect requests in progress "
                f"(CAT_WATCHER__SERVER__MAX_PENDING_REQUESTS={server.max_pending_requests}); answering 503",
            )
            self.state.metrics.observe_request("server_error", 0.0)
            await error_response(
                503,
                "overloaded",
                f"{self.pending} requests are in progress, the limit is {server.max_pending_requests}; retry later",
            )(scope, receive, send)
            return
        self.pending += 1
        self.state.metrics.pending_requests.set(self.pending)
        try:
            await self.app(scope, receive, send)
        finally:
            self.pending -= 1
            self.state.metrics.pending_requests.set(self.pending)
            await self._trim_when_idle()

    async def _trim_when_idle(self) -> None:
        now = time.monotonic()
        if self.pending == 0 and now - self.last_trim >= TRIM_INTERVAL_SECONDS:
            self.last_trim = now
            await anyio.to_thread.run_sync(release_free_memory)


def media_type_of(request: Request) -> str:
    return request.headers.get("content-type", "").split(";", 1)[0].strip().lower()


async def read_body(request: Request, limit: int, timeout: float | None = None) -> bytes:
    """The body, refused with 413 as soon as Content-Length or the bytes received exceed `limit`,
    and with 408 if it has not all arrived within `timeout` seconds."""
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.isdigit():
            raise ClientError(400, "invalid_content_length", f"Content-Length {declared!r} is not a byte count")
        if int(declared) > limit:
            raise ClientError(413, "body_too_large", f"body of {declared} bytes exceeds the limit of {limit}")
    chunks, received = [], 0
    try:
        async with asyncio.timeout(timeout):
            async for chunk in request.stream():
                received += len(chunk)
                if received > limit:
                    raise ClientError(413, "body_too_large", f"body exceeds the limit of {limit} bytes")
                chunks.append(chunk)
    except ClientDisconnect:
        raise ClientError(400, "client_disconnected", "the client closed the connection mid-body") from None
    except TimeoutError:
        raise BodyTimeoutError(
            408,
            "body_timeout",
            f"the body did not arrive within {timeout:g} s "
            f"(CAT_WATCHER__SERVER__BODY_TIMEOUT); {received} bytes received",
        ) from None
    return b"".join(chunks)


class BodyTimeoutError(ClientError):
    """The body did not arrive in time (counted as a refusal as well as a client error)."""


def count_multipart_parts(content_type: str, body: bytes) -> int:
    """Parts in a multipart body, by its delimiters (a C-speed scan; the parser runs in Python)."""
    _, options = parse_options_header(content_type)
    boundary = options.get(b"boundary")
    if not boundary:
        raise ClientError(400, "invalid_multipart", "multipart Content-Type has no boundary")
    return max(0, body.count(b"--" + boundary) - 1)


def image_from_multipart(content_type: str, body: bytes, max_parts: int = 8) -> bytes:
    """The `image` part (file or plain field) of an already size-checked multipart body.

    Runs in a worker thread: parsing is CPU work. Parts stay in memory (the body is bounded by
    MAX_REQUEST_BYTES), so nothing is spooled to disk. Bodies of more than `max_parts` parts are
    refused before parsing: 10 MiB of tiny parts costs the parser seconds of CPU.
    """
    parts = count_multipart_parts(content_type, body)
    if parts > max_parts:
        raise ClientError(
            400,
            "too_many_parts",
            f"multipart body has about {parts} parts; CAT_WATCHER__INFERENCE__MAX_MULTIPART_PARTS={max_parts}",
        )
    images: list[bytes] = []

    def on_field(field: Field) -> None:
        if field.field_name == IMAGE_FIELD.encode() and isinstance(field.value, bytes):
            images.append(field.value)

    def on_file(file: File) -> None:
        if file.field_name == IMAGE_FIELD.encode():
            file.file_object.seek(0)
            images.append(file.file_object.read())

    try:
        parser = create_form_parser(
            {"Content-Type": content_type.encode("latin-1")},
            on_field,
            on_file,
            config={"MAX_MEMORY_FILE_SIZE": len(body) + 1},
        )
        parser.write(body)
        parser.finalize()
    except (FormParserError, ValueError, UnicodeEncodeError) as error:
        raise ClientError(400, "invalid_multipart", str(error) or type(error).__name__) from None
    if not images:
        raise ClientError(400, "missing_image_field", f"multipart body needs a part named {IMAGE_FIELD!r}")
    return images[0]


async def image_bytes(request: Request, settings: Settings) -> bytes:
    limit, timeout = settings.inference.max_request_bytes, settings.server.body_timeout
    media_type = media_type_of(request)
    if media_type == MULTIPART_MEDIA_TYPE:
        body = await read_body(request, limit, timeout)
        return await anyio.to_thread.run_sync(
            image_from_multipart, request.headers["content-type"], body, settings.inference.max_multipart_parts
        )
    if media_type.startswith("image/") or media_type in RAW_MEDIA_TYPES:
        return await read_body(request, limit, timeout)
    raise ClientError(
        415,
        "unsupported_media_type",
        "send image/* or application/octet-stream bytes, or multipart/form-data "
        f"with an {IMAGE_FIELD!r} file; got {media_type or 'no Content-Type'}",
    )


def create_app(
    settings: Settings, load_engine: EngineLoader | None = None, on_fatal: Callable[[BaseException], None] | None = None
) -> Starlette:
    """The service. Models load in the background after start-up: /readyz says when they are in.

    `on_fatal` is called if loading fails (the CLI stops the server and exits non-zero).
    """
    state = ServiceState(settings, ServiceMetrics(settings.inference.gpu_memory_limit_bytes))
    loader = load_engine or (lambda on_status: CatWatcherEngine.load(settings.inference, on_status_change=on_status))

    async def load_models() -> None:
        try:
            state.engine = await anyio.to_thread.run_sync(loader, state.metrics.set_status, abandon_on_cancel=True)
        except Exception as error:  # noqa: BLE001 - any load failure is reported and stops the server
            state.load_error = str(error)
            log.error("model loading failed: %s", error)
            if on_fatal is not None:
                on_fatal(error)
            return
        if state.batcher is not None:
            # A model with a fixed batch size runs frames one by one.
            state.batcher.max_batch = min(state.batcher.max_batch, state.engine.max_batch)
        status = state.engine.status
        log.info(
            "models loaded: device=%s degraded=%s identifier=%s",
            status.device,
            status.degraded,
            state.engine.identifier is not None,
        )

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        state.open_slots(
            settings.inference.max_concurrent_runs,
            settings.inference.max_batch,
            settings.inference.max_batch_wait_ms / 1000,
            settings.inference.decode_nice,
        )
        loading = asyncio.create_task(load_models())
        yield
        loading.cancel()
        state.close_slots()

    async def healthz(request: Request) -> JSONResponse:
        status = state.engine.status if state.engine else None
        return JSONResponse(
            {
                "status": "ok",
                "ready": state.engine is not None,
                "device": status.device if status else None,
                "degraded": bool(status and status.degraded),
                "degraded_reason": status.reason if status else None,
            }
        )

    async def readyz(request: Request) -> JSONResponse:
        if state.engine is None:
            detail = f"model loading failed: {state.load_error}" if state.load_error else "models are loading"
            return error_response(503, "not_ready", detail)
        return JSONResponse(
            {"status": "ready", "device": state.engine.status.device, "degraded": state.engine.status.degraded}
        )

    async def metrics(request: Request) -> Response:
        return Response(generate_latest(state.metrics.registry), media_type=CONTENT_TYPE_LATEST)

    async def detect(request: Request) -> Response:
        start = time.perf_counter()
        outcome = "server_error"
        try:
            response = await run_detection(request, start)
            outcome = "ok"
        except ClientError as error:
            outcome = "client_error"
            if isinstance(error, BodyTimeoutError):
                state.refuse("body_timeout", f"dropped a request whose body stalled: {error.detail}")
            response = error_response(error.status, error.error, error.detail)
        except NotReadyError:
            response = error_response(503, "not_ready", "models are not loaded yet")
        except Exception:
            log.exception("detection failed")
            response = error_response(500, "internal_error", "inference failed; see the service log")
        state.metrics.observe_request(outcome, time.perf_counter() - start)
        return response

    async def run_detection(request: Request, start: float) -> JSONResponse:
        engine = state.engine
        if engine is None:
            raise NotReadyError
        data = await image_bytes(request, settings)
        async with state.admission:
            assert state.batcher is not None and state.decoder is not None
            prepared = await state.decoder.run(engine.prepare, data)
            result = await state.batcher.submit(prepared)
        timings = prepared.timings
        state.metrics.inference_duration.labels("detect").observe(timings["detect"] / 1000)
        if engine.identifier is not None and result["detections"]:
            state.metrics.inference_duration.labels("identify").observe(timings["identify"] / 1000)
        timings["total"] = (time.perf_counter() - start) * 1000
        body: dict[str, Any] = {
            **result,
            "image": {"width": prepared.letterbox.source_width, "height": prepared.letterbox.source_height},
            "timings_ms": {name: round(value, 2) for name, value in timings.items()},
            "device": engine.status.device,
            "degraded": engine.status.degraded,
        }
        return JSONResponse(body)

    async def http_error(request: Request, error: Exception) -> Response:
        assert isinstance(error, HTTPException)
        return error_response(error.status_code, "http_error", str(error.detail))

    app = Starlette(
        routes=[
            Route(contract.HEALTH_PATH, healthz, methods=["GET"]),
            Route(contract.READY_PATH, readyz, methods=["GET"]),
            Route(contract.METRICS_PATH, metrics, methods=["GET"]),
            Route(contract.DETECT_PATH, detect, methods=["POST"]),
        ],
        lifespan=lifespan,
        exception_handlers={HTTPException: http_error},
        middleware=[Middleware(RequestGuard, state=state)],
    )
    app.state.service = state
    return app
