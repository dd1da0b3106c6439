"""Benchmark: the planner's model footprint estimate vs what ONNX Runtime actually allocates.

No GPU here, so the comparison runs ONNX Runtime's CPU provider with its BFC-style arena
(`enable_cpu_mem_arena`, memory pattern on), the same allocator family the CUDA provider uses.
Each case runs in a fresh process that reports its resident-set growth (VmRSS) after creating
the session and after the first and a second run, beside the file-based estimate
(`infra.footprint`). CPU kernels and their scratch memory differ from CUDA's, so read the ratio
as a sanity check of the estimate's size, not as a GPU measurement.

    python tests/bench/bench_footprint.py [--batches 1 8 32]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

from inference.modelgen import write_models
from infra.footprint import model_footprint

MEASURE = r"""
import json, sys
import numpy as np
import onnxruntime as ort

def rss_mib():
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024

path, batch, size = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
options = ort.SessionOptions()
options.enable_cpu_mem_arena = True
options.enable_mem_pattern = True
options.intra_op_num_threads = 1
before = rss_mib()
session = ort.InferenceSession(path, sess_options=options, providers=["CPUExecutionProvider"])
loaded = rss_mib()
feed = {session.get_inputs()[0].name: np.zeros((batch, 3, size, size), np.float32)}
session.run(None, feed)
first = rss_mib()
session.run(None, feed)
second = rss_mib()
print(json.dumps({
    "session": loaded - before, "first_run": first - loaded, "second_run": second - first, "total": second - before
}))
"""


def measure(path: Path, batch: int, size: int) -> dict[str, float]:
    result = subprocess.run(
        [sys.executable, "-c", MEASURE, str(path), str(batch), str(size)],
        capture_output=True,
        text=True,
        check=True,
        timeout=600,
    )
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 8, 32], help="identifier batches")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="catwatcher-footprint-") as folder:
        paths = write_models(Path(folder))
        cases = [("detector", paths["detector"], 1, 640)] + [
            ("identifier", paths["identifier"], b, 224) for b in args.batches
        ]
        print(
            f"{'model':<11} {'batch':>5} {'weights':>8} {'peak act':>9} "
            f"{'estimate':>9} {'ORT CPU total':>14} {'1st run':>8} {'2nd run':>8}"
        )
        for name, path, batch, size in cases:
            footprint = model_footprint(path, batch, None)
            measured = measure(path, batch, size)
            print(
                f"{name:<11} {batch:>5} {footprint.weights_mb:>8.1f} {footprint.peak_activation_mb:>9.1f} "
                f"{footprint.arena_mb:>9} {measured['total']:>14.1f} "
                f"{measured['first_run']:>8.1f} {measured['second_run']:>8.1f}"
            )
        print("MiB. estimate = weights + 2 x peak activations + 64 MiB workspace allowance, rounded up to 64.")


if __name__ == "__main__":
    main()
