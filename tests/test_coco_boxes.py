"""COCO files never carry a box that is not one: writing refuses it, checking a hand-made file reports it."""

import json
import math

import cv2
import numpy as np
import pytest

from armscan.datasets.check import check
from armscan.datasets.coco import CocoFormatError, Record, write_coco


def _box(bbox):
    return {"bbox": bbox, "cls": "firearm", "type": "pistol", "build": "metal"}


@pytest.mark.parametrize("bbox", [[10, 10, math.nan, 20], [10, 10, 20, math.inf], [150, 10, -130, 50]])
def test_writing_refuses_a_box_that_is_not_one(tmp_path, bbox):
    rec = Record(file=tmp_path / "a.png", width=200, height=100, boxes=[_box(bbox)], image_id=1)
    with pytest.raises(CocoFormatError, match="must be finite, with width and height >= 0"):
        write_coco(tmp_path, [rec], {})
    assert not (tmp_path / "annotations.json").exists()


def test_check_reports_non_finite_boxes_in_a_hand_made_file(tmp_path):
    rng = np.random.default_rng(0)
    (tmp_path / "images").mkdir()
    cv2.imwrite(str(tmp_path / "images" / "a.png"), rng.integers(0, 255, (100, 200, 3), dtype=np.uint8))
    rec = Record(file=tmp_path / "images" / "a.png", width=200, height=100, boxes=[_box([10, 10, 40, 20])], image_id=1)
    write_coco(tmp_path, [rec], {})
    ann = json.loads((tmp_path / "annotations.json").read_text())
    ann["images"][0]["file_name"] = "images/a.png"
    ann["annotations"][0]["bbox"] = [10, 10, float("nan"), 20]  # as a broken YOLO import once wrote it
    (tmp_path / "annotations.json").write_text(json.dumps(ann))
    findings = [f.problem for f in check([tmp_path]).findings]
    assert any("non-finite coordinates" in p for p in findings), findings
