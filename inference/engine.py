"""The torch-free screening engine: ONNX session + metadata -> typed results.

``Detector.from_onnx(path)`` builds the onnxruntime session once and rebuilds
preprocessing, decoding and thresholds from the model's metadata. Training wraps a torch
model in the same class (``Detector(run_fn, metadata)``), so checkpoints and exported
models are evaluated by the same code.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from numpy.typing import NDArray

from armscan.datasets.readers import ImageReadError, to_bgr8
from armscan.inference.decode import OUTPUT_NAMES, Decoded, ModelOutputError, apply_temperature, decode
from armscan.inference.metadata import METADATA_KEY, ModelMetadata
from armscan.inference.preprocess import PreprocessSpec, preprocess
from armscan.inference.result import Decision, Detection, Level, ScanResult

RunFn = Callable[[NDArray[np.float32]], dict[str, NDArray[np.float32]]]

__all__ = ["MIN_CONTENT_STD", "MIN_SIDE", "Detector", "ModelLoadError", "ModelOutputError", "UnscreenableImageError",
           "derive_flags", "open_session"]

#: The smallest scan side screened, in full-resolution pixels. The backbone's coarsest feature map has a
#: stride of 32 (models/detector.py), so a thinner scan holds less than one of its cells: letterboxing it up
#: to the input size only invents pixels. Real and generated scans are hundreds of pixels on a side.
MIN_SIDE = 32
#: Below this standard deviation of the grey levels (0-255) in every channel an image is blank: a black,
#: white or uniform frame (a detector fault, a lens cap, an empty upload). The model gives such frames
#: confident but meaningless scores (0.99 firearm on black), so they are refused. The bundled samples and
#: generated scans have 40-80; one grey level is below any real scan's sensor noise.
MIN_CONTENT_STD = 1.0
_STD_SAMPLE = 256  # the content check samples about this many pixels along the longest side

_PIXEL_TYPES = "uint8 (or uint16, or float in [0, 1])"
_SHAPES = "(H, W, 3) BGR, (H, W, 4) BGRA, or (H, W) or (H, W, 1) greyscale"


class ModelLoadError(RuntimeError):
    """A model file that cannot be loaded, carries no valid armscan metadata, or does not match its metadata."""


class UnscreenableImageError(ImageReadError):
    """An image the detector will not screen (a shape or pixel type it cannot take, too small, or blank); no decision."""


def as_bgr8(image: Any, source: str = "") -> NDArray[np.uint8]:
    """The (H, W, 3) uint8 BGR image to screen: taken as it is, or converted by :func:`to_bgr8` (greyscale,
    BGRA, 16-bit, float in [0, 1]); anything else raises :class:`UnscreenableImageError` naming what is allowed."""
    where = source or "<image>"
    if not isinstance(image, np.ndarray):
        raise UnscreenableImageError(where, f"expected a numpy image array, got {type(image).__name__}")
    if image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3 and image.size:
        return image
    if not (image.ndim == 2 or (image.ndim == 3 and image.shape[2] in (1, 3, 4))):
        raise UnscreenableImageError(where, f"an image of shape {image.shape} cannot be screened; expected {_SHAPES}")
    if image.size == 0:
        raise UnscreenableImageError(where, f"empty image of shape {image.shape}")
    if image.dtype not in (np.uint8, np.uint16, np.float32, np.float64):
        raise UnscreenableImageError(where, f"pixel type {image.dtype} is not supported; expected {_PIXEL_TYPES}")
    if image.dtype.kind == "f":
        lo, hi = float(np.min(image)), float(np.max(image))
        if not (math.isfinite(lo) and math.isfinite(hi) and 0.0 <= lo and hi <= 1.0):
            raise UnscreenableImageError(where, f"float pixels must lie in [0, 1], got values from {lo:g} to {hi:g}; "
                                                "convert 0-255 images to uint8")
    try:
        return to_bgr8(image, where)
    except ImageReadError as exc:
        raise UnscreenableImageError(where, exc.reason) from exc


def check_content(image: NDArray[np.uint8], size: tuple[int, int], source: str = "") -> None:
    """Refuse (:class:`UnscreenableImageError`) a scan of ``size`` (width, height, full resolution) with a side
    under :data:`MIN_SIDE`, or whose ``image`` has no content: a grey-level standard deviation under
    :data:`MIN_CONTENT_STD` in every channel, measured on a nearest-neighbour sample about 256 pixels along the
    longest side (the check runs on every scan: about 0.1 ms for 640x480)."""
    where = source or "<image>"
    if min(size) < MIN_SIDE:
        raise UnscreenableImageError(where, f"no image content: {size[0]}x{size[1]} pixels is too small to screen "
                                            f"(each side must be at least {MIN_SIDE})")
    h, w = image.shape[:2]
    f = _STD_SAMPLE / max(h, w)  # nearest-neighbour sampling: a strided numpy copy would cost 10x more
    small = image if f >= 1 else cv2.resize(image, (max(1, round(w * f)), max(1, round(h * f))),
                                            interpolation=cv2.INTER_NEAREST)
    _, sd = cv2.meanStdDev(small)
    spread = float(np.max(sd))
    if spread < MIN_CONTENT_STD:
        raise UnscreenableImageError(where, f"no image content: a blank or uniform frame (grey-level standard "
                                            f"deviation {spread:.2f}, at least {MIN_CONTENT_STD} is needed)")


def _floor4(score: float) -> float:
    """``score`` rounded down to 4 decimals: the score reported and decided on. Thresholds have 4 decimals, so
    it reaches a threshold exactly when the full score does, and the printed score never contradicts the level."""
    return math.floor(score * 1e4) / 1e4


def _channels(md: ModelMetadata) -> dict[str, int]:
    """The channel count of each output that the metadata implies."""
    return {"cls_logits": len(md.classes), "box_reg": 4, "centerness": 1, "build_logits": len(md.builds),
            "type_logits": len(md.types)}


def _shape_mismatches(md: ModelMetadata, spec: PreprocessSpec, inputs: dict[str, list[Any]],
                      outputs: dict[str, list[Any]]) -> list[str]:
    """How the graph's declared static dims disagree with the metadata (dynamic dims, strings or None, are skipped)."""
    grids = {spec.size // md.stride, -(-spec.size // md.stride)}  # the stride-s grid over the input: floor or ceil
    problems = []

    def check(what: str, dims: list[Any], want: list[tuple[str, set[int]]]) -> None:
        if len(dims) != len(want) + 1:
            problems.append(f"{what} has {len(dims)} dims {dims}, expected {len(want) + 1}")
            return
        for d, (meaning, allowed) in zip(dims[1:], want, strict=True):
            if isinstance(d, int) and d not in allowed:
                problems.append(f"{what} has {d} {meaning}, the metadata implies {' or '.join(map(str, sorted(allowed)))}")

    if md.input_name not in inputs:
        problems.append(f"the metadata's input_name {md.input_name!r} is not among the graph's inputs {sorted(inputs)}")
    else:
        side = {spec.size}
        check(f"input {md.input_name!r}", inputs[md.input_name],
              [("channels", {3}), ("rows (preprocess size)", side), ("columns (preprocess size)", side)])
    meaning = {"cls_logits": "classes", "box_reg": "box distances", "centerness": "centreness channels",
               "build_logits": "builds", "type_logits": "types"}
    for name, c in _channels(md).items():
        if name in outputs:
            check(f"output {name!r}", outputs[name], [(meaning[name], {c}), ("rows (preprocess size / stride)", grids),
                                                     ("columns (preprocess size / stride)", grids)])
    return problems


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
            metadata = ModelMetadata.model_validate({k: v for k, v in meta.items() if k != "task"})
            spec = PreprocessSpec.from_dict(metadata.preprocess)
        except ValueError as exc:
            raise ModelLoadError(f"{path}: invalid armscan metadata ({exc})") from exc
        names = [o.name for o in session.get_outputs()]

        def run(batch: NDArray[np.float32]) -> dict[str, NDArray[np.float32]]:
            outs = session.run(names, {metadata.input_name: batch})
            return {n: np.asarray(o) for n, o in zip(names, outs, strict=True)}

        missing = set(OUTPUT_NAMES) - set(names)
        if missing:
            raise ModelLoadError(f"{path}: outputs {sorted(missing)} are missing")
        problems = _shape_mismatches(metadata, spec, {i.name: list(i.shape) for i in session.get_inputs()},
                                     {o.name: list(o.shape) for o in session.get_outputs()})
        if problems:
            raise ModelLoadError(f"{path}: the graph does not match its armscan metadata: {'; '.join(problems)}")
        return cls(run, metadata)

    def _check_outputs(self, outputs: dict[str, NDArray[np.float32]]) -> None:
        """Raise :class:`ModelOutputError` unless the outputs of one image have the metadata's channels on one grid."""
        missing = [n for n in OUTPUT_NAMES if n not in outputs]
        if missing:
            raise ModelOutputError(f"the model gave no outputs {missing}")
        grid = outputs["cls_logits"].shape[2:]
        for name, c in _channels(self.metadata).items():
            shape = tuple(outputs[name].shape)
            if len(shape) != 4 or shape[0] != 1 or shape[1] != c or shape[2:] != grid:
                raise ModelOutputError(f"output {name!r} has shape {shape}; the metadata implies (1, {c}, H, W) on the "
                                       f"grid of cls_logits {tuple(grid)}")

    def raw(self, image: NDArray[Any], min_score: float | None = None, source: str = "") -> Decoded:
        """All decoded detections above ``min_score`` (default: the model's floor), in original pixels.

        ``image`` is BGR (H, W, 3) uint8, or converted to it (see :func:`as_bgr8`). Raises
        :class:`UnscreenableImageError` for an image it cannot take, and :class:`ModelOutputError` when the
        outputs are not finite or not the shapes the metadata describes.
        """
        # the input is finite: the metadata check at load refuses a mean and std that would make it otherwise, and
        # a non-finite input could only give non-finite outputs, which decode refuses
        x, lb = preprocess(as_bgr8(image, source), self.spec)
        outputs = self._run(x[None])
        self._check_outputs(outputs)
        th = self.metadata.thresholds
        det = decode(outputs, self.metadata.stride, th.min_score if min_score is None else min_score, th.nms_iou,
                     class_agnostic=th.nms_class_agnostic, temperature=th.temperature)[0]
        det.boxes = lb.boxes_to_original(det.boxes)
        return det

    def detect(self, image: NDArray[Any], source: str = "", include_below_alarm: bool = False,
               original_size: tuple[int, int] | None = None) -> ScanResult:
        """Screen one BGR image. Lists alarm and uncertain boxes (and weaker ones if ``include_below_alarm``).

        ``image`` is (H, W, 3) uint8 BGR; greyscale, BGRA, 16-bit and [0, 1] float images are converted
        (:func:`as_bgr8`). ``original_size`` (width, height): ``image`` was decoded at reduced resolution from a
        scan of that size; boxes, width and height are then given in the full-resolution scan's pixels.

        The decision is ``alarm`` if any box reaches its class's alarm threshold, else ``uncertain`` if
        any box reaches its uncertain threshold (models exported with an abstention band), else ``clear``.
        Scores are reported, and compared with the thresholds, rounded down to 4 decimals.

        No decision is made, and an error raised instead, for an image that cannot be screened
        (:class:`UnscreenableImageError`, an :class:`~armscan.datasets.readers.ImageReadError`: a shape or pixel
        type it cannot take, a side under :data:`MIN_SIDE`, or a blank frame, see :func:`check_content`), and for
        non-finite model outputs (:class:`ModelOutputError`).
        """
        t0 = time.perf_counter()
        image = as_bgr8(image, source)
        check_content(image, original_size or (image.shape[1], image.shape[0]), source)
        th = self.metadata.thresholds
        # Boxes under the lowest listed threshold are dropped below anyway; decoding them only costs NMS time
        # (a lower box never suppresses a higher one, so the boxes kept are the same).
        floor = None
        if not include_below_alarm:
            floor = _raw_floor(min({**th.alarm, **(th.uncertain or {})}.values()), th.temperature, th.min_score)
        det = self.raw(image, min_score=floor, source=source)
        h, w = image.shape[:2]
        if original_size is not None and original_size != (w, h):
            sx, sy = original_size[0] / w, original_size[1] / h
            det.boxes = det.boxes * np.array([sx, sy, sx, sy], np.float32)
            w, h = original_size
        md = self.metadata
        detections = []
        for k in range(len(det.scores)):
            cls = md.classes[int(det.labels[k])]
            score = _floor4(float(det.scores[k]))  # what is reported is what is decided on
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
            detections.append(Detection(box=(x0, y0, x1, y1), cls=cls, score=score, build=md.builds[b],
                                        build_score=round(float(det.build[k, b]), 4), type=typ, type_score=typ_score,
                                        alarm=alarm, level=level))
        levels = {d.level for d in detections}
        decision: Decision = "alarm" if "alarm" in levels else "uncertain" if "uncertain" in levels else "clear"
        return ScanResult(source=source, width=w, height=h, detections=detections,
                          flags=derive_flags(md.flag_rules, detections), decision=decision, model_name=md.name,
                          model_version=md.version, latency_ms=round((time.perf_counter() - t0) * 1000, 2))
