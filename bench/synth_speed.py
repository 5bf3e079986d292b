"""Synthetic scan generation speed on this machine, one process and a pool of all cores, side by side.

    python bench/synth_speed.py --n 300 --size 512

Prints scans per second for 512x512 scans (composition, 3D orientation, occlusion, physics, detector
model and rendering in the per-scan random style), and the load average, since other work on a
shared machine lowers the figures. The pool runs OpenCV single-threaded (one scan per core), set before
the fork: OpenCV's thread pool does not survive a fork.
"""

from __future__ import annotations

import argparse
import os
import time
from multiprocessing import get_context

import cv2

from armscan.datasets.synth.scene import generate


def _one(args: tuple[int, int]) -> None:
    generate(args[0], args[1], args[1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=300)
    ap.add_argument("--size", type=int, default=512)
    a = ap.parse_args()
    jobs = [(700_000_000 + k, a.size) for k in range(a.n)]
    _one((0, a.size))  # warm up: allocator, noise bank, colour tables
    load_before = os.getloadavg()[0]
    t = time.perf_counter()
    for j in jobs:
        _one(j)
    single = a.n / (time.perf_counter() - t)
    procs = os.cpu_count() or 1
    cv2.setNumThreads(1)
    with get_context("fork").Pool(procs) as pool:
        pool.map(_one, [(1, a.size)] * procs)
        t = time.perf_counter()
        pool.map(_one, jobs, chunksize=8)
        multi = a.n / (time.perf_counter() - t)
    print(f"{a.n} scans of {a.size}x{a.size}: 1 process {single:.1f} scans/s, {procs} processes {multi:.1f} scans/s "
          f"(load average {load_before:.2f} before, {os.getloadavg()[0]:.2f} after)")


if __name__ == "__main__":
    main()
