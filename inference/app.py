"""HTTP API (Starlette): health, readiness, metrics and `POST /v1/detect`.

Requests are accepted concurrently; decoding runs in worker threads and model runs are bounded by
a semaphore (`max_concurrent_runs`) so a pod never oversubscribes its GPU slice. Frames waiting
for a run are micro-batched (`max_batch`, see inference/batching.py). The event loop itself never
does CPU-heavy work, and at most 2 x `max_concurrent_runs` x `max_batch` decoded images exist.
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
from python_multipart.multipart import Field, File, create_form_parser
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from inference import contract
from inference.batching import MicroBatcher
from inference.engine import CatWatcherEngine, PreparedImage
from inference.errors import ClientError
from inference.metrics import ServiceMetrics
from inference.runtime import DeviceStatus
from inference.settings import Settings

log = logging.getLogger(__name__)

IMAGE_FIELD = "image"
RAW_MEDIA_TYPES = ("application/octet-stream",)
MULTIPART_MEDIA_TYPE = "multipart/form-data"

EngineLoader = Callable[[Callable[[DeviceStatus], None]], CatWatcherEngine]


class NotReady(Exception):
    pass


@dataclass
class ServiceState:
    settings: Settings
    metrics: ServiceMetrics
    engine: CatWatcherEngine | None = None
    load_error: str | None = None
    batcher: MicroBatcher[PreparedImage, dict[str, Any]] | None = None
    admission: asyncio.Semaphore = field(default_factory=lambda: asyncio.Semaphore(2))

    def open_slots(self, max_concurrent_runs: int, max_batch: int = 1, max_batch_wait: float = 0.0) -> None:
        """Model runs are bounded by `max_concurrent_runs`; decoded images by twice the frames
        those runs take.

        Twice keeps the next batch decoding while the model runs, yet a burst of clients waits
        holding only its compressed body, not a 5 MB float tensor each.
        """
        self.batcher = MicroBatcher(self.run_frames, max_batch, max_batch_wait, max_concurrent_runs, self.metrics.runs_in_flight.inc)
        self.admission = asyncio.Semaphore(2 * max_concurrent_runs * max_batch)

    def run_frames(self, frames: Sequence[PreparedImage]) -> list[dict[str, Any]]:
        assert self.engine is not None
        return [self.engine.infer(frames[0])] if len(frames) == 1 else self.engine.infer_batch(frames)


def error_response(status: int, error: str, detail: str) -> JSONResponse:
    return JSONResponse({"error": error, "detail": detail}, status_code=status)


def media_type_of(request: Request) -> str:
    return request.headers.get("content-type", "").split(";", 1)[0].strip().lower()


async def read_body(request: Request, limit: int) -> bytes:
    """The body, refused with 413 as soon as Content-Length or the bytes received exceed `limit`."""
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.isdigit():
            raise ClientError(400, "invalid_content_length", f"Content-Length {declared!r} is not a byte count")
        if int(declared) > limit:
            raise ClientError(413, "body_too_large", f"body of {declared} bytes exceeds the limit of {limit}")
    chunks, received = [], 0
    try:
        async for chunk in request.stream():
            received += len(chunk)
            if received > limit:
                raise ClientError(413, "body_too_large", f"body exceeds the limit of {limit} bytes")
            chunks.append(chunk)
    except ClientDisconnect:
        raise ClientError(400, "client_disconnected", "the client closed the connection mid-body") from None
    return b"".join(chunks)


def image_from_multipart(content_type: str, body: bytes) -> bytes:
    """The `image` part (file or plain field) of an already size-checked multipart body.

    Runs in a worker thread: parsing is CPU work. Parts stay in memory (the body is bounded by
    MAX_REQUEST_BYTES), so nothing is spooled to disk.
    """
    images: list[bytes] = []

    def on_field(field: Field) -> None:
        if field.field_name == IMAGE_FIELD.encode() and isinstance(field.value, bytes):
            images.append(field.value)

    def on_file(file: File) -> None:
        if file.field_name == IMAGE_FIELD.encode():
            file.file_object.seek(0)
            images.append(file.file_object.read())

    try:
        parser = create_form_parser({"Content-Type": content_type.encode("latin-1")}, on_field, on_file, config={"MAX_MEMORY_FILE_SIZE": len(body) + 1})
        parser.write(body)
        parser.finalize()
    except (FormParserError, ValueError, UnicodeEncodeError) as error:
        raise ClientError(400, "invalid_multipart", str(error) or type(error).__name__) from None
    if not images:
        raise ClientError(400, "missing_image_field", f"multipart body needs a part named {IMAGE_FIELD!r}")
    return images[0]


async def image_bytes(request: Request, limit: int) -> bytes:
    media_type = media_type_of(request)
    if media_type == MULTIPART_MEDIA_TYPE:
        body = await read_body(request, limit)
        return await anyio.to_thread.run_sync(image_from_multipart, request.headers["content-type"], body)
    if media_type.startswith("image/") or media_type in RAW_MEDIA_TYPES:
        return await read_body(request, limit)
    raise ClientError(415, "unsupported_media_type", f"send image/* or application/octet-stream bytes, or multipart/form-data with an {IMAGE_FIELD!r} file; got {media_type or 'no Content-Type'}")


def create_app(settings: Settings, load_engine: EngineLoader | None = None, on_fatal: Callable[[BaseException], None] | None = None) -> Starlette:
    """The service. Models load in the background after start-up: /readyz says when they are in.

    `on_fatal` is called if loading fails (the CLI stops the server and exits non-zero).
    """
    state = ServiceState(settings, ServiceMetrics(settings.inference.gpu_memory_limit_bytes))
    loader = load_engine or (lambda on_status: CatWatcherEngine.load(settings.inference, on_status_change=on_status))

    async def load_models() -> None:
        try:
            state.engine = await anyio.to_thread.run_sync(loader, state.metrics.set_status, abandon_on_cancel=True)
        except Exception as error:
            state.load_error = str(error)
            log.error("model loading failed: %s", error)
            if on_fatal is not None:
                on_fatal(error)
            return
        if state.batcher is not None:
            # A model with a fixed batch size runs frames one by one.
            state.batcher.max_batch = min(state.batcher.max_batch, state.engine.max_batch)
        status = state.engine.status
        log.info("models loaded: device=%s degraded=%s identifier=%s", status.device, status.degraded, state.engine.identifier is not None)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        state.open_slots(settings.inference.max_concurrent_runs, settings.inference.max_batch, settings.inference.max_batch_wait_ms / 1000)
        loading = asyncio.create_task(load_models())
        yield
        loading.cancel()

    async def healthz(request: Request) -> JSONResponse:
        status = state.engine.status if state.engine else None
        return JSONResponse({
            "status": "ok",
            "ready": state.engine is not None,
            "device": status.device if status else None,
            "degraded": bool(status and status.degraded),
            "degraded_reason": status.reason if status else None,
        })

    async def readyz(request: Request) -> JSONResponse:
        if state.engine is None:
            detail = f"model loading failed: {state.load_error}" if state.load_error else "models are loading"
            return error_response(503, "not_ready", detail)
        return JSONResponse({"status": "ready", "device": state.engine.status.device, "degraded": state.engine.status.degraded})

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
            response = error_response(error.status, error.error, error.detail)
        except NotReady:
            response = error_response(503, "not_ready", "models are not loaded yet")
        except Exception:
            log.exception("detection failed")
            response = error_response(500, "internal_error", "inference failed; see the service log")
        state.metrics.observe_request(outcome, time.perf_counter() - start)
        return response

    async def run_detection(request: Request, start: float) -> JSONResponse:
        engine = state.engine
        if engine is None:
            raise NotReady
        data = await image_bytes(request, settings.inference.max_request_bytes)
        async with state.admission:
            prepared = await anyio.to_thread.run_sync(engine.prepare, data)
            assert state.batcher is not None
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
    )
    app.state.service = state
    return app
