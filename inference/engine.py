"""The torch-free screening engine: ONNX session + metadata -> typed results.

``Detector.from_onnx(path)`` builds the onnxruntime session once and rebuilds
preprocessing, decoding and thresholds from the model's metadata. Training wraps a torch
model in the same class (``Detector(run_fn, metadata)``), so checkpoints and exported
models are evaluated by the same code.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from armscan.inference.decode import OUTPUT_NAMES, Decoded, apply_temperature, decode
from armscan.inference.metadata import METADATA_KEY, ModelMetadata
from armscan.inference.preprocess import PreprocessSpec, preprocess
from armscan.inference.result import Decision, Detection, Level, ScanResult

RunFn = Callable[[NDArray[np.float32]], dict[str, NDArray[np.float32]]]


class ModelLoadError(RuntimeError):
    """A model file that cannot be loaded or carries no valid armscan metadata."""


def derive_flags(rules: dict[str, dict[str, list[str]]], detections: list[Detection]) -> dict[str, bool]:
    """Image flags from the metadata's rules and the alarming detections."""
    flags = {}
    for flag, rule in rules.items():
        classes, builds = set(rule.get("classes", [])), set(rule.get("builds", []))
        flags[flag] = any(d.alarm and (d.cls in classes or d.build in builds) for d in detections)
    return flags


def open_session(path: str | Path, threads: int | None = None, spin: bool = True) -> tuple[Any, dict[str, Any]]:
    """An onnxruntime CPU session for an exported armscan model, and its metadata as a dict.

    ``threads`` sets onnxruntime's intra-op threads (default: its own). ``spin=False`` puts them to sleep
    between runs instead of busy-waiting for the next one: a little latency for a core that other work
    (decoding the next scans) can use.
    """
    import onnxruntime as ort

    path = Path(path)
    if not path.is_file():
        raise ModelLoadError(f"model file not found: {path}")
    opts = ort.SessionOptions()
    if threads:
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
    if not spin:
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    try:
        session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises several private types
        raise ModelLoadError(f"{path}: onnxruntime cannot load it ({exc})") from exc
    meta_json = session.get_modelmeta().custom_metadata_map.get(METADATA_KEY)
    if meta_json is None:
        raise ModelLoadError(f"{path}: no '{METADATA_KEY}' metadata; export it with 'armscan export'")
    try:
        meta = json.loads(meta_json)
    except ValueError as exc:
        raise ModelLoadError(f"{path}: invalid armscan metadata ({exc})") from exc
    if not isinstance(meta, dict):
        raise ModelLoadError(f"{path}: invalid armscan metadata (not a JSON object)")
    return session, meta


@lru_cache(maxsize=16)
def _raw_floor(lowest: float, temperature: float, min_score: float) -> float:
    """The raw score under which no box reaches ``lowest`` once temperature-scaled (decode filters raw scores)."""
    raw = float(apply_temperature(np.array([lowest], np.float32), 1.0 / temperature)[0])
    return max(raw * 0.999, min_score)  # a hair under, against float rounding


class Detector:
    """Screens images with one model. Thread-safe for concurrent ``detect`` calls on onnxruntime."""

    def __init__(self, run: RunFn, metadata: ModelMetadata) -> None:
        self._run = run
        self.metadata = metadata
        self.spec = PreprocessSpec.from_dict(metadata.preprocess)

    @classmethod
    def from_onnx(cls, path: str | Path, threads: int | None = None, spin: bool = True) -> Detector:
        """Load an exported model; ``threads`` and ``spin``: see :func:`open_session`."""
        session, meta = open_session(path, threads, spin)
        if meta.get("task", "detect") != "detect":
            raise ModelLoadError(f"{path}: a {meta['task']} model, not an X-ray detector (for photos: --kind photo)")
        try:
            metadata = ModelMetadata.model_validate(meta)
        except ValueError as exc:
            raise ModelLoadError(f"{path}: invalid armscan metadata ({exc})") from exc
        names = [o.name for o in session.get_outputs()]

        def run(batch: NDArray[np.float32]) -> dict[str, NDArray[np.float32]]:
            outs = session.run(names, {metadata.input_name: batch})
            return {n: np.asarray(o) for n, o in zip(names, outs, strict=True)}

        missing = set(OUTPUT_NAMES) - set(names)
        if missing:
            raise ModelLoadError(f"{path}: outputs {sorted(missing)} are missing")
        return cls(run, metadata)

    def raw(self, image: NDArray[np.uint8], min_score: float | None = None) -> Decoded:
        """All decoded detections above ``min_score`` (default: the model's floor), in original pixels."""
        x, lb = preprocess(image, self.spec)
        outputs = self._run(x[None])
        th = self.metadata.thresholds
        det = decode(outputs, self.metadata.stride, th.min_score if min_score is None else min_score, th.nms_iou,
                     class_agnostic=th.nms_class_agnostic, temperature=th.temperature)[0]
        det.boxes = lb.boxes_to_original(det.boxes)
        return det

    def detect(self, image: NDArray[np.uint8], source: str = "", include_below_alarm: bool = False,
               original_size: tuple[int, int] | None = None) -> ScanResult:
        """Screen one BGR image. Lists alarm and uncertain boxes (and weaker ones if ``include_below_alarm``).

        ``original_size`` (width, height): ``image`` was decoded at reduced resolution from a scan of that
        size; boxes, width and height are then given in the full-resolution scan's pixels.

        The decision is ``alarm`` if any box reaches its class's alarm threshold, else ``uncertain`` if
        any box reaches its uncertain threshold (models exported with an abstention band), else ``clear``.
        """
        t0 = time.perf_counter()
        th = self.metadata.thresholds
        # Boxes under the lowest listed threshold are dropped below anyway; decoding them only costs NMS time
        # (a lower box never suppresses a higher one, so the boxes kept are the same).
        floor = None
        if not include_below_alarm:
            floor = _raw_floor(min({**th.alarm, **(th.uncertain or {})}.values()), th.temperature, th.min_score)
        det = self.raw(image, min_score=floor)
        h, w = image.shape[:2]
        if original_size is not None and original_size != (w, h):
            sx, sy = original_size[0] / w, original_size[1] / h
            det.boxes = det.boxes * np.array([sx, sy, sx, sy], np.float32)
            w, h = original_size
        md = self.metadata
        detections = []
        for k in range(len(det.scores)):
            cls = md.classes[int(det.labels[k])]
            score = float(det.scores[k])
            alarm = score >= md.thresholds.alarm[cls]
            band = md.thresholds.uncertain
            level: Level = "alarm" if alarm else "uncertain" if band is not None and score >= band[cls] else "below"
            if level == "below" and not include_below_alarm:
                continue
            b = int(np.argmax(det.build[k]))
            typ, typ_score = None, None
            if cls in md.type_classes:
                t = int(np.argmax(det.type[k]))
                typ, typ_score = md.types[t], round(float(det.type[k, t]), 4)
            x0, y0, x1, y1 = (round(float(v), 1) for v in det.boxes[k])
            detections.append(Detection(box=(x0, y0, x1, y1), cls=cls, score=round(score, 4), build=md.builds[b],
                                        build_score=round(float(det.build[k, b]), 4), type=typ, type_score=typ_score,
                                        alarm=alarm, level=level))
        levels = {d.level for d in detections}
        decision: Decision = "alarm" if "alarm" in levels else "uncertain" if "uncertain" in levels else "clear"
        return ScanResult(source=source, width=w, height=h, detections=detections,
                          flags=derive_flags(md.flag_rules, detections), decision=decision, model_name=md.name,
                          model_version=md.version, latency_ms=round((time.perf_counter() - t0) * 1000, 2))
