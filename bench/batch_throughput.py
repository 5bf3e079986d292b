"""End-to-end batch throughput next to the onnxruntime-only rate of the same model, in one run.

    python bench/batch_throughput.py --n 300

Writes N generated 1024x768 JPEG scans to a temporary folder, then measures, for each layout of the
cores (one session with 2 threads, or 2 sessions with 1 thread each):
1. onnxruntime alone: ``session.run`` on the already preprocessed scans, batch 1, all sessions busy;
2. ``armscan batch`` on the folder: read + decode + preprocess + model + decode/NMS + ledger + reports.
The ratio compares each end-to-end rate with the **best** onnxruntime-only rate of any layout.
It also prints where one scan's CPU time goes on a single thread: decoding (at the model's DCT scale),
the model alone, and the rest of screening (preprocessing, decoding the outputs, NMS, thumbnails).
No assertions: timings vary by +-30% here.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import numpy as np
from numpy.typing import NDArray

from armscan.datasets.readers import read_image
from armscan.datasets.synth.scene import generate
from armscan.inference.engine import Detector
from armscan.inference.preprocess import preprocess
from armscan.serve.batch import load_item, prepare, run_batch, screen_loaded
from armscan.serve.scan import DEFAULT_MODEL


def ort_rate(model: Path, inputs: list[NDArray[np.float32]], sessions: int, threads: int) -> float:
    """Scans per second of ``sessions`` onnxruntime sessions running side by side on the inputs."""
    dets = [Detector.from_onnx(model, threads=threads) for _ in range(sessions)]
    for d in dets:
        for x in inputs[:5]:
            d._run(x)

    def run(k: int) -> None:
        for x in inputs[k::sessions]:
            dets[k]._run(x)

    t = time.perf_counter()
    with ThreadPoolExecutor(sessions) as pool:
        list(pool.map(run, range(sessions)))
    return len(inputs) / (time.perf_counter() - t)


def _stages(model: Path, folder: Path, out: Path) -> dict[str, float]:
    """Single-thread milliseconds per scan: decode, model alone, and screening minus the model."""
    det = Detector.from_onnx(model, threads=1)
    todo, _ = prepare([str(folder)], out)
    t = time.perf_counter()
    loaded = [load_item(it, det.spec.size) for it in todo]
    decode_ms = (time.perf_counter() - t) / len(todo) * 1000
    xs = [preprocess(scan.image, det.spec)[0][None] for _, scan, _ in loaded if scan is not None]
    t = time.perf_counter()
    for x in xs:
        det._run(x)
    model_ms = (time.perf_counter() - t) / len(xs) * 1000
    t = time.perf_counter()
    for item in loaded:
        screen_loaded(det, out, item)
    screen_ms = (time.perf_counter() - t) / len(loaded) * 1000
    return {"JPEG decode": decode_ms, "model": model_ms, "rest of screening": screen_ms - model_ms}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", type=Path, default=DEFAULT_MODEL)
    ap.add_argument("--n", type=int, default=300)
    ap.add_argument("--quality", type=int, default=92, help="JPEG quality of the generated scans")
    a = ap.parse_args()
    layouts = [(1, 2), (2, 1)]  # (sessions or workers, onnxruntime threads each)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "scans"
        folder.mkdir()
        for k in range(a.n):
            cv2.imwrite(str(folder / f"scan_{k:05d}.jpg"), generate(950_000_000 + k, 1024, 768).image,
                        [cv2.IMWRITE_JPEG_QUALITY, a.quality])
        files = sorted(folder.glob("*.jpg"))
        spec = Detector.from_onnx(a.model).spec
        inputs = [preprocess(read_image(f), spec)[0][None] for f in files]
        rows = []
        for workers, threads in layouts:
            ort = ort_rate(a.model, inputs, workers, threads)
            t = time.perf_counter()
            run_batch([str(folder)], Path(tmp) / f"out_{workers}x{threads}", a.model, threads=threads,
                      decode_threads=1, progress=False, workers=workers)
            rows.append((workers, threads, ort, a.n / (time.perf_counter() - t)))
        stages = _stages(a.model, folder, Path(tmp) / "stages")
    best = max(r[2] for r in rows)
    print(f"\nmodel {a.model.name}, {a.n} JPEG scans 1024x768 (quality {a.quality}), 2 cores")
    print(f"{'layout':<26} {'onnxruntime only':>17} {'armscan batch':>14} {'batch / best ORT':>17}")
    for workers, threads, ort, e2e in rows:
        print(f"{workers} worker(s) x {threads} thread(s)    {ort:12.1f} /s {e2e:10.1f} /s {e2e / best:16.1%}")
    print(f"best onnxruntime-only rate: {best:.1f} scans/s (end to end includes model load, decoding and reports)")
    print("one thread, per scan: " + ", ".join(f"{k} {v:.2f} ms" for k, v in stages.items()))


if __name__ == "__main__":
    main()
