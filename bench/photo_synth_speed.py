"""Procedural seizure-photo rendering speed on one core, at the default photo sizes.

    python bench/photo_synth_speed.py --n 300
    python bench/photo_synth_speed.py --n 300 --long-side 480 800 --stages

Prints renders per second of :func:`armscan.datasets.photo.render_photo` with the default
:class:`PhotoConfig` (long side 480-800 px, 4:3 or 3:2), OpenCV single-threaded: both wall-clock and
CPU time (the CPU figure is the one to quote on a shared machine, where other jobs slow the wall clock),
the mean image size, and the load average before and after. ``--stages`` adds a per-stage CPU breakdown.
"""

from __future__ import annotations

import argparse
import os
import time
from collections import defaultdict
from collections.abc import Callable
from typing import Any

import cv2


def _timed(stages: dict[str, float], name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        t = time.process_time()
        try:
            return fn(*args, **kwargs)
        finally:
            stages[name] += time.process_time() - t

    return wrapper


def main() -> None:
    from armscan.datasets.photo import PhotoConfig, render_photo
    from armscan.datasets.photo import render as render_module

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=300)
    ap.add_argument("--seed", type=int, default=900_000_000)
    ap.add_argument("--long-side", type=int, nargs=2, default=None, metavar=("LO", "HI"))
    ap.add_argument("--stages", action="store_true", help="also print CPU ms per render for each stage")
    a = ap.parse_args()
    cfg = PhotoConfig(long_side=tuple(a.long_side)) if a.long_side else PhotoConfig()
    cv2.setNumThreads(1)
    stages: dict[str, float] = defaultdict(float)
    if a.stages:
        for name in ("draw", "benign", "background", "paint", "_blend", "_shadow_map", "_place_reference", "_place_distractors"):
            setattr(render_module, name, _timed(stages, name, getattr(render_module, name)))
    for k in range(3):  # warm up: noise bank and tile, allocator
        render_photo(a.seed - 1 - k, cfg)
    stages.clear()
    load_before = os.getloadavg()[0]
    pixels = 0
    wall, cpu = time.perf_counter(), time.process_time()
    for k in range(a.n):
        pixels += render_photo(a.seed + k, cfg).masks.size
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    print(
        f"{a.n} photos (mean {pixels / a.n / 1000:.0f} kpx): {a.n / cpu:.1f} renders/s of CPU time on one core, "
        f"{a.n / wall:.1f} renders/s wall clock (load average {load_before:.2f} before, {os.getloadavg()[0]:.2f} after)"
    )
    if a.stages:
        other = cpu - sum(stages.values())
        for name, sec in [*sorted(stages.items(), key=lambda kv: -kv[1]), ("rest (layout, lighting, noise, JPEG)", other)]:
            print(f"  {name:38s} {sec / a.n * 1000:6.2f} ms")


if __name__ == "__main__":
    main()
