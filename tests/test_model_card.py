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
