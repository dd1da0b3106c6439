"""Hostile and broken clients against a real `catwatcher-inference serve` process on 127.0.0.1.

Bounded in time and count: about 70 idle connections, a few bombs, a few stalled bodies. The
server runs on CPU with both models, MALLOC_ARENA_MAX=2 as in the image, and short deadlines
(settings) so the test does not wait out the production ones. Tests run in file order against
one server; the last one stops it and reads its log.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from hostile_images import lossless_webp, multipart_flood, progressive_scan_bomb, tall_png
from inference_support import ENV_PREFIX, encode, free_port, photo_like, serve_process, wait_until

from inference import contract
from infra.model import ResourceSpec

HEADER_TIMEOUT = 3.0
BODY_TIMEOUT = 2.0
MAX_PENDING = 8
MiB = 1024 * 1024
POD_MEMORY_LIMIT = 2 * 1024 * MiB


def test_pod_memory_limit_is_the_deployments_default() -> None:
    assert ResourceSpec().memory_limit == "2Gi"


class Server:
    def __init__(self, process: subprocess.Popen[bytes], port: int) -> None:
        self.process = process
        self.port = port
        self.base = f"http://127.0.0.1:{port}"
        self.client = httpx.Client(base_url=self.base, timeout=30)

    def status(self, field: str) -> int:
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
        raise AssertionError(f"no {field} for {self.process.pid}")

    def rss(self) -> int:
        return self.status("VmRSS")

    def metric(self, name: str, labels: str = "") -> float:
        wanted = f"{name}{{{labels}}}" if labels else name
        for line in self.client.get(contract.METRICS_PATH).text.splitlines():
            if line.startswith(wanted + " "):
                return float(line.split()[-1])
        raise AssertionError(f"{wanted} not exposed")

    def timed(self, request: Callable[[], httpx.Response]) -> tuple[httpx.Response, float]:
        began = time.monotonic()
        response = request()
        return response, time.monotonic() - began

    def healthz(self) -> tuple[httpx.Response, float]:
        with httpx.Client(base_url=self.base, timeout=10) as fresh:  # a new connection, as the kubelet makes
            return self.timed(lambda: fresh.get(contract.HEALTH_PATH))

    def detect(self, body: bytes, content_type: str = "image/jpeg") -> tuple[httpx.Response, float]:
        return self.timed(
            lambda: self.client.post(contract.DETECT_PATH, content=body, headers={"Content-Type": content_type})
        )


FRAME = encode(photo_like(1280, 720))


@pytest.fixture(scope="module")
def server(model_dir: Path) -> Iterator[Server]:
    port = free_port()
    settings = {
        "INFERENCE__DEVICE": "cpu",
        "INFERENCE__DETECTOR_MODEL_PATH": str(model_dir / "detector.onnx"),
        "INFERENCE__IDENTIFIER_MODEL_PATH": str(model_dir / "identifier.onnx"),
        "SERVER__HEADER_TIMEOUT": str(HEADER_TIMEOUT),
        "SERVER__BODY_TIMEOUT": str(BODY_TIMEOUT),
        "SERVER__MAX_PENDING_REQUESTS": str(MAX_PENDING),
    }
    os.environ.setdefault("MALLOC_ARENA_MAX", "2")
    process = serve_process(
        {ENV_PREFIX + name: value for name, value in settings.items()} | {"MALLOC_ARENA_MAX": "2"}, port
    )
    running = Server(process, port)

    def ready() -> bool:
        try:
            return httpx.get(f"{running.base}/readyz", timeout=1).status_code == 200
        except httpx.HTTPError:
            return process.poll() is not None

    try:
        assert wait_until(ready, timeout=40) and process.poll() is None, "server did not get ready"
        for _ in range(3):  # warm-up: allocator and thread pools at their working size
            assert running.detect(FRAME)[0].status_code == 200
        running.baseline_rss = running.rss()  # type: ignore[attr-defined]
        yield running
    finally:
        running.client.close()
        if process.poll() is None:
            process.terminate()
            process.wait(timeout=15)


def open_socket(port: int, payload: bytes = b"") -> socket.socket:
    connection = socket.create_connection(("127.0.0.1", port), timeout=10)
    if payload:
        connection.sendall(payload)
    return connection


def closed_by_server(connection: socket.socket, within: float) -> tuple[bool, bytes]:
    """Whether the server closes `connection` within `within` seconds, and what it sent first."""
    connection.settimeout(within)
    received = b""
    deadline = time.monotonic() + within
    try:
        while time.monotonic() < deadline:
            chunk = connection.recv(65536)
            if not chunk:
                return True, received
            received += chunk
    except (ConnectionResetError, BrokenPipeError):
        return True, received
    except TimeoutError:
        return False, received
    return False, received


def json_body(raw: bytes) -> tuple[int, dict[str, object]]:
    head, _, body = raw.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    assert b"content-type: application/json" in head.lower(), head
    return status, json.loads(body)


def test_idle_and_half_sent_connections_block_nothing_and_are_closed(server: Server) -> None:
    idle = [open_socket(server.port) for _ in range(70)]
    half_sent = [open_socket(server.port, b"POST /v1/detect HTTP/1.1\r\nHost: x\r\nContent-Ty") for _ in range(5)]
    try:
        health, seconds = server.healthz()
        assert health.status_code == 200 and seconds < 2, (health.status_code, seconds)
        assert server.client.get(contract.METRICS_PATH).status_code == 200
        response, _ = server.detect(FRAME)
        assert response.status_code == 200, response.text
        began = time.monotonic()
        for connection in idle + half_sent:
            closed, _ = closed_by_server(connection, HEADER_TIMEOUT + 5 - (time.monotonic() - began))
            assert closed, "an idle connection outlived the head deadline"
        assert time.monotonic() - began < HEADER_TIMEOUT + 5
    finally:
        for connection in idle + half_sent:
            connection.close()
    assert server.metric("catwatcher_refused_total", 'reason="header_timeout"') >= 75


def test_scan_bombs_are_answered_within_3_s_and_a_valid_frame_follows(server: Server) -> None:
    bomb = progressive_scan_bomb(4000, 4000, 1500)
    results: list[tuple[int, float, str]] = []

    def send() -> None:
        with httpx.Client(base_url=server.base, timeout=30) as client:
            began = time.monotonic()
            response = client.post(contract.DETECT_PATH, content=bomb, headers={"Content-Type": "image/jpeg"})
            results.append((response.status_code, time.monotonic() - began, response.json()["detail"]))

    senders = [threading.Thread(target=send) for _ in range(2)]
    for sender in senders:
        sender.start()
    for sender in senders:
        sender.join(30)
    assert len(results) == 2
    for status, seconds, detail in results:
        assert status == 422 and seconds < 3, (status, seconds)
        assert "MAX_JPEG_SCANS" in detail
    response, seconds = server.detect(FRAME)
    assert response.status_code == 200 and seconds < 3, (response.status_code, seconds)


def test_small_files_with_huge_decodes_are_refused_cheaply(server: Server) -> None:
    before = server.rss()
    png, _ = server.detect(tall_png(1, 40_000_000), "image/png")
    assert png.status_code == 413 and "MAX_IMAGE_HEIGHT" in png.json()["detail"], png.text
    webp, _ = server.detect(lossless_webp(6324, 6324), "image/webp")
    assert webp.status_code == 413 and "MAX_DECODED_IMAGE_BYTES" in webp.json()["detail"], webp.text
    assert server.rss() - before < 400 * MiB


def test_stalled_bodies_are_dropped_after_the_body_timeout(server: Server) -> None:
    short = open_socket(
        server.port,
        b"POST /v1/detect HTTP/1.1\r\nHost: x\r\nContent-Type: image/jpeg\r\nContent-Length: 100000\r\n\r\n"
        + FRAME[:1000],
    )
    chunked = open_socket(
        server.port,
        b"POST /v1/detect HTTP/1.1\r\nHost: x\r\nContent-Type: image/jpeg\r\nTransfer-Encoding: chunked\r\n\r\n3e8\r\n"
        + FRAME[:1000]
        + b"\r\n",
    )
    began = time.monotonic()
    try:
        for connection in (short, chunked):
            closed, received = closed_by_server(connection, 30 - (time.monotonic() - began))
            assert closed and received, "a stalled body was not answered and dropped"
            status, body = json_body(received)
            assert status == 408 and body["error"] == "body_timeout", body
        assert time.monotonic() - began < BODY_TIMEOUT + 5
    finally:
        short.close()
        chunked.close()
    assert server.metric("catwatcher_refused_total", 'reason="body_timeout"') >= 2


def test_a_stalled_body_sent_to_an_endpoint_that_reads_none_is_dropped_too(server: Server) -> None:
    # Answered at once (405: /healthz takes GET); the unread rest keeps the connection in the
    # middle of a request, so the head deadline, not the body timeout, closes it.
    stalled = open_socket(
        server.port, b"POST /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n" + b"x" * 1000
    )
    began = time.monotonic()
    try:
        closed, received = closed_by_server(stalled, HEADER_TIMEOUT + 5)
    finally:
        stalled.close()
    assert closed and time.monotonic() - began < HEADER_TIMEOUT + 5
    assert json_body(received)[0] == 405


def test_overload_is_a_counted_json_503_and_probes_still_answer(server: Server) -> None:
    errors_before = server.metric("catwatcher_requests_total", 'outcome="server_error"')
    stalled = [
        open_socket(
            server.port,
            b"POST /v1/detect HTTP/1.1\r\nHost: x\r\nContent-Type: image/jpeg\r\nContent-Length: 10000000\r\n\r\n"
            + b"\xff" * 65536,
        )
        for _ in range(MAX_PENDING)
    ]
    try:
        assert wait_until(lambda: server.metric(contract.METRIC_PENDING_REQUESTS) == MAX_PENDING, timeout=BODY_TIMEOUT)
        response, seconds = server.detect(FRAME)
        assert response.status_code == 503 and seconds < 2
        assert response.headers["content-type"] == "application/json" and response.json()["error"] == "overloaded"
        health, seconds = server.healthz()
        assert health.status_code == 200 and seconds < 2
        assert server.client.get(contract.READY_PATH).status_code == 200
    finally:
        for connection in stalled:
            connection.close()
    assert server.metric("catwatcher_refused_total", 'reason="overloaded"') >= 1
    assert server.metric("catwatcher_requests_total", 'outcome="server_error"') >= errors_before + 1
    assert wait_until(lambda: server.metric(contract.METRIC_PENDING_REQUESTS) == 0, timeout=BODY_TIMEOUT + 3)
    assert server.detect(FRAME)[0].status_code == 200


def test_multipart_floods_are_refused_before_parsing(server: Server) -> None:
    flood = multipart_flood("attack", 100_000)
    assert 5 * MiB < len(flood) < 10 * MiB
    results: list[tuple[int, float]] = []

    def send() -> None:
        with httpx.Client(base_url=server.base, timeout=30) as client:
            began = time.monotonic()
            response = client.post(
                contract.DETECT_PATH, content=flood, headers={"Content-Type": "multipart/form-data; boundary=attack"}
            )
            results.append((response.status_code, time.monotonic() - began))
            assert response.json()["error"] == "too_many_parts"

    senders = [threading.Thread(target=send) for _ in range(4)]
    for sender in senders:
        sender.start()
    health, seconds = server.healthz()
    for sender in senders:
        sender.join(30)
    assert health.status_code == 200 and seconds < 2
    assert [status for status, _ in results] == [400] * 4 and max(seconds for _, seconds in results) < 5, results
    # Malformed multipart: answered 400, and (checked at the end) never one log line each.
    for _ in range(20):
        broken, _ = server.detect(b"--x\r\nno headers here", "multipart/form-data; boundary=x")
        assert broken.status_code == 400


def test_oversized_and_malformed_heads_get_json_4xx(server: Server) -> None:
    big = open_socket(server.port, b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Padding: " + b"a" * 120_000 + b"\r\n\r\n")
    closed, received = closed_by_server(big, 10)
    big.close()
    status, body = json_body(received)
    assert status in (400, 431) and body["error"] in ("invalid_http_request", "header_too_large"), body
    for _ in range(30):
        garbage = open_socket(server.port, b"NOT HTTP AT ALL\r\n\r\n")
        closed, received = closed_by_server(garbage, 10)
        garbage.close()
        assert closed and json_body(received)[0] == 400


def test_memory_stays_inside_the_pod_and_returns_near_baseline_then_the_log_is_quiet(server: Server) -> None:
    peak, after, baseline = server.status("VmHWM"), server.rss(), server.baseline_rss  # type: ignore[attr-defined]
    print(f"\nRSS baseline {baseline / MiB:.0f} MiB, after attacks {after / MiB:.0f} MiB, peak {peak / MiB:.0f} MiB")
    assert peak < POD_MEMORY_LIMIT * 0.75
    assert after < baseline + 200 * MiB
    server.process.terminate()
    _, stderr = server.process.communicate(timeout=15)
    log = stderr.decode(errors="replace")
    assert "Traceback" not in log
    assert "python_multipart" not in log
    assert log.count("Invalid HTTP request received.") <= 1
    # Each kind of refusal is logged once per interval, not once per event (75 header timeouts).
    assert log.count("sent no complete request head") == 1, log[-3000:]
    assert log.count("overloaded:") == 1
