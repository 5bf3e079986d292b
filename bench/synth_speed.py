"""Synthetic scan generation speed on this machine, one process and a pool of all cores, side by side.

    python bench/synth_speed.py --n 200 --size 512

Prints scans per second for 512x512 scans (composition, physics, detector model and rendering).
"""

from __future__ import annotations

import argparse
import os
import time
from multiprocessing import get_context

from armscan.datasets.synth.scene import generate


def _one(args: tuple[int, int]) -> None:
    generate(args[0], args[1], args[1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=200)
    ap.add_argument("--size", type=int, default=512)
    a = ap.parse_args()
    jobs = [(700_000_000 + k, a.size) for k in range(a.n)]
    t = time.perf_counter()
    for j in jobs:
        _one(j)
    single = a.n / (time.perf_counter() - t)
    procs = os.cpu_count() or 1
    with get_context("fork").Pool(procs) as pool:
        t = time.perf_counter()
        pool.map(_one, jobs, chunksize=8)
        multi = a.n / (time.perf_counter() - t)
    print(f"{a.n} scans of {a.size}x{a.size}: 1 process {single:.1f} scans/s, {procs} processes {multi:.1f} scans/s")


if __name__ == "__main__":
    main()
