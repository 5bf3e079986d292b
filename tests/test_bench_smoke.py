"""The bench scripts' own logic: the INT8 study's quantization round-trips through the inference engine (a tiny
model, random-ish weights, 128 px, quantized with onnxruntime's static QDQ, keeps its armscan metadata and screens an
image), the diagnosis counts what each true box is taken for, and the post-processing study's decay, mirror and
fusion do what it says."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

BENCH = Path(__file__).resolve().parents[1] / "bench"


def _bench(name: str):  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location(name, BENCH / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_int8_round_trip_keeps_metadata(tiny_onnx: Path, tiny_coco: Path, tmp_path: Path) -> None:
    pytest.importorskip("onnxruntime.quantization")
    from armscan.datasets.coco import read_coco
    from armscan.datasets.readers import read_image
    from armscan.inference.engine import Detector

    study = _bench("int8_study")
    variant = next(v for v in study.variants() if v.key == "qdq_keep_head_dw")  # also exercises nodes_to_exclude
    records = read_coco(tiny_coco)
    out = study.quantize(tiny_onnx, tmp_path / "int8.onnx", records[:4], variant)

    fp32, int8 = Detector.from_onnx(tiny_onnx, threads=1), Detector.from_onnx(out, threads=1)
    assert int8.metadata.model_dump(exclude={"version"}) == fp32.metadata.model_dump(exclude={"version"})
    assert int8.metadata.version == f"{fp32.metadata.version}+int8.qdq_keep_head_dw"
    image = read_image(records[0].file)
    det = int8.raw(image, min_score=0.0)
    assert np.isfinite(det.boxes).all() and np.isfinite(det.scores).all()
    result = int8.detect(image)
    assert result.model_version.endswith("+int8.qdq_keep_head_dw")


def test_confusion_counts_what_each_true_box_is_taken_for() -> None:
    from armscan.datasets.coco import Record
    from armscan.training.metrics import Prediction

    classes = ["firearm", "slide", "magazine"]
    records = [Record(Path("a.png"), 100, 100, [{"bbox": [0, 0, 40, 40], "cls": "slide"},
                                                {"bbox": [50, 50, 40, 40], "cls": "magazine"}]),
               Record(Path("b.png"), 100, 100, [{"bbox": [10, 10, 30, 30], "cls": "slide"}]),
               Record(Path("c.png"), 100, 100, [])]
    preds = [  # the slide: the firearm box outscores the slide box; the magazine: only a box that misses it
        Prediction(np.array([[0, 0, 40, 40], [1, 1, 40, 40], [0, 0, 20, 20]], np.float32), np.array([0.9, 0.6, 0.99]),
                   np.array([0, 1, 2])),
        Prediction(np.array([[10, 10, 40, 40]], np.float32), np.array([0.5]), np.array([1])),  # found as a slide
        Prediction(np.array([[0, 0, 9, 9]], np.float32), np.array([0.7]), np.array([0])),  # clean: not counted
    ]
    counts = _bench("det_diagnosis").confusion(records, preds, classes)
    assert counts.tolist() == [[0, 0, 0, 0], [1, 1, 0, 0], [0, 0, 0, 1]]


def test_post_processing_variants_decay_unflip_and_fuse() -> None:
    from armscan.training.metrics import Prediction

    post = _bench("det_postprocess")
    boxes = np.array([[0, 0, 40, 40], [1, 1, 41, 41], [2, 2, 40, 40], [60, 60, 90, 90]], np.float32)
    pred = Prediction(boxes, np.array([0.5, 0.9, 0.8, 0.7], np.float32), np.array([1, 0, 0, 2]))
    out = post.cross_class_decay(pred, iou=0.5, factor=0.5)
    got = {(round(float(s), 3), int(lab)) for s, lab in zip(out.scores, out.labels, strict=True)}
    # the class-1 box under the class-0 ones halves; the same class (0.8) and the lone box (0.7) keep their scores
    assert got == {(0.25, 1), (0.9, 0), (0.8, 0), (0.7, 2)}
    assert post.cross_class_decay(pred, iou=0.5, factor=1.0) is pred

    mirrored = post.unflip(Prediction(np.array([[10, 5, 30, 25]], np.float32), np.array([0.6]), np.array([0])), 100)
    assert mirrored.boxes.tolist() == [[70, 5, 90, 25]]

    a = Prediction(np.array([[0, 0, 10, 10]], np.float32), np.array([0.6], np.float32), np.array([0]))
    b = Prediction(np.array([[0, 0, 10, 11], [0, 0, 10, 10]], np.float32), np.array([0.7, 0.4], np.float32),
                   np.array([0, 1]))
    fused = post.fuse(a, b, iou=0.5)  # the duplicate firearm keeps its higher score; the other class stays
    assert fused.scores.tolist() == pytest.approx([0.7, 0.4]) and fused.labels.tolist() == [0, 1]
