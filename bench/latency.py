"""Latency of an exported model on this CPU, side by side in one run: onnxruntime alone (batch 1 and 8),
and the full engine (read + preprocess + model + decode) per scan.

    python bench/latency.py --model models/bundled/armscan-det.onnx --threads 2

Prints median and spread (p10-p90) in ms. No assertions: timings vary by +-30% between runs here.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import numpy as np

from armscan.datasets.synth.scene import generate
from armscan.inference.engine import Detector
from armscan.inference.preprocess import preprocess


def _stats(ms: list[float]) -> str:
    q = np.percentile(ms, [10, 50, 90])
    return f"median {q[1]:7.2f} ms   p10 {q[0]:7.2f}   p90 {q[2]:7.2f}   (n={len(ms)})"


def _time(fn, n: int, warmup: int = 5) -> list[float]:  # type: ignore[no-untyped-def]
    for _ in range(warmup):
        fn()
    out = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t) * 1000)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", type=Path, required=True)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--n", type=int, default=100)
    a = ap.parse_args()
    det = Detector.from_onnx(a.model, threads=a.threads)
    scans = [generate(900_000_000 + i, 640, 480).image for i in range(8)]
    x1 = preprocess(scans[0], det.spec)[0][None]
    x8 = np.concatenate([preprocess(s, det.spec)[0][None] for s in scans])
    size = det.spec.size
    print(f"model {a.model} ({det.metadata.name} {det.metadata.version}), input {size}px, {a.threads} threads")
    r1 = _time(lambda: det._run(x1), a.n)
    print(f"onnxruntime batch 1       : {_stats(r1)}")
    r8 = _time(lambda: det._run(x8), max(10, a.n // 8))
    per = [m / 8 for m in r8]
    print(f"onnxruntime batch 8 /scan : {_stats(per)}")
    k = iter(range(10**9))
    e2e = _time(lambda: det.detect(scans[next(k) % 8]), a.n)
    print(f"engine per 640x480 scan   : {_stats(e2e)}  (preprocess + model + decode + NMS)")
    print(f"throughput batch 1 {1000 / statistics.median(r1):.1f} scans/s, engine {1000 / statistics.median(e2e):.1f} scans/s")


if __name__ == "__main__":
    main()
