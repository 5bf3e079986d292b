"""Temperature scaling in the model metadata, the calibrated export, and the evaluation report (JSON, PNG, Markdown)."""

import json

import numpy as np
import pytest

from armscan.inference.decode import apply_temperature, decode
from armscan.inference.engine import Detector
from armscan.inference.metadata import METADATA_KEY, ModelMetadata
from armscan.serve.scan import DEFAULT_MODEL


def _outputs(seed=0, c=8, h=12, w=12):
    rng = np.random.default_rng(seed)
    return {"cls_logits": rng.normal(-3, 2, (1, c, h, w)).astype(np.float32),
            "box_reg": rng.normal(0.5, 0.3, (1, 4, h, w)).astype(np.float32),
            "centerness": rng.normal(0, 1, (1, 1, h, w)).astype(np.float32),
            "build_logits": rng.normal(0, 1, (1, 3, h, w)).astype(np.float32),
            "type_logits": rng.normal(0, 1, (1, 5, h, w)).astype(np.float32)}


def test_temperature_moves_scores_but_not_boxes():
    raw = _outputs()
    (plain,) = decode(raw, stride=8, score_threshold=0.05, nms_iou=0.5)
    (sharp,) = decode(raw, stride=8, score_threshold=0.05, nms_iou=0.5, temperature=0.5)
    assert len(plain.scores) > 5
    np.testing.assert_array_equal(sharp.boxes, plain.boxes)
    np.testing.assert_array_equal(sharp.labels, plain.labels)
    p = plain.scores.astype(np.float64)
    np.testing.assert_allclose(sharp.scores, 1 / (1 + ((1 - p) / p) ** 2), rtol=1e-5)  # sigmoid(2 * logit(p))
    assert apply_temperature(plain.scores, 1.0) is plain.scores
    np.testing.assert_allclose(apply_temperature(apply_temperature(plain.scores, 3.0), 1 / 3.0), plain.scores, rtol=1e-5)


def test_models_without_a_temperature_load_unchanged():
    import onnx

    stored = json.loads({p.key: p.value for p in onnx.load(str(DEFAULT_MODEL)).metadata_props}[METADATA_KEY])
    stored["thresholds"].pop("temperature", None)  # as exported before temperature scaling existed
    assert ModelMetadata.model_validate(stored).thresholds.temperature == 1.0
    stored["thresholds"]["temperature"] = 0.0
    with pytest.raises(ValueError, match="temperature"):
        ModelMetadata.model_validate(stored)


def test_inference_applies_the_models_temperature(tiny_checkpoint, tiny_coco):
    """The engine must pass ``thresholds.temperature`` to ``decode``: export chose the thresholds on scaled scores."""
    from armscan.datasets.coco import read_coco
    from armscan.datasets.readers import read_image
    from armscan.training.checkpoint import load_checkpoint, metadata_from_checkpoint, model_from_checkpoint, torch_detector

    ckpt = load_checkpoint(tiny_checkpoint)
    plain = torch_detector(model_from_checkpoint(ckpt), metadata_from_checkpoint(ckpt, version="t"))
    scaled_md = metadata_from_checkpoint(ckpt, version="t")
    scaled_md.thresholds.temperature = 0.5
    scaled = Detector(plain._run, scaled_md)
    image = read_image(read_coco(tiny_coco)[0].file)
    a, b = plain.raw(image), scaled.raw(image)
    assert len(a.scores) > 0
    np.testing.assert_array_equal(b.boxes, a.boxes)
    np.testing.assert_allclose(b.scores, apply_temperature(a.scores, 0.5), rtol=1e-5)


@pytest.mark.slow
def test_calibrated_export_and_its_evaluation_report(tiny_checkpoint, tiny_coco, tmp_path):
    pytest.importorskip("matplotlib")
    from armscan.datasets.coco import read_coco
    from armscan.training.evaluate import evaluate
    from armscan.training.export import export

    md = export(tiny_checkpoint, tmp_path / "cal.onnx", version="cal", calib=tiny_coco, target_far=0.5)
    t = md.thresholds.temperature
    fit = json.loads(md.thresholds.chosen_on.split(": ", 1)[1])["calibration"]
    assert t == fit["temperature"] and 0.05 <= t <= 20 and fit["detections"] > 0
    assert Detector.from_onnx(tmp_path / "cal.onnx").metadata.thresholds.temperature == t

    m = evaluate(tmp_path / "cal.onnx", tiny_coco, progress=False, report_dir=tmp_path / "report")
    json.dumps(m)  # plain JSON types only
    assert set(m["pd"]["firearm"]) == {"n", "pd@far0.01", "pd@far0.02", "pd@far0.05", "far@pd0.9", "far@pd0.95"}
    assert set(m["by_difficulty"]) <= {"easy", "hard", "hidden"} and set(m["by_build"]) <= {"metal", "polymer", "printed"}
    assert sum(v["images"] for v in m["by_difficulty"].values()) == m["images"] == 12
    assert sum(v["boxes"] for v in m["by_build"].values()) == sum(len(r.boxes) for r in read_coco(tiny_coco))
    cal = m["calibration"]
    assert cal["temperature"] == t and cal["detections"] > 0 and 0 <= cal["ece"] <= 1
    assert sum(r["n"] for r in cal["reliability"]) == cal["detections"]

    files = {p.name: p for p in (tmp_path / "report").iterdir()}
    assert {"report.md", "metrics.json", "pr_curves.png", "pd_far.png", "reliability.png"} <= set(files)
    for name in ("pr_curves.png", "pd_far.png", "reliability.png"):
        assert files[name].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and files[name].stat().st_size > 5000
    text = files["report.md"].read_text()
    for heading in ("Pd at parcel false-alarm rates", "By difficulty", "By build", "Difficulty × build", "Calibration"):
        assert f"## {heading}" in text
    assert f"temperature {t:g}" in text and "| firearm |" in text
    assert json.loads(files["metrics.json"].read_text())["mAP50"] == m["mAP50"]


@pytest.mark.parametrize("threat_prob", [0.0, 1.0])
def test_the_report_says_undefined_where_a_figure_is(tmp_path, threat_prob):
    """Clean scans only: no mAP; threats only: no false-alarm rate. Neither is printed as None or drawn as a curve."""
    pytest.importorskip("matplotlib")
    pytest.importorskip("pycocotools")
    from armscan.datasets.synth.scene import SceneConfig
    from armscan.datasets.synth.writer import write_dataset
    from armscan.training.evaluate import evaluate

    data = tmp_path / "data"
    write_dataset(data, 4, seed=8800, width=256, height=256, cfg=SceneConfig(threat_prob=threat_prob))
    m = evaluate(DEFAULT_MODEL, data, progress=False, report_dir=tmp_path / "report")
    text = (tmp_path / "report" / "report.md").read_text()
    assert "None" not in text
    if threat_prob == 0.0:
        assert m["mAP50"] is None and "mAP50 **—**" in text
    else:
        assert m["clean_scans"] == 0 and m["pd"]["any_threat"]["pd@far0.01"] is None
    assert (tmp_path / "report" / "pd_far.png").read_bytes()[:4] == b"\x89PNG"
