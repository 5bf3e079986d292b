"""The bundled model and samples: what `make run` shows a newcomer. Runs without torch."""

import json
from pathlib import Path

from armscan.datasets.coco import read_coco
from armscan.datasets.readers import read_image
from armscan.inference.engine import Detector
from armscan.serve.scan import DEFAULT_MODEL

ROOT = Path(__file__).parents[1]


def test_bundled_model_is_small_and_describes_itself():
    assert DEFAULT_MODEL.is_file() and DEFAULT_MODEL.stat().st_size <= 15 * 2**20
    md = Detector.from_onnx(DEFAULT_MODEL).metadata
    assert md.thresholds.target_far == 0.01 and md.thresholds.chosen_on.startswith("val")
    assert md.training["config"]["data"]["kind"] == "synth"
    card = (DEFAULT_MODEL.parent / "MODEL_CARD.md").read_text()
    assert f"# Model card: {md.name} {md.version}\n" in card  # the card describes this very model and its thresholds
    alarm = md.thresholds.alarm
    if len(set(alarm.values())) == 1:
        assert f"**{next(iter(alarm.values())):.4f}**" in card
    else:
        assert all(f"| {c} | {t:.4f} |" in card for c, t in alarm.items())


def test_bundled_model_flags_sample_threats_and_clears_clean_samples():
    det = Detector.from_onnx(DEFAULT_MODEL)
    records = read_coco(ROOT / "datasets" / "samples")
    results = {r.file.name: det.detect(read_image(r.file)) for r in records}
    decisions = {k: r.decision for k, r in results.items()}
    threats = [r.file.name for r in records if r.boxes]
    clean = [r.file.name for r in records if not r.boxes]
    assert len(threats) == 5 and len(clean) == 3
    # No clean sample alarms (the alarm thresholds: 1% of clean scans). The uncertain band is chosen to take in up to
    # 5% of clean scans, so one of three clean samples in it is within what it promises (0.7.0 put scan_300000006 there,
    # a clutter item taken for a trigger group, 0.71, where that band started at 0.66; 0.9.0, 0.12.0 and 0.13.0 clear
    # all three); two would not be.
    assert not [f for f in clean if decisions[f] == "alarm"], json.dumps(decisions)
    assert sum(decisions[f] == "uncertain" for f in clean) <= 1, json.dumps(decisions)
    # Every sample firearm is flagged with a box, and all but one of the threat samples: an alarm (1% false-alarm
    # threshold) or, between the uncertain and alarm thresholds (5% of clean scans), uncertain, for the officer to
    # look at. 0.4.0 and 0.5.0 miss the lone barrel (0.5.0: best box 0.77, barrels' uncertain band from 0.98, the
    # alarm at 0.996: clutter often scores high as a barrel; barrels' Pd at 1% FAR is 0.13 on the held-out
    # scans); 0.13.0 puts it in the uncertain band (0.97, the band from 0.965): README, "The bundled model".
    flagged = [f for f in threats if decisions[f] != "clear" and results[f].detections]
    firearms = [r.file.name for r in records if any(b["cls"] == "firearm" for b in r.boxes)]
    assert len(firearms) == 3 and set(firearms) <= set(flagged), json.dumps(decisions)
    assert len(flagged) >= len(threats) - 1, json.dumps(decisions)
    assert sum(decisions[f] == "alarm" for f in threats) >= 2, json.dumps(decisions)


def test_screening_decodes_only_above_the_lowest_threshold_without_changing_the_answer():
    det = Detector.from_onnx(DEFAULT_MODEL)
    for r in read_coco(ROOT / "datasets" / "samples"):
        image = read_image(r.file)
        listed = det.detect(image).detections
        everything = det.detect(image, include_below_alarm=True).detections
        assert [(d.cls, d.box, d.score) for d in listed] == [
            (d.cls, d.box, d.score) for d in everything if d.level != "below"], r.file.name
