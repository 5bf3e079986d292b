"""Where a detector loses its mAP: localisation, recognition, or the size of the objects at its input.

    python bench/det_diagnosis.py --model models/bundled/armscan-det.onnx --data runs/test

Prints, for the model's detections (down to its listing floor, at most 100 per scan; pycocotools):
- AP and recall at IoU 0.1, 0.3 and 0.5, per class (averaged) and class-agnostic (every threat one class).
  AP that stays low at IoU 0.1 means the boxes are there but ranked below clutter (recognition); AP that
  rises steeply from 0.5 to 0.1 means the boxes are misplaced (localisation). Recall near 1 at IoU 0.1 with
  low AP means the threats are found but outscored;
- which class each threat is taken for: for every true box, the class of the highest-scoring detection that
  overlaps it at IoU 0.5 or more, as a share of that class's boxes (the row's "none" when no detection does).
  The diagonal is what per-class AP credits; what lies off it is one part taken for another;
- each class's box sides in model-input pixels (median shortest and longest side, 10th percentile of the
  shortest), against the output grid's stride: a class a cell or two wide is a resolution problem.
"""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path

import numpy as np

from armscan.datasets.coco import read_coco
from armscan.training.evaluate import load_detector, predict
from armscan.training.metrics import Prediction, _coco_eval, box_iou, gt_xyxy

IOUS = (0.1, 0.3, 0.5)


def _ap_recall(ev: object) -> list[tuple[float, float]]:
    """(mean AP, mean recall) over the classes that have boxes, per IoU threshold (all areas, 100 detections)."""
    precision = ev.eval["precision"][:, :, :, 0, 2]  # type: ignore[attr-defined]  # (T, R, K)
    recall = ev.eval["recall"][:, :, 0, 2]  # type: ignore[attr-defined]  # (T, K)
    out = []
    for t in range(len(IOUS)):
        ks = [k for k in range(precision.shape[2]) if (precision[t, :, k] > -1).any()]
        out.append((float(np.mean([precision[t, :, k][precision[t, :, k] > -1].mean() for k in ks])),
                    float(np.mean([recall[t, k] for k in ks]))))
    return out


def confusion(records: list, preds: list[Prediction], classes: list[str], iou: float = 0.5) -> np.ndarray:
    """(K, K + 1) counts: row = true class, column = the class of the best-scoring detection overlapping the true box
    at ``iou`` or more, or the last column when none does."""
    index = {c: k for k, c in enumerate(classes)}
    out = np.zeros((len(classes), len(classes) + 1), np.int64)
    for r, p in zip(records, preds, strict=True):
        true = [index[b["cls"]] for b in r.boxes]
        if not true:
            continue
        overlaps = box_iou(gt_xyxy(r), p.boxes) >= iou if len(p.scores) else np.zeros((len(true), 0), bool)
        for g, k in enumerate(true):
            hits = np.flatnonzero(overlaps[g])
            out[k, int(p.labels[hits[np.argmax(p.scores[hits])]]) if len(hits) else len(classes)] += 1
    return out


def _print_confusion(records: list, preds: list[Prediction], classes: list[str]) -> None:
    counts = confusion(records, preds, classes)
    short = [c[:7] for c in classes] + ["none"]
    print("\ntaken for (best-scoring detection at IoU 0.5; share of each true class's boxes):")
    print(f"{'true class':16s} {'boxes':>6s}" + "".join(f" {c:>7s}" for c in short))
    for k, cls in enumerate(classes):
        n = int(counts[k].sum())
        if n:
            print(f"{cls:16s} {n:6d}" + "".join(f" {v / n:7.2f}" for v in counts[k]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", type=Path, default=Path("models/bundled/armscan-det.onnx"))
    ap.add_argument("--data", type=Path, default=Path("runs/test"))
    args = ap.parse_args()
    detector = load_detector(args.model)
    md = detector.metadata
    records = read_coco(args.data)
    preds = predict(detector, records, progress=False)
    print(f"{md.name} {md.version} on {args.data} ({len(records)} scans), "
          f"{np.mean([len(p.scores) for p in preds]):.0f} detections per scan on average")
    agnostic_records = [replace(r, boxes=[{**b, "cls": "threat"} for b in r.boxes]) for r in records]
    agnostic_preds = [Prediction(p.boxes, p.scores, np.zeros_like(p.labels)) for p in preds]
    rows = {"per class": _coco_eval(records, preds, md.classes, iou_thrs=IOUS),
            "class-agnostic": _coco_eval(agnostic_records, agnostic_preds, ["threat"], iou_thrs=IOUS)}
    print(f"\n{'':16s}" + "".join(f"  AP@{t:<4g} recall@{t:<4g}" for t in IOUS))
    for name, ev in rows.items():
        if ev is None:
            print(f"{name:16s}  no detections")
            continue
        print(f"{name:16s}" + "".join(f"  {a:7.3f} {r:11.3f}" for a, r in _ap_recall(ev)))
    _print_confusion(records, preds, md.classes)
    size = md.preprocess["size"]
    print(f"\nbox sides at the {size} px input (output stride {md.stride}):")
    print(f"{'class':16s} {'boxes':>6s} {'short median':>13s} {'short p10':>10s} {'long median':>12s}")
    for cls in md.classes:
        sides = np.array([sorted(b["bbox"][2:]) for r in records for b in r.boxes if b["cls"] == cls]).reshape(-1, 2)
        if not len(sides):
            continue
        scale = np.array([size / max(r.width, r.height) for r in records for b in r.boxes if b["cls"] == cls])
        s = sides * scale[:, None]
        print(f"{cls:16s} {len(s):6d} {np.median(s[:, 0]):13.1f} {np.percentile(s[:, 0], 10):10.1f} "
              f"{np.median(s[:, 1]):12.1f}")


if __name__ == "__main__":
    main()
