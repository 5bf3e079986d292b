"""Seizure-photo latency on this CPU, side by side in one run: our photo model against Basegun's classifier.

Basegun (the French interior ministry's app) classifies with a YOLOv8s-cls model at 320 px. Its weights come
only from the PyPI package ``basegun-ml`` (AGPL-3.0); this script exports that model to ONNX under
``runs/bench/`` with Ultralytics (the optional ``bench`` extra) and never copies it anywhere else. basegun-ml
pins torch 2.3.1 and PaddleOCR, so it is installed without its dependencies (only its weight file is read;
its code is never imported). Without it, only our figures are printed.

    pip install -e '.[bench]' && pip install --no-deps basegun-ml==2.0.7
    python bench/photo_latency.py --threads 2 --n 200

Printed per model: onnxruntime at batch 1 (median, p10-p90 in ms); for ours also at batch 4 (the orientation
average's four views of a non-square photo, ``--rotations``), and the whole engine per photo (letterbox +
model + softmax, with and without the length measurement), with one view and with the orientation average.
No assertions: timings vary by +-30% between runs here.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np

from armscan.datasets.photo import render_photo
from armscan.inference.photo import PhotoClassifier
from armscan.serve.scan import DEFAULT_PHOTO_MODEL

OUT = Path("runs/bench")


def _stats(ms: list[float]) -> tuple[float, str]:
    q = np.percentile(ms, [10, 50, 90])
    return float(q[1]), f"median {q[1]:7.2f} ms   p10 {q[0]:7.2f}   p90 {q[2]:7.2f}   (n={len(ms)})"


def _time(fn, n: int, warmup: int = 10) -> list[float]:  # type: ignore[no-untyped-def]
    for _ in range(warmup):
        fn()
    out = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t) * 1000)
    return out


def _session(path: Path, threads: int):  # type: ignore[no-untyped-def]
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads, opts.inter_op_num_threads = threads, 1
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def basegun_onnx(size: int = 320) -> Path | None:
    """Basegun's classifier exported to ONNX (from the installed ``basegun-ml`` package), or None without it."""
    import importlib.util

    spec = importlib.util.find_spec("basegun_ml")  # located, not imported: its __init__ needs PaddleOCR
    if spec is None or not spec.submodule_search_locations:
        return None
    weights = Path(list(spec.submodule_search_locations)[0]) / "classification.pt"
    if not weights.is_file():
        return None
    OUT.mkdir(parents=True, exist_ok=True)
    out = OUT / f"basegun-cls-{size}.onnx"
    if not out.exists():
        os.environ.setdefault("YOLO_OFFLINE", "1")  # no update checks, no downloads
        from ultralytics import YOLO

        exported = Path(YOLO(str(weights)).export(format="onnx", imgsz=size, simplify=False, dynamic=False))
        exported.replace(out)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", type=Path, default=DEFAULT_PHOTO_MODEL, help="our exported photo model")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--n", type=int, default=200, help="timed runs per figure")
    args = ap.parse_args()
    ours = PhotoClassifier.from_onnx(args.model, threads=args.threads)
    size = ours.spec.size
    rows: list[tuple[str, float, str]] = []
    sess = _session(args.model, args.threads)
    x = np.random.default_rng(0).normal(size=(1, 3, size, size)).astype(np.float32)
    rows.append((f"armscan photo model, ORT batch 1, {size} px", *_stats(_time(lambda: sess.run(None, {"images": x}), args.n))))
    x4 = np.repeat(x, 4, axis=0)
    rows.append((f"armscan photo model, ORT batch 4, {size} px", *_stats(_time(lambda: sess.run(None, {"images": x4}),
                                                                                args.n))))
    photos = [render_photo(200_000_000 + i).image for i in range(20)]
    it = iter(range(10**9))
    rows.append(("armscan engine, one view, no length",
                 *_stats(_time(lambda: ours.classify(photos[next(it) % 20], rotations=False, measure_length=False),
                               args.n))))
    rows.append(("armscan engine, one view (incl. length)",
                 *_stats(_time(lambda: ours.classify(photos[next(it) % 20], rotations=False), args.n))))
    rows.append(("armscan engine, orientation average, no length",
                 *_stats(_time(lambda: ours.classify(photos[next(it) % 20], rotations=True, measure_length=False),
                               max(20, args.n // 2)))))
    rows.append(("armscan engine, orientation average (incl. length)",
                 *_stats(_time(lambda: ours.classify(photos[next(it) % 20], rotations=True), max(20, args.n // 2)))))
    bg = basegun_onnx()
    if bg is not None:
        bsess = _session(bg, args.threads)
        inp = bsess.get_inputs()[0]
        xb = np.random.default_rng(0).random((1, 3, 320, 320)).astype(np.float32)
        rows.append(("Basegun YOLOv8s-cls, ORT batch 1, 320 px", *_stats(_time(lambda: bsess.run(None, {inp.name: xb}),
                                                                             args.n))))
    print(f"onnxruntime {args.threads} thread(s), batch 1 (this CPU; +-30% between runs)")
    for name, _, text in rows:
        print(f"{name:<48} {text}")
    if bg is not None:
        print(f"ours / Basegun (ORT, batch 1): {rows[0][1] / rows[-1][1]:.2f}  (target: at most 0.50)")
        print(f"ours with the orientation average (ORT, batch 4: the four views of a non-square photo) / Basegun: "
              f"{rows[1][1] / rows[-1][1]:.2f}")
    else:
        print("Basegun: not measured (pip install -e '.[bench]' to install basegun-ml and ultralytics)")


if __name__ == "__main__":
    main()
