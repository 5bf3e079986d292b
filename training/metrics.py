"""Detection metrics: COCO mAP (pycocotools) and screening metrics (Pd at fixed false-alarm rates).

Screening definitions (used in reports, the model card and threshold selection):
- A *clean* scan holds no threat box. The parcel false-alarm rate (FAR) at threshold t is the
  share of clean scans with any detection scoring >= t.
- Per class c, Pd at a FAR is the share of scans holding a c box in which a c detection with
  IoU >= 0.5 to a c box scores >= t, where t is set on the clean scans' c scores for that FAR
  (a localised, per-class operating point).
- ``any_threat``: Pd of the parcel alarm, i.e. scans holding any threat where some detection
  scores >= t, t set on clean scans' best score for that FAR (not localised: it is the decision
  that sends the parcel to be opened).
"""

from __future__ import annotations

import contextlib
import io
from dataclasses import dataclass
from typing import Any

import numpy as np
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from armscan.datasets.coco import Record


@dataclass
class Prediction:
    """Detections of one image in original pixels."""

    boxes: np.ndarray  # (N, 4) xyxy
    scores: np.ndarray  # (N,)
    labels: np.ndarray  # (N,) class index


def coco_map(records: list[Record], preds: list[Prediction], classes: list[str]) -> dict[str, object]:
    """COCO mAP@[.5:.95], mAP50 and per-class AP50 via pycocotools."""
    gt: dict[str, Any] = {"images": [{"id": i, "width": r.width, "height": r.height} for i, r in enumerate(records)],
          "categories": [{"id": k + 1, "name": c} for k, c in enumerate(classes)], "annotations": []}
    for i, r in enumerate(records):
        for b in r.boxes:
            x, y, w, h = b["bbox"]
            gt["annotations"].append({"id": len(gt["annotations"]) + 1, "image_id": i,
                                      "category_id": classes.index(b["cls"]) + 1, "bbox": [x, y, w, h],
                                      "area": w * h, "iscrowd": 0})
    dets = [{"image_id": i, "category_id": int(lab) + 1, "bbox": [float(b[0]), float(b[1]), float(b[2] - b[0]),
                                                                  float(b[3] - b[1])], "score": float(s)}
            for i, p in enumerate(preds) for b, s, lab in zip(p.boxes, p.scores, p.labels, strict=True)]
    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = COCO()
        coco_gt.dataset = gt
        coco_gt.createIndex()
        if not dets:
            return {"mAP": 0.0, "mAP50": 0.0, "AP50_per_class": {c: 0.0 for c in classes}}
        coco_dt = coco_gt.loadRes(dets)
        ev = COCOeval(coco_gt, coco_dt, "bbox")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    precision = ev.eval["precision"]  # (T iou, R recall, K class, A area, M maxdets)
    per_class = {}
    for k, c in enumerate(classes):
        p = precision[0, :, k, 0, 2]
        per_class[c] = round(float(p[p > -1].mean()), 4) if (p > -1).any() else None
    return {"mAP": round(float(ev.stats[0]), 4), "mAP50": round(float(ev.stats[1]), 4), "AP50_per_class": per_class}


def _iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(N, 4) x (M, 4) xyxy -> (N, M) IoU, by pycocotools."""
    def xywh(x: np.ndarray) -> np.ndarray:
        return np.concatenate([x[:, :2], x[:, 2:] - x[:, :2]], axis=1).astype(np.float64)

    return np.asarray(mask_utils.iou(xywh(a), xywh(b), [0] * len(b))).reshape(len(a), len(b))


def threshold_at_far(clean_scores: np.ndarray, far: float) -> float:
    """Lowest threshold whose false-alarm share on ``clean_scores`` (best score per clean scan) is <= far."""
    if len(clean_scores) == 0:
        return 0.0
    allowed = int(np.floor(far * len(clean_scores) + 1e-9))
    ranked = np.sort(clean_scores)[::-1]
    if allowed >= len(ranked):
        return 0.0
    return float(np.nextafter(np.float32(ranked[allowed]), np.float32(np.inf)))


def _gt_xyxy(r: Record, cls: str | None) -> np.ndarray:
    return np.array([[b["bbox"][0], b["bbox"][1], b["bbox"][0] + b["bbox"][2], b["bbox"][1] + b["bbox"][3]]
                     for b in r.boxes if cls is None or b["cls"] == cls], np.float32).reshape(-1, 4)


def screening(records: list[Record], preds: list[Prediction], classes: list[str],
              fars: tuple[float, ...] = (0.01, 0.02, 0.05)) -> dict[str, object]:
    """Pd per class and for the parcel alarm at each FAR in ``fars`` (see the module docstring)."""
    clean = [i for i, r in enumerate(records) if not r.boxes]
    out: dict[str, object] = {"clean_scans": len(clean), "threat_scans": len(records) - len(clean)}
    best_clean = np.array([preds[i].scores.max() if len(preds[i].scores) else 0.0 for i in clean])
    threat = [i for i, r in enumerate(records) if r.boxes]
    best_threat = np.array([preds[i].scores.max() if len(preds[i].scores) else 0.0 for i in threat])
    rows: dict[str, dict[str, object]] = {}
    rows["any_threat"] = {"n": len(threat), **{
        f"pd@far{far:g}": round(float((best_threat >= threshold_at_far(best_clean, far)).mean()), 4)
        if len(threat) else None for far in fars}}
    for k, c in enumerate(classes):
        pos = [i for i, r in enumerate(records) if any(b["cls"] == c for b in r.boxes)]
        neg = np.array([preds[i].scores[preds[i].labels == k].max() if (preds[i].labels == k).any() else 0.0
                        for i in clean])
        pos_scores = []
        for i in pos:
            p = preds[i]
            m = p.labels == k
            if not m.any():
                pos_scores.append(0.0)
                continue
            hit = (_iou(p.boxes[m], _gt_xyxy(records[i], c)) >= 0.5).any(axis=1)
            pos_scores.append(float(p.scores[m][hit].max()) if hit.any() else 0.0)
        ps = np.array(pos_scores)
        rows[c] = {"n": len(pos), **{f"pd@far{far:g}": round(float((ps >= threshold_at_far(neg, far)).mean()), 4)
                                     if len(pos) else None for far in fars}}
    out["pd"] = rows
    return out
