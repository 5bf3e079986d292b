"""``armscan eval``: COCO mAP and screening metrics of a model (ONNX or checkpoint) on a COCO folder,
and the choice of alarm thresholds for a target parcel false-alarm rate."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from armscan.datasets.coco import Record, read_coco
from armscan.datasets.readers import read_image
from armscan.inference.engine import Detector
from armscan.training.metrics import Prediction, coco_map, screening, threshold_at_far


def load_detector(model: str | Path) -> Detector:
    """An exported ``.onnx`` through onnxruntime, or a training checkpoint through torch."""
    path = Path(model)
    if path.suffix == ".onnx":
        return Detector.from_onnx(path)
    from armscan.training.checkpoint import (
        load_checkpoint,
        metadata_from_checkpoint,
        model_from_checkpoint,
        torch_detector,
    )

    ckpt = load_checkpoint(path)
    return torch_detector(model_from_checkpoint(ckpt), metadata_from_checkpoint(ckpt, version="checkpoint"))


def predict(detector: Detector, records: list[Record], progress: bool = True) -> list[Prediction]:
    """Run ``detector`` on every record's image with the model's score floor."""
    preds = []
    for rec in tqdm(records, desc="eval", disable=not progress, unit="scan"):
        det = detector.raw(read_image(rec.file))
        preds.append(Prediction(det.boxes, det.scores, det.labels))
    return preds


def evaluate_records(detector: Detector, records: list[Record], progress: bool = True,
                     preds: list[Prediction] | None = None) -> dict[str, Any]:
    """Every metric of the module docstring, as a JSON-ready dict (``preds``: already computed predictions)."""
    preds = preds if preds is not None else predict(detector, records, progress)
    classes = detector.metadata.classes
    out: dict[str, Any] = {"images": len(records), **coco_map(records, preds, classes),
                           **screening(records, preds, classes)}
    by_diff: dict[str, Any] = {}
    for diff in sorted({str(r.meta.get("difficulty")) for r in records if r.meta.get("difficulty")}):
        idx = [i for i, r in enumerate(records) if r.meta.get("difficulty") == diff]
        sub_r, sub_p = [records[i] for i in idx], [preds[i] for i in idx]
        by_diff[diff] = {"images": len(idx), "mAP50": coco_map(sub_r, sub_p, classes)["mAP50"]}
    if by_diff:
        out["by_difficulty"] = by_diff
    return out


def evaluate(model: str | Path, data: str | Path, progress: bool = True) -> dict[str, Any]:
    """Evaluate a model file on a COCO folder."""
    detector = load_detector(model)
    return evaluate_records(detector, read_coco(Path(data)), progress)


def choose_alarm_threshold(detector: Detector, records: list[Record], target_far: float, progress: bool = True,
                           preds: list[Prediction] | None = None) -> tuple[float, dict[str, Any]]:
    """One alarm threshold for all classes such that the parcel FAR on the clean ``records`` is <= target."""
    preds = preds if preds is not None else predict(detector, records, progress)
    clean = [p for p, r in zip(preds, records, strict=True) if not r.boxes]
    if len(clean) < 1.0 / max(target_far, 1e-9):
        raise ValueError(f"{len(clean)} clean scans cannot resolve a false-alarm rate of {target_far:g}; "
                         f"use at least {int(np.ceil(1 / target_far))}")
    best = np.array([p.scores.max() if len(p.scores) else 0.0 for p in clean])
    t = max(threshold_at_far(best, target_far), detector.metadata.thresholds.min_score)
    threat = [p for p, r in zip(preds, records, strict=True) if r.boxes]
    pd = float(np.mean([(p.scores.max() if len(p.scores) else 0.0) >= t for p in threat])) if threat else None
    return float(np.ceil(t * 1e4) / 1e4), {"clean_scans": len(clean), "threat_scans": len(threat), "parcel_pd": pd,
                         "parcel_far": float((best >= t).mean())}
