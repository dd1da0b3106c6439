"""Benchmark: POST /v1/detect on a real uvicorn server vs plain session.run, both on CPU.

The server (`catwatcher-inference serve`, detector only, device=cpu) and the raw baseline use the
same model file, session options and 1280x720 camera-sized JPEG (the raw side gets the tensor the
service's own preprocessing makes). The machine is assumed to be noisy, so blocks are short and
sandwiched: raw, 1 client, raw, 2 clients, raw, ... (the service order reversed every other
round), and each service block's ratio is its throughput over the mean of the raw blocks just
before and after it. A neighbour's load that comes and goes over seconds then skews both sides of
a ratio alike; the figure reported is the median of those ratios, with their range. It also
prints the 1-client ceiling: the ratio a service would reach if nothing but its decode and
preprocessing (which one client's requests cannot overlap with a model run) cost time. Then, with
the same interleaving:

* micro-batching: frames per second of `session.run` at batch 1, 2 and 4, and of the service at
  `max_batch` 1 and 4 with 4 clients;
* int8: the detector quantised by `catwatcher-inference quantize` (calibrated on other frames)
  against fp32, per frame, and how far their decoded detections agree.

Loopback only, bounded in requests. The last line is `service/raw throughput ratio: R` (2 clients).

    python tests/bench/bench_service.py [--requests 10] [--rounds 16] [--decode-nice N] [--skip-batching] [--skip-int8]
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import platform
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from onnx import shape_inference
from PIL import Image

from inference.contract import DETECT_PATH, ENV_PREFIX, READY_PATH
from inference.engine import DETECTOR, CatWatcherEngine
from inference.modelgen import write_models
from inference.modelprep import cpu_rewrites
from inference.postprocess import decode_detections, pairwise_iou
from inference.quantize import quantize_model
from inference.runtime import CPU_PROVIDER, session_options
from inference.settings import InferenceSettings

# Low enough that the random-weight placeholder detector yields detections to compare.
FAINT_PRESENCE, FAINT_CONFIDENCE = 0.001, 0.0025


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


def start_server(
    detector: Path, port: int, identifier: Path | None = None, inference: dict[str, str] | None = None
) -> subprocess.Popen[bytes]:
    """`catwatcher-inference serve` on 127.0.0.1:`port`, CPU only; returns once it is ready.

    `inference` adds CAT_WATCHER__INFERENCE__<NAME> settings (e.g. {"MAX_BATCH": "4"}).
    """
    env = {name: value for name, value in os.environ.items() if not name.upper().startswith(ENV_PREFIX)}
    env.update(
        {
            f"{ENV_PREFIX}SERVER__HOST": "127.0.0.1",
            f"{ENV_PREFIX}SERVER__PORT": str(port),
            f"{ENV_PREFIX}SERVER__LOG_LEVEL": "warning",
            f"{ENV_PREFIX}INFERENCE__DEVICE": "cpu",
            f"{ENV_PREFIX}INFERENCE__DETECTOR_MODEL_PATH": str(detector),
        }
    )
    if identifier is not None:
        env[f"{ENV_PREFIX}INFERENCE__IDENTIFIER_MODEL_PATH"] = str(identifier)
    env.update({f"{ENV_PREFIX}INFERENCE__{name}": value for name, value in (inference or {}).items()})
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


def service_block(
    port: int, body: bytes, requests: int, clients: int
) -> tuple[float, list[float], list[dict[str, float]]]:
    """`requests` POSTs split over `clients` keep-alive connections; returns wall time, latencies, server timings."""
    latencies: list[float] = []
    timings: list[dict[str, float]] = []
    failures: list[str] = []
    lock = threading.Lock()

    def client(count: int) -> None:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
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


def spread(ratios: list[float]) -> str:
    """Median of per-round ratios, with the range, so the noise is visible."""
    return f"{np.median(ratios):.2f} (rounds {min(ratios):.2f}..{max(ratios):.2f})"


def conv_gflops(path: Path) -> float:
    """2 x multiply-accumulates of every Conv and Gemm at batch 1, from inferred shapes."""
    model = onnx.load(path)
    inferred = shape_inference.infer_shapes(model)
    shapes = {
        v.name: [d.dim_value if d.HasField("dim_value") else 1 for d in v.type.tensor_type.shape.dim]
        for v in [*inferred.graph.value_info, *inferred.graph.output]
    }
    weights = {t.name: list(t.dims) for t in model.graph.initializer}
    macs = 0
    for node in model.graph.node:
        if node.op_type == "Conv" and node.input[1] in weights and node.output[0] in shapes:
            _, c_in_per_group, k_h, k_w = weights[node.input[1]]
            macs += int(np.prod(shapes[node.output[0]])) * c_in_per_group * k_h * k_w
        elif node.op_type == "Gemm" and node.input[1] in weights:
            macs += int(np.prod(weights[node.input[1]]))
    return 2 * macs / 1e9


def cpu_flags() -> str:
    try:
        flags = set(
            next(line for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("flags"))
            .split(":", 1)[1]
            .split()
        )
    except (OSError, StopIteration):
        return "unknown"
    wanted = ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "amx_int8")
    return ", ".join(flag for flag in wanted if flag in flags) or "none of " + ", ".join(wanted)


def thread_settings(settings: InferenceSettings) -> str:
    intra = settings.intra_op_threads or f"0 (onnxruntime: one per physical core, {physical_cores()} here)"
    return (
        f"intra_op_threads {intra}, inter_op_threads {settings.inter_op_threads}, "
        f"spinning off, max_concurrent_runs {settings.max_concurrent_runs}"
    )


def physical_cores() -> int:
    """Distinct (physical id, core id) pairs: what onnxruntime's default thread count follows."""
    physical, cores = "0", set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("physical id"):
                physical = line.split(":")[1].strip()
            elif line.startswith("core id"):
                cores.add((physical, line.split(":")[1].strip()))
    except OSError:
        pass
    return len(cores) or os.cpu_count() or 1


def sandwiched(
    rounds: int, raw: Callable[[], float], services: dict[str, Callable[[], float]]
) -> tuple[list[float], dict[str, list[float]]]:
    """raw, A, raw, B, raw, then B, raw, A, raw, ...: every service block between two raw blocks.

    Returns the raw throughputs and, per service, each block's throughput over the mean of the
    raw blocks on either side of it.
    """
    raw_rates = [raw()]
    ratios: dict[str, list[float]] = {name: [] for name in services}
    for index in range(rounds):
        for name in list(services) if index % 2 == 0 else list(services)[::-1]:
            rate = services[name]()
            raw_rates.append(raw())
            ratios[name].append(rate / ((raw_rates[-2] + raw_rates[-1]) / 2))
    return raw_rates, ratios


def interleaved(rounds: int, blocks: dict[str, Callable[[], float]]) -> dict[str, list[float]]:
    """Runs every block once per round, in order; returns each block's throughput per round."""
    results: dict[str, list[float]] = {name: [] for name in blocks}
    for _ in range(rounds):
        for name, block in blocks.items():
            results[name].append(block())
    return results


def unit_range(tensor: np.ndarray) -> np.ndarray:
    """The float 0..1 input a plain fp32 detector takes (the service sends uint8; see modelprep)."""
    return tensor if tensor.dtype == np.float32 else np.multiply(tensor, np.float32(1 / 255), dtype=np.float32)


def anchor_agreement(reference: np.ndarray, candidate: np.ndarray, top: int = 100) -> tuple[list[float], list[float]]:
    """Box IoU and best-score error, anchor by anchor, over the reference's `top` best anchors."""
    scores = reference[0, 4:].max(axis=0)
    anchors = np.argsort(-scores)[:top]

    def corners(output: np.ndarray) -> np.ndarray:
        cx, cy, w, h = output[0][:4][:, anchors]
        return np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=1)

    ious = np.diag(pairwise_iou(corners(reference), corners(candidate)))
    return ious.tolist(), np.abs(scores[anchors] - candidate[0][4:][:, anchors].max(axis=0)).tolist()


def detections_kept(
    reference: np.ndarray, candidate: np.ndarray, presence: float, confidence: float, top: int = 20
) -> tuple[int, int]:
    """How many of the reference's detections (service NMS, `top` best) the candidate reports
    with IoU >= 0.5, and how many there were."""
    decode = lambda output: decode_detections(output, presence, confidence, 0.45, top)  # noqa: E731
    wanted, found = decode(reference), decode(candidate)
    if not len(wanted.boxes) or not len(found.boxes):
        return 0, len(wanted.boxes)
    return int((pairwise_iou(wanted.boxes, found.boxes).max(axis=1) >= 0.5).sum()), len(wanted.boxes)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=10, help="requests (and raw runs) per block")
    parser.add_argument("--rounds", type=int, default=16)
    parser.add_argument("--frames", type=int, default=16, help="frames per block in the batching and int8 comparisons")
    parser.add_argument(
        "--intra-op-threads",
        type=int,
        default=0,
        help="for the server and the raw session alike (0: onnxruntime decides)",
    )
    parser.add_argument(
        "--decode-nice",
        type=int,
        default=None,
        help="the server's CAT_WATCHER__INFERENCE__DECODE_NICE (default: the service's default)",
    )
    parser.add_argument("--skip-batching", action="store_true")
    parser.add_argument("--skip-int8", action="store_true")
    parser.add_argument(
        "--model-dir", type=Path, default=None, help="directory with detector.onnx (default: make placeholders)"
    )
    arguments = parser.parse_args()
    # A killed bench still stops its servers (the finally blocks run on SystemExit).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

    with tempfile.TemporaryDirectory() as scratch:
        model_dir = arguments.model_dir or Path(scratch)
        if arguments.model_dir is None:
            write_models(model_dir)
        detector = model_dir / "detector.onnx"
        body = camera_frame()
        threads = {"INTRA_OP_THREADS": str(arguments.intra_op_threads)}
        if arguments.decode_nice is not None:
            threads["DECODE_NICE"] = str(arguments.decode_nice)
        settings = InferenceSettings(
            device="cpu",
            detector_model_path=detector,
            intra_op_threads=arguments.intra_op_threads,
            **({} if arguments.decode_nice is None else {"decode_nice": arguments.decode_nice}),
        )

        print(
            f"cpu: {os.cpu_count()} logical / {physical_cores()} physical cores, "
            f"{platform.processor() or platform.machine()}; int8 features: {cpu_flags()}"
        )
        print(
            f"onnxruntime {ort.__version__} (CPU provider), numpy {np.__version__}, "
            f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}"
        )
        print(f"threads: {thread_settings(settings)}")
        print(
            f"detector: {detector.name}, {conv_gflops(detector):.2f} GFLOPs "
            f"per 640x640 frame; image 1280x720 JPEG {len(body) / 1024:.0f} KiB"
        )

        # Same preprocessing code and session options as the service.
        engine = CatWatcherEngine.load(settings)
        service_tensor = engine.prepare(body).tensor
        tensor = unit_range(service_tensor)
        # What the service runs on CPU: the detector made Split- and Concat-free, fed uint8 (modelprep).
        service_session = engine.runtime.session(DETECTOR)
        service_feeds = {engine.detector.name: service_tensor}
        feeds = {"images": tensor}
        session = ort.InferenceSession(str(detector), sess_options=session_options(settings), providers=[CPU_PROVIDER])
        raw_block(session, feeds, 3)

        port = free_port()
        server = start_server(detector, port, inference=threads)
        raw_latencies: list[float] = []
        model_latencies: list[float] = []
        latencies: dict[int, list[float]] = {1: [], 2: []}
        server_timings: dict[int, list[dict[str, float]]] = {1: [], 2: []}
        try:
            service_block(port, body, 6, 2)

            def raw() -> float:
                elapsed, block_latencies = raw_block(session, feeds, arguments.requests)
                raw_latencies.extend(block_latencies)
                return arguments.requests / elapsed

            def service(clients: int) -> Callable[[], float]:
                def block() -> float:
                    elapsed, block_latencies, timings = service_block(port, body, arguments.requests, clients)
                    latencies[clients].extend(block_latencies)
                    server_timings[clients].extend(timings)
                    return arguments.requests / elapsed

                return block

            def service_model() -> float:
                elapsed, block_latencies = raw_block(service_session, service_feeds, arguments.requests)
                model_latencies.extend(block_latencies)
                return arguments.requests / elapsed

            raw_rates, ratios_by_name = sandwiched(
                arguments.rounds,
                raw,
                {"1 client": service(1), "2 clients": service(2), "service's model": service_model},
            )
        finally:
            server.terminate()
            server.wait(timeout=30)

        total = arguments.requests * arguments.rounds
        print(
            f"\n== service vs raw session.run: {arguments.rounds} rounds of {arguments.requests}, each service "
            f"block between two raw blocks; {total} requests per client count"
        )
        print(f"raw session.run: {np.median(raw_rates):.2f} runs/s (median of blocks), {percentiles(raw_latencies)}")
        ratios: dict[int, list[float]] = {}
        ceiling = raw_ms = model_ms = 1.0
        for clients in (1, 2):
            name = f"{clients} client" + ("s" if clients > 1 else "")
            ratios[clients] = ratios_by_name[name]
            timings = server_timings[clients]
            decode, preprocess, detect, handled = (
                float(np.median([t[key] for t in timings])) for key in ("decode", "preprocess", "detect", "total")
            )
            rate = len(latencies[clients]) / sum(latencies[clients]) * clients
            # Little's law with medians: a second estimate that a few runs slowed by a neighbour
            # (p99 here is often twice p50) cannot move; both sides are treated alike.
            by_median = clients * float(np.median(raw_latencies)) / float(np.median(latencies[clients]))
            print(
                f"service, {name}: {rate:.2f} req/s, {percentiles(latencies[clients])}; "
                f"ratio {spread(ratios[clients])}; by median latency {by_median:.2f}"
            )
            print(
                f"  server-side per request (medians): decode {decode:.2f} ms, preprocess "
                f"{preprocess:.2f} ms, detect {detect:.1f} ms, other "
                f"{handled - decode - preprocess - detect:.1f} ms; {handled:.1f} ms handled"
            )
            if clients == 1:
                raw_ms, model_ms = (float(np.median(values)) * 1000 for values in (raw_latencies, model_latencies))
                ceiling = raw_ms / (model_ms + decode + preprocess)
        print(
            f"1-client ceiling set by decoding: {ceiling:.2f} (a {raw_ms:.1f} ms raw run against the service's "
            f"{model_ms:.1f} ms model run plus decode and preprocessing, which one client cannot overlap; "
            "HTTP and post-processing counted as free)"
        )
        print(f"server decode threads: nice +{settings.decode_nice}")
        model_ratios = ratios_by_name["service's model"]
        model_ratio = float(np.median(model_ratios))
        print(
            f"session.run on the service's CPU model (Split- and Concat-free, uint8 input): {spread(model_ratios)} "
            f"of raw; the service against that model: 1 client {np.median(ratios[1]) / model_ratio:.2f}, "
            f"2 clients {np.median(ratios[2]) / model_ratio:.2f}"
        )

        if not arguments.skip_batching:
            batching(arguments, detector, model_dir, settings, tensor, body)
        if not arguments.skip_int8:
            int8(arguments, detector, model_dir, settings)

    print(f"\nservice/raw throughput ratio, 1 client: {np.median(ratios[1]):.2f}")
    print(f"service/raw throughput ratio: {np.median(ratios[2]):.2f}")


def batching(
    arguments: argparse.Namespace,
    detector: Path,
    model_dir: Path,
    settings: InferenceSettings,
    tensor: np.ndarray,
    body: bytes,
) -> None:
    session = ort.InferenceSession(str(detector), sess_options=session_options(settings), providers=[CPU_PROVIDER])
    frames = arguments.frames

    def raw(batch: int) -> Callable[[], float]:
        feeds = {"images": np.concatenate([tensor] * batch)}
        session.run(None, feeds)
        runs = max(1, frames // batch)
        return lambda: runs * batch / raw_block(session, feeds, runs)[0]

    rates = interleaved(arguments.rounds, {f"batch {batch}": raw(batch) for batch in (1, 2, 4)})
    print(
        "\n== micro-batching: session.run frames/s by batch size "
        f"({arguments.rounds} interleaved rounds of {frames} frames)"
    )
    for batch in (1, 2, 4):
        per_round = [rate / base for rate, base in zip(rates[f"batch {batch}"], rates["batch 1"], strict=True)]
        print(f"batch {batch}: {np.median(rates[f'batch {batch}']):.2f} frames/s; vs batch 1 {spread(per_round)}")

    clients = 8
    ports = {batch: free_port() for batch in (1, 4)}
    servers = {
        batch: start_server(
            detector,
            ports[batch],
            inference={
                "MAX_BATCH": str(batch),
                "MAX_BATCH_WAIT_MS": "2",
                "INTRA_OP_THREADS": str(arguments.intra_op_threads),
            },
        )
        for batch in ports
    }
    try:
        for batch in ports:
            service_block(ports[batch], body, 8, clients)

        def service(batch: int) -> Callable[[], float]:
            return lambda: arguments.requests / service_block(ports[batch], body, arguments.requests, clients)[0]

        rates = interleaved(arguments.rounds, {f"max_batch {batch}": service(batch) for batch in ports})
    finally:
        for server in servers.values():
            server.terminate()
            server.wait(timeout=30)
    per_round = [rate / base for rate, base in zip(rates["max_batch 4"], rates["max_batch 1"], strict=True)]
    print(
        f"service, {clients} clients: max_batch 1 {np.median(rates['max_batch 1']):.2f} req/s, "
        f"max_batch 4 (wait 2 ms) {np.median(rates['max_batch 4']):.2f} req/s; ratio {spread(per_round)}"
    )


def int8(arguments: argparse.Namespace, detector: Path, model_dir: Path, settings: InferenceSettings) -> None:
    calibration = model_dir / "calibration"
    calibration.mkdir(exist_ok=True)
    for seed in range(16):
        (calibration / f"frame{seed:02d}.jpg").write_bytes(camera_frame(seed=100 + seed))
    quantized = model_dir / "detector.int8.onnx"
    began = time.perf_counter()
    report = quantize_model(detector, calibration, quantized)
    quantize_seconds = time.perf_counter() - began
    sessions = {
        name: ort.InferenceSession(str(path), sess_options=session_options(settings), providers=[CPU_PROVIDER])
        for name, path in (("fp32", detector), ("int8", quantized))
    }
    # The fp32 model as the service runs it on CPU without an int8 model (modelprep.cpu_rewrites).
    rewritten = cpu_rewrites(detector.read_bytes()) or detector.read_bytes()
    sessions["fp32 rewritten"] = ort.InferenceSession(
        rewritten, sess_options=session_options(settings), providers=[CPU_PROVIDER]
    )

    # Frames like the calibration ones but not among them.
    engine = CatWatcherEngine.load(settings)
    tensors = [unit_range(engine.prepare(camera_frame(seed=200 + seed)).tensor) for seed in range(8)]
    del engine
    ious: list[float] = []
    score_errors: list[float] = []
    kept = total = 0
    # The placeholder's scores are all faint and nearly tied; a trained model uses the service's.
    thresholds = (
        (FAINT_PRESENCE, FAINT_CONFIDENCE)
        if arguments.model_dir is None
        else (settings.presence_threshold, settings.confidence_threshold)
    )
    for tensor in tensors:
        reference, candidate = (sessions[name].run(None, {"images": tensor})[0] for name in ("fp32", "int8"))
        frame_ious, frame_errors = anchor_agreement(reference, candidate)
        ious += frame_ious
        score_errors += frame_errors
        frame_kept, frame_total = detections_kept(reference, candidate, *thresholds)
        kept, total = kept + frame_kept, total + frame_total

    feeds = {"images": tensors[0]}
    for session in sessions.values():
        session.run(None, feeds)

    def block(name: str) -> Callable[[], float]:
        return lambda: arguments.frames / raw_block(sessions[name], feeds, arguments.frames)[0]

    rates = interleaved(arguments.rounds, {name: block(name) for name in sessions})
    per_round = [rate / base for rate, base in zip(rates["int8"], rates["fp32"], strict=True)]
    per_round_rewritten = [rate / base for rate, base in zip(rates["int8"], rates["fp32 rewritten"], strict=True)]
    print(
        f"\n== int8 ({report.frames} calibration frames, {quantize_seconds:.0f} "
        f"s to quantise; {report.float_nodes} post-processing nodes in float), "
        f"{arguments.rounds} interleaved rounds of {arguments.frames} frames"
    )
    print(
        f"fp32: {np.median(rates['fp32']):.2f} frames/s, int8: "
        f"{np.median(rates['int8']):.2f} frames/s; int8/fp32 {spread(per_round)}"
    )
    print(
        f"fp32 as the service runs it on CPU (Split- and Concat-free): {np.median(rates['fp32 rewritten']):.2f} "
        "frames/s; "
        f"int8/that {spread(per_round_rewritten)}"
    )
    print(
        f"agreement on {len(tensors)} unseen frames, fp32's 100 best anchors "
        f"each: box IoU median {np.median(ious):.3f}, min {min(ious):.3f}; "
        f"score error median {np.median(score_errors):.5f}, max {max(score_errors):.5f}; "
        f"fp32 detections (NMS, top 20) found by int8 at IoU >= 0.5: {kept}/{total}"
    )


if __name__ == "__main__":
    main()
