"""Threat image projection: threats multiplied into user backgrounds (raw dual-energy pairs and ordinary images).

The backgrounds are clean scans from the generator itself: its raw 16-bit pair as TIFFs, its grey display
as an 8-bit PNG, a pseudo-colour display, and the high channel alone as a 16-bit PNG.
"""

from pathlib import Path

import cv2
import numpy as np
import pytest

from armscan.datasets.coco import read_coco
from armscan.datasets.readers import ImageReadError
from armscan.datasets.synth.projection import (
    BackgroundError,
    ProjectionConfig,
    load_background,
    project,
    write_projected,
)
from armscan.datasets.synth.scene import SceneConfig, generate
from armscan.datasets.taxonomy import CLASSES
from armscan.datasets.xray import render

W, H = 256, 192
NO_NOISE = ProjectionConfig(max_threats=3, photons=0.0)


@pytest.fixture(scope="module")
def bags(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("bags")
    scan = generate(7, W, H, SceneConfig(threat_prob=0.0), style="grey")
    assert not scan.boxes
    low, high = scan.raw16()
    assert cv2.imwrite(str(d / "bag_low.tiff"), low) and cv2.imwrite(str(d / "bag_high.tiff"), high)
    assert cv2.imwrite(str(d / "bag_grey.png"), scan.image[..., 0])
    assert cv2.imwrite(str(d / "bag_colour.png"), render(scan.transmissions, "vendor_a"))
    assert cv2.imwrite(str(d / "bag16.png"), high)
    return d


def _inside(boxes: list[dict], masks: list[np.ndarray]) -> np.ndarray:
    """(H, W) bool: the union of the boxes, after checking each is inside the image and tight on its mask."""
    inside = np.zeros((H, W), bool)
    for b, m in zip(boxes, masks, strict=True):
        x, y, w, h = (int(v) for v in b["bbox"])
        assert 0 <= x and 0 <= y and x + w <= W and y + h <= H and w > 0 and h > 0
        ys, xs = np.nonzero(m)
        assert (xs.min(), ys.min(), xs.max(), ys.max()) == (x, y, x + w - 1, y + h - 1)
        assert b["cls"] in CLASSES and 0.0 <= b["occlusion"] <= 1.0 and 0.0 <= b["tilt"] <= 90.0
        inside[y : y + h, x : x + w] = True
    return inside


def test_raw_pair_darkens_each_threat_and_leaves_every_pixel_outside_the_boxes_bit_identical(bags: Path) -> None:
    bg = load_background(bags / "bag_high.tiff")  # either half names the pair
    assert bg.kind == "dual_energy"
    raw_high = cv2.imread(str(bags / "bag_high.tiff"), cv2.IMREAD_UNCHANGED)
    n = 0
    for seed in range(4):
        for cfg in (ProjectionConfig(max_threats=3, photons=0.0, style="grey"), ProjectionConfig(style="grey")):
            scan = project(bg, seed, cfg)
            assert scan.transmissions is not None and scan.image.shape == (H, W, 3)
            inside = _inside(scan.boxes, scan.masks)
            for m in scan.masks:  # lower transmission at both energies under every threat
                before, after = bg.trans[m], scan.transmissions[m]
                assert (after.mean(axis=0) < before.mean(axis=0) - 0.01).all()
                if cfg.photons == 0:
                    assert (after <= before).all()
            assert np.array_equal(scan.transmissions[~inside], bg.trans[~inside])
            assert np.array_equal(scan.image[~inside], render(bg.trans, "grey")[~inside])  # grey is per pixel
            assert np.array_equal(scan.raw16()[1][~inside], raw_high[~inside])
            n += len(scan.boxes)
    assert n >= 8


@pytest.mark.parametrize(("name", "style"), [("bag_grey.png", "grey"), ("bag_colour.png", "background"),
                                             ("bag16.png", "grey")])
def test_ordinary_images_keep_their_look_and_change_only_inside_the_boxes(bags: Path, name: str, style: str) -> None:
    src = cv2.imread(str(bags / name), cv2.IMREAD_ANYDEPTH | cv2.IMREAD_ANYCOLOR)
    n = 0
    for seed in range(4):
        scan = project(bags / name, seed, NO_NOISE)
        assert scan.image.shape == src.shape and scan.image.dtype == src.dtype and scan.transmissions is None
        assert scan.meta["style"] == style and scan.meta["background_kind"] == "image" and scan.meta["tip"] is True
        inside = _inside(scan.boxes, scan.masks)
        assert np.array_equal(scan.image[~inside], src[~inside])
        for m in scan.masks:
            before, after = src[m].astype(np.int64), scan.image[m].astype(np.int64)
            assert (after <= before).all() and after.mean() < before.mean()
        n += len(scan.boxes)
    assert n >= 3


def test_threats_sit_on_the_bag_and_occlusion_follows_the_generators_definition(bags: Path) -> None:
    bg = load_background(bags / "bag_low.tiff")
    bag = cv2.blur(np.ascontiguousarray(bg.trans[..., 1]), (5, 5)) < 0.9
    others = -np.log(bg.trans[..., 1])  # everything but the threat: the background
    occ = []
    for seed in range(6):
        scan = project(bg, seed, ProjectionConfig(max_threats=1, photons=0.0))
        assert scan.transmissions is not None
        own = -np.log(scan.transmissions[..., 1] / bg.trans[..., 1])  # one threat, no noise: its own depth
        for b, m in zip(scan.boxes, scan.masks, strict=True):
            assert bag[m].mean() >= 0.75
            assert b["occlusion"] == pytest.approx(float(np.mean(others[m] > own[m])), abs=0.02)
            occ.append(b["occlusion"])
    assert len(occ) >= 4


def test_projection_is_deterministic_per_seed(bags: Path) -> None:
    a, b, c = (project(bags / "bag_low.tiff", s) for s in (11, 11, 12))
    assert np.array_equal(a.image, b.image) and a.boxes == b.boxes and a.meta == b.meta
    assert a.meta["seed"] == 11 and not np.array_equal(a.image, c.image)


def test_write_projected_round_trips_through_read_coco(bags: Path, tmp_path: Path) -> None:
    out = tmp_path / "tip"
    path = write_projected([bags], out, n_per_background=2, seed=100, style="vendor_b", raw=True)
    records = read_coco(out)
    assert path == out / "annotations.json" and len(records) == 8  # 4 backgrounds (the pair is one) x 2
    kinds = {}
    for r in records:
        img = cv2.imread(str(r.file), cv2.IMREAD_ANYDEPTH | cv2.IMREAD_ANYCOLOR)
        assert img is not None and img.shape[:2] == (r.height, r.width) == (H, W)
        assert r.meta["tip"] is True and r.meta["seed"] == r.image_id and Path(r.meta["background"]).parent == bags
        kinds[Path(r.meta["background"]).name] = r.meta["style"]
        again = project(r.meta["background"], r.image_id)  # the same scan, rebuilt from its seed
        assert [(b["cls"], b["type"], b["build"], b["occlusion"], b["tilt"]) for b in r.boxes] == [
            (b["cls"], b["type"], b["build"], b["occlusion"], b["tilt"]) for b in again.boxes]
        assert [b["bbox"] for b in r.boxes] == [[round(v, 2) for v in b["bbox"]] for b in again.boxes]
    assert kinds == {"bag_low.tiff": "vendor_b", "bag_grey.png": "grey", "bag_colour.png": "background",
                     "bag16.png": "grey"}
    pair = [r.image_id for r in records if r.meta["background_kind"] == "dual_energy"]  # only pairs have raw channels
    assert sorted(p.name for p in (out / "raw").iterdir()) == [f"tip_{s:08d}_{b}.tiff" for s in sorted(pair)
                                                                for b in ("high", "low")]


def test_a_12_bit_background_reads_like_its_16_bit_original(bags: Path, tmp_path: Path) -> None:
    high = cv2.imread(str(bags / "bag16.png"), cv2.IMREAD_ANYDEPTH)
    assert high.dtype == np.uint16 and high.max() > 16383  # the original fills 16 bits
    assert cv2.imwrite(str(tmp_path / "bag12.png"), (high >> 4).astype(np.uint16))
    a, b = load_background(bags / "bag16.png"), load_background(tmp_path / "bag12.png")
    assert np.abs(a.trans - b.trans).max() < 3 / 4095  # not 1/16 of it: a dense bag


def test_unusable_backgrounds_raise_a_typed_error_naming_the_file(tmp_path: Path) -> None:
    (tmp_path / "notes.png").write_text("not an image")
    ok, jpeg = cv2.imencode(".jpg", np.random.default_rng(0).integers(0, 256, (128, 128, 3), np.uint8))
    (tmp_path / "cut.jpg").write_bytes(jpeg.tobytes()[: len(jpeg) * 3 // 4])
    cv2.imwrite(str(tmp_path / "empty.png"), np.full((64, 64), 255, np.uint8))
    cv2.imwrite(str(tmp_path / "p_low.tiff"), np.zeros((64, 64), np.uint8))
    cv2.imwrite(str(tmp_path / "p_high.tiff"), np.zeros((64, 64), np.uint8))
    cv2.imwrite(str(tmp_path / "q_low.tiff"), np.zeros((64, 64), np.uint16))
    cv2.imwrite(str(tmp_path / "q_high.tiff"), np.zeros((64, 80), np.uint16))
    cases = {"notes.png": "not a decodable image", "missing.png": "No such file", "empty.png": "no bag or parcel",
             "p_low.tiff": "16-bit", "q_high.tiff": "sizes differ", "cut.jpg": "truncated"}
    for name, reason in cases.items():
        with pytest.raises(BackgroundError, match=reason) as err:
            project(tmp_path / name, 0)
        assert isinstance(err.value, ImageReadError) and isinstance(err.value, ValueError) and name[:2] in str(err.value)
    with pytest.raises(BackgroundError, match="notes.png"):
        write_projected([tmp_path / "notes.png"], tmp_path / "out", 1, 0)
    (tmp_path / "nothing").mkdir()
    with pytest.raises(ValueError, match="no background images"):
        write_projected([tmp_path / "nothing"], tmp_path / "out", 1, 0)
    with pytest.raises(ValueError, match="Valid styles: pseudo"):
        ProjectionConfig(style="sepia")
