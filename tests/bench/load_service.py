"""Load test: many concurrent clients against a real server on loopback, bounded in time.

Starts `catwatcher-inference serve` (CPU, placeholder detector + identifier), warms it up, then
keeps `--clients` keep-alive connections busy for `--seconds`. One request in ten is a truncated
JPEG, so error paths are under load too. Reports server errors (5xx), latency percentiles and the
server's resident memory after warm-up and at the end.

    python tests/bench/load_service.py [--clients 32] [--seconds 60] [--warmup 10] [--json]
"""

from __future__ import annotations

import argparse
import http.client
import json
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

import numpy as np
from bench_service import camera_frame, free_port, start_server

from inference.contract import DETECT_PATH
from inference.modelgen import write_models


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


def hammer(
    port: int, bodies: list[bytes], until: float, statuses: Counter[int], latencies: list[float], lock: threading.Lock
) -> None:
    """One client: sends bodies round-robin until the deadline, reconnecting after errors."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    sent = 0
    while time.monotonic() < until:
        body = bodies[sent % len(bodies)]
        sent += 1
        began = time.perf_counter()
        try:
            connection.request("POST", DETECT_PATH, body=body, headers={"Content-Type": "image/jpeg"})
            response = connection.getresponse()
            response.read()
            status = response.status
        except (OSError, http.client.HTTPException):
            status = 599  # transport failure: counted as a server error
            connection.close()
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        elapsed = time.perf_counter() - began
        with lock:
            statuses[status] += 1
            if status < 500:
                latencies.append(elapsed)
    connection.close()


def run_clients(port: int, bodies: list[bytes], clients: int, seconds: float) -> tuple[Counter[int], list[float]]:
    statuses: Counter[int] = Counter()
    latencies: list[float] = []
    lock = threading.Lock()
    until = time.monotonic() + seconds
    # Each client starts at a different body so the mix is interleaved, not in lockstep.
    threads = [
        threading.Thread(
            target=hammer,
            args=(port, bodies[i % len(bodies) :] + bodies[: i % len(bodies)], until, statuses, latencies, lock),
        )
        for i in range(clients)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return statuses, latencies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=60.0, help="measured load duration")
    parser.add_argument("--warmup", type=float, default=10.0, help="load before the first memory reading")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    arguments = parser.parse_args()

    frames = [camera_frame(1280, 720, seed) for seed in range(3)] + [camera_frame(1920, 1080, 3)]
    bodies = frames * 2 + [frames[0][: len(frames[0]) // 3]]  # one truncated JPEG in nine
    with tempfile.TemporaryDirectory() as model_dir:
        paths = write_models(Path(model_dir))
        server = start_server(paths["detector"], port := free_port(), identifier=paths["identifier"])
        try:
            run_clients(port, bodies, arguments.clients, arguments.warmup)
            rss_after_warmup = rss_bytes(server.pid)
            statuses, latencies = run_clients(port, bodies, arguments.clients, arguments.seconds)
            rss_at_end = rss_bytes(server.pid)
        finally:
            server.terminate()
            server.wait(timeout=30)

    p50, p99 = np.percentile(np.array(latencies or [0.0]) * 1000, [50, 99])
    report = {
        "clients": arguments.clients,
        "seconds": arguments.seconds,
        "requests": sum(statuses.values()),
        "statuses": {str(code): count for code, count in sorted(statuses.items())},
        "server_errors": sum(count for code, count in statuses.items() if code >= 500),
        "p50_ms": round(float(p50), 1),
        "p99_ms": round(float(p99), 1),
        "rss_after_warmup_mib": round(rss_after_warmup / 2**20, 1),
        "rss_at_end_mib": round(rss_at_end / 2**20, 1),
        "rss_growth_percent": round(100 * (rss_at_end - rss_after_warmup) / rss_after_warmup, 2),
    }
    if arguments.json:
        print(json.dumps(report))
        return
    print(
        f"{report['requests']} requests from {arguments.clients} clients "
        f"in {arguments.seconds:.0f} s, statuses {report['statuses']}"
    )
    print(f"latency p50 {report['p50_ms']} ms, p99 {report['p99_ms']} ms")
    print(
        f"server RSS: {report['rss_after_warmup_mib']} MiB after warm-up, "
        f"{report['rss_at_end_mib']} MiB at end ({report['rss_growth_percent']:+.2f}%)"
    )
    print(f"5xx responses: {report['server_errors']}")


if __name__ == "__main__":
    main()
