"""Render one seizure photo: a firearm (or a part, or only benign things) lying on a table, photographed from above.

    sample = render_photo(1234)            # deterministic per seed
    sample.image, sample.label, sample.masks, sample.length_mm, sample.card_corners_px

The scene is built in millimetres on the table plane: the main object at any angle (sometimes flipped),
a reference (an ID-1 card or a ruler) and up to a few distractors that keep clear of it. A pinhole camera
tilted 0-12 degrees off top-down maps the table to the image by a homography (``meta["table_to_image"]``,
mm -> px); outlines and the table's texture go through it straight into the image, masks with them,
so every label is in the final image geometry.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import cv2
import numpy as np

from armscan.datasets.photo.backgrounds import BACKGROUNDS, background
from armscan.datasets.photo.benign import BENIGN, HARD_NEGATIVES, benign, cartridges, id1_card, ruler
from armscan.datasets.photo.canvas import PhotoCanvas
from armscan.datasets.photo.config import MASK_BARREL, MASK_CARD, MASK_RULER, MASK_WEAPON, RULER_LENGTHS, PhotoConfig, PhotoSample
from armscan.datasets.photo.families import draw
from armscan.datasets.photo.looks import sample_look
from armscan.datasets.photo.paint import Light, Painted, paint
from armscan.datasets.taxonomy import ID1_CARD_MM, NO_FIREARM, PART_ONLY, PHOTO_FAMILIES

_BG_P = (0.22, 0.15, 0.15, 0.2, 0.1, 0.18)  # BACKGROUNDS' weights
_Q = 4  # the occupancy grid and the shadow map work at 1/4 of the image resolution
_BANK_SD = 20.0


@dataclass
class _Placed:
    canvas: PhotoCanvas
    A: np.ndarray  # (3, 3) object mm -> table mm
    role: str  # main, card, ruler, distractor
    name: str


class _Camera:
    """A pinhole camera above the table; ``H`` maps table mm (x, y, 1) to image px."""

    def __init__(self, size: tuple[int, int], s: float, tilt_deg: float, axis: float, hfov_deg: float) -> None:
        W, H = size
        f = 0.5 * max(W, H) / np.tan(np.deg2rad(hfov_deg) / 2)
        K = np.array([[f, 0, W / 2], [0, f, H / 2], [0, 0, 1]])
        R, _ = cv2.Rodrigues(np.array([np.cos(axis), np.sin(axis), 0.0]) * np.deg2rad(tilt_deg))
        Hm = K @ np.column_stack([R[:, 0], R[:, 1], [0, 0, f / s]])  # the table's origin projects to the centre
        self.H = Hm / Hm[2, 2]
        self.Hinv = np.linalg.inv(self.H)
        self.size = size

    def project(self, pts: np.ndarray) -> np.ndarray:
        """Table mm (N, 2) -> image px (N, 2)."""
        return np.asarray(cv2.perspectiveTransform(np.asarray(pts, np.float64).reshape(-1, 1, 2), self.H)).reshape(-1, 2)

    def back(self, pts: np.ndarray) -> np.ndarray:
        """Image px (N, 2) -> table mm (N, 2)."""
        return np.asarray(cv2.perspectiveTransform(np.asarray(pts, np.float64).reshape(-1, 1, 2), self.Hinv)).reshape(-1, 2)

    def mm_per_px(self) -> float:
        """Scale at the image centre (square root of the back-projected pixel's area)."""
        W, H = self.size
        p = self.back(np.array([[W / 2, H / 2], [W / 2 + 1, H / 2], [W / 2, H / 2 + 1]]))
        (ax, ay), (bx, by) = p[1] - p[0], p[2] - p[0]
        return float(np.sqrt(abs(ax * by - ay * bx)))


def _centre(canvas: PhotoCanvas) -> np.ndarray:
    """The centre of the object's visible extent, mm."""
    pts = canvas.visible_points()
    return np.asarray((pts.min(axis=0) + pts.max(axis=0)) / 2)


def _pose(c: np.ndarray, angle: float, flip: bool, t: np.ndarray) -> np.ndarray:
    """(3, 3) object mm -> table mm: centre ``c`` to the origin, flip (y -> -y), rotate by ``angle``, move to ``t``."""
    ca, sa = np.cos(angle), np.sin(angle)
    R = np.array([[ca, -sa], [sa, ca]]) @ np.diag([1.0, -1.0 if flip else 1.0])
    A = np.eye(3)
    A[:2, :2], A[:2, 2] = R, t - R @ c
    return A


def _hull(canvas: PhotoCanvas) -> np.ndarray:
    pts = canvas.visible_points().astype(np.float32)
    return np.asarray(cv2.convexHull(pts), np.float64).reshape(-1, 2)


def _apply(A: np.ndarray, pts: np.ndarray) -> np.ndarray:
    return np.asarray(np.asarray(pts, np.float64) @ A[:2, :2].T + A[:2, 2])


class _Layout:
    """Places objects on the table so that their image footprints respect each other (1/4-res grid)."""

    def __init__(self, cam: _Camera, rng: np.random.Generator) -> None:
        self.cam, self.rng = cam, rng
        W, H = cam.size
        self.grid = np.zeros(((H + _Q - 1) // _Q, (W + _Q - 1) // _Q), np.uint8)  # 1 main, 2 reference, 4 other
        self.placed: list[_Placed] = []

    def footprint(self, hull: np.ndarray, A: np.ndarray) -> np.ndarray:
        """An object's convex ``hull`` (mm, object frame) in image pixels, posed by ``A``."""
        return self.cam.project(_apply(A, hull))

    def _raster(self, poly_px: np.ndarray) -> np.ndarray:
        m = np.zeros_like(self.grid)
        cv2.fillPoly(m, [np.round(poly_px / _Q * 16).astype(np.int32)], 1, cv2.LINE_8, shift=4)
        return m

    def place(
        self, canvas: PhotoCanvas, role: str, name: str, inside: bool, max_overlap: float, tries: int, flip_p: float = 0.5
    ) -> _Placed | None:
        """Try random poses; ``inside``: the whole footprint must lie in the image (4% margin), and then the
        position is drawn among those that fit at the drawn angle."""
        W, H = self.cam.size
        m = 0.04 * min(W, H)
        centre = np.array([W / 2, H / 2])
        hull, c = _hull(canvas), _centre(canvas)
        for _ in range(tries):
            angle, flip = self.rng.uniform(0, 2 * np.pi), bool(self.rng.random() < flip_p)
            if inside:
                fp = self.footprint(hull, _pose(c, angle, flip, self.cam.back(centre[None])[0]))
                lo, hi = (m, m) - fp.min(axis=0), (W - m, H - m) - fp.max(axis=0)
                if np.any(lo > hi):
                    continue
                px = centre + self.rng.uniform(lo, hi)
            else:
                px = self.rng.uniform((0, 0), (W, H))
            A = _pose(c, angle, flip, self.cam.back(px[None])[0])
            fp = self.footprint(hull, A)
            if inside and (fp.min() < m - 1 or fp[:, 0].max() > W - m + 1 or fp[:, 1].max() > H - m + 1):
                continue  # perspective moved it out
            area = self._raster(fp)
            n = max(int(area.sum()), 1)
            on_main, on_ref, on_other = (np.count_nonzero(area & ((self.grid & b) > 0)) / n for b in (1, 2, 4))
            if role in ("card", "ruler") and (on_main > 0 or on_other > 0):
                continue
            if role == "distractor" and (on_main > max_overlap or on_ref > 0 or on_other > 0.3):
                continue
            if role in ("card", "ruler"):
                area = cv2.dilate(area, np.ones((3, 3), np.uint8))
            self.grid |= area * (1 if role == "main" else 2 if role in ("card", "ruler") else 4)
            p = _Placed(canvas, A, role, name)
            self.placed.append(p)
            return p
        return None


def render_photo(seed: int, cfg: PhotoConfig = PhotoConfig()) -> PhotoSample:  # noqa: B008 - frozen dataclass
    """Render the seizure photo of ``seed`` (deterministic: the same seed and config give the same sample)."""
    rng = np.random.default_rng(seed)
    long = int(rng.integers(cfg.long_side[0], cfg.long_side[1] + 1))
    short = int(round(long / (4 / 3 if rng.random() < 0.5 else 1.5)))
    size = (short, long) if rng.random() < cfg.p_portrait else (long, short)
    u = rng.random()
    weights = np.array([cfg.family_weights[f] for f in PHOTO_FAMILIES], np.float64)
    label = (
        NO_FIREARM
        if u < cfg.p_no_firearm
        else PART_ONLY
        if u < cfg.p_no_firearm + cfg.p_part_only
        else PHOTO_FAMILIES[int(rng.choice(len(weights), p=weights / weights.sum()))]
    )
    if label == NO_FIREARM:
        names = list(HARD_NEGATIVES if rng.random() < cfg.p_hard_negative else BENIGN)
        main_name = names[int(rng.integers(len(names)))]
        main, drawn = benign(main_name, rng), None
    else:
        drawn = draw(label, rng, weights=cfg.build_weights)
        main, main_name = drawn.canvas, label
    x0, x1 = main.extent_x()
    main_len = x1 - x0
    tilt = 0.0 if rng.random() < cfg.p_untilted else float(rng.uniform(*cfg.tilt_deg))
    axis, hfov = float(rng.uniform(0, 2 * np.pi)), float(rng.uniform(45, 70))
    fill = float(rng.uniform(*cfg.fill))
    s = fill * max(size) / main_len
    layout, placed_main = None, None
    for _ in range(10):  # shrink until the main object fits at some angle
        cam = _Camera(size, s, tilt, axis, hfov)
        layout = _Layout(cam, rng)
        placed_main = layout.place(main, "main", main_name, True, 1.0, 24, cfg.p_flip)
        if placed_main is not None:
            break
        s *= 0.9
    assert layout is not None and placed_main is not None, "the main object always fits after shrinking"
    meta: dict[str, Any] = {
        "seed": seed,
        "label": label,
        "image_size": list(size),
        "tilt_deg": round(tilt, 2),
        "tilt_axis_deg": round(float(np.rad2deg(axis)), 1),
        "hfov_deg": round(hfov, 1),
        "fill": round(main_len * s / max(size), 3),
        "px_per_mm": round(s, 4),
    }
    reference, ruler_mm, ruler_zero = _place_reference(layout, rng, cfg, s, meta)
    _place_distractors(layout, rng, cfg, label)
    image, masks, looks = _paint_scene(layout, rng, cfg, meta, drawn.build if drawn else "unknown")
    cam = layout.cam
    card_px = None
    if reference == "card":
        card = next(p for p in layout.placed if p.role == "card")
        w, h = ID1_CARD_MM
        card_px = cam.project(_apply(card.A, np.array([[0, 0], [w, 0], [w, h], [0, h]])))
    if reference == "ruler":
        r = next(p for p in layout.placed if p.role == "ruler")
        meta["ruler_zero_px"] = cam.project(_apply(r.A, np.array([[ruler_zero, 0.0]])))[0].round(2).tolist()
    meta.update(
        {
            "table_to_image": (cam.H / cam.H[2, 2]).tolist(),
            "looks": looks,
            "angle_deg": round(float(np.rad2deg(np.arctan2(placed_main.A[1, 0], placed_main.A[0, 0]))) % 360, 1),
            "flipped": bool(np.linalg.det(placed_main.A[:2, :2]) < 0),
            "distractors": [p.name for p in layout.placed if p.role == "distractor"],
        }
    )
    if drawn is not None:
        meta.update({"family": drawn.details, "part": drawn.part})
        for key, seg in (("ends_px", drawn.ends), ("barrel_px", drawn.barrel)):
            meta[key] = None if seg is None else cam.project(_apply(placed_main.A, np.array(seg))).round(2).tolist()
    else:
        meta["main_object"] = main_name
    return PhotoSample(
        image,
        label,
        drawn.build if drawn else "unknown",
        masks,
        drawn.length_mm if drawn else None,
        drawn.barrel_mm if drawn else None,
        reference,
        card_px,
        ruler_mm,
        cam.mm_per_px(),
        meta,
    )


def _place_reference(
    layout: _Layout, rng: np.random.Generator, cfg: PhotoConfig, s: float, meta: dict[str, Any]
) -> tuple[str, int | None, float]:
    u = rng.random()
    want = "card" if u < cfg.p_card else "ruler" if u < cfg.p_card + cfg.p_ruler else "none"
    meta["reference_dropped"] = False
    if want == "card":
        if layout.place(id1_card(rng), "card", "card", True, 0.0, 40) is not None:
            return "card", None, 0.0
    elif want == "ruler":
        fits = [n for n in RULER_LENGTHS if (n + 24) * s < 0.9 * max(layout.cam.size)]
        if fits:
            n = int(fits[int(rng.integers(len(fits)))])
            c, zero = ruler(rng, n)
            if layout.place(c, "ruler", f"ruler_{n}", True, 0.0, 40) is not None:
                return "ruler", n, zero
    meta["reference_dropped"] = want != "none"
    return "none", None, 0.0


def _place_distractors(layout: _Layout, rng: np.random.Generator, cfg: PhotoConfig, label: str) -> None:
    n = int(rng.integers(0, cfg.max_distractors + 1))
    names = list(BENIGN)
    wanted = [names[int(rng.integers(len(names)))] for _ in range(n)]
    if label != NO_FIREARM and rng.random() < cfg.p_cartridges:
        wanted.append("cartridges")
    for name in wanted:
        c = cartridges(rng) if name == "cartridges" else benign(name, rng)
        if name == "cartridges":
            c.trim()
        layout.place(c, "distractor", name, False, 0.1, 8)


def _paint_scene(
    layout: _Layout, rng: np.random.Generator, cfg: PhotoConfig, meta: dict[str, Any], build: str
) -> tuple[np.ndarray, np.ndarray, dict[str, str]]:
    """Paint the table and its objects straight into the image through the camera, light them, and add the
    camera's blur, noise and JPEG."""
    cam = layout.cam
    W, H = cam.size
    kind = BACKGROUNDS[int(rng.choice(len(BACKGROUNDS), p=_BG_P))]
    img = background(kind, rng, cam.H, cam.size)
    az, el = rng.uniform(0, 2 * np.pi), np.deg2rad(rng.uniform(35, 72))
    light = Light(
        (float(np.cos(el) * np.cos(az)), float(np.cos(el) * np.sin(az)), float(np.sin(el))),
        float(rng.uniform(0.25, 0.45)),
        int(2 ** rng.integers(4, 7)),
    )
    masks = np.zeros((H, W), np.uint8)
    flat: list[tuple[_Placed, Painted]] = []
    casters: list[tuple[_Placed, Painted]] = []
    looks_used: dict[str, str] = {}
    for p in layout.placed:
        names = sorted({o.look for o in p.canvas.ops})
        looks = {n: sample_look(n, rng) for n in names}
        if p.role == "main":
            looks_used = {n: lk.name for n, lk in looks.items()}
        pt = paint(p.canvas, cam.H @ p.A, looks, light, (H, W), rng)
        if pt is not None:
            (flat if p.role in ("card", "ruler") else casters).append((p, pt))
    for p, pt in flat:
        _blend(img, masks, pt, MASK_CARD if p.role == "card" else MASK_RULER, 0)
    # lighting at 1/4 resolution: exposure, fall-off away from the light, vignetting, white balance, and soft drop
    # shadows on the table (and the card or ruler); the objects that cast them get the same light, unshadowed
    hq, wq = (H + _Q - 1) // _Q, (W + _Q - 1) // _Q
    yy, xx = np.mgrid[0:hq, 0:wq].astype(np.float32)
    yy, xx = yy / max(hq - 1, 1) - 0.5, xx / max(wq - 1, 1) - 0.5
    gain = (
        (1 + np.float32(rng.uniform(0, 0.25)) * (xx * np.float32(light.direction[0]) + yy * np.float32(light.direction[1])))
        * (1 - np.float32(rng.uniform(0, 0.45)) * (xx * xx + yy * yy) * 2)
        * np.float32(rng.uniform(0.8, 1.15))
    )
    wb = rng.uniform(0.9, 1.1, 3).astype(np.float32)
    shadow = _shadow_map([pt for _, pt in casters], (hq, wq), light, cam, rng)
    lit = gain * (1 - np.float32(rng.uniform(0.25, 0.55)) * shadow)
    lit3 = np.clip(lit[..., None] * wb * 128, 0, 255).astype(np.uint8)  # (hq, wq, 3), 1.0 = 128
    img = cv2.multiply(img, cv2.resize(lit3, (W, H), interpolation=cv2.INTER_LINEAR), scale=1 / 128)
    for p, pt in casters:  # distractors first, the main object last (on top)
        ys, xs = np.divmod(pt.idx, pt.shape[1])
        pt.colour *= gain[(ys + pt.y0) // _Q, (xs + pt.x0) // _Q][:, None] * wb
        np.clip(pt.colour, 0, 255, out=pt.colour)
        main = p.role == "main"
        _blend(img, masks, pt, MASK_WEAPON if main and p.name in PHOTO_FAMILIES + (PART_ONLY,) else 0, MASK_BARREL if main else 0)
    out = img
    sigma = float(rng.uniform(0.3, 1.2))
    if sigma > 0.45:
        size = 3 if sigma < 0.8 else 5
        out = cv2.GaussianBlur(out, (size, size), sigma)
    noise_sd = float(rng.uniform(1.0, 6.0))
    bank = _noise_bank()
    if H > bank.shape[0] or W > bank.shape[1]:  # photos beyond the bank's side (up to 4096 px) tile it
        bank = np.tile(bank, (-(-H // bank.shape[0]), -(-W // bank.shape[1]), 1))
    oy, ox = int(rng.integers(bank.shape[0] - H + 1)), int(rng.integers(bank.shape[1] - W + 1))
    k = noise_sd / _BANK_SD
    out = cv2.addWeighted(out, 1.0, bank[oy : oy + H, ox : ox + W], k, -128.0 * k)
    quality = int(rng.integers(35, 90)) if rng.random() < cfg.p_jpeg else None
    if quality is not None:
        decoded = cv2.imdecode(cv2.imencode(".jpg", out, [cv2.IMWRITE_JPEG_QUALITY, quality])[1], cv2.IMREAD_COLOR)
        out = out if decoded is None else decoded
    meta.update(
        {
            "background": kind,
            "blur_sigma": round(sigma, 2) if sigma > 0.45 else 0.0,
            "noise_sd": round(noise_sd, 2),
            "jpeg_quality": quality,
            "build": build,
            "light_elevation_deg": round(float(np.rad2deg(el)), 1),
        }
    )
    return out, masks, looks_used


@lru_cache(maxsize=1)
def _noise_bank() -> np.ndarray:
    """A fixed (1600, 1600, 3) uint8 bank of Gaussian sensor noise around 128 (sd :data:`_BANK_SD`), made on first use."""
    n = np.random.default_rng(9_000_000).standard_normal((1600, 1600, 3), dtype=np.float32)
    return np.asarray(np.clip(128 + _BANK_SD * n, 0, 255), np.uint8)


def _blend(img: np.ndarray, masks: np.ndarray, p: Painted, bit: int, barrel_bit: int) -> None:
    """Alpha-blend ``p`` into the uint8 image (only the pixels it covers) and set its mask bits."""
    W = img.shape[1]
    ys, xs = np.divmod(p.idx, p.shape[1])
    flat = (ys + p.y0) * W + (xs + p.x0)
    pix = img.reshape(-1, 3)
    edge = np.flatnonzero(p.alpha < 1)  # the anti-aliased fringe; the rest is opaque
    cur = pix[flat[edge]].astype(np.float32)
    blended = cur + (p.colour[edge] - cur) * p.alpha[edge, None]
    pix[flat] = (p.colour + 0.5).astype(np.uint8)
    pix[flat[edge]] = (blended + 0.5).astype(np.uint8)
    m = masks.reshape(-1)
    if bit:
        m[flat[p.inside]] |= bit
    if barrel_bit:
        m[flat[p.barrel]] |= barrel_bit


def _shadow_map(
    casters: list[Painted], shape: tuple[int, int], light: Light, cam: _Camera, rng: np.random.Generator
) -> np.ndarray:
    """(h, w) float32 in [0, 1] at 1/:data:`_Q` of the image's resolution: soft drop shadows of ``casters``, cast
    away from the light by their height."""
    occ = np.zeros(shape, np.float32)
    s = 1.0 / cam.mm_per_px()
    lx, ly, lz = light.direction
    for p in casters:
        h, w = p.shape
        small = cv2.resize(p.dense_alpha(), (max(1, w // _Q), max(1, h // _Q)), interpolation=cv2.INTER_AREA)
        d = 1.2 * p.height_mm * s / _Q / lz
        oy, ox = round(p.y0 / _Q - ly * d), round(p.x0 / _Q - lx * d)
        y0, x0 = max(oy, 0), max(ox, 0)
        y1, x1 = min(oy + small.shape[0], occ.shape[0]), min(ox + small.shape[1], occ.shape[1])
        if y1 > y0 and x1 > x0:
            sub = occ[y0:y1, x0:x1]
            np.maximum(sub, small[y0 - oy : y1 - oy, x0 - ox : x1 - ox], out=sub)
    return np.asarray(cv2.GaussianBlur(occ, (0, 0), float(rng.uniform(0.8, 2.5))), np.float32)
