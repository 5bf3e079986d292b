"""The model card's account of how the thresholds were chosen and of the held-out false-alarm rate they give."""

from armscan.training.model_card import _more_clean_line


def _more(far: float) -> dict:
    return {"clean_scans": 2194, "images": 2500,
            "at_thresholds": {"alarm": {"parcel_pd": 0.41, "parcel_far": far}},
            "pd": {"any_threat": {"pd@far0.01": 0.38, "pd@far0.02": 0.44, "pd@far0.05": 0.57}}}


def test_the_card_says_when_the_held_out_far_is_above_its_target_beyond_chance():
    line = _more_clean_line(_more(0.0164), 0.01)  # 36 false alarms where 22 were expected: 3 standard errors over
    assert "**0.0164**" in line and "above the 1% target beyond chance" in line and "36 false alarms" in line
    for far in (0.0109, 0.0073):  # 24 (within two standard errors of 22) or fewer: nothing to say
        assert "beyond chance" not in _more_clean_line(_more(far), 0.01)
    assert "beyond chance" not in _more_clean_line(_more(0.0164))  # no target known
    assert _more_clean_line(None, 0.01) == ""


def test_the_card_names_the_cross_fitted_target_when_the_model_recorded_one():
    from armscan.training.model_card import _crossfit_line

    line = _crossfit_line('{"rule": "per class", "crossfit": {"target": 0.006, "held_out_far": 0.0096}}', 0.01)
    assert "a FAR of 0.006" in line and "kept 0.01" in line and "(0.0096 there)" in line
    assert _crossfit_line('{"rule": "per class"}', 0.01) == "" and _crossfit_line("not json", 0.01) == ""


def test_the_card_says_how_an_unshipped_parent_was_made_and_refuses_that_for_a_model_from_scratch():
    import pytest

    from armscan.training.model_card import _parent_line

    refreshed = {"lineage": {"parent_sha256": "c90a063fd6dc2498" + "0" * 48}}
    line = _parent_line(refreshed, "That parent was 0.6.0 refreshed once at 320 px.")
    assert "`c90a063fd6dc2498…`" in line and line.endswith("trained further on the data below.\nThat parent was 0.6.0 "
                                                            "refreshed once at 320 px.\n")
    assert _parent_line(refreshed).endswith("on the data below.\n")
    assert _parent_line({}) == ""
    with pytest.raises(ValueError, match="from scratch"):
        _parent_line({}, "That parent was 0.6.0.")


def test_the_card_names_a_difficulty_mix_only_when_the_config_had_one():
    from armscan.training.model_card import _mix_note

    assert _mix_note({"kind": "synth", "difficulty_probs": [0.3, 0.3, 0.4]}) == "; easy / hard / hidden parcels 0.3 / 0.3 / 0.4"
    assert _mix_note({"kind": "synth"}) == "" and _mix_note({"kind": "coco", "difficulty_probs": [0.4, 0.4, 0.2]}) == ""


def test_the_card_lists_the_checkpoints_an_averaged_model_was_made_of():
    from armscan.training.model_card import _average_line

    soup = {"averaged_from": [{"path": "a/last.pt", "sha256": "81695cc2be7d6f8b" + "0" * 48},
                              {"path": "b/last.pt", "sha256": "51a681f10daa1fc2" + "1" * 48}]}
    line = _average_line(soup)
    assert "uniform average of 2 checkpoints" in line and "`81695cc2be7d6f8b…`, `51a681f10daa1fc2…`" in line
    assert _average_line({}) == "" and _average_line({"averaged_from": None}) == ""


def _render(tmp_path, monkeypatch, config: dict) -> str:
    from types import SimpleNamespace

    from armscan.inference.metadata import ModelMetadata, Thresholds
    from armscan.inference.preprocess import PreprocessSpec
    from armscan.training import model_card

    classes = ["firearm", "ammunition"]
    md = ModelMetadata(name="armscan_det_small", version="t", architecture="a", classes=classes, builds=["printed"],
                       types=["pistol"], flag_rules={}, stride=8, training={"config": config},
                       preprocess=PreprocessSpec(size=64).to_dict(),
                       thresholds=Thresholds(alarm=dict.fromkeys(classes, 0.5), target_far=0.01, chosen_on="val"))
    monkeypatch.setattr(model_card.Detector, "from_onnx", lambda path: SimpleNamespace(metadata=md))
    row = {"n": 40, "pd@far0.01": 0.5}
    metrics = {"mAP": 0.3, "mAP50": 0.5, "images": 100, "threat_scans": 60, "clean_scans": 40,
               "AP50_per_class": dict.fromkeys(classes, 0.5), "pd": {"any_threat": row, **dict.fromkeys(classes, row)},
               "by_build": {"printed": {"mAP50": 0.4, "boxes": 9, "pd": {"firearm": {"n": 7, "pd@far0.01": 0.43}}}}}
    (tmp_path / "m.onnx").write_bytes(b"onnx")
    return model_card.render_card(tmp_path / "m.onnx", metrics, [])


def test_the_card_names_the_coco_folders_a_model_was_trained_on(tmp_path, monkeypatch):
    coco = {"kind": "coco", "coco_dir": None, "coco_dirs": ["runs/data/site_a", "runs/data/site_b"], "replay": 0.25,
            "cache_size": 2000, "threat_prob": 0.7, "min_side": 256, "max_side": 480}
    card = _render(tmp_path, monkeypatch, {"epochs": 2, "data": coco})
    assert "COCO folders `runs/data/site_a`, `runs/data/site_b`, with 25% of each epoch's samples replayed" in card
    assert "folder None" not in card
    assert "synthetic scans only" not in card.lower() and "Trained on `runs/data/site_a`" in card
    one = _render(tmp_path, monkeypatch, {"data": {"kind": "coco", "coco_dir": "runs/data/x", "replay": 0.0}})
    assert "The labelled scans of the COCO folder `runs/data/x`;" in one and "threat prevalence" not in one
    synth = _render(tmp_path, monkeypatch, {"data": {"kind": "synth", "cache_size": 10, "threat_prob": 0.7}})
    assert "Synthetic dual-energy X-ray scans only" in synth and "**Trained on synthetic scans only.**" in synth


def test_the_printed_firearm_pd_is_called_a_per_class_operating_point_not_a_parcel_one(tmp_path, monkeypatch):
    card = _render(tmp_path, monkeypatch, {"data": {"kind": "synth"}})
    line = next(x for x in card.splitlines() if "AP50 by build" in x)
    assert "printed firearms: Pd 0.43 as firearm boxes at a firearm-class FAR of 1%" in line and "(7 scans)" not in line
    assert "parcel FAR" not in line and "7 scans)" in line
