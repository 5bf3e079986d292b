"""``armscan eval``: COCO mAP, screening metrics (Pd at FAR, FAR at Pd; by difficulty and by build) and the
calibration of a model (ONNX or checkpoint) on a COCO folder, and the choice of alarm thresholds for a
target parcel false-alarm rate.

    armscan eval --model models/bundled/armscan-det.onnx --data runs/test --out runs/test_metrics.json
    python -m armscan.training.report --model models/bundled/armscan-det.onnx --data runs/test --out runs/report
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from armscan.datasets.coco import Record, read_coco
from armscan.datasets.readers import read_image
from armscan.inference.engine import Detector
from armscan.training.calibration import calibration_summary
from armscan.training.metrics import Prediction, ScoreTable, breakdowns, coco_map, threshold_at_far


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


def predict(detector: Detector, records: list[Record], progress: bool = True,
            temperature: float | None = None) -> list[Prediction]:
    """Run ``detector`` on every record's image with the model's score floor (and, if given, this temperature)."""
    th = detector.metadata.thresholds
    saved = th.temperature
    th.temperature = saved if temperature is None else temperature
    preds = []
    try:
        for rec in tqdm(records, desc="eval", disable=not progress, unit="scan"):
            det = detector.raw(read_image(rec.file))
            preds.append(Prediction(det.boxes, det.scores, det.labels))
    finally:
        th.temperature = saved
    return preds


def evaluate_records(detector: Detector, records: list[Record], progress: bool = True,
                     preds: list[Prediction] | None = None) -> dict[str, Any]:
    """Every metric of ``armscan.training.metrics`` and ``.calibration`` as a JSON-ready dict (``preds``:
    already computed predictions). A model with a temperature is run a second time without it, for the ECE
    before scaling."""
    preds = preds if preds is not None else predict(detector, records, progress)
    classes = detector.metadata.classes
    table = ScoreTable.build(records, preds, classes)
    out: dict[str, Any] = {"images": len(records), **coco_map(records, preds, classes),
                           "clean_scans": int(table.clean.sum()), "threat_scans": int((~table.clean).sum()),
                           "pd": table.rows(), **breakdowns(records, preds, classes, table)}
    t = detector.metadata.thresholds.temperature
    unscaled = predict(detector, records, progress, temperature=1.0) if t != 1.0 else None
    out["calibration"] = calibration_summary(records, preds, classes, t, unscaled)
    return out


def evaluate(model: str | Path, data: str | Path, progress: bool = True,
             report_dir: str | Path | None = None) -> dict[str, Any]:
    """Evaluate a model file on a COCO folder; with ``report_dir``, also write PNG curves and ``report.md`` there."""
    detector = load_detector(model)
    records = read_coco(Path(data))
    preds = predict(detector, records, progress)
    metrics = evaluate_records(detector, records, progress, preds)
    if report_dir is not None:
        from armscan.training.report import write_report

        write_report(Path(report_dir), metrics, records, preds, detector.metadata.classes,
                     title=f"{detector.metadata.name} {detector.metadata.version} on {Path(data).name}")
    return metrics


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
