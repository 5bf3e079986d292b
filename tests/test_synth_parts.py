"""Generator threat coverage: disassembled guns spread through a parcel, broken-down long guns, backpacks,
and bags of loose springs and pins labelled ``trigger_group``."""

import itertools

import numpy as np
import pytest

from armscan.datasets import taxonomy
from armscan.datasets.synth.benign import CONTAINERS, container
from armscan.datasets.synth.hard_negatives import hardware_bag, spring_item
from armscan.datasets.synth.scene import SceneConfig, generate
from armscan.datasets.synth.threats import (
    disassembled_gun,
    long_gun_parts,
    opened_shotgun,
    pistol_parts,
    random_threat,
    spring_pin_kit,
)
from armscan.datasets.taxonomy import FIREARM_PARTS

TAKEN_APART = SceneConfig(threat_prob=1.0, disassembled_prob=1.0)


def _centres(boxes: list[dict]) -> list[tuple[float, float]]:
    return [(b["bbox"][0] + b["bbox"][2] / 2, b["bbox"][1] + b["bbox"][3] / 2) for b in boxes]


def test_a_disassembled_scan_spreads_the_parts_of_one_gun_through_the_parcel():
    nearest, types = [], set()
    for seed in range(24):
        scan = generate(seed, 320, 320, TAKEN_APART, with_masks=True)
        assert scan.meta["disassembled"] is True and scan.meta["disassembled_type"] in taxonomy.FIREARM_TYPES
        types.add(scan.meta["disassembled_type"])
        assert len(scan.boxes) >= 3 and {b["cls"] for b in scan.boxes} <= FIREARM_PARTS
        assert len({b["build"] for b in scan.boxes}) == 1, "every part carries the gun's build"
        for b, m in zip(scan.boxes, scan.masks, strict=True):  # tight around what is visible, with its occlusion
            x, y, w, h = (int(v) for v in b["bbox"])
            ys, xs = np.nonzero(m)
            assert (xs.min(), ys.min(), xs.max(), ys.max()) == (x, y, x + w - 1, y + h - 1)
            assert 0.0 <= b["occlusion"] <= 1.0 and b["type"] == "unknown"
            taxonomy.validate_attributes(b["cls"], b["type"], b["build"])
        d = [np.hypot(a[0] - c[0], a[1] - c[1]) / 320 for a, c in itertools.combinations(_centres(scan.boxes), 2)]
        assert max(d) > 0.4, f"seed {seed}: the parts lie together"
        nearest.append(min(d))
    assert float(np.median(nearest)) > 0.2  # typically no two parts near each other
    assert {"pistol", "rifle", "shotgun"} <= types


def test_disassembled_scans_come_at_the_configured_rate_and_are_flagged_only_then():
    flags = [
        generate(seed, 128, 128, SceneConfig(threat_prob=1.0, disassembled_prob=0.3)).meta["disassembled"] for seed in range(120)
    ]
    assert 0.15 < np.mean(flags) < 0.45
    assert not any(
        generate(s, 128, 128, SceneConfig(threat_prob=1.0, disassembled_prob=0.0)).meta["disassembled"] for s in range(10)
    )
    assert SceneConfig().disassembled_prob == pytest.approx(0.08)
    with pytest.raises(ValueError, match="disassembled_prob"):
        SceneConfig(disassembled_prob=1.5)


def test_the_disassembled_flag_reaches_the_coco_metadata(tmp_path):
    from armscan.datasets.coco import read_coco
    from armscan.datasets.synth.writer import write_dataset

    write_dataset(tmp_path, 2, seed=40, width=160, height=160, cfg=TAKEN_APART)
    recs = read_coco(tmp_path)
    assert all(r.meta["disassembled"] is True and len(r.boxes) >= 3 for r in recs)


def test_new_scene_types_are_deterministic():
    clean = SceneConfig(threat_prob=0.0)
    backpack = next(s for s in range(60) if generate(s, 96, 96, clean).meta["container"] == "container_backpack")
    for seed, cfg in ((31, TAKEN_APART), (backpack, clean)):
        a, b = generate(seed, 200, 160, cfg), generate(seed, 200, 160, cfg)
        assert np.array_equal(a.image, b.image) and a.boxes == b.boxes and a.meta == b.meta
    one, two = (
        long_gun_parts(np.random.default_rng(4), 2.0, "metal", "shotgun"),
        long_gun_parts(np.random.default_rng(4), 2.0, "metal", "shotgun"),
    )
    assert all(np.array_equal(p.canvas.a, q.canvas.a) and p.name == q.name for p, q in zip(one, two, strict=True))


@pytest.mark.parametrize("kind", ["rifle", "shotgun", "smg"])
def test_broken_down_long_guns_label_each_piece_with_its_class_and_the_gun_build(kind):
    seen = set()
    for k in range(12):
        build = ("metal", "polymer", "printed")[k % 3]
        parts = long_gun_parts(np.random.default_rng(k), 2.0, build, kind, max_len_mm=600.0)
        labelled = [p for p in parts if p.cls is not None]
        assert {p.build for p in labelled} == {build} and all(p.cls in FIREARM_PARTS for p in labelled)
        assert [p.name for p in parts if p.cls is None] in ([], ["stock"], ["fore_end"], ["stock", "fore_end"])
        names = [p.name for p in parts]
        assert names.count("barrel") == 1 and names.count("receiver") == 1
        assert {p.cls for p in parts if p.name in ("barrel", "receiver")} == {"barrel", "frame_receiver"}
        assert len(labelled) >= 3
        for p in parts:  # no piece longer than the parcel allows (canvas margin aside)
            assert max(p.canvas.a.shape[:2]) * 2.0 <= 600.0 + 40
        seen |= set(names)
    if kind == "rifle":
        assert {"bolt", "magazine", "stock"} <= seen
    if kind == "shotgun":
        assert {"stock", "fore_end", "trigger_group"} <= seen
    with pytest.raises(ValueError, match="Valid kinds"):
        long_gun_parts(np.random.default_rng(0), 2.0, "metal", "pistol")


def test_opened_shotgun_is_a_whole_firearm_and_pistols_strip_into_five_or_six_parts():
    gun = opened_shotgun(np.random.default_rng(0), 2.0)
    assert (gun.cls, gun.type, gun.build) == ("firearm", "shotgun", "metal")
    parts = pistol_parts(np.random.default_rng(1), 1.5, "printed")
    assert {p.cls for p in parts} >= {"slide", "frame_receiver", "barrel", "magazine", "trigger_group"}
    assert {p.build for p in parts} == {"printed"}
    kind, build, parts = disassembled_gun(np.random.default_rng(2), 2.0, max_len_mm=300.0)
    assert kind in ("pistol", "smg"), "no long gun when its barrel cannot fit"


def test_backpacks_are_drawn_as_containers_with_metal_fittings_and_no_boxes():
    assert set(CONTAINERS) == {"carton", "envelope", "suitcase", "backpack"}
    bag = container(np.random.default_rng(0), 1.0, 450, 550, kind="backpack")
    assert bag.name == "container_backpack" and bag.cls is None
    lo, hi = bag.canvas.a_low, bag.canvas.a_high
    ratio = lo / np.maximum(hi, 1e-6)
    assert np.count_nonzero((hi > 0.05) & (ratio > 4.0)) > 50, "steel/brass zips and buckles render"
    assert np.count_nonzero((hi > 0.05) & (ratio > 2.3) & (ratio < 3.3)) > 50, "aluminium frame stays render"
    with pytest.raises(ValueError, match="Valid containers"):
        container(np.random.default_rng(0), 1.0, 100, 100, kind="crate")
    backpacks = [
        s for s in range(80) if generate(s, 128, 128, SceneConfig(threat_prob=0.0)).meta["container"] == "container_backpack"
    ]
    assert backpacks, "a set holds backpacks"
    assert not generate(backpacks[0], 128, 128, SceneConfig(threat_prob=0.0)).boxes


def test_loose_springs_and_pins_are_trigger_groups_and_benign_springs_stay_benign():
    kit = spring_pin_kit(np.random.default_rng(0), 0.5)
    assert (kit.cls, kit.name, kit.build) == ("trigger_group", "spring_pin_kit", "metal")
    assert kit.canvas.a_high.max() > 0.3  # steel wire and pins
    drawn = {random_threat(np.random.default_rng(k), 3.0, False).name for k in range(150)}
    assert "spring_pin_kit" in drawn
    assert "trigger_group" in taxonomy.__doc__ and "springs and pins" in taxonomy.__doc__
    for k in range(10):
        assert spring_item(np.random.default_rng(k), 1.0).cls is None
        assert hardware_bag(np.random.default_rng(k), 1.0).cls is None
