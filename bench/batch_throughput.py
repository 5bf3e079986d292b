"""End-to-end batch throughput next to the onnxruntime-only rate of the same model, in one run, per input format.

    python bench/batch_throughput.py --n 300
    python bench/batch_throughput.py --n 300 --formats jpeg,tiff16

Generates N 1024x768 scans once and writes them in each format asked for (``--formats``):
- ``jpeg``: 8-bit colour JPEG (``--quality``); batch decodes it at the model's DCT scale (1/2 for a 448 px model);
- ``png``: 8-bit colour PNG, as the generator writes its images;
- ``tiff16``: 16-bit greyscale uncompressed TIFF, the high-energy channel (what a single-energy scanner writes);
- ``dual``: a raw dual-energy pair, ``NAME_low.tiff`` + ``NAME_high.tiff`` (16-bit, uncompressed), rendered
  in pseudo-colour by the reader;
- ``dicos``: a 16-bit MONOCHROME2 DICOS X-ray image (the high-energy channel), read through pydicom.

For each format and each layout of the cores (one session with 2 threads, or 2 sessions with 1 thread each):
1. onnxruntime alone: ``session.run`` on that format's scans, decoded and preprocessed as batch does it,
   batch 1, all sessions busy (default sessions, whose threads spin between runs: its fastest setting);
2. ``armscan batch`` on the folder: read + decode + preprocess + model + decode/NMS + ledger + reports.
Each end-to-end rate is compared with the **best** onnxruntime-only rate of any layout for that format.
Then, per format, where one scan's CPU time goes on one thread (``time.process_time``, OpenCV on one
thread): decoding the file, preprocessing (letterbox + normalise), the model, and the rest of screening
(output decoding, NMS, the result, thumbnails of flagged scans, TDRs). The model is timed inside screening,
where it runs with the caches the other stages leave it. ``--json FILE`` also writes the figures.
No assertions: timings vary by +-30% here.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import shutil
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from numpy.typing import NDArray

from armscan.datasets.synth.scene import Scan, generate
from armscan.inference.engine import Detector
from armscan.inference.preprocess import preprocess
from armscan.serve.batch import LEDGER, load_item, prepare, read_ledger, run_batch, screen_loaded
from armscan.serve.scan import DEFAULT_MODEL

LAYOUTS = [(1, 2), (2, 1)]  # (sessions or workers, onnxruntime threads each)
WIDTH, HEIGHT = 1024, 768
DICOS_DX = "1.2.840.10008.5.1.4.1.1.501.2.1"  # DICOS Digital X-Ray Image Storage - For Presentation
TARGET = 0.85


def _write_dicos(path: Path, pixels: NDArray[np.uint16]) -> None:
    from pydicom.dataset import FileDataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = DICOS_DX
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = FileDataset(str(path), {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID, ds.SOPInstanceUID, ds.Modality = DICOS_DX, meta.MediaStorageSOPInstanceUID, "DX"
    ds.Rows, ds.Columns = pixels.shape
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
    ds.PixelData = pixels.tobytes()
    ds.save_as(str(path), enforce_file_format=True)


def _tiff16(path: Path, channel: NDArray[np.uint16]) -> None:
    cv2.imwrite(str(path), channel, [cv2.IMWRITE_TIFF_COMPRESSION, 1])  # 1: uncompressed


def writers(quality: int) -> dict[str, Callable[[Path, Scan], None]]:
    """For each format, how to write scan ``name`` (a path without suffix) to disk."""
    return {
        "jpeg": lambda p, s: cv2.imwrite(f"{p}.jpg", s.image, [cv2.IMWRITE_JPEG_QUALITY, quality]),
        "png": lambda p, s: cv2.imwrite(f"{p}.png", s.image),
        "tiff16": lambda p, s: _tiff16(p.with_suffix(".tif"), s.raw16()[1]),
        "dual": lambda p, s: (_tiff16(p.with_name(p.name + "_low.tiff"), s.raw16()[0]),
                              _tiff16(p.with_name(p.name + "_high.tiff"), s.raw16()[1])),
        "dicos": lambda p, s: _write_dicos(p.with_suffix(".dcs"), s.raw16()[1]),
    }


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


def stages(model: Path, folder: Path, out: Path) -> dict[str, float]:
    """Single-thread CPU milliseconds per scan: decode, preprocess, model (timed inside screening), the rest."""
    det = Detector.from_onnx(model, threads=1)
    todo, _ = prepare([str(folder)], out)
    cv_threads = cv2.getNumThreads()
    cv2.setNumThreads(1)
    try:
        for it in todo[:3]:  # warm up: first calls build tables and caches
            screen_loaded(det, out, load_item(it, det.spec.size))
        t = time.process_time()
        loaded = [load_item(it, det.spec.size) for it in todo]
        decode_ms = (time.process_time() - t) / len(todo) * 1000
        images = [scan.image for _, scan, _ in loaded if scan is not None]
        t = time.process_time()
        for image in images:
            preprocess(image, det.spec)
        pre_ms = (time.process_time() - t) / len(images) * 1000
        run, in_model = det._run, [0.0]

        def timed(x: NDArray[np.float32]) -> dict[str, NDArray[np.float32]]:
            t0 = time.process_time()
            try:
                return run(x)
            finally:
                in_model[0] += time.process_time() - t0

        det._run = timed
        t = time.process_time()
        for item in loaded:
            screen_loaded(det, out, item)
        screen_ms = (time.process_time() - t) / len(loaded) * 1000
    finally:
        cv2.setNumThreads(cv_threads)
    model_ms = in_model[0] / len(images) * 1000
    return {"decode": decode_ms, "preprocess": pre_ms, "model": model_ms, "rest": screen_ms - model_ms - pre_ms}


def measure(model: Path, folder: Path, tmp: Path) -> dict[str, Any]:
    """The onnxruntime-only and end-to-end rates of each layout, the flagged share and the stage times."""
    spec = Detector.from_onnx(model).spec
    todo, n = prepare([str(folder)], tmp / "probe")
    inputs = [preprocess(scan.image, spec)[0][None] for _, scan, _ in (load_item(it, spec.size) for it in todo)
              if scan is not None]
    rows = []
    for workers, threads in LAYOUTS:
        ort = ort_rate(model, inputs, workers, threads)
        out = tmp / f"out_{workers}x{threads}"
        t = time.perf_counter()
        with contextlib.redirect_stdout(io.StringIO()):  # its one-line summary; the ledger is read below
            run_batch([str(folder)], out, model, threads=threads, decode_threads=1, progress=False, workers=workers)
        rows.append((workers, threads, ort, n / (time.perf_counter() - t)))
    ledger = read_ledger(out / LEDGER)
    flagged = sum(r.get("decision") in ("alarm", "uncertain") for r in ledger)
    errors = sum(r["status"] == "error" for r in ledger)
    return {"rows": rows, "n": n, "flagged": flagged, "errors": errors,
            "stages": stages(model, folder, tmp / "stages")}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", type=Path, default=DEFAULT_MODEL)
    ap.add_argument("--n", type=int, default=300)
    ap.add_argument("--quality", type=int, default=92, help="JPEG quality of the generated scans")
    ap.add_argument("--formats", default="jpeg,png,tiff16,dual,dicos",
                    help="comma-separated, from: " + ", ".join(writers(0)))
    ap.add_argument("--json", type=Path, help="also write the figures to this file")
    a = ap.parse_args()
    write = writers(a.quality)
    formats = [f.strip() for f in a.formats.split(",") if f.strip()]
    unknown = [f for f in formats if f not in write]
    if unknown:
        ap.error(f"unknown format(s) {', '.join(unknown)}; known: {', '.join(write)}")
    results: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory() as tmp_dir:
        tmp = Path(tmp_dir)
        for f in formats:
            (tmp / f).mkdir()
        for k in range(a.n):  # one generated scan, written in every format
            scan = generate(950_000_000 + k, WIDTH, HEIGHT)
            for f in formats:
                write[f](tmp / f / f"scan_{k:05d}", scan)
        for f in formats:
            results[f] = measure(a.model, tmp / f, tmp / f"work_{f}")
            shutil.rmtree(tmp / f)
            shutil.rmtree(tmp / f"work_{f}")
    print(f"\nmodel {a.model.name}, {a.n} generated scans {WIDTH}x{HEIGHT} per format, 2 cores; target: batch at "
          f"{TARGET:.0%} of the best onnxruntime-only rate")
    print(f"{'format':<8} {'layout':<24} {'onnxruntime only':>17} {'armscan batch':>14} {'batch / best ORT':>17}")
    for f, r in results.items():
        best = max(row[2] for row in r["rows"])
        for workers, threads, ort, e2e in r["rows"]:
            print(f"{f:<8} {workers} worker(s) x {threads} thread(s) {ort:12.1f} /s {e2e:10.1f} /s {e2e / best:16.1%}")
    print("(end to end includes model load, decoding, thumbnails and TDRs of flagged scans, and the reports)")
    print("\none thread, CPU ms per scan:")
    print(f"{'format':<8} {'decode':>7} {'preprocess':>11} {'model':>7} {'rest':>7} {'total':>7} "
          f"{'model / total':>14} {'flagged':>8}")
    for f, r in results.items():
        s = r["stages"]
        total = sum(s.values())
        print(f"{f:<8} {s['decode']:7.2f} {s['preprocess']:11.2f} {s['model']:7.2f} {s['rest']:7.2f} {total:7.2f} "
              f"{s['model'] / total:14.0%} {r['flagged'] / r['n']:8.0%}" + (f"  {r['errors']} errors" if r["errors"] else ""))
    print("(rest: decoding the outputs, NMS, the result, thumbnails and TDRs of flagged scans. model / total is about "
          "the most that batch / best ORT can reach when the same cores decode, screen and run the model)")
    if a.json:
        a.json.write_text(json.dumps({"model": str(a.model), "n": a.n, "formats": results}, indent=1))


if __name__ == "__main__":
    main()
