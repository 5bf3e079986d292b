"""Lengths in millimetres from the photo model's masks and a reference object of known size.

The photo model predicts four stride-4 masks: the weapon, its barrel, an ID-1 card and a ruler. Here,
without torch:

1. The masks are brought to the photo's geometry (at most ``MAX_SIDE`` px on the long side).
2. **Card**: the largest card region is fitted with a quadrilateral whose sides are lines fitted to
   the outline; the homography from its four corners to an 85.60 x 53.98 mm rectangle maps the
   table to millimetres, which also undoes a camera that is not quite above the table.
   **Ruler**: the ruler region's long axis is sampled across the photo; the period of its
   graduations (Fourier spectrum of the profile) gives the millimetres per pixel, and the
   hypothesis (1, 5 or 10 mm between the strongest ticks) is chosen by the ruler length it implies.
3. The weapon's outline is mapped to millimetres; its overall length is its extent along the bore (the
   barrel mask's long axis), or the long side of its minimum-area rectangle when no barrel is seen. The
   barrel's length is the extent of the barrel mask along the same axis.

Each length comes with an uncertainty (about two standard deviations): half a mask cell at each end
of the weapon, about a pixel for the card's length (its outline is redrawn from the photo's colours
around the masked region; the ruler: 0.5%), plus 1% for the flatness and lens assumptions.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import cv2
import numpy as np
from numpy.typing import NDArray

MAX_SIDE = 1024
#: Probability above which a mask cell belongs to the object. The masks learn each cell's covered share,
#: so a thin barrel (a third of a cell wide) stays under 0.5: the weapon and barrel are read lower.
THRESHOLDS = {"weapon": 0.3, "barrel": 0.3, "card": 0.4, "ruler": 0.5}
PROJECTIVE_MIN_PX = 120  # a card this long (measuring pixels) or longer also fits a homography
STANDARD_RULERS_MM = (150.0, 200.0, 300.0, 500.0)
_FLOOR = 0.01  # relative: the weapon lies flat on the table, the lens has no distortion
Reference = Literal["card", "ruler"]


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


def _main_parts(mask: NDArray[np.uint8], min_area: int, share: float = 0.1) -> NDArray[np.uint8] | None:
    """The largest region and every region at least ``share`` of its size (a thin stock can split the mask)."""
    n, labels, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
    if n <= 1:
        return None
    areas = stats[1:, cv2.CC_STAT_AREA]
    if areas.max() < min_area:
        return None
    keep = 1 + np.flatnonzero(areas >= share * areas.max())
    return np.isin(labels, keep).astype(np.uint8)


def _order_corners(pts: NDArray[np.float64]) -> NDArray[np.float64]:
    """Four points in order around the quadrilateral, starting so that the first side is a long side."""
    c = pts.mean(axis=0)
    pts = pts[np.argsort(np.arctan2(pts[:, 1] - c[1], pts[:, 0] - c[0]))]
    sides = np.linalg.norm(pts - np.roll(pts, -1, axis=0), axis=1)
    if sides[0] + sides[2] < sides[1] + sides[3]:
        pts = np.roll(pts, -1, axis=0)
    return pts


def card_corners(mask: NDArray[np.uint8], aspect: float, min_area: int, image: NDArray[np.uint8] | None = None,
                 cell: float = 1.0) -> NDArray[np.float64] | None:
    """The four corners of the card region, or None when it is not a plausible card.

    With ``image`` (the BGR photo at the mask's resolution, whose cells are ``cell`` pixels), the coarse
    region is first redrawn from the photo itself (:func:`_card_from_colour`): the mask is a quarter of
    the model's input resolution, which leaves a card only a few cells wide.
    """
    region = _largest(mask, min_area)
    if region is None:
        return None
    if image is not None:
        precise = _card_from_colour(image, region, cell)
        region = precise if precise is not None else region
    contours, _ = cv2.findContours(region, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    hull = cv2.convexHull(max(contours, key=cv2.contourArea))
    perimeter = cv2.arcLength(hull, True)
    quad = None
    for eps in (0.01, 0.02, 0.03, 0.04, 0.06):
        approx = cv2.approxPolyDP(hull, eps * perimeter, True)
        if len(approx) == 4:
            quad = approx.reshape(4, 2).astype(np.float64)
            break
    if quad is None:  # rounded corners can defeat the polygon fit: the rotated rectangle is close enough
        quad = cv2.boxPoints(cv2.minAreaRect(hull)).astype(np.float64)
    quad = _refine(_order_corners(quad), max(contours, key=cv2.contourArea).reshape(-1, 2).astype(np.float64))
    sides = np.linalg.norm(quad - np.roll(quad, -1, axis=0), axis=1)
    ratio = (sides[0] + sides[2]) / max(sides[1] + sides[3], 1e-6)
    if not 0.7 * aspect <= ratio <= 1.35 * aspect:
        return None
    return quad


def _card_from_colour(image: NDArray[np.uint8], region: NDArray[np.uint8], cell: float) -> NDArray[np.uint8] | None:
    """The card's pixels near the coarse ``region``: those whose colour (Lab) stands out from the table
    around it (Otsu's threshold on the distance to the surroundings' median colour), holes filled.
    None when that does not give one region of about the coarse one's size (a card the colour of the table)."""
    x, y, w, h = cv2.boundingRect(region)
    m = int(np.ceil(2 * cell)) + 2
    x0, y0 = max(0, x - m), max(0, y - m)
    x1, y1 = min(image.shape[1], x + w + m), min(image.shape[0], y + h + m)
    lab = cv2.cvtColor(image[y0:y1, x0:x1], cv2.COLOR_BGR2LAB).astype(np.float32)
    k = max(3, int(2 * cell) | 1)
    near = cv2.dilate(region[y0:y1, x0:x1], np.ones((k, k), np.uint8))
    background = lab[near == 0]
    if len(background) < 20:
        return None
    dist = np.linalg.norm(lab - np.median(background, axis=0), axis=2)
    scaled = np.clip(dist * (255.0 / max(float(dist.max()), 1e-6)), 0, 255).astype(np.uint8)
    _, fg = cv2.threshold(scaled, 0, 1, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    fg = cv2.morphologyEx(fg & near, cv2.MORPH_CLOSE, np.ones((3, 3), np.uint8))
    n, labels, stats, _ = cv2.connectedComponentsWithStats(fg, connectivity=8)
    if n <= 1:
        return None
    best = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    contours, _ = cv2.findContours((labels == best).astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    filled = np.zeros_like(fg)
    cv2.drawContours(filled, contours, -1, 1, thickness=cv2.FILLED)
    ratio = float(filled.sum()) / max(float(region[y0:y1, x0:x1].sum()), 1.0)
    if not 0.6 <= ratio <= 1.6:
        return None
    out = np.zeros_like(region)
    out[y0:y1, x0:x1] = filled
    return out


def _refine(quad: NDArray[np.float64], contour: NDArray[np.float64]) -> NDArray[np.float64]:
    """Corners as the intersections of lines fitted to each side's contour points (away from the rounded
    corners): every point of the outline counts, not only the four polygon vertices."""
    lines = []
    for i in range(4):
        a, b = quad[i], quad[(i + 1) % 4]
        d = b - a
        length = float(np.linalg.norm(d))
        if length < 4:
            return quad
        u = d / length
        rel = contour - a
        along, across = rel @ u, rel @ np.array([-u[1], u[0]])
        near = (along > 0.15 * length) & (along < 0.85 * length) & (np.abs(across) < max(2.0, 0.08 * length))
        if near.sum() < 5:
            return quad
        vx, vy, x0, y0 = cv2.fitLine(contour[near].astype(np.float32), cv2.DIST_HUBER, 0, 0.01, 0.01).ravel()
        lines.append((np.array([x0, y0], np.float64), np.array([vx, vy], np.float64)))
    out = _intersect(lines, quad)
    return out if np.abs(out - quad).max() < 0.1 * np.linalg.norm(quad[0] - quad[2]) else quad


Line = tuple[NDArray[np.float64], NDArray[np.float64]]  # a point and a unit direction


def _intersect(lines: list[Line], fallback: NDArray[np.float64]) -> NDArray[np.float64]:
    out = np.empty_like(fallback)
    for i in range(4):  # corner i lies between side i-1 and side i
        (p, r), (q, s) = lines[i - 1], lines[i]
        den = r[0] * s[1] - r[1] * s[0]
        if abs(den) < 1e-6:
            return fallback
        t = ((q - p)[0] * s[1] - (q - p)[1] * s[0]) / den
        out[i] = p + t * r
    return out


def _plane_map(corners: NDArray[np.float64], size_mm: tuple[float, float], projective: bool) -> NDArray[np.float64]:
    """The map from image pixels to the table in mm given by the card's four corners: a homography (3 x 3)
    when ``projective``, else the least-squares affine map (2 x 3).

    A homography from a card that is only a few dozen pixels wide extrapolates wildly across a long gun
    several card lengths away (a pixel of error in a corner can double a length); the affine map stays
    steady there and its error from a camera tilted by up to ~12 degrees is a few percent. So the
    homography is used only for large cards (:data:`PROJECTIVE_MIN_PX`) and only where both maps agree.
    """
    w, h = size_mm
    dst = np.array([[0, 0], [w, 0], [w, h], [0, h]], np.float64)
    if projective:
        return np.asarray(cv2.getPerspectiveTransform(corners.astype(np.float32), dst.astype(np.float32)), np.float64)
    sol, *_ = np.linalg.lstsq(np.hstack([corners, np.ones((4, 1))]), dst, rcond=None)  # (3, 2)
    return np.asarray(sol.T, np.float64)


def _to_plane(pts: NDArray[np.float64], hom: NDArray[np.float64] | None, scale: float) -> NDArray[np.float64]:
    if hom is None:
        return pts * scale
    if hom.shape == (2, 3):
        return np.asarray(pts @ hom[:, :2].T + hom[:, 2], np.float64)
    return np.asarray(cv2.perspectiveTransform(pts.reshape(-1, 1, 2), hom).reshape(-1, 2), np.float64)


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
    weapon = _main_parts(at_photo("weapon"), min_area)
    hom: NDArray[np.float64] | None = None
    mm_px, rel_ref, corners, note = 0.0, 0.0, None, ""
    reference: Reference | None = None
    bgr: NDArray[np.uint8] = np.asarray(cv2.resize(image, (w, h), interpolation=cv2.INTER_AREA) if s < 1 else image,
                                        np.uint8)
    quad = card_corners(at_photo("card"), card_mm[0] / card_mm[1], max(9, int(1.5 * cell * cell)), bgr, cell)
    if quad is not None:
        sides = np.linalg.norm(quad - np.roll(quad, -1, axis=0), axis=1)
        hom, reference = _plane_map(quad, card_mm, projective=False), "card"
        if weapon is not None and (sides[0] + sides[2]) / 2 >= PROJECTIVE_MIN_PX:
            proj = _plane_map(quad, card_mm, projective=True)
            flat, tilted = (_extent(_to_plane(_outline(weapon), m, 0.0))[0] for m in (hom, proj))
            if abs(tilted - flat) <= 0.1 * flat:
                hom = proj
        rel_ref = 1.0 / np.sqrt(3) / ((sides[0] + sides[2]) / 2)  # its sides are redrawn from the photo: ~1 px
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
                         note=note)
    if reference is None:
        return result
    if weapon is None:
        result.note = "no weapon outline to measure"
        return result
    to_mm = mm_px / s  # per measuring pixel, for the ruler (no homography)
    outline = _to_plane(_outline(weapon), hom, to_mm)
    overall, axis = _extent(outline)
    barrel = _main_parts(at_photo("barrel"), max(4, min_area // 4), share=0.2)
    barrel_mm = _to_plane(_outline(barrel), hom, to_mm) if barrel is not None else None
    if barrel_mm is not None:  # lengths run along the bore: a revolver's slanted grip must not tilt the axis
        b_len, b_axis = _extent(barrel_mm)
        if b_len >= 0.25 * overall:  # a long enough stretch of barrel to trust its direction
            axis = b_axis
            proj = outline @ axis
            overall = float(proj.max() - proj.min())
    cell_mm = cell * to_mm
    rel = np.sqrt((cell_mm / np.sqrt(6) / max(overall, 1e-6)) ** 2 + rel_ref**2 + (_FLOOR / 2) ** 2)
    result.overall = Length(round(overall, 1), round(2 * rel * overall, 1))
    if barrel_mm is not None:
        proj = barrel_mm @ axis
        length = float(proj.max() - proj.min())
        rel_b = np.sqrt((cell_mm / np.sqrt(6) / max(length, 1e-6)) ** 2 + rel_ref**2 + (_FLOOR / 2) ** 2)
        result.barrel = Length(round(length, 1), round(2 * rel_b * length, 1))
    return result
