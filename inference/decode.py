"""Decode the detector's raw head outputs and run NMS, in numpy and OpenCV (no torch).

The ONNX graph ends at the head: per-location class logits, box distances, a centreness
logit and attribute logits on a stride-``s`` grid. This module turns them into boxes.
Training's evaluation calls the same function on the torch model's outputs.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import cv2
import numpy as np
from numpy.typing import NDArray

#: Names and order of the ONNX outputs.
OUTPUT_NAMES: tuple[str, ...] = ("cls_logits", "box_reg", "centerness", "build_logits", "type_logits")

_MAX_LOG_DIST = 6.0  # exp(6) * stride: far beyond any input size


class ModelOutputError(RuntimeError):
    """The model's input or outputs hold NaN or infinite values, or not the shape its metadata describes: no decision."""


def check_finite(outputs: dict[str, NDArray[np.float32]]) -> None:
    """Raise :class:`ModelOutputError` naming every output in :data:`OUTPUT_NAMES` that is not all finite.

    A NaN logit fails every score comparison, so without this a broken model's outputs decode to no boxes:
    a confident "clear" instead of an error.
    """
    bad = [n for n in OUTPUT_NAMES if n in outputs and not np.isfinite(outputs[n]).all()]
    if bad:
        raise ModelOutputError(f"the model's outputs {bad} hold NaN or infinite values; no decision can be made "
                               "(a broken or wrongly exported model)")


@dataclass
class Decoded:
    """Detections of one image in model-input pixels, sorted by score."""

    boxes: NDArray[np.float32]  # (N, 4) xyxy
    scores: NDArray[np.float32]  # (N,)
    labels: NDArray[np.int64]  # (N,) class index
    build: NDArray[np.float32]  # (N, n_builds) probabilities
    type: NDArray[np.float32]  # (N, n_types) probabilities


def _sigmoid(x: NDArray[np.float32]) -> NDArray[np.float32]:
    return (1.0 / (1.0 + np.exp(-np.clip(x, -50, 50)))).astype(np.float32, copy=False)


def _softmax(x: NDArray[np.float32]) -> NDArray[np.float32]:
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    out: NDArray[np.float32] = (e / e.sum(axis=-1, keepdims=True)).astype(np.float32)
    return out


def apply_temperature(scores: NDArray[np.float32], temperature: float) -> NDArray[np.float32]:
    """Temperature scaling of detection scores: ``sigmoid(logit(score) / temperature)``; 1.0 leaves them as they are.

    It is monotone, so boxes keep their ranking (NMS, mAP and Pd at a false-alarm rate do not change)
    while the scores move closer to the share of detections that are right.
    """
    if temperature == 1.0:
        return scores
    s = np.clip(scores.astype(np.float64), 1e-7, 1.0 - 1e-7)
    return _sigmoid((np.log(s / (1.0 - s)) / temperature).astype(np.float32))


def grid_centres(height: int, width: int, stride: int) -> NDArray[np.float32]:
    """(H*W, 2) xy centres of a stride-``stride`` grid in input pixels, row-major."""
    return _grid_centres(height, width, stride).copy()


@lru_cache(maxsize=16)
def _grid_centres(height: int, width: int, stride: int) -> NDArray[np.float32]:
    """:func:`grid_centres`, built once per grid for :func:`decode` (read-only)."""
    ys, xs = np.meshgrid(np.arange(height, dtype=np.float32), np.arange(width, dtype=np.float32), indexing="ij")
    out = np.stack([(xs.ravel() + 0.5) * stride, (ys.ravel() + 0.5) * stride], axis=1)
    out.flags.writeable = False
    return out


def decode(outputs: dict[str, NDArray[np.float32]], stride: int, score_threshold: float, nms_iou: float,
           max_detections: int = 100, pre_nms_top_k: int = 1000, class_agnostic: bool = False,
           temperature: float = 1.0) -> list[Decoded]:
    """Decode a batch of raw outputs ``{name: (B, C, H, W)}`` into per-image detections.

    Score = sqrt(sigmoid(class) * sigmoid(centreness)); boxes = centre -/+ exp(distance) * stride.
    ``score_threshold`` and NMS work on that score; the kept boxes' scores are then scaled by
    :func:`apply_temperature`, so the temperature changes the scores but never which boxes come out.
    NMS is per class (OpenCV's batched NMS), or across classes when ``class_agnostic`` (one box per
    item: the best-scoring class wins). Outputs with NaN or infinite values raise :class:`ModelOutputError`.
    """
    check_finite(outputs)
    cls = outputs["cls_logits"]
    b, c, h, w = cls.shape
    centres = _grid_centres(h, w, stride)  # (HW, 2)
    results: list[Decoded] = []
    # score > t needs sigmoid(class) > t^2 (centreness <= 1): cells below that logit are skipped unscored
    floor = float(np.log(score_threshold**2 / (1.0 - score_threshold**2))) if 0 < score_threshold < 1 else -np.inf
    for i in range(b):
        logits = cls[i].reshape(c, -1)  # (C, HW)
        cells = np.flatnonzero(logits.max(axis=0) > floor)
        prob = _sigmoid(logits[:, cells].T)  # (K, C)
        ctr = _sigmoid(outputs["centerness"][i].reshape(-1)[cells])  # (K,)
        scores = np.sqrt(prob * ctr[:, None])  # (K, C)
        k, lab = np.nonzero(scores > score_threshold)
        loc, s = cells[k], scores[k, lab]
        if len(s) > pre_nms_top_k:
            keep = np.argpartition(-s, pre_nms_top_k)[:pre_nms_top_k]
            loc, lab, s = loc[keep], lab[keep], s[keep]
        dist = np.exp(np.clip(outputs["box_reg"][i].reshape(4, -1).T[loc], -_MAX_LOG_DIST, _MAX_LOG_DIST)) * stride
        ctr_xy = centres[loc]
        boxes = np.concatenate([ctr_xy - dist[:, :2], ctr_xy + dist[:, 2:]], axis=1).astype(np.float32)
        if len(s):
            xywh = np.concatenate([boxes[:, :2], boxes[:, 2:] - boxes[:, :2]], axis=1)
            groups = np.zeros_like(lab) if class_agnostic else lab
            keep_idx = cv2.dnn.NMSBoxesBatched(xywh.tolist(), s.tolist(), groups.tolist(), score_threshold, nms_iou)
            keep = np.asarray(keep_idx, np.int64).reshape(-1)
            keep = keep[np.argsort(-s[keep], kind="stable")][:max_detections]
        else:
            keep = np.zeros(0, np.int64)
        loc, lab = loc[keep], lab[keep]
        build = _softmax(outputs["build_logits"][i].reshape(outputs["build_logits"].shape[1], -1).T[loc])
        typ = _softmax(outputs["type_logits"][i].reshape(outputs["type_logits"].shape[1], -1).T[loc])
        results.append(Decoded(boxes=boxes[keep], scores=apply_temperature(s[keep].astype(np.float32), temperature),
                               labels=lab.astype(np.int64),
                               build=build, type=typ))
    return results
