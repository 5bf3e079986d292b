"""Lengths in millimetres from the photo model's masks and a reference object of known size.

The photo model predicts four stride-4 masks: the weapon, its barrel, an ID-1 card and a ruler. Here,
without torch:

1. The masks are brought to the photo's geometry (at most ``MAX_SIDE`` px on the long side).
2. **Card**: the card's four corners are found to a fraction of a pixel (:mod:`armscan.inference.card`);
   a map from them to an 85.60 x 53.98 mm rectangle takes the table to millimetres: for a small card a
   similarity (one scale, from all four sides at once), for a larger one an affine map or a homography,
   which also undo a camera that is not quite above the table (:func:`_plane_map`).
   **Ruler**: the ruler region's long axis is sampled across the photo; the period of its
   graduations (Fourier spectrum of the profile) gives the millimetres per pixel, and the
   hypothesis (1, 5 or 10 mm between the strongest ticks) is chosen by the ruler length it implies.
3. The weapon is the mask's largest region and the sizeable regions near it (a split stock), not a tool
   across the table that the mask also took (:func:`_main_parts`). Its outline is mapped to millimetres;
   its overall length is its extent along the bore (the barrel mask's long axis), or the long side of its
   minimum-area rectangle when no barrel is seen. The barrel's length is the extent of the barrel mask
   along the same axis.

Each length comes with an uncertainty (about two standard deviations): half a mask cell at each end
of the weapon, about a pixel for the card's length (its outline is redrawn from the photo's colours
around the masked region; the ruler: 0.5%), plus 1% for the flatness and lens assumptions.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import cv2
import numpy as np
from numpy.typing import NDArray

from armscan.inference.card import CARD_SIDE_BIAS_PX, card_sides, find_card

MAX_SIDE = 1024
#: Probability above which a mask cell belongs to the object. The masks learn each cell's covered share,
#: so a thin barrel (a third of a cell wide) stays under 0.5: the weapon and barrel are read lower.
THRESHOLDS = {"weapon": 0.3, "barrel": 0.3, "card": 0.4, "ruler": 0.5}
PROJECTIVE_MIN_PX = 120  # a card this long (measuring pixels) or longer also fits a homography
STANDARD_RULERS_MM = (150.0, 200.0, 300.0, 500.0)
_FLOOR = 0.01  # relative: the weapon lies flat on the table, the lens has no distortion
Reference = Literal["card", "ruler"]
Mapping = Literal["similarity", "affine", "projective"]


@dataclass
class Length:
    """A measured length: value and uncertainty (about 2 sigma) in millimetres."""

    mm: float
    plus_minus_mm: float


@dataclass
class Measurement:
    """What :func:`measure` found. ``reference`` is None when no card or ruler could be used; ``note`` says why."""

    reference: Reference | None
    overall: Length | None = None
    barrel: Length | None = None
    mm_per_px: float | None = None  # at the photo's centre, in original pixels
    card_corners: list[tuple[float, float]] | None = None  # original pixels
    ends: list[tuple[float, float]] | None = None  # the overall length's two ends on its axis, original pixels
    mapping: Mapping | None = None  # how the card's corners take the photo to the table (:func:`_plane_map`)
    note: str = ""


def _largest(mask: NDArray[np.uint8], min_area: int) -> NDArray[np.uint8] | None:
    n, labels, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
    if n <= 1:
        return None
    k = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    if stats[k, cv2.CC_STAT_AREA] < min_area:
        return None
    out: NDArray[np.uint8] = (labels == k).astype(np.uint8)
    return out


def _main_parts(mask: NDArray[np.uint8], min_area: int, share: float = 0.1,
                cell: float | None = None) -> NDArray[np.uint8] | None:
    """The largest region and every region at least ``share`` of its size (a thin stock can split the mask).

    With ``cell`` (a mask cell, in pixels) a region is kept only when it lies near those kept so far: within two
    cells or a tenth of their long side. A split stock or barrel lies that close; a tool or a box across the
    table that the mask also took for a weapon does not, and would stretch the length to reach it.
    """
    n, labels, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
    if n <= 1:
        return None
    areas = stats[1:, cv2.CC_STAT_AREA]
    if areas.max() < min_area:
        return None
    candidates = 1 + np.flatnonzero(areas >= share * areas.max())
    if cell is None:
        return np.isin(labels, candidates).astype(np.uint8)
    kept = [1 + int(np.argmax(areas))]
    rest = [int(k) for k in candidates if k != kept[0]]
    while rest:
        core = np.isin(labels, kept).astype(np.uint8)
        x, y, w, h = cv2.boundingRect(core)
        gaps = _gaps(labels, n, core)
        near = [k for k in rest if gaps[k - 1] <= max(2.0 * cell, 0.1 * max(w, h))]
        if not near:
            break
        kept += near
        rest = [k for k in rest if k not in near]
    return np.isin(labels, kept).astype(np.uint8)


def _gaps(labels: NDArray[Any], n: int, anchor: NDArray[np.uint8]) -> NDArray[np.float64]:
    """For each labelled region 1..n-1, its distance in pixels to ``anchor`` (0 where they touch)."""
    dist = cv2.distanceTransform(1 - anchor, cv2.DIST_L2, 3)
    return np.array([float(dist[labels == k].min()) for k in range(1, n)])


def _near(mask: NDArray[np.uint8], anchor: NDArray[np.uint8], reach: float) -> NDArray[np.uint8]:
    """The regions of ``mask`` that come within ``reach`` pixels of ``anchor``: a barrel on the weapon (or just
    past a weapon mask that lost the muzzle), not a long thin tool elsewhere on the table that the barrel mask
    also took."""
    n, labels = cv2.connectedComponents(mask, connectivity=8)
    if n <= 1:
        return mask
    keep = 1 + np.flatnonzero(_gaps(labels, n, anchor) <= reach)
    return np.isin(labels, keep).astype(np.uint8)


_TILT_PER_SIDE = 0.25  # relative scale change across the photo's long side that a camera tilted ~12 deg can make
_WEAPON_MIN_CONTRAST = 10.0  # Lab units (lightness at half weight) between the weapon's pixels and the table's


def _weapon_from_colour(image: NDArray[np.uint8], weapon: NDArray[np.uint8], cell: float) -> NDArray[np.uint8]:
    """The weapon's region redrawn from the photo around the coarse ``weapon`` region: the pixels whose colour
    stands out from the table's (the median of a ring around the region; lightness counts half, so that soft
    shadows stay table) and that form regions lying mostly on the coarse one. The coarse region at a stride of
    a few pixels often loses a thin barrel or a dark stock, or spills over the table by a cell; the photo does
    not. The coarse region itself is returned when the photo does not separate the weapon from the table."""
    x, y, w, h = cv2.boundingRect(weapon)
    reach = int(0.2 * max(w, h) + 2 * cell)
    x0, y0 = max(0, x - reach), max(0, y - reach)
    x1, y1 = min(image.shape[1], x + w + reach), min(image.shape[0], y + h + reach)
    coarse = weapon[y0:y1, x0:x1]
    lab = np.asarray(cv2.GaussianBlur(cv2.cvtColor(image[y0:y1, x0:x1], cv2.COLOR_BGR2LAB).astype(np.float32),
                                      (0, 0), 0.7), np.float32) * np.array([0.3, 1.0, 1.0], np.float32)
    k = max(3, int(2 * cell) | 1)
    near = np.asarray(cv2.dilate(coarse, np.ones((k, k), np.uint8)), np.uint8)
    ring = np.asarray(cv2.dilate(near, np.ones((k, k), np.uint8), iterations=2), np.uint8) & (1 - near)
    if ring.sum() < 20:
        return weapon
    dist = np.linalg.norm(lab - np.median(lab[ring > 0], axis=0), axis=2)
    table = dist[ring > 0]
    low = float(np.median(table))
    mad = float(np.median(np.abs(table - low)))
    fg = (dist > low + max(_WEAPON_MIN_CONTRAST, 6 * mad)).astype(np.uint8)
    fg = cv2.morphologyEx(fg, cv2.MORPH_OPEN, np.ones((3, 3), np.uint8))
    n, labels, stats, _ = cv2.connectedComponentsWithStats(fg, connectivity=8)
    on = np.bincount(labels[near > 0], minlength=n)[1:]
    share = on / np.maximum(stats[1:, cv2.CC_STAT_AREA], 1)
    keep = 1 + np.flatnonzero((share > 0.6) & (stats[1:, cv2.CC_STAT_AREA] > 2 * cell * cell))
    parts = np.isin(labels, keep).astype(np.uint8)
    if parts.sum() < 0.5 * coarse.sum():  # the photo does not show the weapon apart from the table
        return weapon
    out = np.zeros_like(weapon)
    out[y0:y1, x0:x1] = parts
    return out


def _plane_map(corners: NDArray[np.float64], size_mm: tuple[float, float], kind: Mapping) -> NDArray[np.float64]:
    """The map from image pixels to the table in mm given by the card's four corners (in order around it, long
    side first): a homography (3 x 3) for ``projective``, else the least-squares affine map or similarity (2 x 3).

    A homography from a card that is only a few dozen pixels wide extrapolates wildly across a long gun
    several card lengths away (a pixel of error in a corner can double a length); the affine map stays
    steady there and its error from a camera tilted by up to ~12 degrees is a few percent. So the
    homography is used only for large cards (:data:`PROJECTIVE_MIN_PX`) and only where both maps agree.
    The affine map still takes each of its two scales from one pair of sides, the short pair only some 30 px
    long on a small card: a pixel of error there is 3% of the length. A similarity (rotation and one scale)
    takes its scale from all four sides at once and is the better choice below :data:`PROJECTIVE_MIN_PX` (held-out
    renders, bench/photo_length.py): what it ignores, a tilted camera's stretch, is smaller than that noise.
    """
    w, h = size_mm
    dst = np.array([[0, 0], [w, 0], [w, h], [0, h]], np.float64)
    if kind == "projective":
        return np.asarray(cv2.getPerspectiveTransform(corners.astype(np.float32), dst.astype(np.float32)), np.float64)
    if kind == "similarity":  # least squares in complex numbers: dst = z * src + c, z = scale * e^(i angle)
        src_c, dst_c = corners - corners.mean(axis=0), dst - dst.mean(axis=0)
        a, b = src_c[:, 0] + 1j * src_c[:, 1], dst_c[:, 0] + 1j * dst_c[:, 1]
        z = complex(np.vdot(a, b) / np.vdot(a, a))
        rot = np.array([[z.real, -z.imag], [z.imag, z.real]])
        return np.hstack([rot, (dst.mean(axis=0) - rot @ corners.mean(axis=0))[:, None]])
    sol, *_ = np.linalg.lstsq(np.hstack([corners, np.ones((4, 1))]), dst, rcond=None)  # (3, 2)
    return np.asarray(sol.T, np.float64)


def _to_plane(pts: NDArray[np.float64], hom: NDArray[np.float64] | None, scale: float) -> NDArray[np.float64]:
    if hom is None:
        return pts * scale
    if hom.shape == (2, 3):
        return np.asarray(pts @ hom[:, :2].T + hom[:, 2], np.float64)
    return np.asarray(cv2.perspectiveTransform(pts.reshape(-1, 1, 2), hom).reshape(-1, 2), np.float64)


def _from_plane(pts: NDArray[np.float64], hom: NDArray[np.float64] | None, scale: float) -> NDArray[np.float64]:
    """The inverse of :func:`_to_plane`: table millimetres back to measuring pixels."""
    if hom is None:
        return pts / scale
    full = hom if hom.shape == (3, 3) else np.vstack([hom, [0.0, 0.0, 1.0]])
    return _to_plane(pts, np.linalg.inv(full), 0.0)


def _outline(region: NDArray[np.uint8]) -> NDArray[np.float64]:
    contours, _ = cv2.findContours(region, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    return np.concatenate([c.reshape(-1, 2) for c in contours]).astype(np.float64)


def ruler_scale(gray: NDArray[np.uint8], mask: NDArray[np.uint8], min_area: int) -> tuple[float, str]:
    """Millimetres per pixel read off the ruler's graduations, or (0, why not); (0, "") when there is no ruler."""
    region = _largest(mask, min_area)
    if region is None:
        return 0.0, ""
    (cx, cy), (rw, rh), angle = cv2.minAreaRect(_outline(region).astype(np.float32))
    length, width = max(rw, rh), min(rw, rh)
    if length < 40 or width < 4 or length / max(width, 1e-6) < 3:
        return 0.0, "the ruler region is not long and narrow"
    theta = np.deg2rad(angle if rw >= rh else angle + 90.0)
    u, v = np.array([np.cos(theta), np.sin(theta)]), np.array([-np.sin(theta), np.cos(theta)])
    n = int(length * 2)  # about half-pixel steps along the ruler
    t = np.linspace(-length / 2 * 0.95, length / 2 * 0.95, n)
    offsets = np.linspace(-width / 2 * 0.85, width / 2 * 0.85, 9)
    xs = (cx + t[None, :] * u[0] + offsets[:, None] * v[0]).astype(np.float32)
    ys = (cy + t[None, :] * u[1] + offsets[:, None] * v[1]).astype(np.float32)
    profiles = cv2.remap(gray.astype(np.float32), xs, ys, cv2.INTER_LINEAR)  # (9, n)
    profiles = profiles - cv2.blur(profiles, (max(3, n // 20) | 1, 1))  # remove shading
    spectrum = (np.abs(np.fft.rfft(profiles * np.hanning(n)[None, :], axis=1)) ** 2).sum(axis=0)
    freqs = np.fft.rfftfreq(n, d=float(t[1] - t[0]))  # cycles per pixel
    valid = (freqs > 1.0 / (length / 4)) & (freqs < 1.0 / 2.2)  # periods from 2.2 px to a quarter of the ruler
    if not valid.any():
        return 0.0, "the ruler is too small in the photo to read its graduations"
    k = int(np.flatnonzero(valid)[np.argmax(spectrum[valid])])
    if spectrum[k] < 8.0 * np.median(spectrum[valid]):
        return 0.0, "no regular graduations found on the ruler"
    if 0 < k < len(spectrum) - 1:  # parabolic interpolation of the peak
        a, b, c = np.log(spectrum[k - 1 : k + 2] + 1e-9)
        k_f = k + 0.5 * (a - c) / (a - 2 * b + c) if a - 2 * b + c != 0 else float(k)
    else:
        k_f = float(k)
    period_px = 1.0 / (k_f * (freqs[1] - freqs[0]))
    best = min(((abs(length * step / period_px - std) / std, step) for step in (1.0, 5.0, 10.0)
                for std in STANDARD_RULERS_MM), key=lambda x: x[0])
    if best[0] > 0.25:
        return 0.0, "the ruler's graduations do not match a standard ruler"
    return best[1] / period_px, ""


def _extent(pts_mm: NDArray[np.float64]) -> tuple[float, NDArray[np.float64]]:
    """The long side of the minimum-area rectangle of ``pts_mm`` and its unit direction."""
    (_, _), (w, h), angle = cv2.minAreaRect(pts_mm.astype(np.float32))
    theta = np.deg2rad(angle if w >= h else angle + 90.0)
    return float(max(w, h)), np.array([np.cos(theta), np.sin(theta)])


def measure(masks: NDArray[np.float32], image: NDArray[np.uint8], card_mm: tuple[float, float],
            input_scale: float, mask_stride: int, mask_names: list[str]) -> Measurement:
    """Measure the weapon in ``image`` (BGR, original size) from mask probabilities ``masks`` (M, h, w).

    ``masks`` cover the letterboxed model input (top-left aligned); ``input_scale`` is model-input
    pixels per original pixel.
    """
    h0, w0 = image.shape[:2]
    s = min(1.0, MAX_SIDE / max(h0, w0))  # measuring resolution, relative to the original
    w, h = max(1, round(w0 * s)), max(1, round(h0 * s))
    crop_h = min(masks.shape[1], int(np.ceil(h0 * input_scale / mask_stride)))
    crop_w = min(masks.shape[2], int(np.ceil(w0 * input_scale / mask_stride)))
    k = {name: i for i, name in enumerate(mask_names)}
    # The crop covers (crop_w * stride / input_scale) original pixels, a hair more than the photo: map it whole.
    full_w, full_h = crop_w * mask_stride / input_scale * s, crop_h * mask_stride / input_scale * s

    def at_photo(name: str) -> NDArray[np.uint8]:
        m = masks[k[name], :crop_h, :crop_w]
        big = cv2.resize(m, (max(1, round(full_w)), max(1, round(full_h))), interpolation=cv2.INTER_LINEAR)
        return (big[:h, :w] > THRESHOLDS.get(name, 0.5)).astype(np.uint8)

    cell = mask_stride / input_scale * s  # one mask cell, in measuring pixels
    min_area = int(max(16, 4 * cell * cell))
    weapon = _main_parts(at_photo("weapon"), min_area, cell=cell)
    hom: NDArray[np.float64] | None = None
    mm_px, rel_ref, corners, note = 0.0, 0.0, None, ""
    mapping: Mapping | None = None
    reference: Reference | None = None
    bgr: NDArray[np.uint8] = np.asarray(cv2.resize(image, (w, h), interpolation=cv2.INTER_AREA) if s < 1 else image,
                                        np.uint8)
    card = find_card(at_photo("card"), card_mm[0] / card_mm[1], max(9, int(1.5 * cell * cell)), bgr, cell)
    if card is not None:
        quad, side_se = card
        long, short = card_sides(quad)
        mapping = "similarity" if long < PROJECTIVE_MIN_PX else "affine"
        hom, reference = _plane_map(quad, card_mm, mapping), "card"
        if weapon is not None and long >= PROJECTIVE_MIN_PX:
            proj = _plane_map(quad, card_mm, "projective")
            flat, tilted = (_extent(_to_plane(_outline(weapon), m, 0.0))[0] for m in (hom, proj))
            if abs(tilted - flat) <= 0.1 * flat:
                hom, mapping = proj, "projective"
        rel_ref = float(np.hypot(side_se, CARD_SIDE_BIAS_PX) * np.hypot(1 / long, 1 / short))
        if mapping == "similarity":  # one scale: the card's own stretch (a tilted camera's, and noise) is not undone
            rel_ref = float(np.hypot(rel_ref, 0.5 * abs(long / short * card_mm[1] / card_mm[0] - 1)))
        corners = [(float(x / s), float(y / s)) for x, y in quad]
        centre = np.array([[w / 2, h / 2], [w / 2 + 1, h / 2]], np.float64)
        mm_px = float(np.linalg.norm(np.diff(_to_plane(centre, hom, 0.0), axis=0))) * s
    else:
        gray: NDArray[np.uint8] = np.asarray(cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY), np.uint8)
        scale, why = ruler_scale(gray, at_photo("ruler"), min_area)
        if scale > 0:
            reference, mm_px, rel_ref = "ruler", scale * s, 0.005
        else:
            note = f"a ruler was found but not read: {why}" if why else \
                "no card or ruler found: a length needs a reference of known size beside the weapon"
    result = Measurement(reference=reference, mm_per_px=round(mm_px, 5) if mm_px else None, card_corners=corners,
                         mapping=mapping, note=note)
    if reference is None:
        return result
    if weapon is None:
        result.note = "no weapon outline to measure"
        return result
    to_mm = mm_px / s  # per measuring pixel, for the ruler (no homography)
    coarse = weapon
    coarse_outline = _to_plane(_outline(weapon), hom, to_mm)
    weapon = _weapon_from_colour(bgr, weapon, cell)
    outline = _to_plane(_outline(weapon), hom, to_mm)
    overall, axis = _extent(outline)
    barrel = _main_parts(_near(at_photo("barrel"), coarse, 4 * cell), max(4, min_area // 4), share=0.2)
    barrel_mm = _to_plane(_outline(barrel), hom, to_mm) if barrel is not None else None
    if barrel_mm is not None:  # lengths run along the bore: a revolver's slanted grip must not tilt the axis
        b_len, b_axis = _extent(barrel_mm)
        if b_len >= 0.25 * overall:  # a long enough stretch of barrel to trust its direction
            axis = b_axis
        outline = np.vstack([outline, barrel_mm])  # the weapon holds its barrel: overall >= barrel
        proj = outline @ axis
        overall = float(proj.max() - proj.min())
    proj = outline @ axis
    centre = outline.mean(axis=0)
    line = np.stack([centre + (proj.min() - centre @ axis) * axis, centre + (proj.max() - centre @ axis) * axis])
    result.ends = [(float(x / s), float(y / s)) for x, y in _from_plane(line, hom, to_mm)]
    cell_mm = cell * to_mm if hom is None else float(np.linalg.norm(np.diff(_to_plane(
        np.array([[w / 2, h / 2], [w / 2 + cell, h / 2]]), hom, 0.0), axis=0)))
    # about 2 sigma, relative: the reference, the tilt an affine map leaves (growing with the distance from the
    # card), the weapon's ends (a cell, and how far the photo's outline moved them from the coarse mask's)
    cp = coarse_outline @ axis
    ends_moved = abs(float(cp.max() - cp.min()) - overall) / max(overall, 1e-6)
    tilt = 0.0
    if hom is not None and hom.shape == (2, 3) and corners is not None:
        gap = np.linalg.norm(_outline(weapon).mean(axis=0) - np.mean(np.asarray(corners) * s, axis=0))
        tilt = _TILT_PER_SIDE * float(gap) / max(w, h)
    rel = np.sqrt((2 * rel_ref) ** 2 + tilt**2 + ends_moved**2 + (cell_mm / max(overall, 1e-6)) ** 2 + _FLOOR**2)
    result.overall = Length(round(overall, 1), round(rel * overall, 1))
    if barrel_mm is not None:
        proj = barrel_mm @ axis
        length = float(proj.max() - proj.min())
        rel_b = np.sqrt((cell_mm / np.sqrt(6) / max(length, 1e-6)) ** 2 + rel_ref**2 + (_FLOOR / 2) ** 2)
        result.barrel = Length(round(length, 1), round(2 * rel_b * length, 1))
    return result
