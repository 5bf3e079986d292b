"""The reference card: finding an ID-1 card in a photo and placing its sides to a fraction of a pixel.

The photo model's coarse card mask (brought to the photo's geometry) only locates candidates, largest first.
Each candidate's outline is redrawn from the photo's colours around the masked region (their distance to the
table's few main colours: a cutting mat's grid or wood's grain is table too), and the card is fitted with a
quadrilateral whose sides are lines fitted to the outline; each side is then moved onto the card's edge to a
fraction of a pixel. A candidate is kept only if it is a rectangle of the card's aspect. A card is small at
the model's input (a cell or two), so its mask is often empty or lies on another object: when the mask gives
no card that stands alone on the table, the photo itself is searched for compact regions off the table's
colours, and a card found there must stand alone, with its edge found all around. Without the photo (or when
its colours do not separate the card from the table) the coarse region alone is used, if it is large.

The corners' error is about a pixel for the card's length; :mod:`armscan.inference.measure` maps the four corners
to an 85.60 x 53.98 mm rectangle.
"""

from __future__ import annotations

import cv2
import numpy as np
from numpy.typing import NDArray

_CARD_CANDIDATES = 3  # the mask's largest regions tried first; its smaller ones only as the photo's search
_PHOTO_MIN_AREA = 0.1  # of ``min_area``: a region this small is still a candidate when the photo can confirm it
_CARD_MIN_CONTRAST = 6.0  # Lab units between the card's colour and the table's
CARD_SIDE_BIAS_PX = 0.2  # a side's edge sits this far off at most (blur, rounded corners, JPEG): added to its error
_TABLE_COLOURS = 3  # the table's colours are clustered into this many...
_TABLE_SAMPLES = 1500  # ...from this many pixels around the candidate...
_TABLE_MIN_SHARE = 0.05  # ...and a cluster with less of them is a stray object, not the table
_COARSE_MIN_CELLS = 10.0  # a card outline taken from the coarse mask alone must be this many cells wide
# A card that stands alone fills this share of its rough rectangle, has its edge found along this share of
# every side, and just outside it colours at most this far from the table's, of the way to the card's
# (held-out renders: no look-alike passes all three, 9 true cards in 10 do)
_ALONE_MIN_FILL, _ALONE_MIN_SUPPORT, _ALONE_MAX_OUTSIDE = 0.87, 0.5, 0.3
_REACH_TRIES = 3  # searches around a mask region, each wider than the last
_SEARCH_SIDE = 512  # px: the photo is searched for cards at this size at most
_SEARCH_SAMPLES = 4000  # pixels whose colours are clustered...
_SEARCH_COLOURS = 6  # ...into the photo's main colours...
_SEARCH_TILES = (6, 8)  # ...which are the table's where they fill 5% of this grid's tiles...
_SEARCH_SPREAD = 0.3  # ...in at least this share of them
_SEARCH_LIGHTNESS = np.array([0.5, 1.0, 1.0], np.float32)  # Lab weights: a table's shading is not an object
_SEARCH_MIN_CONTRAST = 12.0  # Lab units (lightness at half weight) off the table for a pixel to be an object's
_SEARCH_MIN_AREA = 12  # px at the search's size: a card about 6 x 4 px there
_SEARCH_MAX_SHARE = 0.2  # of the photo: a larger region is a table's patch or the weapon, not a card
_SEARCH_CANDIDATES = 8  # regions tried, best first
_ON_TABLE_GAP = 2.5  # px at the search's size: the photo's table is looked for this far outside a card at least...
_ON_TABLE_MAX_OBJECT = 0.25  # ...where at most this share of each side's samples may be an object's


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
    When the mask's largest regions give no card that stands alone on the table, its smaller regions and then
    the photo itself (:func:`_photo_candidates`) are searched for one that does, on the photo's table
    (:func:`_on_table`). A card of the mask's that does not stand alone is returned only when that search finds
    none: a look-alike seldom stands alone, a card next to the weapon may not.
    """
    n, labels, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
    order = 1 + np.argsort(-stats[1:, cv2.CC_STAT_AREA])
    least = (_PHOTO_MIN_AREA if image is not None else 1.0) * min_area
    first = [k for k in order[:_CARD_CANDIDATES] if stats[k, cv2.CC_STAT_AREA] >= least]
    weak: tuple[NDArray[np.float64], float] | None = None  # the first card that does not stand alone
    for k in first:
        area = stats[k, cv2.CC_STAT_AREA]
        region = (labels == k).astype(np.uint8)
        if image is not None:
            precise = _card_from_colour(image, region, cell, aspect)
            if precise is not None and precise[2]:
                return precise[:2]
            if precise is not None:
                weak = weak or precise[:2]
                continue
        if area < min_area:
            continue
        fit = _coarse_card(region, aspect)
        if fit is not None and min(card_sides(fit)) >= _COARSE_MIN_CELLS * cell:  # big enough for its cells to do
            weak = weak or (fit, cell / 3.0)
    if image is None:
        return weak
    rest = [(labels == k).astype(np.uint8) for k in order[len(first) :][:_SEARCH_CANDIDATES]]  # the model's, still
    regions, objects, f = _photo_candidates(image, aspect)
    for region in rest + regions:
        precise = _card_from_colour(image, region, cell, aspect, widen=False)
        if precise is not None and precise[2] and _on_table(objects, precise[0] * f):
            return precise[:2]
    return weak


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


def _card_from_colour(image: NDArray[np.uint8], region: NDArray[np.uint8], cell: float, aspect: float,
                      widen: bool = True) -> tuple[NDArray[np.float64], float, bool] | None:
    """The card near the coarse ``region``, redrawn from the photo: its corners, the sides' standard error and
    whether it stands alone (it fills its rectangle, its edge is found along most of every side and the table
    lies all around it, :func:`_stands_alone`). Each pixel's colour distance (Lab) to the table (its main colours
    around the region, :func:`_table_colours`) is thresholded halfway between the table's level and the card's
    (the region's median): the card's parts that the region touches, opened to drop the table's thin lines, give
    the card's rotated rectangle; the sides are then fitted to the outline (:func:`_refine`) and placed to a
    fraction of a pixel (:func:`_subpixel_sides`). None when that gives no rectangle of the card's aspect (a card
    the colour of the table, a region that is not a card).

    The search reaches a third of the region's size beyond it: the coarse region may cover only part of the card.
    When the card's colours run on to the edge of the search (a large card of which the mask found a corner),
    the search is widened by the size of what was found, up to :data:`_REACH_TRIES` times (with ``widen``: the
    mask's largest regions; the photo's own candidates are whole objects, and the mask's smaller regions too
    small to be part of a large card).
    """
    x, y, w, h = cv2.boundingRect(region)
    reach = int(0.35 * max(w, h) + 2 * cell) + 2
    table: Colours | None = None  # the table's colours next to the region, once the search has been widened
    for _ in range(_REACH_TRIES):
        found, wider, seen = _card_within(image, region, cell, aspect, reach, None, widen)
        if found is None and not wider and table is not None:  # further out, other objects' colours may join the
            found, wider, _ = _card_within(image, region, cell, aspect, reach, table, widen)  # table's: those near it
        if not wider:  # once widened, only a card that stands alone: a panel on a weapon's end widens the search too
            return found if table is None or (found is not None and found[2]) else None
        table = table or seen
        reach += wider
    return None


Colours = tuple[NDArray[np.float32], NDArray[np.float32]]  # the table's colours in Lab and in BGR


def _card_within(image: NDArray[np.uint8], region: NDArray[np.uint8], cell: float, aspect: float, reach: int,
                 table: Colours | None, widen: bool
                 ) -> tuple[tuple[NDArray[np.float64], float, bool] | None, int, Colours | None]:
    """:func:`_card_from_colour` searching ``reach`` px around the region: (its answer, 0, the table's colours), or
    (None, by how many px to widen the search, the table's colours) when the card's colours reach the search's
    edge (only asked with ``widen``). The ``table`` colours, when given, are used instead of those found around
    the search."""
    x, y, w, h = cv2.boundingRect(region)
    x0, y0 = max(0, x - reach - 3), max(0, y - reach - 3)
    x1, y1 = min(image.shape[1], x + w + reach + 3), min(image.shape[0], y + h + reach + 3)
    lab = np.asarray(cv2.GaussianBlur(cv2.cvtColor(image[y0:y1, x0:x1], cv2.COLOR_BGR2LAB).astype(np.float32),
                                      (0, 0), 0.7), np.float32)
    coarse = region[y0:y1, x0:x1]
    apart = cv2.distanceTransform(1 - coarse, cv2.DIST_L2, 5)
    grown = (apart <= reach).astype(np.uint8)
    if (grown == 0).sum() < 20:
        return None, 0, None
    # edges are placed on the photo's own values, which mix linearly across a blurred edge (Lab's do not)
    bgr = np.asarray(cv2.GaussianBlur(image[y0:y1, x0:x1].astype(np.float32), (0, 0), 0.7), np.float32)
    inner = cv2.erode(coarse, np.ones((3, 3), np.uint8), iterations=max(1, round(cell / 2)))
    card = np.median(lab[(inner if inner.any() else coarse) > 0], axis=0)
    table_lab, table_bgr = table or _table_colours(lab[grown == 0], bgr[grown == 0], card)
    dist = _table_distance(lab, table_lab)  # (h, w): how far from the table's colours
    low = float(np.median(dist[grown == 0]))
    high = float(np.median(dist[(inner if inner.any() else coarse) > 0]))
    if high - low < _CARD_MIN_CONTRAST:
        return None, 0, None
    fg = (dist > (low + high) / 2).astype(np.uint8) & grown
    two = np.ones((2, 2), np.uint8)  # opened in place: OpenCV's own opening by an even square shifts it a pixel
    fg = np.asarray(cv2.dilate(cv2.erode(fg, two, anchor=(0, 0)), two, anchor=(1, 1)), np.uint8)
    k = int(np.clip(0.2 * min(w, h), 2, 9)) | 1  # odd: an even square shifts what it closes and opens
    square = np.ones((k, k), np.uint8)  # closed over a stripe's blurred edges and print, opened off protrusions:
    strong = cv2.morphologyEx(cv2.morphologyEx(fg, cv2.MORPH_CLOSE, square), cv2.MORPH_OPEN, square)  # the rough card
    contours, _ = cv2.findContours(strong, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    cv2.drawContours(strong, contours, -1, 1, thickness=cv2.FILLED)
    n, labels, stats, _ = cv2.connectedComponentsWithStats(strong, connectivity=8)
    overlap = np.bincount(labels[coarse > 0], minlength=n)[1:]
    keep = 1 + np.flatnonzero(overlap > 0.1 * max(int(overlap.max(initial=0)), 1))
    if n <= 1 or overlap.sum() < 0.3 * coarse.sum():
        return None, 0, None
    parts = np.isin(labels, keep).astype(np.uint8)
    edge = (apart > reach - 2) & (fg > 0)  # the search's own edge: a card cut off there runs on beyond it
    if widen and (np.asarray(cv2.dilate(parts, square), np.uint8)[edge]).sum() > 0.25 * reach:
        bw, bh = cv2.boundingRect(parts)[2:]
        return None, max(bw, bh), (table_lab, table_bgr)
    rough = cv2.boxPoints(cv2.minAreaRect(np.argwhere(parts)[:, ::-1].astype(np.float32))).astype(np.float64)
    rough = _order_corners(rough)
    fill = parts.sum() / max(cv2.contourArea(rough.astype(np.float32)), 1.0)
    if not _plausible(rough, aspect, tol=0.25) or fill < 0.75:
        return None, 0, None
    contours, _ = cv2.findContours(fg, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    outline = np.concatenate([c.reshape(-1, 2) for c in contours]).astype(np.float64)
    sub = _subpixel_sides(_table_distance(bgr, table_bgr), _refine(rough, outline))
    if sub is None or not _plausible(sub[0], aspect):
        return None, 0, None
    alone = fill >= _ALONE_MIN_FILL and sub[2] >= _ALONE_MIN_SUPPORT and _stands_alone(dist, sub[0], low, high)
    return (sub[0] + np.array([x0, y0], np.float64), sub[1], alone), 0, None


def _stands_alone(dist: NDArray[np.float32], quad: NDArray[np.float64], low: float, high: float) -> bool:
    """Whether the table (``dist`` near ``low``, far below the card's ``high``) lies just outside every side of
    ``quad``: a card lies apart on the table, while a weapon's grip, a tool's panel or a blob's lobe adjoins
    more of its object."""
    pts = _around(quad, 3.0).astype(np.float32)  # (4, P, 2)
    out = cv2.remap(dist, pts[..., 0], pts[..., 1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)  # (4, P)
    return bool(np.median(out, axis=1).max() <= low + _ALONE_MAX_OUTSIDE * (high - low))


def _around(quad: NDArray[np.float64], least: float) -> NDArray[np.float64]:
    """Points just outside each side of ``quad`` (4, P, 2): two rows, a fifth of the short side (``least`` px at
    least: past a blurred edge) and twice that out, from 10% to 90% of the side's length."""
    gap = max(least, 0.2 * min(card_sides(quad)))
    centre = quad.mean(axis=0)
    rows = []
    for i in range(4):
        a, b = quad[i], quad[(i + 1) % 4]
        normal = np.array([(b - a)[1], -(b - a)[0]]) / np.linalg.norm(b - a)
        if (centre - a) @ normal > 0:
            normal = -normal  # outward
        along = a + np.linspace(0.1, 0.9, 12)[:, None] * (b - a)  # (12, 2)
        rows.append(np.concatenate([along + gap * normal, along + 2 * gap * normal]))
    return np.stack(rows)


def _photo_candidates(image: NDArray[np.uint8],
                      aspect: float) -> tuple[list[NDArray[np.uint8]], NDArray[np.uint8], float]:
    """Regions of ``image`` that could be a card, best first, the map of what is not the table (1) at the
    search's size, and that size relative to the photo. The pixels far from every colour of the table are grouped
    into compact regions; the table's colours are the photo's main colours that spread over much of it (a card
    and the weapon each fill only a part). A region is kept when it fills most of its minimum-area rectangle and
    is not long and thin, and ranked by how well it fills it and how near its rectangle's aspect is to the card's
    ``aspect``."""
    h, w = image.shape[:2]
    f = min(1.0, _SEARCH_SIDE / max(h, w))
    size = (max(1, round(w * f)), max(1, round(h * f)))  # a side of a very long, thin photo would round to 0
    small = cv2.resize(image, size, interpolation=cv2.INTER_AREA) if f < 1 else image
    lab = np.asarray(cv2.cvtColor(cv2.GaussianBlur(small, (0, 0), 0.7), cv2.COLOR_BGR2LAB), np.uint8)
    step = max(1, int(np.sqrt(lab.shape[0] * lab.shape[1] / _SEARCH_SAMPLES)))
    grid = lab[::step, ::step].shape[:2]
    pts = lab[::step, ::step].reshape(-1, 3).astype(np.float32) * _SEARCH_LIGHTNESS
    k = _SEARCH_COLOURS
    if len(pts) < 4 * k:
        return [], np.ones(lab.shape[:2], np.uint8), f
    start = (np.argsort(np.argsort(pts[:, 0])) * k // len(pts)).astype(np.int32)
    crit = (cv2.TERM_CRITERIA_EPS + cv2.TERM_CRITERIA_MAX_ITER, 10, 0.5)
    _, labels, found = cv2.kmeans(pts, k, start[:, None], crit, 1, cv2.KMEANS_USE_INITIAL_LABELS)
    centres = np.asarray(found, np.float32)
    ty = np.arange(grid[0]) * _SEARCH_TILES[0] // grid[0]
    tx = np.arange(grid[1]) * _SEARCH_TILES[1] // grid[1]
    tile = (ty[:, None] * _SEARCH_TILES[1] + tx[None, :]).ravel()
    counts = np.zeros((_SEARCH_TILES[0] * _SEARCH_TILES[1], k))
    np.add.at(counts, (tile, np.asarray(labels, np.intp).ravel()), 1)
    spread = (counts / np.maximum(counts.sum(axis=1, keepdims=True), 1) > 0.05).mean(axis=0)  # share of tiles
    table = centres[spread >= _SEARCH_SPREAD] if (spread >= _SEARCH_SPREAD).any() else centres[[np.argmax(spread)]]
    levels = np.arange(0, 256, 8, dtype=np.float32) + 4  # a table of distances per colour bin: one lookup a pixel
    bins = np.stack(np.meshgrid(levels, levels, levels, indexing="ij"), axis=-1) * _SEARCH_LIGHTNESS
    lut = _table_distance(bins.reshape(32, -1, 3), table).ravel()
    q = (lab >> 3).astype(np.int32)
    dist = lut[(q[..., 0] << 10) | (q[..., 1] << 5) | q[..., 2]]
    objects = (dist > max(_SEARCH_MIN_CONTRAST, 3 * float(np.median(dist)))).astype(np.uint8)
    fg = cv2.morphologyEx(objects, cv2.MORPH_OPEN, np.ones((3, 3), np.uint8))  # off the table's thin lines
    n, comp, stats, _ = cv2.connectedComponentsWithStats(fg, connectivity=8)
    ranked = []
    for j in range(1, n):
        x, y, bw, bh, area = stats[j]
        if area < _SEARCH_MIN_AREA or area > _SEARCH_MAX_SHARE * fg.size:
            continue
        (_, _), (rw, rh), _ = cv2.minAreaRect(np.argwhere(comp[y : y + bh, x : x + bw] == j)[:, ::-1].astype(np.float32))
        fill, elong = area / max(rw * rh, 1.0), max(rw, rh) / max(min(rw, rh), 1.0)
        if fill >= 0.5 and elong <= 3.5:  # loose: the card's own stripe may cut it short
            ranked.append((fill - abs(np.log(elong / aspect)), j))
    ranked.sort(reverse=True)
    regions = [cv2.resize((comp == j).astype(np.uint8), (w, h), interpolation=cv2.INTER_NEAREST)
               for _, j in ranked[:_SEARCH_CANDIDATES]]
    return regions, objects, f


def _on_table(objects: NDArray[np.uint8], quad: NDArray[np.float64]) -> bool:
    """Whether the photo's table (0 in ``objects``, at the scale of ``quad``) lies all around ``quad``: around a
    card-shaped panel of a larger object, the colours that :func:`_stands_alone` takes for the table are that
    object's."""
    for side in np.round(_around(quad, _ON_TABLE_GAP)).astype(np.intp):
        x, y = side[:, 0], side[:, 1]
        seen = (x >= 0) & (x < objects.shape[1]) & (y >= 0) & (y < objects.shape[0])  # the photo's edge: no object
        if objects[y[seen], x[seen]].sum() > _ON_TABLE_MAX_OBJECT * len(side):
            return False
    return True


def _table_colours(lab: NDArray[np.float32], bgr: NDArray[np.float32],
                   card: NDArray[np.float32]) -> tuple[NDArray[np.float32], NDArray[np.float32]]:
    """The table's main colours, in Lab and in BGR, from the pixels around the card (``lab`` and ``bgr``, (N, 3)):
    a cutting mat's grid, a cloth's weave and wood's grain have several, and a pixel on any of them is table.
    A colour as near the ``card``'s (Lab) as the table's noise is the card's own (a card reaching past the
    search), not the table's."""
    pick = np.random.default_rng(0).choice(len(lab), min(len(lab), _TABLE_SAMPLES), replace=False)
    k = min(_TABLE_COLOURS, len(pick))
    start = (np.argsort(np.argsort(lab[pick, 0])) * k // len(pick)).astype(np.int32)  # lightness terciles: repeatable
    crit = (cv2.TERM_CRITERIA_EPS + cv2.TERM_CRITERIA_MAX_ITER, 10, 0.5)
    _, found, means = cv2.kmeans(lab[pick].astype(np.float32), k, start[:, None], crit, 1,
                                 cv2.KMEANS_USE_INITIAL_LABELS)
    labels, centres = np.asarray(found, np.intp).ravel(), np.asarray(means, np.float32)
    share = np.bincount(labels, minlength=k) / len(pick)
    keep = (share >= _TABLE_MIN_SHARE) & (np.linalg.norm(centres - card, axis=1) > _CARD_MIN_CONTRAST)
    if not keep.any():
        keep = share == share.max()
    kept = np.flatnonzero(keep)
    return centres[kept], np.stack([bgr[pick][labels == j].mean(axis=0) for j in kept]).astype(np.float32)


def _table_distance(px: NDArray[np.float32], colours: NDArray[np.float32]) -> NDArray[np.float32]:
    """Each pixel's distance to the nearest table colour or blend of two (a blurred line on the table)."""
    origin = colours.mean(axis=0)
    flat, cs = px.reshape(-1, 3) - origin, colours - origin  # centred: float32 keeps small distances
    norm2 = np.einsum("ij,ij->i", flat, flat)
    dots = [flat @ c for c in cs]  # (N,) each: matrix-vector products are quick where (N, 3) @ (3, K) is not
    best = norm2 - 2 * dots[0] + cs[0] @ cs[0]  # squared, to the first colour
    for i, j in ((a, b) for a in range(len(cs)) for b in range(a + 1, len(cs))):
        d = cs[j] - cs[i]
        along = dots[j] - dots[i] - cs[i] @ d  # (pixel - colour i) . d
        t = np.clip(along / max(float(d @ d), 1e-6), 0.0, 1.0)  # the nearest blend of colours i and j
        np.minimum(best, norm2 - 2 * dots[i] + cs[i] @ cs[i] - 2 * t * along + t * t * (d @ d), out=best)
    return np.asarray(np.sqrt(np.maximum(best, 0.0)).reshape(px.shape[:2]), np.float32)


def _subpixel_sides(dist: NDArray[np.float32],
                    quad: NDArray[np.float64]) -> tuple[NDArray[np.float64], float, float] | None:
    """Each side of ``quad`` moved onto the card's edge in ``dist`` (how far each pixel's colour is from the
    table's): along the side's normal, the edge is where the profile crosses halfway between its levels inside
    and outside (a blurred step crosses there at the step). Returns the new corners, the largest standard
    error of a side's position (px) and the smallest share of a side's profiles that found the line, or None
    when the edges are not found."""
    lines, errors, support = [], [], []
    for i in range(4):
        a, b = quad[i], quad[(i + 1) % 4]
        length = float(np.linalg.norm(b - a))
        u = (b - a) / length
        normal = np.array([u[1], -u[0]])
        if (quad.mean(axis=0) - a) @ normal > 0:
            normal = -normal  # outward
        short = min(card_sides(quad))
        r = float(np.clip(0.1 * short, 1.5, 3.0))
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
        support.append(len(o) / len(along))
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
    return out, max(errors), min(support)


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
