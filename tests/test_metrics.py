from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("pycocotools")

from armscan.datasets.coco import Record  # noqa: E402
from armscan.training.metrics import Prediction, coco_map, screening, threshold_at_far  # noqa: E402

CLASSES = ["firearm", "ammunition"]


def _records():
    recs = [Record(Path(f"{i}.png"), 100, 100, [], {}) for i in range(6)]
    recs[0].boxes = [{"bbox": [10, 10, 30, 20], "cls": "firearm", "type": "pistol", "build": "metal"}]
    recs[1].boxes = [{"bbox": [50, 50, 20, 20], "cls": "ammunition", "type": "unknown", "build": "metal"}]
    return recs


def _perfect(recs):
    preds = []
    for r in recs:
        boxes = np.array([[b["bbox"][0], b["bbox"][1], b["bbox"][0] + b["bbox"][2], b["bbox"][1] + b["bbox"][3]]
                          for b in r.boxes], np.float32).reshape(-1, 4)
        labels = np.array([CLASSES.index(b["cls"]) for b in r.boxes], np.int64)
        preds.append(Prediction(boxes, np.full(len(boxes), 0.9, np.float32), labels))
    return preds


def test_perfect_predictions_score_one():
    recs = _records()
    m = coco_map(recs, _perfect(recs), CLASSES)
    assert m["mAP50"] == pytest.approx(1.0) and m["AP50_per_class"]["ammunition"] == pytest.approx(1.0)
    s = screening(recs, _perfect(recs), CLASSES)
    assert s["pd"]["firearm"]["pd@far0.01"] == 1.0 and s["pd"]["any_threat"]["pd@far0.05"] == 1.0


def test_a_mislocated_detection_is_not_a_detection():
    recs = _records()
    preds = _perfect(recs)
    preds[0].boxes[0] = [70, 70, 90, 90]
    s = screening(recs, preds, CLASSES)
    assert s["pd"]["firearm"]["pd@far0.01"] == 0.0
    assert coco_map(recs, preds, CLASSES)["AP50_per_class"]["firearm"] == 0.0


def test_false_alarms_on_clean_scans_raise_the_threshold():
    recs = _records()
    preds = _perfect(recs)
    preds[2] = Prediction(np.array([[0, 0, 10, 10]], np.float32), np.array([0.95], np.float32), np.array([0]))
    s = screening(recs, preds, CLASSES)  # 1 of 4 clean scans alarms above the true positives
    assert s["pd"]["firearm"]["pd@far0.01"] == 0.0


def test_threshold_at_far_allows_that_share_of_clean_scans():
    scores = np.linspace(0, 1, 100, dtype=np.float32)
    t = threshold_at_far(scores, 0.05)
    assert (scores >= t).mean() == pytest.approx(0.05)
    assert threshold_at_far(np.zeros(0), 0.01) == 0.0
