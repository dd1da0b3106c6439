"""Peak memory of decoding one image vs what inference/image_limits.py estimates from its header.

Each case runs in a fresh interpreter (MALLOC_ARENA_MAX=2 as in the image): the peak RSS
(VmHWM, reset before decoding) while the service's own decode and letterbox path runs, against
the header estimate that MAX_DECODED_IMAGE_BYTES is checked with. The estimate must not be
below what decoding takes, or the memory budget (inference/memory_budget.py) would not hold.

    python tests/bench/decode_memory.py [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
CASES = {
    "webp lossless 6324x6324 (34 bytes)": "lossless_webp(6324, 6324)",
    "webp lossy 4000x3000": "encoded(Image.new('RGB', (4000, 3000)), 'WEBP')",
    "webp lossy rgba 3000x2000": "encoded(Image.new('RGBA', (3000, 2000)), 'WEBP')",
    "png rgb 5000x5000": "encoded(Image.new('RGB', (5000, 5000)), 'PNG')",
    "png rgba 4000x4000": "encoded(Image.new('RGBA', (4000, 4000)), 'PNG')",
    "png grey 3000x9999": "tall_png(3000, 9999)",
    "png grey16 3000x3000": "encoded(Image.new('I;16', (3000, 3000)), 'PNG')",
    "jpeg baseline 6000x4000": "encoded(Image.new('RGB', (6000, 4000)), 'JPEG')",
    "jpeg progressive 6000x4000": "encoded(Image.new('RGB', (6000, 4000)), 'JPEG', progressive=True)",
    "jpeg cmyk 4000x3000": "encoded(Image.new('CMYK', (4000, 3000)), 'JPEG')",
}
CHILD = """
import io, sys
sys.path.insert(0, {support!r})
from hostile_images import lossless_webp, tall_png
from PIL import Image
from inference.image_limits import inspect_image
from inference.imaging import decode_image, letterbox_geometry, letterbox_tensor

def encoded(image, image_format, **options):
    buffer = io.BytesIO()
    image.save(buffer, format=image_format, **options)
    return buffer.getvalue()

def status(field):
    for line in open("/proc/self/status"):
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024

def fit(width, height):
    box = letterbox_geometry(width, height, 640)
    return box.resized_width, box.resized_height

data = {expression}
header = inspect_image(data)
open("/proc/self/clear_refs", "w").write("5")  # resets VmHWM to the current RSS
before = status("VmRSS")
image, size = decode_image(data, 10**10, fit, max_seconds=120)
tensor = letterbox_tensor(image, letterbox_geometry(*size, 640), 640)
print(status("VmHWM") - before, header.decoded_bytes, len(data))
"""


def measure(expression: str) -> dict[str, int]:
    code = CHILD.format(support=str(HERE.parent / "inference"), expression=expression)
    completed = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
        env={**os.environ, "MALLOC_ARENA_MAX": "2"},
    )
    peak, estimated, size = map(int, completed.stdout.split())
    return {"measured_bytes": peak, "estimated_bytes": estimated, "file_bytes": size}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print one JSON line instead of the table")
    parser.add_argument("--case", action="append", choices=sorted(CASES), help="measure only these (repeatable)")
    arguments = parser.parse_args()
    results = {name: measure(CASES[name]) for name in arguments.case or CASES}
    if arguments.json:
        print(json.dumps(results))
        return 0
    print(f"{'image':38} {'file':>10} {'measured peak':>14} {'estimate':>10}")
    for name, result in results.items():
        print(
            f"{name:38} {result['file_bytes']:>10} {result['measured_bytes'] / 2**20:>10.0f} "
            f"MiB {result['estimated_bytes'] / 2**20:>6.0f} MiB"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
