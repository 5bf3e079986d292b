"""Paint one recorded object (a :class:`PhotoCanvas`) into the image: colour, alpha and masks.

Primitives are stacked by thickness (the object lies on its side, so the thickest part is on top), each
pixel takes the look of its top primitive, and a height map (half the thickness of flat parts, a
cylinder's profile across rods, minus recesses) is lit by a directional light: Lambert shading plus
specular highlights scaled by the look's gloss. Outlines go through the camera's homography, so masks
are exact in the final image; only the pixels the object covers carry colour (the work scales with its
area, not its bounding box).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from armscan.datasets.photo.canvas import HALF_CIRCLE, Op, PhotoCanvas
from armscan.datasets.photo.looks import Look, texture

_SHIFT = 4  # fixed-point bits of the OpenCV drawing calls
_ONE = 1 << _SHIFT


@dataclass(frozen=True)
class Light:
    """A directional light: ``direction`` is a unit vector towards it (x right, y down, z up to the camera);
    ``shininess`` is a power of two (specular exponent)."""

    direction: tuple[float, float, float]
    ambient: float = 0.35
    shininess: int = 32


@dataclass
class Painted:
    """An object painted into the crop at (``y0``, ``x0``) of the image, (h, w) = ``shape``. Only the ``N``
    pixels it covers (its mask and a one-pixel anti-aliased fringe) are listed, by flat index in the crop."""

    x0: int
    y0: int
    shape: tuple[int, int]
    idx: np.ndarray  # (N,) flat indices into the (h, w) crop
    colour: np.ndarray  # (N, 3) float32 BGR
    alpha: np.ndarray  # (N,) float32 in [0, 1], anti-aliased
    inside: np.ndarray  # (N,) bool: pixel centre inside the visible object (the mask)
    barrel: np.ndarray  # (N,) bool: visible pixels of ``barrel``-tagged primitives
    height_mm: float  # half the object's thickness: its mid-plane above the table (for its shadow)

    def dense_alpha(self) -> np.ndarray:
        """Alpha over the whole crop, (h, w) float32."""
        a = np.zeros(self.shape[0] * self.shape[1], np.float32)
        a[self.idx] = self.alpha
        return a.reshape(self.shape)


def _groups(ops: list[Op]) -> list[tuple[Op, list[np.ndarray]]]:
    """Consecutive strokes of the same look and width are drawn in one call (ruler ticks, card print)."""
    out: list[tuple[Op, list[np.ndarray]]] = []
    for o in ops:
        prev = out[-1][0] if out else None
        if (
            prev is not None
            and o.kind == prev.kind == "stroke"
            and (o.look, o.radius, o.thick, o.tag, o.lift) == (prev.look, prev.radius, prev.thick, prev.tag, prev.lift)
        ):
            out[-1][1].append(o.outline)
        else:
            out.append((o, [o.outline]))
    return out


def _project(hom: np.ndarray, pts: np.ndarray) -> np.ndarray:
    """(N, 2) object mm -> (N, 2) image px through the (3, 3) homography ``hom``."""
    q = pts @ hom[:2, :2].T + hom[:2, 2]
    w = pts @ hom[2, :2] + hom[2, 2]
    return np.asarray(q / w[:, None])


def _local_affine(hom: np.ndarray, centre: np.ndarray) -> np.ndarray:
    """(2, 3) affine approximation of ``hom`` around the object point ``centre`` (mm)."""
    p = _project(hom, np.array([centre, centre + (1, 0), centre + (0, 1)]))
    return np.column_stack([p[1] - p[0], p[2] - p[0], p[0] - (p[1] - p[0]) * centre[0] - (p[2] - p[0]) * centre[1]])


def paint(
    c: PhotoCanvas, hom: np.ndarray, looks: dict[str, Look], light: Light, shape: tuple[int, int], rng: np.random.Generator
) -> Painted | None:
    """Paint ``c`` through ``hom`` (3, 3: object mm -> image px) into an image of ``shape`` (H, W).

    Returns None when the object falls entirely outside the image.
    """
    visible = [o for o in c.ops if o.tag != "hidden"]
    groups = _groups(sorted((o for o in visible if o.thick > 0), key=lambda o: o.top))
    recesses = [o for o in visible if o.thick <= 0]
    outlines = [p for _, ps in groups for p in ps] + [o.outline for o in recesses]
    allp = np.concatenate(outlines)
    centre = (allp.min(axis=0) + allp.max(axis=0)) / 2
    aff = _local_affine(hom, centre)
    s = float(np.sqrt(abs(np.linalg.det(aff[:, :2]))))  # px per mm around the object
    proj = _project(hom, allp)
    pad = 3 + int(max((2 * o.radius * s for o, _ in groups if o.kind == "stroke"), default=0))
    H, W = shape
    x0, y0 = max(int(np.floor(proj[:, 0].min())) - pad, 0), max(int(np.floor(proj[:, 1].min())) - pad, 0)
    x1, y1 = min(int(np.ceil(proj[:, 0].max())) + pad, W), min(int(np.ceil(proj[:, 1].max())) + pad, H)
    if x1 - x0 < 2 or y1 - y0 < 2:
        return None
    h, w = y1 - y0, x1 - x0
    sizes = np.array([len(p) for p in outlines])
    closed = np.array([o.kind != "stroke" for o, ps in groups for _ in ps] + [True] * len(recesses))
    q_all = np.round((_inset(proj, sizes, closed) - (x0, y0)) * _ONE).astype(np.int32)
    q_split = np.split(q_all, np.cumsum(sizes)[:-1])
    oid = np.zeros((h, w), np.uint16)  # index (1-based) of the top primitive group at each pixel
    hgt = np.zeros((h, w), np.float32)  # mm above the object's mid-plane
    n = len(groups)
    col = np.zeros((n + 1, 3), np.float32)
    gloss = np.zeros(n + 1, np.float32)
    is_barrel = np.zeros(n + 1, bool)
    look_idx = np.zeros(n + 1, np.int32)
    names = sorted({o.look for o, _ in groups})
    k = 0
    for i, (o, ps) in enumerate(groups, 1):
        q, k = q_split[k : k + len(ps)], k + len(ps)
        lk = looks[o.look]
        col[i] = np.asarray(lk.colour, np.float32) * np.float32(rng.uniform(0.93, 1.07))
        gloss[i], is_barrel[i], look_idx[i] = lk.gloss, o.tag == "barrel", names.index(o.look) + 1
        if o.kind == "stroke":
            width = max(1, round(2 * o.radius * s))
            cv2.polylines(oid, q, False, i, width, cv2.LINE_8, _SHIFT)
            cv2.polylines(hgt, q, False, o.radius + o.lift / 2, width, cv2.LINE_8, _SHIFT)
            continue
        cv2.fillPoly(oid, q, i, cv2.LINE_8, shift=_SHIFT)
        r_px = o.radius * s
        if o.kind == "rod" and o.axis is not None and r_px >= 2.0:
            _rod_profile(hgt, _project(hom, np.asarray(o.axis, np.float64)) - (x0, y0), r_px, o.radius)
        else:
            cv2.fillPoly(hgt, q, o.top / 2, cv2.LINE_8, shift=_SHIFT)
    mask = (oid > 0).astype(np.uint8)
    if not mask.any():
        return None
    if recesses:
        dent = np.zeros((h, w), np.float32)
        for o, q1 in zip(recesses, q_split[k:], strict=True):
            cv2.fillPoly(dent, [q1], min(-o.thick, 3.0), cv2.LINE_8, shift=_SHIFT)
        hgt -= dent * mask
    kernel = np.ones((3, 3), np.uint8)
    idx = np.flatnonzero(cv2.dilate(mask, kernel))  # the mask and its anti-aliased fringe
    g = oid.ravel()[idx]
    inside = g > 0
    g = np.where(inside, g, cv2.dilate(oid, kernel).ravel()[idx])  # the fringe takes its neighbour's look
    ys, xs = np.divmod(idx, w)
    colour = col[g]  # (N, 3)
    factor = np.ones(len(g), np.float32)
    looks_n = look_idx[g]
    inv = np.linalg.inv(aff[:, :2])
    for kk, name in enumerate(names, 1):
        lk = looks[name]
        if lk.texture == "none":
            continue
        sel = np.flatnonzero(looks_n == kk)
        if len(sel) == 0:
            continue
        sy, sx = ys[sel], xs[sel]
        rx, ry = (sx + (x0 - aff[0, 2])).astype(np.float32), (sy + (y0 - aff[1, 2])).astype(np.float32)
        u = np.float32(inv[0, 0]) * rx + np.float32(inv[0, 1]) * ry
        v = np.float32(inv[1, 0]) * rx + np.float32(inv[1, 1]) * ry
        factor[sel] = texture(lk, u, v, sy + y0, sx + x0, s)
    shade, spec = _shading(hgt, s, light, idx, w)
    colour *= (factor * shade)[:, None]
    colour += (spec * gloss[g] * np.float32(230))[:, None]
    np.clip(colour, 0, 255, out=colour)
    cover = cv2.boxFilter(mask * np.uint8(255), -1, (3, 3)).ravel()[idx]  # share of the 3x3 block inside
    alpha = np.where(inside, np.float32(1), cover.astype(np.float32) * np.float32(1 / 255))
    height = max(o.top / 2 for o, _ in groups)
    return Painted(x0, y0, (h, w), idx, colour, alpha.astype(np.float32), inside, is_barrel[g] & inside, height)


def _inset(pts: np.ndarray, sizes: np.ndarray, closed: np.ndarray, d: float = 0.5) -> np.ndarray:
    """Move the closed polygons among ``pts`` (concatenated, ``sizes`` points each) ``d`` px inwards.

    OpenCV fills every pixel a polygon touches, i.e. the polygon grown by half a pixel; drawn ``d = 0.5`` px
    smaller, it covers the pixels whose centres lie inside, so masks are not biased outwards (a card of
    40 px would otherwise look 2.5% too large). Corners move along their bisector (mitre, clamped).
    """
    start = np.repeat(np.cumsum(sizes) - sizes, sizes)
    pos = np.arange(len(pts)) - start
    size = np.repeat(sizes, sizes)
    nxt, prv = start + (pos + 1) % size, start + (pos - 1) % size
    e = pts[nxt] - pts  # edge i: from point i to the next
    length = np.hypot(e[:, 0], e[:, 1])
    cross = pts[:, 0] * pts[nxt, 1] - pts[nxt, 0] * pts[:, 1]
    orient = np.sign(np.add.reduceat(cross, np.cumsum(sizes) - sizes))  # +1: interior to the left of the edges
    n = np.stack([-e[:, 1], e[:, 0]], axis=1) / np.maximum(length, 1e-9)[:, None] * np.repeat(orient, sizes)[:, None]
    n[length < 1e-9] = 0.0
    n0, n1 = n[prv], n
    denom = np.maximum(1 + (n0 * n1).sum(axis=1), 0.25)
    shift = d * (n0 + n1) / denom[:, None]
    return np.where(np.repeat(closed, sizes)[:, None], pts + shift, pts)


def _rod_profile(hgt: np.ndarray, axis_px: np.ndarray, r_px: float, r_mm: float) -> None:
    """Draw a cylinder's height profile r * sqrt(1 - d^2 / r^2) across a rod as nested capsules."""
    (ax, ay), (bx, by) = axis_px
    d = np.array([bx - ax, by - ay])
    length = float(np.hypot(d[0], d[1]))
    c, sn = (d / length) if length > 0 else (1.0, 0.0)
    end = HALF_CIRCLE @ np.array([[c, sn], [-sn, c]])  # (9, 2) unit half circle around the far end
    n = int(np.clip(r_px / 1.5, 2, 48))
    f = np.linspace(1.0, 0.5 / n, n)
    ends = end[None] * (r_px * f)[:, None, None]  # (n, 9, 2)
    rings = np.concatenate([ends + (bx, by), (ax, ay) - ends], axis=1)  # (n, 18, 2)
    rings = np.round(rings * _ONE).astype(np.int32)
    levels = r_mm * np.sqrt(1 - (f - 0.5 / n) ** 2)
    for ring, level in zip(rings, levels, strict=True):
        cv2.fillPoly(hgt, [ring], float(level), cv2.LINE_8, shift=_SHIFT)


def _shading(hgt: np.ndarray, s: float, light: Light, idx: np.ndarray, w: int) -> tuple[np.ndarray, np.ndarray]:
    """Lambert factor (1 on flat ground) and specular term (N,) of the height map ``hgt`` (h, w; mm) at the
    flat pixel indices ``idx``, the image being ``s`` px/mm there."""
    hb = cv2.GaussianBlur(hgt, (0, 0), float(np.clip(0.6 * s, 0.7, 2.5))).ravel()
    last = len(hb) - 1
    k = np.float32(s / 2)  # central differences, dh/dx in mm per mm
    gx = (hb[np.minimum(idx + 1, last)] - hb[np.maximum(idx - 1, 0)]) * k
    gy = (hb[np.minimum(idx + w, last)] - hb[np.maximum(idx - w, 0)]) * k
    lx, ly, lz = (np.float32(v) for v in light.direction)
    hv = np.array([lx, ly, lz + 1], np.float32)
    hx, hy, hz = hv / np.linalg.norm(hv)
    norm = 1.0 / np.sqrt(gx * gx + gy * gy + 1)
    lam = np.maximum((lz - gx * lx - gy * ly) * norm, 0) / lz
    amb = np.float32(light.ambient)
    shade = np.minimum(amb + (1 - amb) * lam, 1.8)
    spec = np.maximum((hz - gx * hx - gy * hy) * norm, 0)
    for _ in range(int(np.log2(light.shininess))):  # x ** shininess by squaring
        spec *= spec
    return shade, spec
