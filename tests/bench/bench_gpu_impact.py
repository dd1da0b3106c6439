"""Benchmark: what the GPU impact section adds to `catwatcher-infra diff`.

Renders every stack once under the mock engine (the cost `diff` already pays), then times, on
each stack against the next one (pairs with real GPU differences), `gpu_impact` with its markdown
and the whole `diff_renders` + markdown (which includes the impact). Prints per-pair medians, the
totals and the impact's peak traced memory.

    python tests/bench/bench_gpu_impact.py [--repeat 20]
"""

from __future__ import annotations

import argparse
import statistics
import time
import tracemalloc
from pathlib import Path

from infra.diff import StackDiff, diff_renders, format_markdown, render_of
from infra.gpu_impact import format_impact_markdown, gpu_impact
from infra.offline import available_stacks, run_program

ROOT = Path(__file__).resolve().parents[2]


def median_ms(function, repeat: int) -> float:
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        function()
        samples.append((time.perf_counter() - start) * 1000)
    return statistics.median(samples)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args()
    stacks = available_stacks(ROOT)
    start = time.perf_counter()
    renders = {stack: render_of(run_program(ROOT, stack)) for stack in stacks}
    render_ms = (time.perf_counter() - start) * 1000
    pairs = list(zip(stacks, stacks[1:] + stacks[:1], strict=True))  # each stack against the next: real differences
    impact_total = objects_total = 0.0
    for base, head in pairs:
        impact_ms = median_ms(
            lambda base=base, head=head: format_impact_markdown(head, gpu_impact(renders[base], renders[head])),
            args.repeat,
        )
        objects_ms = median_ms(
            lambda base=base, head=head: format_markdown(
                [StackDiff(head, diff_renders(head, renders[base], renders[head]).changes)]
            ),
            args.repeat,
        )
        impact_total += impact_ms
        objects_total += objects_ms
        print(f"{base:>22} -> {head:<22} impact {impact_ms:7.2f} ms   object diff (incl. impact) {objects_ms:7.2f} ms")
    tracemalloc.start()
    for base, head in pairs:
        gpu_impact(renders[base], renders[head])
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    print(f"rendering {len(stacks)} stacks: {render_ms:.0f} ms")
    print(
        f"GPU impact over {len(pairs)} pairs: {impact_total:.1f} ms (peak {peak / 1024:.0f} KiB); "
        f"object diff: {objects_total:.1f} ms"
    )


if __name__ == "__main__":
    main()
