"""Kit assembly across parcels, on generated manifests."""

import json
from datetime import timedelta

import pytest

from armscan.datasets.taxonomy import CLASSES
from armscan.serve.cli import main
from armscan.serve.kits import KitRuleError, find_kits, load_rules


def _parcel(pid, consignee, ts, classes, sender="S"):
    return {"parcel_id": pid, "consignee": consignee, "sender": sender, "timestamp": ts, "classes": classes}


PARCELS = [
    _parcel("A1", "J. Doe", "2026-11-01T10:00:00Z", ["frame_receiver"]),
    _parcel("A2", "j.  doe ", "2026-11-03T10:00:00Z", ["slide"], sender="T"),
    _parcel("A3", "J. Doe", "2026-11-05T10:00:00+00:00", ["barrel"]),
    _parcel("B1", "R. Roe", "2026-11-01T10:00:00Z", ["frame_receiver"]),
    _parcel("B2", "R. Roe", "2026-12-20T10:00:00Z", ["slide", "barrel"]),  # outside a 14-day window
    _parcel("C1", "Q. Poe", "2026-11-01T10:00:00Z", ["frame_receiver", "bolt", "barrel"]),  # one parcel: no kit
    _parcel("D1", "clean", "2026-11-01T10:00:00Z", []),
]


def test_parts_to_one_consignee_within_the_window_make_a_kit():
    alerts = find_kits(PARCELS, load_rules(None, set(CLASSES)), timedelta(days=14))
    assert [(a["rule"].split(":")[0], a["parcels"]) for a in alerts] == [("pistol kit", ["A1", "A2", "A3"])]
    assert alerts[0]["parts"]["A2"] == ["slide"] and alerts[0]["first"].startswith("2026-11-01")


def test_window_and_sender_grouping_change_the_answer():
    rules = load_rules(None, set(CLASSES))
    assert {tuple(a["parcels"]) for a in find_kits(PARCELS, rules, timedelta(days=60))} == {("A1", "A2", "A3"),
                                                                                             ("B1", "B2")}
    assert find_kits(PARCELS, rules, timedelta(days=14), by_sender=True) == []


def test_rules_are_readable_and_checked(tmp_path):
    f = tmp_path / "rules.yaml"
    f.write_text("rules:\n  - name: frame and barrel\n    all_of: [frame_receiver, barrel]\n")
    rules = load_rules(f, set(CLASSES))
    assert {tuple(a["parcels"]) for a in find_kits(PARCELS, rules, timedelta(days=14))} == {("A1", "A3")}
    f.write_text("rules:\n  - all_of: [frame, barrel]\n")
    with pytest.raises(KitRuleError, match="unknown classes \\['frame'\\]"):
        load_rules(f, set(CLASSES))


def test_kits_cli_reads_batch_outputs(tmp_path, capsys):
    (tmp_path / "run1").mkdir()
    (tmp_path / "run1" / "parcels.jsonl").write_text("".join(json.dumps(p) + "\n" for p in PARCELS[:2]))
    (tmp_path / "run2.jsonl").write_text(json.dumps(PARCELS[2]) + "\n")
    assert main(["kits", str(tmp_path / "run1"), str(tmp_path / "run2.jsonl")]) == 0
    out, err = capsys.readouterr()
    assert json.loads(out.splitlines()[0])["parcels"] == ["A1", "A2", "A3"] and "1 kit alert" in err
    assert main(["kits", str(tmp_path / "nothing")]) == 2


def test_a_parcel_in_two_batch_runs_counts_once():
    rules = load_rules(None, set(CLASSES))
    rescanned = [_parcel("P1", "J. Doe", "2026-11-01T10:00:00Z", ["frame_receiver", "slide"]),
                 _parcel("P1", "J. Doe", "2026-11-01T12:00:00Z", ["barrel"])]  # the same parcel, two runs
    assert find_kits(rescanned, rules, timedelta(days=14)) == []  # one parcel alone: it alarms by itself
    alerts = find_kits([*rescanned, _parcel("P2", "J. Doe", "2026-11-02T10:00:00Z", ["barrel"])], rules,
                       timedelta(days=14))
    assert [(a["parcels"], a["parts"]) for a in alerts] == [
        (["P1", "P2"], {"P1": ["barrel", "frame_receiver", "slide"], "P2": ["barrel"]})]
