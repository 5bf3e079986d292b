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
    with pytest.raises(ValueError, match="no clean scans"):
        threshold_at_far(np.zeros(0), 0.01)


def _nothing(n):
    return [Prediction(np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros(0, np.int64)) for _ in range(n)]


def test_without_clean_scans_pd_at_a_false_alarm_rate_is_undefined():
    recs = _records()[:2]  # two threat scans, no clean scan
    for preds in (_perfect(recs), _nothing(2)):  # a model that finds nothing must not score Pd 1.0
        s = screening(recs, preds, CLASSES)
        assert s["clean_scans"] == 0 and s["threat_scans"] == 2
        for row in s["pd"].values():
            assert row["pd@far0.01"] is None and row["pd@far0.05"] is None and row["far@pd0.9"] is None
    assert screening(recs, _nothing(2), CLASSES)["pd"]["firearm"]["n"] == 1


def test_map_is_undefined_without_true_boxes():
    import json

    from armscan.training.metrics import breakdowns

    clean = [Record(Path(f"{i}.png"), 100, 100, [], {}) for i in range(3)]
    hit = [Prediction(np.array([[0, 0, 10, 10]], np.float32), np.array([0.7], np.float32), np.array([0]))] * 3
    for recs, preds in ((clean, hit), (clean, _nothing(3)), ([], [])):  # clean scans with and without detections; none
        m = coco_map(recs, preds, CLASSES)
        assert m == {"mAP": None, "mAP50": None, "AP50_per_class": {"firearm": None, "ammunition": None}}
        assert json.loads(json.dumps(m))["mAP"] is None  # null in armscan eval's JSON, not 0.0
    recs = _records()  # threats that are never detected: AP is defined, and 0
    assert coco_map(recs, _nothing(len(recs)), CLASSES)["mAP50"] == 0.0
    recs = _attr_records()
    recs.append(Record(Path("clean.png"), 100, 100, [], {"difficulty": "clutter"}))  # a difficulty without threats
    b = breakdowns(recs, _perfect(recs), CLASSES)
    assert b["by_difficulty"]["clutter"]["mAP50"] is None and b["by_difficulty"]["easy"]["mAP50"] == pytest.approx(1.0)


def test_one_alarm_threshold_reports_pd_and_far_at_the_stored_value():
    from armscan.inference.engine import Detector
    from armscan.serve.scan import DEFAULT_MODEL
    from armscan.training.evaluate import choose_alarm_threshold, choose_alarm_thresholds

    det = Detector.from_onnx(DEFAULT_MODEL)
    recs = [Record(Path(f"{i}.png"), 100, 100, [], {}) for i in range(11)]
    recs[10].boxes = [{"bbox": [10, 10, 30, 20], "cls": "firearm", "type": "pistol", "build": "metal"}]
    scores = [0.30008, 0.3, *[0.1] * 8, 0.30005]  # 10 clean scans, then the threat
    preds = [Prediction(np.array([[0, 0, 9, 9]], np.float32), np.array([s], np.float32), np.array([0])) for s in scores]
    # 1 false alarm in 10 allowed: the threshold lies just above 0.3, stored rounded up to 0.3001; both the
    # clean scan at 0.30008 and the threat at 0.30005 are under the stored value, so neither alarms in service
    t, stats = choose_alarm_threshold(det, recs, 0.1, preds=preds)
    assert t == 0.3001 and stats["parcel_pd"] == 0.0 and stats["parcel_far"] == 0.0
    with pytest.raises(ValueError, match="9 clean scans cannot resolve a false-alarm rate of 0.1; use at least 10"):
        choose_alarm_threshold(det, recs[1:], 0.1, preds=preds[1:])
    for bad in (0.0, 1.0, 5.0, -0.01):  # refused before any work, with what is allowed
        with pytest.raises(ValueError, match=f"invalid target_far {bad:g}: .* greater than 0 and less than 1"):
            choose_alarm_thresholds(det, recs, bad, preds, per_class=False)


def test_far_at_pd_is_the_false_alarm_rate_of_the_highest_threshold_reaching_that_pd():
    from armscan.training.metrics import far_at_pd, operating_points

    pos = np.array([0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1, 0.05])
    neg = np.linspace(0.0, 0.99, 100)  # 1 clean scan per 0.01 of score
    assert far_at_pd(pos, neg, 0.9) == pytest.approx((neg >= 0.1).mean())  # 9 of 10 needs t = 0.1
    assert far_at_pd(pos, neg, 0.5) == pytest.approx((neg >= 0.5).mean())
    missed = np.array([0.9, 0.0])  # the second threat is never detected: no threshold reaches Pd 0.9
    assert far_at_pd(missed, neg, 0.9) is None and far_at_pd(missed, neg, 0.5) == pytest.approx((neg >= 0.9).mean())
    row = operating_points(pos, neg)
    assert set(row) == {"n", "pd@far0.01", "pd@far0.02", "pd@far0.05", "far@pd0.9", "far@pd0.95"}


def _attr_records():
    """Four threat scans (metal, printed and polymer items, two difficulties) and four clean scans."""
    recs = [Record(Path(f"{i}.png"), 100, 100, [], {"difficulty": "easy" if i % 2 == 0 else "hidden"}) for i in range(8)]
    recs[0].boxes = [{"bbox": [10, 10, 30, 20], "cls": "firearm", "type": "pistol", "build": "metal"}]
    recs[1].boxes = [{"bbox": [10, 10, 30, 20], "cls": "firearm", "type": "pistol", "build": "printed"}]
    recs[2].boxes = [{"bbox": [50, 50, 20, 20], "cls": "ammunition", "type": "unknown", "build": "metal"},
                     {"bbox": [5, 60, 30, 20], "cls": "firearm", "type": "pistol", "build": "polymer"}]
    recs[3].boxes = [{"bbox": [40, 10, 30, 30], "cls": "firearm", "type": "pistol", "build": "printed"}]
    return recs


def test_breakdowns_by_build_and_difficulty():
    from armscan.training.metrics import breakdowns, screening

    recs = _attr_records()
    preds = _perfect(recs)
    for i in (1, 3):  # the printed firearms are found only with a wrong box (a false alarm at IoU 0.5)
        preds[i].boxes[0] = [70, 70, 95, 95]
    preds[4] = Prediction(np.array([[0, 0, 5, 5]], np.float32), np.array([0.3], np.float32), np.array([0]))
    s = screening(recs, preds, CLASSES)
    assert s["pd"]["firearm"]["n"] == 4 and s["pd"]["firearm"]["pd@far0.01"] == 0.5
    assert s["pd"]["firearm"]["far@pd0.9"] is None  # half of the firearms are never localised
    b = breakdowns(recs, preds, CLASSES)
    printed, metal = b["by_build"]["printed"], b["by_build"]["metal"]
    assert printed["boxes"] == 2 and printed["pd"]["firearm"]["pd@far0.01"] == 0.0
    assert printed["AP50_per_class"] == {"firearm": 0.0} and printed["mAP50"] == 0.0
    # metal firearms and ammunition are all found, ahead of the false alarms
    assert metal["AP50_per_class"] == {"firearm": pytest.approx(1.0), "ammunition": pytest.approx(1.0)}
    assert metal["pd"]["firearm"] == {"n": 1, "pd@far0.01": 1.0, "pd@far0.02": 1.0, "pd@far0.05": 1.0,
                                      "far@pd0.9": 0.0, "far@pd0.95": 0.0}
    assert b["by_build"]["polymer"]["pd"]["any_threat"]["n"] == 1
    easy, hidden = b["by_difficulty"]["easy"], b["by_difficulty"]["hidden"]
    assert easy["images"] == 4 and easy["threat_scans"] == 2 and easy["pd"]["firearm"]["pd@far0.01"] == 1.0
    assert hidden["pd"]["firearm"]["pd@far0.01"] == 0.0 and hidden["by_build"]["printed"]["pd"]["firearm"]["n"] == 2
    assert "ammunition" not in hidden["pd"]  # rows without such threats are left out of breakdowns


def test_thresholds_of_a_breakdown_come_from_all_clean_scans():
    from armscan.training.metrics import ScoreTable

    recs = _attr_records()
    preds = _perfect(recs)
    preds[5] = Prediction(np.array([[0, 0, 5, 5]], np.float32), np.array([0.95], np.float32), np.array([0]))  # hidden
    table = ScoreTable.build(recs, preds, CLASSES)
    easy = np.array([r.meta["difficulty"] == "easy" for r in recs])
    # the false alarm on a *hidden* clean scan lifts the threshold for the easy threats as well
    assert table.rows(images=easy)["firearm"]["pd@far0.01"] == 0.0
    assert table.rows(images=easy)["firearm"]["pd@far0.05"] == 0.0 and table.rows()["firearm"]["far@pd0.9"] == 0.25


def test_ece_matching_and_temperature_fit():
    from armscan.inference.decode import apply_temperature
    from armscan.training.calibration import expected_calibration_error, fit_temperature, match_detections

    recs = _records()
    preds = _perfect(recs)
    dup = preds[0]  # a second, lower-scoring box on the same firearm is wrong: matching is one to one
    preds[0] = Prediction(np.concatenate([dup.boxes, dup.boxes]), np.array([0.9, 0.6], np.float32), np.array([0, 0]))
    scores, right = match_detections(recs, preds, CLASSES)
    assert sorted(zip(scores.round(2).tolist(), right.tolist(), strict=True)) == [(0.6, False), (0.9, True), (0.9, True)]
    ece, table = expected_calibration_error(scores, right)
    assert ece == pytest.approx((2 * 0.1 + 0.6) / 3, abs=1e-4) and [r["n"] for r in table] == [1, 2]
    # scores that are sharper than the truth (true T = 2.5): the fit finds T and ECE falls
    rng = np.random.default_rng(0)
    s = rng.uniform(0.01, 0.99, 20000)
    y = rng.random(20000) < apply_temperature(s.astype(np.float32), 2.5)
    t = fit_temperature(s, y)
    assert t == pytest.approx(2.5, rel=0.1)
    before = expected_calibration_error(s, y)[0]
    after = expected_calibration_error(apply_temperature(s.astype(np.float32), t).astype(np.float64), y)[0]
    assert before > 0.1 and after < 0.02
    assert fit_temperature(s, np.ones(len(s), bool)) == 1.0 and fit_temperature(np.zeros(0), np.zeros(0, bool)) == 1.0


def test_ap_per_build_ignores_the_other_builds_boxes():
    recs = [Record(Path(f"{i}.png"), 100, 100, [], {}) for i in range(3)]
    recs[0].boxes = [{"bbox": [10, 10, 30, 20], "cls": "firearm", "type": "pistol", "build": "metal"}]
    recs[1].boxes = [{"bbox": [10, 10, 30, 20], "cls": "firearm", "type": "pistol", "build": "printed"}]
    preds = _perfect(recs)
    preds[0].scores[:] = 0.5  # the printed firearm's detection (0.9) ranks above the metal one

    def ap(build, p):
        return coco_map(recs, p, CLASSES, keep=lambda b: b["build"] == build)["AP50_per_class"]

    assert ap("metal", preds)["firearm"] == pytest.approx(1.0)  # a hit on a printed firearm is no false alarm
    assert ap("printed", preds)["firearm"] == pytest.approx(1.0) and ap("printed", preds)["ammunition"] is None
    preds[1].boxes[0] = [60, 60, 90, 90]  # now it is a false alarm, for every build
    assert ap("metal", preds)["firearm"] == pytest.approx(0.5, abs=0.01) and ap("printed", preds)["firearm"] == 0.0


def _two_class_scores(rng):
    """Clean scans on which class 0 (a noisy part class) often scores high and class 1 never does; half the
    threats show only as a moderate class-1 score, half as a very high class-0 score."""
    clean = np.stack([rng.uniform(0.5, 0.95, 400), rng.uniform(0.0, 0.3, 400)], axis=1)
    threat = np.zeros((200, 2))
    threat[:100, 1] = rng.uniform(0.5, 0.7, 100)
    threat[100:, 0] = rng.uniform(0.96, 0.99, 100)
    return clean, threat


def test_an_alarm_threshold_per_class_detects_more_at_the_same_false_alarm_rate():
    from armscan.training.evaluate import choose_class_thresholds

    clean, threat = _two_class_scores(np.random.default_rng(0))
    one = threshold_at_far(clean.max(axis=1), 0.01)
    assert 0.9 < one < 0.96 and (threat.max(axis=1) >= one).mean() == 0.5  # one threshold misses class-1 threats
    th = choose_class_thresholds(clean, threat, 0.01)
    alarm_clean, alarm_threat = (clean >= th).any(axis=1), (threat >= th).any(axis=1)
    assert alarm_clean.mean() <= 0.01 and alarm_threat.mean() == 1.0
    assert 0.3 < th[1] <= threat[:100, 1].min() and th[0] > 0.9  # the quiet class let down, the noisy one kept strict
    # started from stricter thresholds, a looser target only lowers them
    looser = choose_class_thresholds(clean, threat, 0.05, start=th)
    assert (looser <= th).all() and (clean >= looser).any(axis=1).mean() <= 0.05
    # nothing to gain: every class stays off (above any score)
    off = choose_class_thresholds(clean, np.zeros((5, 2)), 0.01)
    assert (off > 1.0).all()


def test_cross_fitting_keeps_per_class_thresholds_at_their_false_alarm_rate_on_new_clean_scans():
    from armscan.training.evaluate import choose_class_thresholds, crossfit_target

    def scores(rng: np.random.Generator, n: int, threat: bool) -> np.ndarray:
        x = rng.beta(1, 12, size=(n, 8))  # every class: a long, thin tail of clutter scores
        if threat:
            k = rng.integers(0, 8, n)
            x[np.arange(n), k] = rng.beta(6, 2, n)
        return x

    raw_far, fit_far = [], []
    for seed in range(3):
        rng = np.random.default_rng(seed)
        clean, threat, new = scores(rng, 2000, False), scores(rng, 1000, True), scores(rng, 200_000, False)
        inner, held_out = crossfit_target(clean, threat, 0.01)
        assert 0 < inner <= 0.01 and held_out <= 0.01
        raw_far.append((new >= choose_class_thresholds(clean, threat, 0.01)).any(axis=1).mean())
        fit_far.append((new >= choose_class_thresholds(clean, threat, inner)).any(axis=1).mean())
        assert fit_far[-1] <= raw_far[-1]
    # chosen at the target itself, the thresholds alarm on more new clean scans than aimed at; cross-fitted, they hold
    assert np.mean(raw_far) > 0.012 and np.mean(fit_far) < 0.011


def test_the_parcel_score_puts_every_class_threshold_at_one_point_of_the_sweep():
    from armscan.training.metrics import alarm_reference, parcel_scores

    rng = np.random.default_rng(1)
    best = rng.uniform(0, 1, (500, 3)) * (rng.uniform(0, 1, (500, 3)) > 0.3)  # some classes without detections
    assert np.array_equal(parcel_scores(best), best.max(axis=1))
    assert np.array_equal(parcel_scores(best, np.full(3, 0.7)), best.max(axis=1))  # one threshold: the raw best
    alarm = np.array([0.9, 0.4, 0.65])
    score, ref = parcel_scores(best, alarm), alarm_reference(alarm)
    np.testing.assert_array_equal(score >= ref - 1e-9, (best >= alarm).any(axis=1))
    assert (score[best.max(axis=1) == 0] == 0).all()


def test_the_operating_point_at_a_models_thresholds():
    from armscan.training.metrics import ScoreTable, at_thresholds

    recs, preds = _records(), _perfect(_records())
    preds[2] = Prediction(np.array([[0, 0, 5, 5]], np.float32), np.array([0.6], np.float32), np.array([1]))  # clean
    table = ScoreTable.build(recs, preds, CLASSES, alarm=np.array([0.95, 0.5]))
    op = at_thresholds(table, np.array([0.95, 0.5]), uncertain=np.array([0.8, 0.5]))
    # the firearm (0.9) is under its alarm threshold but in its band; the clean scan's ammunition box alarms
    assert op == {"clean_scans": 4, "threat_scans": 2, "alarm": {"parcel_pd": 0.5, "parcel_far": 0.25},
                  "alarm_or_uncertain": {"parcel_pd": 1.0, "parcel_far": 0.25}}


def test_a_false_alarm_rate_is_resolved_by_ten_false_alarms_worth_of_clean_scans():
    from armscan.training.metrics import clean_scans_needed, unresolved_note

    assert clean_scans_needed(0.01) == 1000 and clean_scans_needed(0.05) == 200
    assert unresolved_note(1000, 0.01) is None and unresolved_note(2194, 0.01) is None
    note = unresolved_note(194, 0.01)
    assert note is not None and note.startswith("a FAR of 0.01 is set by the 2 highest-scoring of 194 clean scans")
