import cv2
import numpy as np
import pytest

from armscan.datasets.coco import read_coco
from armscan.datasets.synth.canvas import Canvas
from armscan.datasets.synth.scene import SceneConfig, detect, generate
from armscan.datasets.synth.writer import turn_hue, write_dataset
from armscan.datasets.taxonomy import CLASSES
from armscan.datasets.xray import STYLES, render


def test_generation_is_deterministic():
    a, b = generate(123, 256, 200), generate(123, 256, 200)
    assert np.array_equal(a.image, b.image)
    assert a.boxes == b.boxes and a.meta == b.meta
    assert not np.array_equal(a.image, generate(124, 256, 200).image)


def test_thicker_and_denser_objects_transmit_less():
    c = Canvas(100, 40, 1.0)
    c.rect(0, 0, 30, 30, 10, "pla")
    c.rect(35, 0, 30, 30, 20, "pla")
    c.rect(70, 0, 25, 30, 10, "steel")
    t = np.exp(-c.a_high[15])
    assert t[15] > t[50] > t[80]


def _hue_of(material: str, thick_mm: float) -> tuple[float, float, float]:
    c = Canvas(60, 60, 1.0)
    c.rect(0, 0, 60, 60, thick_mm, material)
    depth = np.dstack([c.a_low, c.a_high])
    img = render(detect(depth, np.random.default_rng(0)), "pseudo")
    b, g, r = img[20:40, 20:40].reshape(-1, 3).mean(axis=0)
    return float(b), float(g), float(r)


def test_pseudo_colour_metal_is_blue_organic_orange_printed_faint():
    b, g, r = _hue_of("steel", 3)
    assert b > r and b > g, "metal must render blue"
    b, g, r = _hue_of("water", 60)
    assert r > g > b, "organic must render orange"
    b, g, r = _hue_of("pla", 8)
    assert 150 < min(b, g, r) and b < 250, "printed polymer is faint but visible"


def test_boxes_lie_inside_the_image_and_enclose_material():
    for seed in range(20):
        scan = generate(seed, 320, 256, SceneConfig(threat_prob=1.0))
        assert scan.boxes, "threat_prob=1 always places a threat"
        for b in scan.boxes:
            x, y, w, h = b["bbox"]
            assert 0 <= x and 0 <= y and x + w <= 320 and y + h <= 256 and w > 2 and h > 2
            assert b["cls"] in CLASSES


def test_clean_scans_exist_at_zero_prevalence():
    assert all(not generate(s, 200, 200, SceneConfig(threat_prob=0.0)).boxes for s in range(5))


def test_difficulty_weights_choose_the_parcels_and_bad_weights_are_refused():
    hidden = [generate(s, 200, 200, SceneConfig(difficulty_probs=(0.0, 0.0, 1.0))).meta["difficulty"] for s in range(6)]
    assert hidden == ["hidden"] * 6
    mixed = {generate(s, 200, 200).meta["difficulty"] for s in range(30)}
    assert mixed == {"easy", "hard", "hidden"}, "the default draws all three"
    for bad in [(0.5, 0.5, 0.5), (1.2, -0.2, 0.0), (0.5, 0.5)]:
        with pytest.raises(ValueError, match="difficulty_probs"):
            SceneConfig(difficulty_probs=bad)


def test_written_dataset_round_trips_through_coco(tmp_path):
    write_dataset(tmp_path, 4, seed=77, width=200, height=160)
    recs = read_coco(tmp_path)
    assert len(recs) == 4 and all(r.file.is_file() for r in recs)
    again = generate(77, 200, 160)
    assert [b["cls"] for b in recs[0].boxes] == [b["cls"] for b in again.boxes]
    assert recs[0].meta["seed"] == 77 and recs[0].meta["style"] in STYLES


def test_unknown_style_is_rejected():
    with pytest.raises(ValueError, match="Valid styles"):
        render(np.ones((4, 4, 2), np.float32), "sepia")


def test_raw_16_bit_pairs_and_yolo_labels_match_the_rendered_scan(tmp_path):
    from armscan.datasets.readers import read_image

    write_dataset(tmp_path, 2, seed=300, width=200, height=160, cfg=SceneConfig(threat_prob=1.0), raw=True, yolo=True)
    recs = read_coco(tmp_path)
    assert any(r.boxes for r in recs)
    for rec in recs:
        stem = rec.file.stem
        from_raw = read_image(tmp_path / "raw" / f"{stem}_low.tiff")  # the reader pairs it with _high
        if rec.meta["style"] == "pseudo":
            diff = np.abs(from_raw.astype(int) - read_image(rec.file).astype(int))
            assert np.percentile(diff, 99) <= 3  # only 16-bit quantisation separates them
        labels = (tmp_path / "labels" / f"{stem}.txt").read_text().split("\n")[:-1]
        assert len(labels) == len(rec.boxes)
        if not rec.boxes:
            continue
        cls, cx, cy, w, h = labels[0].split()
        x, y, bw, bh = rec.boxes[0]["bbox"]
        assert CLASSES[int(cls)] == rec.boxes[0]["cls"]
        assert float(cx) == pytest.approx((x + bw / 2) / 200, abs=1e-4) and float(h) == pytest.approx(bh / 160, abs=1e-4)


def test_gallery_is_a_contact_sheet(tmp_path):
    import cv2

    from armscan.datasets.synth.writer import write_gallery

    img = cv2.imread(str(write_gallery(tmp_path / "g.png", n=5, seed=1, tile=128, cols=4)))
    assert img.shape == (2 * 132, 4 * 132, 3)


def test_turn_hue_recolours_a_folder_in_place_and_refuses_what_it_cannot_read(tmp_path):
    (tmp_path / "images").mkdir()
    orange = np.zeros((8, 8, 3), np.uint8)
    orange[:] = (0, 128, 255)  # BGR: OpenCV hue 15 (30 degrees)
    cv2.imwrite(str(tmp_path / "images" / "a.png"), orange)
    assert turn_hue(tmp_path, 120) == 1
    hsv = cv2.cvtColor(cv2.imread(str(tmp_path / "images" / "a.png")), cv2.COLOR_BGR2HSV)
    assert abs(int(hsv[0, 0, 0]) - 75) <= 1  # 30 + 120 = 150 degrees: a green
    (tmp_path / "images" / "b.png").write_bytes(b"not an image")
    with pytest.raises(ValueError, match="b.png"):
        turn_hue(tmp_path)
