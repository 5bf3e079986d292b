"""Calibration of detection confidences: expected calibration error (ECE) and temperature scaling.

A detection is *right* when it is matched to a true box of its class with IoU >= 0.5, one to one and
best score first (as COCO matches). ECE puts the detections in ``bins`` equal-width score bins and
averages |share right - mean score| over the bins, weighted by their sizes. Temperature scaling
(:func:`armscan.inference.decode.apply_temperature`, stored in the model's metadata and applied by
inference) is fit on calibration scans by minimising the negative log-likelihood of right/wrong; it is
applied after NMS, so it changes the scores but not which boxes are found or their ranking.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from armscan.datasets.coco import Record
from armscan.inference.decode import apply_temperature
from armscan.training.metrics import Prediction, box_iou, gt_xyxy

_T_RANGE = (0.05, 20.0)


def match_detections(records: list[Record], preds: list[Prediction], classes: list[str],
                     iou: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
    """Every detection's score and whether it is right (bool), over all scans."""
    scores, right = [], []
    for r, p in zip(records, preds, strict=True):
        order = np.argsort(-p.scores, kind="stable")
        gt_cls = np.array([classes.index(b["cls"]) for b in r.boxes], np.int64)
        ious = box_iou(p.boxes[order], gt_xyxy(r)) if len(order) and len(gt_cls) else np.zeros((len(order), 0))
        used = np.zeros(len(gt_cls), bool)
        for j, d in enumerate(order):
            ok = (gt_cls == p.labels[d]) & ~used & (ious[j] >= iou)
            if ok.any():
                used[int(np.argmax(np.where(ok, ious[j], -1.0)))] = True
            scores.append(float(p.scores[d]))
            right.append(bool(ok.any()))
    return np.array(scores, np.float64), np.array(right, bool)


def expected_calibration_error(scores: np.ndarray, right: np.ndarray, bins: int = 10) -> tuple[float, list[dict[str, Any]]]:
    """ECE and the reliability table (per non-empty bin: its range, size, mean score and share right)."""
    if len(scores) == 0:
        return 0.0, []
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.searchsorted(edges, scores, side="right") - 1, 0, bins - 1)
    ece, table = 0.0, []
    for k in range(bins):
        m = which == k
        if not m.any():
            continue
        conf, acc = float(scores[m].mean()), float(right[m].mean())
        ece += m.sum() / len(scores) * abs(acc - conf)
        table.append({"lo": round(float(edges[k]), 2), "hi": round(float(edges[k + 1]), 2), "n": int(m.sum()),
                      "score": round(conf, 4), "right": round(acc, 4)})
    return round(float(ece), 4), table


def _nll(a: float, x: np.ndarray, y: np.ndarray) -> float:
    z = a * x  # log-likelihood of y under sigmoid(z), computed stably
    return float(np.mean(np.logaddexp(0.0, z) - y * z))


def fit_temperature(scores: np.ndarray, right: np.ndarray) -> float:
    """The temperature T in [0.05, 20] minimising the NLL of ``right`` under ``sigmoid(logit(score) / T)``.

    The NLL is convex in 1/T, so a golden-section search finds the optimum. Without detections, or when
    all of them are right (or all wrong), there is nothing to fit and T = 1.
    """
    if len(scores) == 0 or right.all() or not right.any():
        return 1.0
    s = np.clip(scores, 1e-7, 1 - 1e-7)
    x, y = np.log(s / (1 - s)), right.astype(np.float64)
    lo, hi = 1.0 / _T_RANGE[1], 1.0 / _T_RANGE[0]
    g = (np.sqrt(5.0) - 1.0) / 2.0
    a, b = hi - g * (hi - lo), lo + g * (hi - lo)
    fa, fb = _nll(a, x, y), _nll(b, x, y)
    for _ in range(80):
        if fa < fb:
            hi, b, fb = b, a, fa
            a = hi - g * (hi - lo)
            fa = _nll(a, x, y)
        else:
            lo, a, fa = a, b, fb
            b = lo + g * (hi - lo)
            fb = _nll(b, x, y)
    return round(float(1.0 / ((lo + hi) / 2.0)), 4)


def calibration_summary(records: list[Record], preds: list[Prediction], classes: list[str], temperature: float,
                        unscaled: list[Prediction] | None = None, bins: int = 10) -> dict[str, Any]:
    """ECE of ``preds`` (made with the model's ``temperature``) and of ``unscaled`` (the same model at T = 1)."""
    scores, right = match_detections(records, preds, classes)
    ece, table = expected_calibration_error(scores, right, bins)
    out: dict[str, Any] = {"temperature": temperature, "detections": len(scores), "right": int(right.sum()),
                           "ece": ece, "ece_before_scaling": ece, "reliability": table, "reliability_before": table}
    if unscaled is not None:
        s1, r1 = match_detections(records, unscaled, classes)
        out["ece_before_scaling"], out["reliability_before"] = expected_calibration_error(s1, r1, bins)
    return out


def fit_on(records: list[Record], preds: list[Prediction], classes: list[str]) -> dict[str, Any]:
    """Fit the temperature on calibration predictions made at T = 1; ECE before and after on the same scans."""
    scores, right = match_detections(records, preds, classes)
    t = fit_temperature(scores, right)
    before, _ = expected_calibration_error(scores, right)
    after, _ = expected_calibration_error(apply_temperature(scores.astype(np.float32), t).astype(np.float64), right)
    return {"temperature": t, "detections": len(scores), "ece_before": before, "ece_after": after}
