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
from armscan.training.metrics import (
    Prediction,
    ScoreTable,
    alarm_reference,
    at_thresholds,
    breakdowns,
    clean_scans_needed,
    coco_map,
    threshold_at_far,
)


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
    th = detector.metadata.thresholds
    alarm = np.array([th.alarm[c] for c in classes], np.float64)
    uncertain = np.array([th.uncertain[c] for c in classes], np.float64) if th.uncertain else None
    table = ScoreTable.build(records, preds, classes, alarm)
    out: dict[str, Any] = {"images": len(records), **coco_map(records, preds, classes),
                           "clean_scans": int(table.clean.sum()), "threat_scans": int((~table.clean).sum()),
                           "pd": table.rows(), "at_thresholds": at_thresholds(table, alarm, uncertain),
                           **breakdowns(records, preds, classes, table)}
    t = th.temperature
    unscaled = predict(detector, records, progress, temperature=1.0) if t != 1.0 else None
    out["calibration"] = calibration_summary(records, preds, classes, t, unscaled)
    return out


def read_folders(folders: str | Path | list[Path]) -> list[Record]:
    """The records of one COCO folder, or of several in turn (e.g. a validation set plus more clean scans)."""
    return [r for f in ([folders] if isinstance(folders, str | Path) else folders) for r in read_coco(Path(f))]


def evaluate(model: str | Path, data: str | Path | list[Path], progress: bool = True,
             report_dir: str | Path | None = None) -> dict[str, Any]:
    """Evaluate a model file on a COCO folder (or several, pooled); with ``report_dir``, also write PNG curves
    and ``report.md`` there."""
    detector = load_detector(model)
    records = read_folders(data)
    preds = predict(detector, records, progress)
    metrics = evaluate_records(detector, records, progress, preds)
    if report_dir is not None:
        from armscan.training.report import write_report

        names = [Path(data).name] if isinstance(data, str | Path) else [Path(d).name for d in data]
        write_report(Path(report_dir), metrics, records, preds, detector.metadata.classes,
                     title=f"{detector.metadata.name} {detector.metadata.version} on {' + '.join(names)}")
    return metrics


def check_rate(name: str, rate: float) -> None:
    """Refuse a false-alarm rate outside (0, 1), before any work is done (``ValueError``)."""
    if not 0.0 < rate < 1.0:
        raise ValueError(f"invalid {name} {rate:g}: a false-alarm rate is a share of clean scans, greater than 0 "
                         f"and less than 1 (0.01 for 1%)")


def choose_alarm_threshold(detector: Detector, records: list[Record], target_far: float, progress: bool = True,
                           preds: list[Prediction] | None = None) -> tuple[float, dict[str, Any]]:
    """One alarm threshold for all classes such that the parcel FAR on the clean ``records`` is <= target; it
    needs at least ``1 / target_far`` clean scans (one false alarm's worth). The threshold is stored rounded up
    to 4 decimals (at most 1.0), and the parcel Pd and FAR returned are those of the stored value."""
    check_rate("target_far", target_far)
    preds = preds if preds is not None else predict(detector, records, progress)
    clean = [p for p, r in zip(preds, records, strict=True) if not r.boxes]
    needed = int(np.ceil(1.0 / target_far - 1e-9))
    if len(clean) < needed:
        raise ValueError(f"{len(clean)} clean scans cannot resolve a false-alarm rate of {target_far:g}; "
                         f"use at least {needed} (one false alarm's worth; an alarm threshold per class needs "
                         f"{clean_scans_needed(target_far)})")
    best = np.array([p.scores.max() if len(p.scores) else 0.0 for p in clean])
    t = max(threshold_at_far(best, target_far), detector.metadata.thresholds.min_score)
    stored = min(float(np.ceil(t * 1e4) / 1e4), 1.0)  # rounded up (the FAR can only fall); 1.0 at most, as per class
    threat = [p for p, r in zip(preds, records, strict=True) if r.boxes]
    pd = float(np.mean([(p.scores.max() if len(p.scores) else 0.0) >= stored for p in threat])) if threat else None
    return stored, {"clean_scans": len(clean), "threat_scans": len(threat), "parcel_pd": pd,
                    "parcel_far": float((best >= stored).mean())}


def choose_class_thresholds(clean: np.ndarray, threat: np.ndarray, target_far: float, floor: float = 0.0,
                            start: np.ndarray | None = None) -> np.ndarray:
    """Alarm thresholds per class, (C,), from the best score per class of clean (N, C) and threat (M, C) scans.

    A parcel alarms when any class reaches its threshold. Starting with every class off (or from ``start``,
    which is only ever lowered), each step lowers one class's threshold to a threat scan's score, choosing
    the step that detects the most new threat scans per new false alarm (plus one), as long as at most
    ``target_far`` of the clean scans alarm. A class whose detections on clean scans score as high as on
    threats is thus left strict, and a class that is rarely wrong is let down further than one shared
    threshold would allow. Classes never lowered keep an unreachable threshold (just above 1).
    """
    n_cls = clean.shape[1]
    allowed = int(np.floor(target_far * len(clean) + 1e-9))
    off = float(np.nextafter(1.0, 2.0))
    th = np.full(n_cls, off) if start is None else np.asarray(start, np.float64).copy()
    while True:
        clean_hit = (clean >= th[None, :]).any(axis=1)
        threat_hit = (threat >= th[None, :]).any(axis=1)
        spare = allowed - int(clean_hit.sum())
        best: tuple[tuple[float, int], int, float] | None = None
        for k in range(n_cls):
            p = np.sort(threat[~threat_hit, k])[::-1]
            cands = np.unique(p[(p < th[k]) & (p > 0) & (p >= floor)])[::-1]
            if not len(cands):
                continue
            n = np.sort(clean[~clean_hit, k])[::-1]
            gain = np.searchsorted(-p, -cands, side="right")  # new threat scans at or above each candidate
            cost = np.searchsorted(-n, -cands, side="right")  # new clean scans at or above it
            ratio = np.where(cost <= spare, gain / (cost + 1.0), -1.0)
            i = int(np.argmax(ratio))
            if ratio[i] > 0 and (best is None or (ratio[i], int(gain[i])) > best[0]):
                best = ((float(ratio[i]), int(gain[i])), k, float(cands[i]))
        if best is None:
            return th
        th[best[1]] = best[2]


def crossfit_target(clean: np.ndarray, threat: np.ndarray, target_far: float, floor: float = 0.0,
                    start: np.ndarray | None = None, splits: int = 4, seed: int = 0) -> tuple[float, float]:
    """The target to give :func:`choose_class_thresholds` so that its thresholds keep ``target_far`` on clean
    scans it has not seen, and the FAR they then give there. Each class's threshold is lowered to the edge of
    the clean scores it sees, so on new clean scans it alarms more often than it did on those (0.6.0: 1.64% on
    held-out scans for 1%). Cross-fitting measures that: the clean and threat scans are split in halves
    ``splits`` times; thresholds chosen on one half are scored on the other half's clean scans; the largest
    target, in steps of 5% of ``target_far``, whose mean held-out FAR is within ``target_far`` is returned.
    """
    rng = np.random.default_rng(seed)
    halves = []
    for _ in range(splits):
        c, t = rng.permutation(len(clean)), rng.permutation(len(threat))
        ca, cb, ta, tb = c[: len(c) // 2], c[len(c) // 2:], t[: len(t) // 2], t[len(t) // 2:]
        halves += [(ca, cb, ta), (cb, ca, tb)]
    far = float("nan")
    for step in range(20, 0, -1):
        inner = target_far * step / 20
        far = float(np.mean([(clean[b] >= choose_class_thresholds(clean[a], threat[ta], inner, floor, start)[None, :])
                             .any(axis=1).mean() for a, b, ta in halves]))
        if far <= target_far:
            return inner, far
    return target_far / 20, far


def choose_alarm_thresholds(detector: Detector, records: list[Record], target_far: float,
                            preds: list[Prediction], per_class: bool = True,
                            start: dict[str, float] | None = None) -> tuple[dict[str, float], dict[str, Any]]:
    """Alarm thresholds per class for a parcel FAR of at most ``target_far`` on the clean ``records``: one for
    every class (``per_class=False``, :func:`choose_alarm_threshold`) or one each (:func:`choose_class_thresholds`,
    never under the model's floor and, with ``start``, never above it; only on enough clean scans to resolve
    ``target_far``, :func:`armscan.training.metrics.clean_scans_needed`). Returns them with the parcel Pd and
    FAR they give on ``records`` and the rule used. ``target_far`` must lie in (0, 1) (``ValueError``)."""
    check_rate("target_far", target_far)
    classes = detector.metadata.classes
    clean_n, needed = sum(1 for r in records if not r.boxes), clean_scans_needed(target_far)
    if not per_class or clean_n < needed:  # with too few clean scans, per-class thresholds would fit their noise
        t, stats = choose_alarm_threshold(detector, records, target_far, preds=preds)
        why = f" ({clean_n} clean scans; an alarm threshold per class needs {needed})" if per_class else ""
        return dict.fromkeys(classes, t), {**stats, "rule": "one for every class" + why}
    table = ScoreTable.build(records, preds, classes)
    clean, threat = table.best_by_class[table.clean], table.best_by_class[~table.clean]
    floor, begin = detector.metadata.thresholds.min_score, None if start is None else np.array([start[c] for c in classes])
    inner, held_out_far = crossfit_target(clean, threat, target_far, floor, begin)
    th = choose_class_thresholds(clean, threat, inner, floor=floor, start=begin)
    # rounded up (the FAR can only fall); a class never lowered is stored at 1.0: it alarms only on a saturated score
    th = np.minimum(np.ceil(th * 1e4) / 1e4, 1.0)
    point = at_thresholds(table, th)["alarm"]
    return dict(zip(classes, (float(v) for v in th), strict=True)), {
        "clean_scans": int(table.clean.sum()), "threat_scans": int((~table.clean).sum()), **point,
        "rule": "per class", "reference": round(alarm_reference(th), 4),
        "crossfit": {"target": round(inner, 6), "held_out_far": round(held_out_far, 4)}}
