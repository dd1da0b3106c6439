"""Benchmark: what closing the monitor threads' event loops costs an offline render.

Runs `run_program` on the same stacks with a loop per executor thread that the run closes at its
end (as shipped) and with the SDK's behaviour (each thread keeps a loop nobody closes), interleaved over
rounds so a noisy neighbour skews both alike. Prints the median wall time per render and how many
event loops each variant leaves open (each one is an "Exception ignored in BaseEventLoop.__del__"
candidate at exit).

    python tests/bench/bench_offline_render.py [--rounds 5] [--stacks homelab-3060 a100-mig]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
import weakref

import infra.offline as offline
from infra.offline import project_root, run_program

_opened: list[weakref.ref] = []
_new_event_loop = asyncio.new_event_loop


def _tracking_new_event_loop():
    loop = _new_event_loop()
    _opened.append(weakref.ref(loop))
    return loop


def _sdk_default(monitor, call, request):
    return call(request)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--stacks", nargs="*", default=["homelab-3060", "homelab-mixed-nodes", "a100-mig"])
    args = parser.parse_args()
    root = project_root()
    asyncio.new_event_loop = _tracking_new_event_loop
    shipped = offline.RecordingMonitor._on_thread_loop
    variants = {"closed loops (shipped)": shipped, "SDK default": _sdk_default}
    timings: dict[str, list[float]] = {name: [] for name in variants}
    left_open: dict[str, int] = {name: 0 for name in variants}
    renders = 0
    for stack in args.stacks:  # warm-up: imports, the preset cache
        run_program(root, stack)
    for _ in range(args.rounds):
        for name, wrapper in variants.items():
            offline.RecordingMonitor._on_thread_loop = wrapper  # type: ignore[method-assign]
            for stack in args.stacks:
                _opened.clear()
                start = time.perf_counter()
                run_program(root, stack)
                timings[name].append(time.perf_counter() - start)
                left_open[name] += sum(1 for ref in _opened if (loop := ref()) is not None and not loop.is_closed())
        renders += len(args.stacks)
    offline.RecordingMonitor._on_thread_loop = shipped  # type: ignore[method-assign]
    for name in variants:
        print(
            f"{name}: median {statistics.median(timings[name]) * 1000:.0f} ms per render, "
            f"{left_open[name] / renders:.1f} event loops left open per render ({renders} renders)"
        )
    ratio = statistics.median(timings["closed loops (shipped)"]) / statistics.median(timings["SDK default"])
    print(f"closed/default time ratio: {ratio:.2f}")


if __name__ == "__main__":
    main()
