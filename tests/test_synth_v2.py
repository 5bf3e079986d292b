"""Generator v2: 3D orientation, occlusion, hard negatives, Z_eff and scanner styles, class coverage."""

import numpy as np
import pytest

from armscan.datasets.materials import MATERIALS
from armscan.datasets.synth.canvas import Canvas
from armscan.datasets.synth.detector import detect
from armscan.datasets.synth.hard_negatives import HARD_NEGATIVES, printed_benign, toy_gun
from armscan.datasets.synth.scene import STYLES, SceneConfig, generate, occlusion, orient, place
from armscan.datasets.synth.threats import pistol
from armscan.datasets.taxonomy import BUILDS, CLASSES, FIREARM_TYPES
from armscan.datasets.xray import render, z_eff

COLOUR_STYLES = [s for s in STYLES if s != "grey"]


def test_boxes_are_tight_around_each_object_mask():
    for seed in range(12):
        scan = generate(seed, 320, 256, SceneConfig(threat_prob=1.0), with_masks=True)
        assert len(scan.masks) == len(scan.boxes) > 0
        for b, m in zip(scan.boxes, scan.masks, strict=True):
            x, y, w, h = (int(v) for v in b["bbox"])
            ys, xs = np.nonzero(m)
            assert xs.min() == x and ys.min() == y and xs.max() == x + w - 1 and ys.max() == y + h - 1
            assert 0.0 <= b["occlusion"] <= 1.0 and 0.0 <= b["tilt"] <= 90.0


def test_edge_on_plate_is_a_thin_bar_with_the_same_mass():
    c = Canvas(200, 120, 1.0)
    c.rect(0, 0, 200, 120, 30, "pla")  # a 200 x 120 x 30 mm plate, lying flat
    flat = c.a.copy()
    edge = orient(flat, c.depth_mm, c.pitch, 89.0, axis=0)  # tilted about its long (x) axis
    assert edge.shape[1] == flat.shape[1] and edge.shape[0] < 40  # ~30 mm wide bar instead of 120 mm
    assert edge[..., 1].sum() == pytest.approx(flat[..., 1].sum(), rel=1e-3)  # attenuation integral kept
    # seen edge-on the beam crosses the plate's 120 mm height, not its 30 mm thickness
    assert edge[..., 1].max() == pytest.approx(flat[..., 1].max() * 120 / 30, rel=0.1)
    assert orient(flat, c.depth_mm, c.pitch, 0.0, axis=0) is flat


def test_occlusion_rises_when_a_dense_slab_covers_the_object():
    rng = np.random.default_rng(3)
    scene = np.zeros((400, 400, 2), np.float32)
    pl = place(scene, pistol(rng, 1.0, "polymer"), rng, (200.0, 200.0), 10, max_tilt_deg=0.0)
    assert pl is not None and occlusion(scene, pl) == 0.0
    slab = Canvas(400, 400, 1.0)
    slab.rect(0, 0, 400, 400, 10, "lead")  # denser than any part of the pistol
    h, w = pl.own.shape[:2]
    half = scene.copy()
    half[:, : pl.x0 + w // 2] += slab.a[:400, : pl.x0 + w // 2]  # steel over the left half only
    full = scene + slab.a[:400, :400]
    occ_half, occ_full = occlusion(half, pl), occlusion(full, pl)
    fp = pl.footprint()
    assert occ_half == pytest.approx(fp[:, : w // 2].sum() / fp.sum(), abs=1e-6)  # exactly the covered share
    assert 0.1 < occ_half < occ_full == 1.0
    cloth = Canvas(400, 400, 1.0)
    cloth.rect(0, 0, 400, 400, 10, "cotton")  # lighter than the object: hides (almost) nothing
    assert occlusion(scene + cloth.a[:400, :400], pl) < 0.1


def test_hard_negatives_are_unlabelled_and_toy_guns_have_no_metal():
    for k in range(30):
        rng = np.random.default_rng(k)
        for make in HARD_NEGATIVES:
            assert make(np.random.default_rng(k), 1.5).cls is None
        toy = toy_gun(rng, 1.0)
        ratio = toy.canvas.a_low / np.maximum(toy.canvas.a_high, 1e-6)
        assert ratio[toy.canvas.a_high > 0.01].max() < 1.6, "a toy gun is plastic only"
    printed = printed_benign(np.random.default_rng(1), 1.0)
    assert 0 < printed.canvas.a_high.max() < 1.5  # printed polymer: faint


def test_z_eff_recovers_the_material_table():
    for name in ("polyethylene", "water", "aluminium", "steel"):
        c = Canvas(40, 40, 1.0)
        c.rect(0, 0, 40, 40, 2 if name == "steel" else 30, name)
        t = np.exp(-c.a[10:30, 10:30])
        assert float(np.median(z_eff(t))) == pytest.approx(MATERIALS[name].z_eff, abs=0.6)


def _mean_bgr(material: str, thick_mm: float, style: str) -> np.ndarray:
    c = Canvas(60, 60, 1.0)
    c.rect(0, 0, 60, 60, thick_mm, material)
    img = render(detect(c.a, np.random.default_rng(0)), style)
    return img[20:40, 20:40].reshape(-1, 3).mean(axis=0)


@pytest.mark.parametrize("style", COLOUR_STYLES)
def test_every_colour_style_shows_metal_blue_organic_orange_printed_faint(style):
    b, g, r = _mean_bgr("steel", 3, style)
    assert b > r and b > g, "metal must render blue"
    b, g, r = _mean_bgr("water", 60, style)
    assert r > g > b, "organic must render orange"
    air = _mean_bgr("pla", 0, style)
    pla = _mean_bgr("pla", 8, style)
    assert 120 < pla.min() and 8 < np.abs(air - pla).sum(), "printed polymer is faint but visible"


def test_styles_are_visibly_different_and_thicker_transmits_less():
    imgs = {s: generate(21, 160, 160, SceneConfig(threat_prob=1.0), style=s).image.astype(int) for s in STYLES}
    for i, a in enumerate(STYLES):
        for b in STYLES[i + 1 :]:
            assert np.abs(imgs[a] - imgs[b]).mean() > 4, f"{a} and {b} look the same"
    vals = [_mean_bgr("aluminium", t, "grey")[0] for t in (2, 10, 40)]
    assert vals[0] > vals[1] > vals[2]


def test_style_mix_is_configurable():
    only_b = SceneConfig(style_probs=(0, 0, 1, 0, 0))
    assert {generate(s, 128, 128, only_b).meta["style"] for s in range(4)} == {"vendor_b"}
    with pytest.raises(ValueError, match="one weight per style"):
        SceneConfig(style_probs=(0.5, 0.5))


def test_every_class_type_and_build_appears_in_1000_scans():
    classes, types, builds, occ = set(), set(), set(), []
    printed_cls = set()
    for seed in range(1000):
        for b in generate(900_000 + seed, 256, 256).boxes:
            classes.add(b["cls"])
            types.add(b["type"])
            builds.add(b["build"])
            occ.append(b["occlusion"])
            if b["build"] == "printed":
                printed_cls.add(b["cls"])
    assert classes == set(CLASSES)
    assert set(FIREARM_TYPES) <= types and set(BUILDS) <= builds
    assert {"firearm", "frame_receiver", "slide"} <= printed_cls
    assert 0.0 < float(np.mean(occ)) < 0.8


def test_occlusion_and_tilt_reach_the_coco_attributes(tmp_path):
    from armscan.datasets.coco import read_coco
    from armscan.datasets.synth.writer import write_dataset

    write_dataset(tmp_path, 4, seed=5, width=200, height=160, cfg=SceneConfig(threat_prob=1.0))
    boxes = [b for r in read_coco(tmp_path) for b in r.boxes]
    assert boxes and all(0.0 <= b["occlusion"] <= 1.0 and "tilt" in b for b in boxes)
