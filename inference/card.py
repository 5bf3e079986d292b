"""The reference card: finding an ID-1 card in a photo and placing its sides to a fraction of a pixel.

The photo model's coarse card mask (brought to the photo's geometry) only locates candidates, largest first.
Each candidate's outline is redrawn from the photo's colours around the masked region, and the card is fitted
with a quadrilateral whose sides are lines fitted to the outline; each side is then moved onto the card's edge
to a fraction of a pixel. A candidate is kept only if it is a rectangle of the card's aspect. Without the photo
(or when its colours do not separate the card from the table) the coarse region alone is used, if it is large.

The corners' error is about a pixel for the card's length; :mod:`armscan.inference.measure` maps the four corners
to an 85.60 x 53.98 mm rectangle.
"""

from __future__ import annotations

import cv2
import numpy as np
from numpy.typing import NDArray

_CARD_CANDIDATES = 3
_CARD_MIN_CONTRAST = 6.0  # Lab units between the card's colour and the table's
CARD_SIDE_BIAS_PX = 0.2  # a side's edge sits this far off at most (blur, rounded corners, JPEG): added to its error
_COARSE_MIN_CELLS = 10.0  # a card outline taken from the coarse mask alone must be this many cells wide


def _order_corners(pts: NDArray[np.float64]) -> NDArray[np.float64]:
    """Four points in order around the quadrilateral, starting so that the first side is a long side."""
    c = pts.mean(axis=0)
    pts = pts[np.argsort(np.arctan2(pts[:, 1] - c[1], pts[:, 0] - c[0]))]
    sides = np.linalg.norm(pts - np.roll(pts, -1, axis=0), axis=1)
    if sides[0] + sides[2] < sides[1] + sides[3]:
        pts = np.roll(pts, -1, axis=0)
    return pts


def find_card(mask: NDArray[np.uint8], aspect: float, min_area: int, image: NDArray[np.uint8] | None = None,
              cell: float = 1.0) -> tuple[NDArray[np.float64], float] | None:
    """The card's four corners (long side first) and the standard error of its sides' positions (px), or None.

    The coarse ``mask`` only locates candidates (its regions, largest first). With ``image`` (the BGR photo at
    the mask's resolution, whose cells are ``cell`` pixels), each candidate's outline is redrawn from the photo's
    colours and its sides are placed to a fraction of a pixel (:func:`_card_from_colour`, :func:`_subpixel_sides`):
    a card is often only a few cells long. A candidate is kept only if it is a rectangle of the card's aspect.
    """
    n, labels, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
    order = 1 + np.argsort(-stats[1:, cv2.CC_STAT_AREA])
    for k in order[:_CARD_CANDIDATES]:
        if stats[k, cv2.CC_STAT_AREA] < min_area:
            break
        region = (labels == k).astype(np.uint8)
        if image is not None:
            precise = _card_from_colour(image, region, cell, aspect)
            if precise is not None:
                return precise
        fit = _coarse_card(region, aspect)
        if fit is not None and min(card_sides(fit)) >= _COARSE_MIN_CELLS * cell:  # big enough for its cells to do
            return fit, cell / 3.0
    return None


def card_sides(quad: NDArray[np.float64]) -> tuple[float, float]:
    """Mean lengths of the long pair and of the short pair of sides."""
    d = np.linalg.norm(quad - np.roll(quad, -1, axis=0), axis=1)
    return float(d[0] + d[2]) / 2, float(d[1] + d[3]) / 2


def _plausible(quad: NDArray[np.float64], aspect: float, tol: float = 0.12) -> bool:
    """A convex quadrilateral with near-right angles and the card's aspect (a tilted camera changes both a little)."""
    long, short = card_sides(quad)
    if short < 3 or not (1 - tol) * aspect <= long / short <= (1 + tol) * aspect:
        return False
    edges = np.roll(quad, -1, axis=0) - quad
    unit = edges / np.linalg.norm(edges, axis=1, keepdims=True)
    cosines = np.abs(np.sum(unit * np.roll(unit, -1, axis=0), axis=1))
    return bool(cosines.max() < 0.26)  # within 15 degrees of square


def _quad_of(region: NDArray[np.uint8]) -> tuple[NDArray[np.float64], NDArray[np.float64]] | None:
    """The region's minimum-area rectangle (corners in order, long side first) and its outline."""
    contours, _ = cv2.findContours(region, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    if not contours:
        return None
    contour = max(contours, key=cv2.contourArea)
    quad = cv2.boxPoints(cv2.minAreaRect(contour)).astype(np.float64)  # sides then fitted by _refine (perspective)
    return _order_corners(quad), contour.reshape(-1, 2).astype(np.float64)


def _coarse_card(region: NDArray[np.uint8], aspect: float) -> NDArray[np.float64] | None:
    """The card from the coarse region alone (no photo, or its colours do not separate it from the table)."""
    got = _quad_of(region)
    if got is None:
        return None
    quad = _refine(*got)
    return quad if _plausible(quad, aspect, tol=0.2) else None


def _card_from_colour(image: NDArray[np.uint8], region: NDArray[np.uint8], cell: float,
                      aspect: float) -> tuple[NDArray[np.float64], float] | None:
    """The card near the coarse ``region``, redrawn from the photo. Each pixel's colour distance (Lab) to the
    table (the median around the region) is thresholded halfway between the table's level and the card's
    (the region's median): the card's parts that the region touches, opened to drop the table's thin
    lines, give the card's rotated rectangle; the sides are then fitted to the outline (:func:`_refine`) and
    placed to a fraction of a pixel (:func:`_subpixel_sides`). None when that gives no rectangle of the card's
    aspect (a card the colour of the table, a region that is not a card).

    The search reaches a third of the region's size beyond it: the coarse region may cover only part of the card.
    """
    x, y, w, h = cv2.boundingRect(region)
    reach = int(0.35 * max(w, h) + 2 * cell) + 2
    x0, y0 = max(0, x - reach - 3), max(0, y - reach - 3)
    x1, y1 = min(image.shape[1], x + w + reach + 3), min(image.shape[0], y + h + reach + 3)
    lab = cv2.GaussianBlur(cv2.cvtColor(image[y0:y1, x0:x1], cv2.COLOR_BGR2LAB).astype(np.float32), (0, 0), 0.7)
    coarse = region[y0:y1, x0:x1]
    grown = cv2.dilate(coarse, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * reach + 1, 2 * reach + 1)))
    around = lab[grown == 0]
    if len(around) < 20:
        return None
    dist = np.linalg.norm(lab - np.median(around, axis=0), axis=2)  # (h, w): how far from the table's colour
    inner = cv2.erode(coarse, np.ones((3, 3), np.uint8), iterations=max(1, round(cell / 2)))
    low = float(np.median(dist[grown == 0]))
    high = float(np.median(dist[(inner if inner.any() else coarse) > 0]))
    if high - low < _CARD_MIN_CONTRAST:
        return None
    fg = cv2.morphologyEx((dist > (low + high) / 2).astype(np.uint8) & grown, cv2.MORPH_OPEN, np.ones((2, 2), np.uint8))
    k = int(np.clip(0.2 * min(w, h), 2, 9))
    square = np.ones((k, k), np.uint8)  # closed over a stripe's blurred edges and print, opened off protrusions:
    strong = cv2.morphologyEx(cv2.morphologyEx(fg, cv2.MORPH_CLOSE, square), cv2.MORPH_OPEN, square)  # the rough card
    contours, _ = cv2.findContours(strong, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    cv2.drawContours(strong, contours, -1, 1, thickness=cv2.FILLED)
    n, labels, stats, _ = cv2.connectedComponentsWithStats(strong, connectivity=8)
    overlap = np.bincount(labels[coarse > 0], minlength=n)[1:]
    keep = 1 + np.flatnonzero(overlap > 0.1 * max(int(overlap.max(initial=0)), 1))
    if n <= 1 or overlap.sum() < 0.3 * coarse.sum():
        return None
    parts = np.isin(labels, keep).astype(np.uint8)
    rough = cv2.boxPoints(cv2.minAreaRect(np.argwhere(parts)[:, ::-1].astype(np.float32))).astype(np.float64)
    rough = _order_corners(rough)
    if not _plausible(rough, aspect, tol=0.25) or parts.sum() < 0.75 * cv2.contourArea(rough.astype(np.float32)):
        return None
    contours, _ = cv2.findContours(fg, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    outline = np.concatenate([c.reshape(-1, 2) for c in contours]).astype(np.float64)
    # edges are placed on the photo's own values, which mix linearly across a blurred edge (Lab's do not)
    bgr = cv2.GaussianBlur(image[y0:y1, x0:x1].astype(np.float32), (0, 0), 0.7)
    linear = np.linalg.norm(bgr - np.median(bgr[grown == 0], axis=0), axis=2)
    sub = _subpixel_sides(linear, _refine(rough, outline))
    if sub is None or not _plausible(sub[0], aspect):
        return None
    return sub[0] + np.array([x0, y0], np.float64), sub[1]


def _subpixel_sides(dist: NDArray[np.float32], quad: NDArray[np.float64]) -> tuple[NDArray[np.float64], float] | None:
    """Each side of ``quad`` moved onto the card's edge in ``dist`` (how far each pixel's colour is from the
    table's): along the side's normal, the edge is where the profile crosses halfway between its levels inside
    and outside (a blurred step crosses there at the step). Returns the new corners and the largest standard
    error of a side's position (px), or None when the edges are not found."""
    lines, errors = [], []
    for i in range(4):
        a, b = quad[i], quad[(i + 1) % 4]
        length = float(np.linalg.norm(b - a))
        u = (b - a) / length
        normal = np.array([u[1], -u[0]])
        if (quad.mean(axis=0) - a) @ normal > 0:
            normal = -normal  # outward
        short = min(card_sides(quad))
        r = float(np.clip(0.15 * short, 1.5, 3.0))
        steps = np.arange(-r, r + 1e-9, 0.25)  # (S,)
        along = np.linspace(0.15 * length, 0.85 * length, max(5, int(0.7 * length * 2)))  # (P,)
        pts = a + along[:, None] * u  # (P, 2)
        xs = (pts[:, None, 0] + steps[None, :] * normal[0]).astype(np.float32)  # (P, S)
        ys = (pts[:, None, 1] + steps[None, :] * normal[1]).astype(np.float32)
        prof = cv2.remap(dist, xs, ys, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)  # (P, S)
        q = max(1, len(steps) // 4)
        inside, outside = np.median(prof[:, :q], axis=1), np.median(prof[:, -q:], axis=1)
        half = (inside + outside) / 2
        ok = inside - outside > 0.25 * max(float(np.median(inside - outside)), 1e-6)
        offs = []
        for p in np.flatnonzero(ok):
            above = prof[p] >= half[p]
            j = len(steps) - 1 - int(np.argmax(above[::-1]))  # last point at or above half, from outside
            if j >= len(steps) - 1 or not above[j]:
                continue
            f0, f1 = prof[p, j], prof[p, j + 1]
            t = (f0 - half[p]) / max(f0 - f1, 1e-6)
            offs.append((along[p], steps[j] + 0.25 * t))
        if len(offs) < 4:
            return None
        o = np.array(offs)
        med = np.median(o[:, 1])
        keep = np.abs(o[:, 1] - med) < max(0.75, 3 * 1.4826 * np.median(np.abs(o[:, 1] - med)))
        if keep.sum() < 4:
            return None
        o = o[keep]
        coef = np.polyfit(o[:, 0], o[:, 1], 1)  # offset along the normal as a line in the position along the side
        resid = o[:, 1] - np.polyval(coef, o[:, 0])
        errors.append(float(np.std(resid)) / np.sqrt(len(o)) + 0.05)
        p0 = a + np.polyval(coef, 0.0) * normal
        p1 = a + length * u + np.polyval(coef, length) * normal
        d = p1 - p0
        lines.append((p0, d / np.linalg.norm(d)))
    out = _intersect(lines, quad)
    if np.abs(out - quad).max() > 0.25 * min(card_sides(quad)) + 2:
        return None
    return out, max(errors)


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
