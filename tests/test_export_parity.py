"""ONNX export: checker, metadata round trip, and torch vs onnxruntime parity.

Tolerances: the raw head outputs agree within atol=1e-4, rtol=1e-3 (float32 kernels differ in
summation order); decoded boxes within 0.05 px and scores within 1e-4.
The fixture model is barely trained (4 steps), so outputs are near-random: a hard case for parity.
"""

import json
import shutil

import numpy as np
import onnx
import pytest

torch = pytest.importorskip("torch")

from armscan.datasets.coco import read_coco  # noqa: E402
from armscan.datasets.readers import read_image  # noqa: E402
from armscan.inference.decode import decode  # noqa: E402
from armscan.inference.engine import Detector  # noqa: E402
from armscan.inference.metadata import METADATA_KEY, ModelMetadata  # noqa: E402
from armscan.inference.preprocess import preprocess  # noqa: E402
from armscan.training.checkpoint import (  # noqa: E402
    load_checkpoint,
    metadata_from_checkpoint,
    model_from_checkpoint,
    torch_detector,
)


def test_exported_model_is_valid_and_carries_its_metadata(tiny_onnx):
    proto = onnx.load(str(tiny_onnx))
    onnx.checker.check_model(proto)
    meta = ModelMetadata.from_json({p.key: p.value for p in proto.metadata_props}[METADATA_KEY])
    assert meta.classes[0] == "firearm" and meta.preprocess["size"] == 128 and meta.stride == 8
    assert set(meta.thresholds.alarm) == set(meta.classes)
    assert meta.training["epochs_done"] == 2


def test_onnxruntime_matches_torch(tiny_onnx, tiny_checkpoint, tiny_coco):
    ckpt = load_checkpoint(tiny_checkpoint)
    model = model_from_checkpoint(ckpt)
    ort_det = Detector.from_onnx(tiny_onnx)
    x = torch.randn(3, 3, 128, 128)  # a batch of 3: the batch axis is dynamic
    with torch.no_grad():
        expected = [o.numpy() for o in model(x)]
    got = ort_det._run(x.numpy())
    for name, exp in zip(("cls_logits", "box_reg", "centerness", "build_logits", "type_logits"), expected, strict=True):
        np.testing.assert_allclose(got[name], exp, atol=1e-4, rtol=1e-3, err_msg=name)
    torch_det = torch_detector(model, metadata_from_checkpoint(ckpt, version="test"))
    for rec in read_coco(tiny_coco)[:4]:
        x, _ = preprocess(read_image(rec.file), ort_det.spec)
        # Decode without suppression: NMS between near-tied boxes of an untrained model is not stable.
        a, b = (decode(d._run(x[None]), 8, 0.01, nms_iou=1.0, max_detections=10_000)[0] for d in (ort_det, torch_det))
        assert abs(len(a.scores) - len(b.scores)) <= 2  # a score at the floor may fall either side
        for box, score in zip(a.boxes[:50], a.scores[:50], strict=True):
            match = (np.abs(b.scores - score) <= 1e-4) & (np.abs(b.boxes - box).max(axis=1) <= 0.05)
            assert match.any(), (box, score)

def test_eval_of_onnx_and_checkpoint_agree(tiny_onnx, tiny_checkpoint, tiny_coco):
    from armscan.training.evaluate import evaluate

    a, b = evaluate(tiny_onnx, tiny_coco, progress=False), evaluate(tiny_checkpoint, tiny_coco, progress=False)
    assert a["images"] == 12 and set(a["pd"]) >= {"any_threat", "firearm"}
    assert a["mAP50"] == pytest.approx(b["mAP50"], abs=1e-3)


def test_export_with_calibration_chooses_nms_and_threshold(tiny_checkpoint, tiny_coco, tmp_path, monkeypatch):
    from armscan.training import metrics
    from armscan.training.export import export

    # two folders pooled (6 clean scans): too few for a threshold per class, so one for every class
    few = export(tiny_checkpoint, tmp_path / "few.onnx", version="cal", calib=[tiny_coco, tiny_coco],
                 target_far=0.5).thresholds
    assert len(set(few.alarm.values())) == 1 and 0.0 < next(iter(few.alarm.values())) <= 1.0
    assert few.chosen_on.startswith(f"{tiny_coco.name} + {tiny_coco.name}: ")
    assert "(6 clean scans; an alarm threshold per class needs 20)" in few.chosen_on
    monkeypatch.setattr(metrics, "MIN_FALSE_ALARMS", 1)  # the tiny set's 3 clean scans may choose per class
    md = export(tiny_checkpoint, tmp_path / "cal.onnx", version="cal", calib=tiny_coco, target_far=0.5, uncertain_far=0.8)
    th = Detector.from_onnx(tmp_path / "cal.onnx").metadata.thresholds
    assert th == md.thresholds and th.target_far == 0.5 and "mAP50_nms_agnostic" in th.chosen_on
    assert set(th.alarm) == set(md.classes) and all(0.0 < v <= 1.0 for v in th.alarm.values())
    assert '"rule": "per class"' in th.chosen_on
    stats = json.loads(th.chosen_on.split(": ", 1)[1])  # the cross-fitted targets, alarm and band, at most the asked
    assert 0 < stats["crossfit"]["target"] <= 0.5 and 0 < stats["uncertain"]["crossfit"]["target"] <= th.uncertain_far
    band = th.uncertain or {}
    assert all(band[c] <= th.alarm[c] for c in band)
    with pytest.raises(ValueError, match="cannot resolve a false-alarm rate of 0.01"):
        export(tiny_checkpoint, tmp_path / "cal2.onnx", version="cal", calib=tiny_coco, target_far=0.01)
    assert sorted(f.name for f in tmp_path.iterdir()) == ["cal.onnx", "cal.pt", "few.onnx", "few.pt"]  # no leftovers


def _fast_onnx_export(monkeypatch, tiny_onnx):
    """Stand in for the slow dynamo export: a copy of the tiny model (its metadata is rewritten after)."""
    from armscan.training import export as ex

    monkeypatch.setattr(ex, "export_onnx", lambda model, size, path, opset=18: shutil.copy(tiny_onnx, path))


def test_a_failed_calibration_leaves_the_model_in_place_as_it_was(tiny_checkpoint, tiny_onnx, tiny_coco, tmp_path,
                                                                  monkeypatch):
    from armscan.training.export import export

    _fast_onnx_export(monkeypatch, tiny_onnx)
    prod = tmp_path / "prod" / "armscan-det.onnx"  # the calibrated model in service, and its weights
    prod.parent.mkdir()
    shutil.copy(tiny_onnx, prod)
    prod.with_suffix(".pt").write_bytes(b"the weights it was exported from")
    before = {f.name: f.read_bytes() for f in prod.parent.iterdir()}
    with pytest.raises(ValueError, match="cannot resolve a false-alarm rate of 0.01"):  # 3 clean scans: too few
        export(tiny_checkpoint, prod, version="0.14.0", calib=tiny_coco, target_far=0.01)
    assert {f.name: f.read_bytes() for f in prod.parent.iterdir()} == before  # byte-identical, nothing left over
    assert Detector.from_onnx(prod).metadata.version == "test"


def test_export_refuses_a_false_alarm_rate_outside_0_1_before_any_work(tiny_checkpoint, tiny_onnx, tiny_coco, tmp_path,
                                                                       monkeypatch):
    from armscan.training.export import export

    _fast_onnx_export(monkeypatch, tiny_onnx)
    for far, band in ((0.0, 0.05), (5.0, 0.05), (-0.1, 0.05), (0.5, 1.5)):
        with pytest.raises(ValueError, match="greater than 0 and less than 1"):
            export(tiny_checkpoint, tmp_path / "x.onnx", version="cal", calib=tiny_coco, target_far=far,
                   uncertain_far=band)
        assert not list(tmp_path.iterdir())
