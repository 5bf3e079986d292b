"""End-to-end batch throughput next to the onnxruntime-only rate of the same model, in one run.

    python bench/batch_throughput.py --n 300 --threads 2

Writes N generated 1024x768 JPEG scans to a temporary folder, then measures:
1. onnxruntime alone: ``session.run`` on the already preprocessed scans, batch 1;
2. ``armscan batch`` on the folder: read + decode (threads) + preprocess + model + decode/NMS + ledger.
Prints both rates in scans/s and their ratio. No assertions: timings vary by +-30% here.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import cv2

from armscan.datasets.readers import read_image
from armscan.datasets.synth.scene import generate
from armscan.inference.engine import Detector
from armscan.inference.preprocess import preprocess
from armscan.serve.batch import run_batch
from armscan.serve.scan import DEFAULT_MODEL


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", type=Path, default=DEFAULT_MODEL)
    ap.add_argument("--n", type=int, default=300)
    ap.add_argument("--threads", type=int, default=2, help="onnxruntime intra-op threads, for both measurements")
    ap.add_argument("--decode-threads", type=int, default=1)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "scans"
        folder.mkdir()
        for k in range(a.n):
            cv2.imwrite(str(folder / f"scan_{k:05d}.jpg"), generate(950_000_000 + k, 1024, 768).image,
                        [cv2.IMWRITE_JPEG_QUALITY, 92])
        files = sorted(folder.glob("*.jpg"))
        det = Detector.from_onnx(a.model, threads=a.threads)
        inputs = [preprocess(read_image(f), det.spec)[0][None] for f in files]
        for x in inputs[:5]:
            det._run(x)
        t = time.perf_counter()
        for x in inputs:
            det._run(x)
        ort_rate = len(inputs) / (time.perf_counter() - t)
        t = time.perf_counter()
        run_batch([str(folder)], Path(tmp) / "out", a.model, threads=a.threads, decode_threads=a.decode_threads,
                  progress=False)
        e2e_rate = a.n / (time.perf_counter() - t)
    print(f"model {a.model.name}, {a.n} JPEG scans 1024x768, onnxruntime threads {a.threads}, "
          f"decode threads {a.decode_threads}")
    print(f"onnxruntime only (batch 1)     : {ort_rate:6.1f} scans/s")
    print(f"armscan batch, end to end      : {e2e_rate:6.1f} scans/s (incl. model load and reports)")
    print(f"ratio end-to-end / onnxruntime : {e2e_rate / ort_rate:6.1%}")


if __name__ == "__main__":
    main()
