"""Probe and detect latency while clients misbehave, against a real server on loopback.

Starts `catwatcher-inference serve` (CPU, placeholder detector + identifier,
MALLOC_ARENA_MAX=2), then for each scenario holds the hostile clients open and measures
`GET /healthz` on fresh connections (as the kubelet probes) and `POST /v1/detect` of a 720p
frame, and the server's RSS. Scenarios: nothing; N idle connections; N half-sent request heads;
MAX_PENDING_REQUESTS stalled bodies (admission full).

    python tests/bench/hostile_clients.py [--idle 70 --idle 500] [--probes 20]
"""

from __future__ import annotations

import argparse
import http.client
import socket
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "inference"))
from inference_support import encode, free_port, photo_like, serve_process, wait_until

from inference.contract import DETECT_PATH, ENV_PREFIX, HEALTH_PATH
from inference.modelgen import write_models

MAX_PENDING = 32


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


@contextmanager
def sockets(port: int, count: int, payload: bytes) -> Iterator[None]:
    opened = []
    try:
        for _ in range(count):
            connection = socket.create_connection(("127.0.0.1", port), timeout=10)
            if payload:
                connection.sendall(payload)
            opened.append(connection)
        yield
    finally:
        for connection in opened:
            connection.close()


def latencies(request: Callable[[], int], count: int) -> tuple[list[float], set[int]]:
    seconds, statuses = [], set()
    for _ in range(count):
        began = time.perf_counter()
        try:
            statuses.add(request())
        except (OSError, http.client.HTTPException) as error:
            statuses.add(type(error).__name__)  # type: ignore[arg-type]
        seconds.append(time.perf_counter() - began)
    return seconds, statuses


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--idle", type=int, action="append", help="idle connection counts (repeatable; default 70 and 500)"
    )
    parser.add_argument("--probes", type=int, default=20)
    arguments = parser.parse_args()
    counts = arguments.idle or [70, 500]
    frame = encode(photo_like(1280, 720))
    with tempfile.TemporaryDirectory() as directory:
        models = write_models(Path(directory), ("a", "b"), 0)
        port = free_port()
        env = {
            f"{ENV_PREFIX}INFERENCE__DEVICE": "cpu",
            f"{ENV_PREFIX}INFERENCE__DETECTOR_MODEL_PATH": str(models["detector"]),
            f"{ENV_PREFIX}INFERENCE__IDENTIFIER_MODEL_PATH": str(models["identifier"]),
            f"{ENV_PREFIX}SERVER__MAX_PENDING_REQUESTS": str(MAX_PENDING),
            "MALLOC_ARENA_MAX": "2",
        }
        process = serve_process(env, port)
        base = f"http://127.0.0.1:{port}"
        try:
            assert wait_until(lambda: _ready(base), 60), "server did not get ready"

            def request(
                method: str, path: str, body: bytes | None = None, headers: dict[str, str] | None = None
            ) -> int:
                # A new connection each time, as the kubelet probes (http.client: no TLS set-up cost).
                connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
                try:
                    connection.request(method, path, body=body, headers=headers or {})
                    response = connection.getresponse()
                    response.read()
                    return response.status
                finally:
                    connection.close()

            def probe() -> int:
                return request("GET", HEALTH_PATH)

            def detect() -> int:
                return request("POST", DETECT_PATH, frame, {"Content-Type": "image/jpeg"})

            scenarios: list[tuple[str, int, bytes]] = [("no hostile clients", 0, b"")]
            scenarios += [(f"{n} idle connections", n, b"") for n in counts]
            scenarios += [
                (f"{n} half-sent heads", n, b"POST /v1/detect HTTP/1.1\r\nHost: x\r\nContent-") for n in counts
            ]
            stalled = (
                b"POST /v1/detect HTTP/1.1\r\nHost: x\r\nContent-Type: image/jpeg\r\nContent-Length: 10000000\r\n\r\n"
                + b"\xff" * 65536
            )
            scenarios.append((f"{MAX_PENDING} stalled bodies (admission full)", MAX_PENDING, stalled))
            print(
                f"{'scenario':40} {'healthz p50':>12} {'healthz max':>12} "
                f"{'detect p50':>11} {'detect statuses':>16} {'RSS':>8}"
            )
            for name, count, payload in scenarios:
                with sockets(port, count, payload):
                    time.sleep(0.5)
                    health, health_statuses = latencies(probe, arguments.probes)
                    detects, detect_statuses = latencies(detect, 5)
                    rss = rss_mib(process.pid)
                print(
                    f"{name:40} {statistics.median(health) * 1000:>9.1f} ms {max(health) * 1000:>9.1f} ms"
                    f" {statistics.median(detects) * 1000:>8.0f} ms "
                    f"{','.join(map(str, sorted(detect_statuses, key=str))):>16} {rss:>5.0f} MiB"
                    + ("" if health_statuses == {200} else f"  healthz statuses {health_statuses}")
                )
                time.sleep(0.5)
        finally:
            process.terminate()
            process.wait(timeout=15)
    return 0


def _ready(base: str) -> bool:
    try:
        return httpx.get(base + "/readyz", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


if __name__ == "__main__":
    sys.exit(main())
