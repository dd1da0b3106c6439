"""Benchmark: POST /v1/detect on a real uvicorn server vs plain session.run, both on CPU.

The server (`catwatcher-inference serve`, detector only, device=cpu) and the raw baseline use the
same model, session options and preprocessed 1280x720 camera-sized JPEG. Blocks of raw runs and of
HTTP requests are interleaved over several rounds so a noisy neighbour skews both alike.
Loopback only, bounded in requests. The last line is `service/raw throughput ratio: R`.

    python tests/bench/bench_service.py [--requests 30] [--rounds 6] [--clients 2]
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort
from PIL import Image

from inference.contract import DETECT_PATH, ENV_PREFIX, READY_PATH
from inference.engine import CatWatcherEngine
from inference.modelgen import write_models
from inference.runtime import CPU_PROVIDER, session_options
from inference.settings import InferenceSettings


def camera_frame(width: int = 1280, height: int = 720, seed: int = 0) -> bytes:
    """Smooth scene plus sensor-like noise, JPEG quality 85: sized like a real camera frame."""
    rng = np.random.default_rng(seed)
    coarse = Image.fromarray(rng.integers(0, 256, (height // 24, width // 24, 3), dtype=np.uint8))
    scene = np.asarray(coarse.resize((width, height), Image.Resampling.BICUBIC), dtype=np.float32)
    noisy = np.clip(scene + rng.normal(0, 6, scene.shape), 0, 255).astype(np.uint8)
    path = Path(tempfile.gettempdir()) / f"catwatcher-bench-{os.getpid()}.jpg"
    Image.fromarray(noisy).save(path, quality=85)
    data = path.read_bytes()
    path.unlink()
    return data


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_server(detector: Path, port: int, identifier: Path | None = None) -> subprocess.Popen[bytes]:
    """`catwatcher-inference serve` on 127.0.0.1:`port`, CPU only; returns once it is ready."""
    env = {name: value for name, value in os.environ.items() if not name.upper().startswith(ENV_PREFIX)}
    env.update({
        f"{ENV_PREFIX}SERVER__HOST": "127.0.0.1",
        f"{ENV_PREFIX}SERVER__PORT": str(port),
        f"{ENV_PREFIX}SERVER__LOG_LEVEL": "warning",
        f"{ENV_PREFIX}INFERENCE__DEVICE": "cpu",
        f"{ENV_PREFIX}INFERENCE__DETECTOR_MODEL_PATH": str(detector),
    })
    if identifier is not None:
        env[f"{ENV_PREFIX}INFERENCE__IDENTIFIER_MODEL_PATH"] = str(identifier)
    command = [sys.executable, "-c", "import sys; from inference.cli import main; sys.exit(main(['serve']))"]
    process = subprocess.Popen(command, env=env, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and process.poll() is None:
        try:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            connection.request("GET", READY_PATH)
            if connection.getresponse().status == 200:
                return process
        except OSError:
            pass
        time.sleep(0.1)
    process.kill()
    raise SystemExit(f"server did not become ready: {process.stderr.read().decode() if process.stderr else ''}")


def raw_block(session: ort.InferenceSession, feeds: dict[str, np.ndarray], runs: int) -> tuple[float, list[float]]:
    latencies = []
    start = time.perf_counter()
    for _ in range(runs):
        began = time.perf_counter()
        session.run(None, feeds)
        latencies.append(time.perf_counter() - began)
    return time.perf_counter() - start, latencies


def service_block(port: int, body: bytes, requests: int, clients: int) -> tuple[float, list[float], list[dict[str, float]]]:
    """`requests` POSTs split over `clients` keep-alive connections; returns wall time, latencies, server timings."""
    latencies: list[float] = []
    timings: list[dict[str, float]] = []
    failures: list[str] = []
    lock = threading.Lock()

    def client(count: int) -> None:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        for _ in range(count):
            began = time.perf_counter()
            connection.request("POST", DETECT_PATH, body=body, headers={"Content-Type": "image/jpeg"})
            response = connection.getresponse()
            payload = response.read()
            elapsed = time.perf_counter() - began
            with lock:
                if response.status != 200:
                    failures.append(f"{response.status} {payload[:200]!r}")
                else:
                    latencies.append(elapsed)
                    timings.append(json.loads(payload)["timings_ms"])
        connection.close()

    shares = [requests // clients + (1 if index < requests % clients else 0) for index in range(clients)]
    threads = [threading.Thread(target=client, args=(share,)) for share in shares]
    start = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if failures:
        raise SystemExit(f"{len(failures)} failed requests, first: {failures[0]}")
    return time.perf_counter() - start, latencies, timings


def percentiles(latencies: list[float]) -> str:
    p50, p99 = np.percentile(np.array(latencies) * 1000, [50, 99])
    return f"p50 {p50:.1f} ms, p99 {p99:.1f} ms"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=30, help="requests (and raw runs) per round")
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--clients", type=int, default=2, help="concurrent HTTP clients (each sends batch-1 requests)")
    parser.add_argument("--model-dir", type=Path, default=None, help="directory with detector.onnx (default: make placeholders)")
    arguments = parser.parse_args()

    with tempfile.TemporaryDirectory() as scratch:
        model_dir = arguments.model_dir or Path(scratch)
        if arguments.model_dir is None:
            write_models(model_dir)
        detector = model_dir / "detector.onnx"
        body = camera_frame()
        settings = InferenceSettings(device="cpu", detector_model_path=detector)

        # Same preprocessing code and session options as the service.
        engine = CatWatcherEngine.load(settings)
        feeds = {engine.detector.name: engine.prepare(body).tensor}
        del engine
        session = ort.InferenceSession(str(detector), sess_options=session_options(settings), providers=[CPU_PROVIDER])
        raw_block(session, feeds, 3)

        port = free_port()
        server = start_server(detector, port)
        try:
            service_block(port, body, 3 * arguments.clients, arguments.clients)
            raw_time = service_time = 0.0
            raw_latencies: list[float] = []
            service_latencies: list[float] = []
            server_timings: list[dict[str, float]] = []
            for _ in range(arguments.rounds):
                elapsed, latencies = raw_block(session, feeds, arguments.requests)
                raw_time += elapsed
                raw_latencies += latencies
                elapsed, latencies, timings = service_block(port, body, arguments.requests, arguments.clients)
                service_time += elapsed
                service_latencies += latencies
                server_timings += timings
        finally:
            server.terminate()
            server.wait(timeout=30)

    total = arguments.requests * arguments.rounds
    raw_throughput, service_throughput = total / raw_time, total / service_time
    decode = float(np.mean([t["decode"] for t in server_timings]))
    preprocess = float(np.mean([t["preprocess"] for t in server_timings]))
    detect = float(np.mean([t["detect"] for t in server_timings]))
    handled = float(np.mean([t["total"] for t in server_timings]))
    client_latency = float(np.mean(service_latencies)) * 1000
    print(f"cpu cores: {os.cpu_count()}, onnxruntime {ort.__version__}, image 1280x720 JPEG " f"{len(body) / 1024:.0f} KiB, {total} requests per side, {arguments.clients} clients")
    print(f"raw session.run: {raw_throughput:.2f} runs/s, {percentiles(raw_latencies)}")
    print(f"service POST {DETECT_PATH}: {service_throughput:.2f} req/s, {percentiles(service_latencies)}")
    print(f"server-side per request: decode {decode:.1f} ms, preprocess {preprocess:.1f} ms, " f"detect {detect:.1f} ms; {handled:.1f} ms handled, {client_latency:.1f} ms at the client")
    print(f"decode+preprocess share of request time: {100 * (decode + preprocess) / handled:.1f}%")
    print(f"service/raw throughput ratio: {service_throughput / raw_throughput:.2f}")


if __name__ == "__main__":
    main()
