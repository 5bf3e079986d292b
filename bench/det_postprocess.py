"""Does post-processing buy what the head does not give? The shipped decoding beside three alternatives.

    python bench/det_postprocess.py --model models/bundled/armscan-det.onnx --data runs/test

On the same held-out scans, in one run, with the model's own score floor:
- **per-class NMS**: what inference ships (unless the model's metadata chose class-agnostic NMS at export);
- **class-agnostic NMS**: one box per item, the best class wins (``armscan export`` already compares these
  two on its calibration scans and stores the better);
- **cross-class decay**: per-class NMS, then every box that overlaps a higher-scoring box of another class at
  IoU ``--decay-iou`` or more has its score multiplied by ``--decay`` (soft suppression: a part taken for
  another part keeps its box, but ranks below the class the model prefers there);
- **flip TTA**: the scan and its mirror image, boxes of both fused by per-class NMS. It runs the network
  twice, so it costs about twice the latency.

Prints mAP50, mAP, firearm AP50, the parcel alarm's Pd at 1% and 2% FAR (pass more clean folders after the
first, e.g. ``--data runs/test runs/test-clean``, to resolve them) and what each variant adds per scan in
milliseconds (this machine's timings move by a third from run to run).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import cv2
import numpy as np

from armscan.datasets.readers import read_image
from armscan.training.evaluate import load_detector, predict, read_folders
from armscan.training.metrics import Prediction, ScoreTable, box_iou, coco_map


def cross_class_decay(pred: Prediction, iou: float, factor: float) -> Prediction:
    """Scores of boxes overlapping a higher-scoring box of another class at ``iou`` or more, times ``factor``.

    The overlap is judged on the scores as they came in (a box that is itself decayed still decays the ones
    below it), so the result does not depend on the order of the input."""
    if len(pred.scores) < 2 or factor == 1.0:
        return pred
    order = np.argsort(-pred.scores, kind="stable")
    boxes, scores, labels = pred.boxes[order], pred.scores[order], pred.labels[order]
    overlap = box_iou(boxes, boxes) >= iou
    higher = np.tri(len(scores), k=-1, dtype=bool)  # [j, i]: i ranks above j
    other = labels[:, None] != labels[None, :]
    hit = (overlap & higher & other).any(axis=1)
    return Prediction(boxes, np.where(hit, scores * factor, scores).astype(scores.dtype), labels)


def unflip(pred: Prediction, width: int) -> Prediction:
    """Boxes found on the horizontally mirrored scan, mapped back onto the scan (``width`` in its pixels)."""
    boxes = pred.boxes.copy()
    boxes[:, [0, 2]] = width - pred.boxes[:, [2, 0]]
    return Prediction(boxes, pred.scores, pred.labels)


def fuse(a: Prediction, b: Prediction, iou: float, max_detections: int = 100) -> Prediction:
    """Both views' boxes, per-class NMS over their union (the higher score of each duplicate stays)."""
    boxes = np.concatenate([a.boxes, b.boxes]).astype(np.float32)
    scores = np.concatenate([a.scores, b.scores]).astype(np.float32)
    labels = np.concatenate([a.labels, b.labels]).astype(np.int64)
    if not len(scores):
        return Prediction(boxes.reshape(0, 4), scores, labels)
    xywh = np.concatenate([boxes[:, :2], boxes[:, 2:] - boxes[:, :2]], axis=1)
    keep = np.asarray(cv2.dnn.NMSBoxesBatched(xywh.tolist(), scores.tolist(), labels.tolist(), 0.0, iou),
                      np.int64).reshape(-1)
    keep = keep[np.argsort(-scores[keep], kind="stable")][:max_detections]
    return Prediction(boxes[keep], scores[keep], labels[keep])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", type=Path, default=Path("models/bundled/armscan-det.onnx"))
    ap.add_argument("--data", type=Path, nargs="+", default=[Path("runs/test")])
    ap.add_argument("--decay", type=float, nargs="+", default=[0.3, 0.6, 0.8])
    ap.add_argument("--decay-iou", type=float, default=0.5)
    args = ap.parse_args()
    for f in args.data:
        if not (f / "annotations.json").is_file():
            ap.error(f"{f}: no annotations.json (make model-card writes runs/test)")
    detector = load_detector(args.model)
    md, th = detector.metadata, detector.metadata.thresholds
    records = read_folders(args.data)
    alarm = np.array([th.alarm[c] for c in md.classes], np.float64)

    def timed(fn):  # type: ignore[no-untyped-def]
        t0 = time.perf_counter()
        out = fn()
        return out, (time.perf_counter() - t0) * 1000 / max(len(records), 1)

    shipped_agnostic = th.nms_class_agnostic
    th.nms_class_agnostic = False
    per_class, base_ms = timed(lambda: predict(detector, records, progress=False))
    th.nms_class_agnostic = True
    agnostic, agnostic_ms = timed(lambda: predict(detector, records, progress=False))
    th.nms_class_agnostic = False

    def flipped() -> list[Prediction]:
        out = []
        for r in records:
            image = read_image(r.file)
            det = detector.raw(np.ascontiguousarray(image[:, ::-1]))
            out.append(unflip(Prediction(det.boxes, det.scores, det.labels), image.shape[1]))
        return out

    mirror, mirror_ms = timed(flipped)
    th.nms_class_agnostic = shipped_agnostic
    variants: list[tuple[str, list[Prediction], float]] = [
        ("per-class NMS" + (" (shipped)" if not shipped_agnostic else ""), per_class, 0.0),
        ("class-agnostic NMS" + (" (shipped)" if shipped_agnostic else ""), agnostic, agnostic_ms - base_ms),
    ]
    for factor in args.decay:
        decayed, ms = timed(lambda f=factor: [cross_class_decay(p, args.decay_iou, f) for p in per_class])
        variants.append((f"cross-class decay x{factor:g}", decayed, ms))
    fused, ms = timed(lambda: [fuse(a, b, th.nms_iou) for a, b in zip(per_class, mirror, strict=True)])
    variants.append(("flip TTA (2 passes)", fused, mirror_ms + ms))

    print(f"{md.name} {md.version} on {' + '.join(str(f) for f in args.data)} ({len(records)} scans); "
          f"one pass {base_ms:.1f} ms per scan (reading, model, decoding)")
    print(f"{'variant':28s} {'mAP50':>6s} {'mAP':>6s} {'firearm':>8s} {'Pd@1%':>6s} {'Pd@2%':>6s} {'+ms/scan':>9s}")
    for name, preds, extra in variants:
        m = coco_map(records, preds, md.classes)
        pd = ScoreTable.build(records, preds, md.classes, alarm).rows()["any_threat"]
        cells = [_f(m["mAP50"], 6), _f(m["mAP"], 6), _f(m["AP50_per_class"].get("firearm"), 8),
                 _f(pd["pd@far0.01"], 6), _f(pd["pd@far0.02"], 6)]
        print(f"{name:28s} {' '.join(cells)} {extra:9.1f}")


def _f(value: float | None, width: int) -> str:
    """A figure to 3 decimals, or a dash where it is undefined (no threat boxes; no clean scans for a FAR)."""
    return f"{value:{width}.3f}" if value is not None else f"{'-':>{width}s}"


if __name__ == "__main__":
    main()
