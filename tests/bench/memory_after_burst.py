"""Resident memory after a burst of large valid images, with and without returning freed heap.

Starts `catwatcher-inference serve` twice (CPU, placeholder detector + identifier,
MALLOC_ARENA_MAX=2 as in the image): once as shipped, once with `release_free_memory`
(malloc_trim) disabled. Each time 4 clients post a 2800x2800 PNG and a 6000x4000 progressive
JPEG three times each; then the RSS at rest is compared with the baseline after start-up.

    python tests/bench/memory_after_burst.py
"""

from __future__ import annotations

import http.client
import io
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "inference"))
from inference_support import ENV_PREFIX, free_port, photo_like, wait_until

from inference.contract import DETECT_PATH, READY_PATH
from inference.modelgen import write_models

NO_TRIM = "import inference.app as app; app.release_free_memory = lambda: False; "
SERVE = "import sys; from inference.cli import main; sys.exit(main(['serve']))"


def status_mib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) // 1024
    raise RuntimeError(field)


def request(port: int, method: str, path: str, body: bytes | None = None, content_type: str = "") -> int:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    try:
        connection.request(method, path, body=body, headers={"Content-Type": content_type} if content_type else {})
        response = connection.getresponse()
        response.read()
        return response.status
    finally:
        connection.close()


def encoded(image_format: str, width: int, height: int, **options: object) -> bytes:
    buffer = io.BytesIO()
    photo_like(width, height).save(buffer, format=image_format, **options)
    return buffer.getvalue()


def run(models: dict[str, Path], trim: bool, bodies: list[tuple[bytes, str]]) -> dict[str, object]:
    port = free_port()
    env = {name: value for name, value in os.environ.items() if not name.startswith(ENV_PREFIX)}
    env.update(
        {
            "MALLOC_ARENA_MAX": "2",
            f"{ENV_PREFIX}SERVER__HOST": "127.0.0.1",
            f"{ENV_PREFIX}SERVER__PORT": str(port),
            f"{ENV_PREFIX}INFERENCE__DEVICE": "cpu",
            f"{ENV_PREFIX}INFERENCE__DETECTOR_MODEL_PATH": str(models["detector"]),
            f"{ENV_PREFIX}INFERENCE__IDENTIFIER_MODEL_PATH": str(models["identifier"]),
        }
    )
    process = subprocess.Popen(
        [sys.executable, "-c", ("" if trim else NO_TRIM) + SERVE],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:

        def ready() -> bool:
            try:
                return request(port, "GET", READY_PATH) == 200
            except OSError:
                return False

        assert wait_until(ready, 60), "server did not get ready"
        baseline = status_mib(process.pid, "VmRSS")
        statuses: list[int] = []

        def client() -> None:
            for _ in range(3):
                for body, content_type in bodies:
                    statuses.append(request(port, "POST", DETECT_PATH, body, content_type))

        clients = [threading.Thread(target=client) for _ in range(4)]
        for thread in clients:
            thread.start()
        for thread in clients:
            thread.join()
        time.sleep(2)
        return {
            "baseline": baseline,
            "after": status_mib(process.pid, "VmRSS"),
            "peak": status_mib(process.pid, "VmHWM"),
            "statuses": sorted(set(statuses)),
        }
    finally:
        process.terminate()
        process.wait(timeout=15)


def main() -> int:
    bodies = [(encoded("PNG", 2800, 2800), "image/png"), (encoded("JPEG", 6000, 4000, progressive=True), "image/jpeg")]
    with tempfile.TemporaryDirectory() as directory:
        models = write_models(Path(directory), ("a", "b"), 0)
        print(f"{'':28} {'baseline':>9} {'peak':>9} {'at rest after':>14} {'statuses':>9}")
        for trim in (True, False):
            result = run(models, trim, bodies)
            label = "malloc_trim when idle" if trim else "without malloc_trim"
            print(
                f"{label:28} {result['baseline']:>5} MiB {result['peak']:>5} "
                f"MiB {result['after']:>10} MiB {result['statuses']!s:>9}"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
