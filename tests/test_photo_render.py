"""The procedural seizure-photo renderer: determinism, coverage of classes and builds, masks, and the geometry
labels the photo model will be trained to reproduce (card size, weapon length)."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from armscan.datasets.coco import Record, read_coco, write_coco
from armscan.datasets.photo import (
    FAMILIES,
    MASK_BARREL,
    MASK_CARD,
    MASK_RULER,
    MASK_WEAPON,
    PhotoConfig,
    PhotoConfigError,
    PhotoDatasetError,
    PhotoSample,
    read_photo_dataset,
    render_photo,
    write_photo_dataset,
    xray_item,
)
from armscan.datasets.taxonomy import (
    BUILDS,
    CLASSES,
    ID1_CARD_MM,
    NO_FIREARM,
    PART_ONLY,
    PHOTO_CLASSES,
    PHOTO_FAMILIES,
    PHOTO_TO_XRAY_TYPE,
)

SMALL = PhotoConfig(long_side=(320, 400))  # the defaults at a smaller size, for speed
_CARD = np.array([[0, 0], [ID1_CARD_MM[0], 0], [ID1_CARD_MM[0], ID1_CARD_MM[1]], [0, ID1_CARD_MM[1]]], np.float32)
_LONG = {
    "bolt_action",
    "lever_action",
    "pump_action",
    "break_action",
    "semi_auto_rifle_sporting",
    "semi_auto_rifle_military",
}  # a submachine gun's long magazine tilts its principal axis


@pytest.fixture(scope="module")
def renders() -> list[PhotoSample]:
    return [render_photo(seed, SMALL) for seed in range(300)]


def _to_mm(hom: np.ndarray, pts: np.ndarray) -> np.ndarray:
    return np.asarray(cv2.perspectiveTransform(np.asarray(pts, np.float64).reshape(-1, 1, 2), hom)).reshape(-1, 2)


def _extent(mm: np.ndarray, direction: np.ndarray) -> float:
    p = mm @ (direction / np.linalg.norm(direction))
    return float(p.max() - p.min())


def test_render_is_deterministic_per_seed() -> None:
    a, b, c = render_photo(7, SMALL), render_photo(7, SMALL), render_photo(8, SMALL)
    assert np.array_equal(a.image, b.image) and np.array_equal(a.masks, b.masks)
    assert a.meta == b.meta and a.label == b.label and a.length_mm == b.length_mm
    assert a.image.shape != c.image.shape or not np.array_equal(a.image, c.image)


def test_sample_types_and_sizes(renders: list[PhotoSample]) -> None:
    for s in renders[:40]:
        H, W = s.image.shape[:2]
        assert s.image.dtype == np.uint8 and s.image.shape == (H, W, 3) and s.masks.shape == (H, W)
        assert 320 <= max(H, W) <= 400 and round(max(H, W) / min(H, W), 1) in (1.3, 1.5)
        assert s.reference in ("card", "ruler", "none") and s.mm_per_px > 0
        assert s.meta["seed"] is not None and "background" in s.meta and "tilt_deg" in s.meta
        json.dumps(s.meta)  # the writer stores it


def test_every_class_and_build_appears(renders: list[PhotoSample]) -> None:
    assert {s.label for s in renders} == set(PHOTO_CLASSES)
    assert {s.build for s in renders if s.label != NO_FIREARM} == set(BUILDS)
    assert all((s.build == "unknown") == (s.label == NO_FIREARM) for s in renders)
    refs = [s.reference for s in renders]
    assert 0.4 < refs.count("card") / len(refs) < 0.7 and 0.1 < refs.count("ruler") / len(refs) < 0.3


def test_masks_agree_with_the_labels(renders: list[PhotoSample]) -> None:
    barrels_seen = 0
    for s in renders:
        weapon, barrel = (s.masks & MASK_WEAPON) > 0, (s.masks & MASK_BARREL) > 0
        assert weapon.any() == (s.label != NO_FIREARM), s.meta["seed"]
        assert (s.length_mm is None) == (s.label == NO_FIREARM)
        grown = cv2.dilate(weapon.astype(np.uint8), np.ones((3, 3), np.uint8)) > 0
        assert not (barrel & ~grown).any(), "barrel pixels lie on the weapon"
        if s.barrel_mm is None:
            assert not barrel.any()
        else:
            assert 0 < s.barrel_mm <= s.length_mm + 1e-6  # type: ignore[operator]
            barrels_seen += bool(barrel.any())
        assert ((s.masks & MASK_CARD) > 0).any() == (s.reference == "card")
        assert ((s.masks & MASK_RULER) > 0).any() == (s.reference == "ruler")
        assert (s.ruler_mm is not None) == (s.reference == "ruler")
        assert s.ruler_mm in (None, 150, 200, 300)
    assert barrels_seen >= 0.95 * sum(s.barrel_mm is not None for s in renders)


def test_card_mask_and_corners_agree(renders: list[PhotoSample]) -> None:
    for s in (r for r in renders if r.reference == "card"):
        corners = s.card_corners_px
        assert corners is not None and corners.shape == (4, 2)
        H, W = s.masks.shape
        assert corners.min() >= 0 and corners[:, 0].max() <= W and corners[:, 1].max() <= H
        area = float(cv2.contourArea(corners.astype(np.float32)))
        perimeter = float(cv2.arcLength(corners.astype(np.float32), True))
        got = int(np.count_nonzero(s.masks & MASK_CARD))
        assert abs(got - area) <= 0.5 * perimeter + 0.02 * area, (s.meta["seed"], got, area)


def test_card_corners_measure_the_card(renders: list[PhotoSample]) -> None:
    """Through the table homography to millimetres, the card's sides are 85.60 and 53.98 mm (within 1%)."""
    n = 0
    for s in (r for r in renders if r.card_corners_px is not None):
        to_mm = np.linalg.inv(np.array(s.meta["table_to_image"]))
        mm = _to_mm(to_mm, s.card_corners_px)  # type: ignore[arg-type]
        sides = np.linalg.norm(mm - np.roll(mm, -1, axis=0), axis=1)
        np.testing.assert_allclose(sides, [85.60, 53.98, 85.60, 53.98], rtol=0.01)
        n += 1
    assert n > 100


def test_weapon_length_measured_against_the_card_matches_the_label() -> None:
    """Untilted renders: the card's corners give the homography to mm; the weapon mask's extent along its
    principal axis (long guns) or its bore axis (all) is the labelled overall length within 3%."""
    cfg = PhotoConfig(long_side=(480, 560), p_card=1.0, p_ruler=0.0, p_untilted=1.0, p_no_firearm=0.0)
    checked = 0
    for seed in range(1000, 1060):
        s = render_photo(seed, cfg)
        if s.card_corners_px is None:
            continue
        hom = cv2.getPerspectiveTransform(s.card_corners_px.astype(np.float32), _CARD)
        ys, xs = np.nonzero(s.masks & MASK_WEAPON)
        mm = _to_mm(hom, np.stack([xs, ys], axis=1))
        one_px = s.mm_per_px  # pixel centres sit half a pixel inside each end
        ends = _to_mm(hom, np.array(s.meta["ends_px"]))
        bore = _extent(mm, ends[1] - ends[0]) + one_px
        assert bore == pytest.approx(s.length_mm, rel=0.03), (seed, s.label)
        if s.label in _LONG:
            axis = np.linalg.svd(mm - mm.mean(axis=0), full_matrices=False)[2][0]
            assert _extent(mm, axis) + one_px == pytest.approx(s.length_mm, rel=0.03), (seed, s.label)
        if s.barrel_mm is not None and s.label != PART_ONLY:
            b = _to_mm(hom, np.array(s.meta["barrel_px"]))
            assert float(np.linalg.norm(b[1] - b[0])) == pytest.approx(s.barrel_mm, rel=0.01)
        checked += 1
    assert checked > 45


def test_tilted_renders_keep_the_length_through_the_table_homography() -> None:
    cfg = PhotoConfig(long_side=(480, 560), p_untilted=0.0, tilt_deg=(8.0, 12.0), p_no_firearm=0.0)
    for seed in range(2000, 2020):
        s = render_photo(seed, cfg)
        assert s.meta["tilt_deg"] >= 8.0
        to_mm = np.linalg.inv(np.array(s.meta["table_to_image"]))
        ys, xs = np.nonzero(s.masks & MASK_WEAPON)
        mm = _to_mm(to_mm, np.stack([xs, ys], axis=1))
        ends = _to_mm(to_mm, np.array(s.meta["ends_px"]))
        assert _extent(mm, ends[1] - ends[0]) == pytest.approx(s.length_mm, rel=0.03), seed


def test_families_are_x_ray_items_too() -> None:
    for label in (*PHOTO_FAMILIES, PART_ONLY):
        item = xray_item(label, np.random.default_rng(3), pitch=1.0)
        a = item.canvas.a
        assert a.ndim == 3 and a.shape[2] == 2 and np.isfinite(a).all() and a[..., 1].max() > 0.05
        assert item.canvas.depth_mm > 0 and item.cls in CLASSES
        if label != PART_ONLY:
            assert (item.cls, item.type) == ("firearm", PHOTO_TO_XRAY_TYPE[label])
    assert tuple(FAMILIES) == PHOTO_FAMILIES
    with pytest.raises(ValueError, match="Valid"):
        xray_item("blunderbuss", np.random.default_rng(0))


def test_config_refuses_what_it_does_not_allow() -> None:
    with pytest.raises(PhotoConfigError, match="p_card"):
        PhotoConfig(p_card=0.9, p_ruler=0.3)
    with pytest.raises(PhotoConfigError, match="Valid keys"):
        PhotoConfig.from_dict({"p_cards": 0.5})
    with pytest.raises(PhotoConfigError, match="family_weights"):
        PhotoConfig(family_weights={"musket": 1.0})
    assert PhotoConfig.from_dict({"long_side": [400, 500]}).long_side == (400, 500)


def test_phone_sized_photos_render() -> None:
    """Every long side the config allows renders: the sensor-noise bank (1,600 px) is tiled beyond its size."""
    sample = render_photo(7, PhotoConfig(long_side=(2600, 2600)))
    assert max(sample.image.shape[:2]) == 2600
    assert sample.image.std() > 5  # a scene, not a blank


def test_writer_and_reader_round_trip(tmp_path: Path) -> None:
    write_photo_dataset(tmp_path, 4, seed=40, cfg=SMALL)
    recs = read_photo_dataset(tmp_path)
    assert len(recs) == 4
    for k, rec in enumerate(recs):
        s = render_photo(40 + k, SMALL)
        assert (rec.label, rec.build, rec.reference, rec.length_mm) == (
            s.label,
            s.build,
            s.reference,
            None if s.length_mm is None else pytest.approx(s.length_mm, abs=1e-3),
        )
        mask, image = cv2.imread(str(rec.mask), cv2.IMREAD_UNCHANGED), cv2.imread(str(rec.image))
        assert mask is not None and image is not None
        assert np.array_equal(mask, s.masks) and image.shape == s.image.shape
        if rec.card_corners_px is not None:  # the stored homography still measures the card
            mm = _to_mm(np.linalg.inv(np.array(rec.meta["table_to_image"])), np.array(rec.card_corners_px))
            sides = np.linalg.norm(mm - np.roll(mm, -1, axis=0), axis=1)
            np.testing.assert_allclose(sides, [85.60, 53.98, 85.60, 53.98], rtol=0.01)
    assert any(r.card_corners_px is not None for r in recs)
    coco = read_coco(tmp_path)  # X-ray tools read the same file: a firearm box or the part's box
    for rec, r in zip(recs, coco, strict=True):
        assert bool(r.boxes) == (rec.label != NO_FIREARM)
        if rec.label in PHOTO_FAMILIES:
            assert (r.boxes[0]["cls"], r.boxes[0]["type"]) == ("firearm", PHOTO_TO_XRAY_TYPE[rec.label])


def test_reader_refuses_what_is_not_a_photo_set(tmp_path: Path) -> None:
    with pytest.raises(PhotoDatasetError, match="not a photo dataset"):
        read_photo_dataset(tmp_path)
    (tmp_path / "images").mkdir()
    cv2.imwrite(str(tmp_path / "images" / "scan.png"), np.zeros((8, 8, 3), np.uint8))
    write_coco(tmp_path, [Record(Path("images/scan.png"), 8, 8, [], {"style": "pseudo"}, 1)], {})
    with pytest.raises(PhotoDatasetError, match="no armscan kind 'photo'"):
        read_photo_dataset(tmp_path)


def test_cli_photos_synth_and_bad_arguments(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from armscan.serve import cli

    out = tmp_path / "set"
    assert cli.main(["photos", "synth", "--n", "2", "--seed", "9", "--out", str(out)]) == 0
    assert len(read_photo_dataset(out)) == 2 and len(list((out / "masks").glob("*.png"))) == 2
    with pytest.raises(SystemExit) as exc:
        cli.main(["photos", "synth", "--n", "0", "--out", str(out)])
    assert exc.value.code != 0 and "--n: must be >= 1" in capsys.readouterr().err
    assert cli.main(["photos", "gallery", "--n", "1", "--out", str(tmp_path / "g.jpg")]) == 2
    assert "FILE.png" in capsys.readouterr().err
    assert cli.main(["photos", "gallery", "--n", "1", "--out", str(tmp_path / "g.png")]) == 0
    assert (tmp_path / "g.png").stat().st_size > 1000
