"""The service's worst-case memory, from its settings: what has to fit the pod's memory limit.

    worst case = baseline
               + max_pending_requests x max_request_bytes x 2     request bodies
               + 2 x max_concurrent_runs x max_batch x (max_decoded_image_bytes + detector input)   decoding

A body is held from the moment its request is admitted until its image is decoded; while it is
joined from its chunks, or its multipart `image` part is copied out, it exists twice. Decoding is
admitted for twice the frames the model slots take (inference.app.ServiceState.open_slots), and each decode is
refused beforehand if its header estimate exceeds max_decoded_image_bytes
(inference.image_limits; tests/bench/decode_memory.py checks the estimate against measurement).
Idle or half-sent connections are not in the sum: each holds at most max_header_bytes and is
closed after header_timeout. Refused requests are answered at once and their connections closed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from inference.settings import Settings

MiB = 1024 * 1024
# Resident memory of `serve` on CPU with the placeholder detector and identifier loaded and warm,
# measured at 238 to 280 MiB on the development machine (tests/inference/test_inference_attacks.py
# prints it), rounded up. On a GPU node the CUDA libraries add host memory on top.
BASELINE_BYTES = 320 * MiB
DETECTOR_INPUT_BYTES = 3 * 640 * 640 * 4
# Part of the pod's memory limit the worst case may take; the rest is headroom for what the sum
# does not model (allocator fragmentation, Python objects per request, CUDA host allocations).
MAX_SHARE_OF_POD_LIMIT = 0.75


@dataclass(frozen=True)
class MemoryBudget:
    baseline: int
    bodies: int
    decoding: int

    @property
    def total(self) -> int:
        return self.baseline + self.bodies + self.decoding

    def describe(self) -> str:
        return (
            f"worst case {self.total // MiB} MiB = baseline {self.baseline // MiB} "
            f"+ request bodies {self.bodies // MiB} + decoding {self.decoding // MiB}"
        )


def worst_case(settings: Settings, baseline: int = BASELINE_BYTES) -> MemoryBudget:
    inference = settings.inference
    bodies = settings.server.max_pending_requests * inference.max_request_bytes * 2
    decoding = (
        2
        * inference.max_concurrent_runs
        * inference.max_batch
        * (inference.max_decoded_image_bytes + DETECTOR_INPUT_BYTES)
    )
    return MemoryBudget(baseline, bodies, decoding)


_QUANTITY = re.compile(r"^(\d+)(Ki|Mi|Gi|Ti|K|M|G|T)?$")
_FACTORS = {
    None: 1,
    "K": 10**3,
    "M": 10**6,
    "G": 10**9,
    "T": 10**12,
    "Ki": 2**10,
    "Mi": 2**20,
    "Gi": 2**30,
    "Ti": 2**40,
}


def quantity_bytes(quantity: str) -> int:
    """A Kubernetes memory quantity ("2Gi", "1500M", "2147483648") in bytes."""
    match = _QUANTITY.match(quantity.strip())
    if match is None:
        raise ValueError(f"not a memory quantity: {quantity!r}")
    return int(match.group(1)) * _FACTORS[match.group(2)]


def cgroup_memory_limit(root: Path = Path("/sys/fs/cgroup")) -> int | None:
    """This container's memory limit (cgroup v2, else v1), or None when unlimited or unknown."""
    for path in (root / "memory.max", root / "memory" / "memory.limit_in_bytes"):
        try:
            text = path.read_text().strip()
        except OSError:
            continue
        if text.isdigit() and int(text) < 2**60:
            return int(text)
        return None
    return None
