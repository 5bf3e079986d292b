"""A local drawing canvas that accumulates X-ray attenuation of 2.5D objects.

Each object is drawn in its own frame (millimetres, x to the right, y down) as extruded
polygons (constant thickness) and revolved primitives (rods and tubes whose thickness
across the axis is the chord of a circle). Every primitive adds its line integral of
linear attenuation, at both energies, to one float32 map ``a`` of shape (h, w, 2): the
dimensionless optical depth at the low and the high energy (T = exp(-a)), Beer-Lambert
along a parallel beam. Each primitive only touches the pixels of its own bounding box.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from armscan.datasets.materials import material

Point = tuple[float, float]
_SHIFT = 4  # fixed-point bits of the OpenCV drawing calls (1/16 pixel)


class Canvas:
    """Optical-depth maps for one object, ``width_mm`` x ``height_mm`` at ``pitch`` mm/px.

    ``depth_mm`` is the object's extent along the beam when it lies flat (the largest
    primitive thickness): it sets how far the object spreads when it is tilted.
    """

    def __init__(self, width_mm: float, height_mm: float, pitch: float) -> None:
        self.pitch = pitch
        w = max(2, int(np.ceil(width_mm / pitch)) + 2)
        h = max(2, int(np.ceil(height_mm / pitch)) + 2)
        self.a = np.zeros((h, w, 2), np.float32)  # (h, w, [low, high])
        self.depth_mm = 0.0

    @property
    def a_low(self) -> np.ndarray:
        """Optical depth at the low energy, (h, w)."""
        return self.a[..., 0]

    @property
    def a_high(self) -> np.ndarray:
        """Optical depth at the high energy, (h, w)."""
        return self.a[..., 1]

    def _px(self, pts: Sequence[Point]) -> np.ndarray:
        return np.round(np.asarray(pts, np.float64) / self.pitch * 16 + 16).astype(np.int32)

    def _add(self, thickness_mm: np.ndarray, mat: str, density_scale: float, y0: int = 0, x0: int = 0,
             unit: float = 1.0) -> None:
        """Add ``thickness_mm * unit`` (h, w) of ``mat`` at (y0, x0), in place with OpenCV (numpy is slow to
        broadcast onto a trailing axis of length 2)."""
        m = material(mat)
        h, w = thickness_mm.shape
        k = density_scale / 10.0 * unit  # linear attenuation is per cm
        region = self.a[y0 : y0 + h, x0 : x0 + w]
        both = cv2.merge([thickness_mm * np.float32(m.lin_low * k), thickness_mm * np.float32(m.lin_high * k)])
        cv2.add(region, both, dst=region)

    def _fill(self, draw_pts: np.ndarray, thick_mm: float, mat: str, density_scale: float) -> None:
        """Fill the fixed-point polygon ``draw_pts`` (N, 2) inside its own bounding box only."""
        H, W = self.a.shape[:2]
        lo = np.maximum(np.floor(draw_pts.min(axis=0) / 16).astype(int) - 1, 0)
        hi = np.minimum(np.ceil(draw_pts.max(axis=0) / 16).astype(int) + 2, (W, H))
        if hi[0] <= lo[0] or hi[1] <= lo[1]:
            return
        mask = np.zeros((hi[1] - lo[1], hi[0] - lo[0]), np.uint8)
        cv2.fillPoly(mask, [draw_pts - lo * 16], 255, lineType=cv2.LINE_AA, shift=_SHIFT)
        self._add(mask.astype(np.float32), mat, density_scale, int(lo[1]), int(lo[0]), thick_mm / 255.0)
        self.depth_mm = max(self.depth_mm, float(thick_mm))

    def poly(self, pts: Sequence[Point], thick_mm: float, mat: str, density_scale: float = 1.0) -> None:
        """An extruded polygon (outline in mm) of constant thickness."""
        self._fill(self._px(pts), thick_mm, mat, density_scale)

    def rect(self, x: float, y: float, w: float, h: float, thick_mm: float, mat: str, density_scale: float = 1.0) -> None:
        """An extruded axis-aligned rectangle, drawn as separable pixel coverage (no mask)."""
        if w < 0:
            x, w = x + w, -w
        if h < 0:
            y, h = y + h, -h
        H, W = self.a.shape[:2]
        # pixel i covers [i - 0.5, i + 0.5] in pixel units, where x mm sits at x / pitch + 1 (as in _px)
        x0, x1 = x / self.pitch + 1.0, (x + w) / self.pitch + 1.0
        y0, y1 = y / self.pitch + 1.0, (y + h) / self.pitch + 1.0
        lx, hx = max(0, int(np.floor(x0 + 0.5))), min(W, int(np.ceil(x1 + 0.5)))
        ly, hy = max(0, int(np.floor(y0 + 0.5))), min(H, int(np.ceil(y1 + 0.5)))
        if hx <= lx or hy <= ly:
            return
        ix, iy = np.arange(lx, hx, dtype=np.float32), np.arange(ly, hy, dtype=np.float32)
        cx = np.clip(np.minimum(x1, ix + 0.5) - np.maximum(x0, ix - 0.5), 0, 1)  # (w,) coverage
        cy = np.clip(np.minimum(y1, iy + 0.5) - np.maximum(y0, iy - 0.5), 0, 1)  # (h,)
        m = material(mat)
        k = density_scale / 10.0 * thick_mm
        lo, hi = np.float32(m.lin_low * k), np.float32(m.lin_high * k)
        region = self.a[ly:hy, lx:hx]
        fx, fy = np.flatnonzero(cx >= 1.0), np.flatnonzero(cy >= 1.0)  # fully covered columns and rows (runs)
        if len(fx) == 0 or len(fy) == 0:
            self._add(np.outer(cy, cx), mat, density_scale, ly, lx, thick_mm)
        else:
            (a, b), (c, d) = (fy[0], fy[-1] + 1), (fx[0], fx[-1] + 1)
            inner = region[a:b, c:d]
            # a per-channel scalar, added in place (OpenCV's type stubs list arrays only)
            cv2.add(inner, (float(lo), float(hi), 0.0, 0.0), dst=inner)  # type: ignore[call-overload]
            for r0, r1 in ((0, a), (b, len(cy))):  # partial rows, full width
                if r1 > r0:
                    self._add(np.outer(cy[r0:r1], cx), mat, density_scale, ly + r0, lx, thick_mm)
            for c0, c1 in ((0, c), (d, len(cx))):  # partial columns, inner rows
                if c1 > c0:
                    self._add(np.outer(cy[a:b], cx[c0:c1]), mat, density_scale, ly + a, lx + c0, thick_mm)
        self.depth_mm = max(self.depth_mm, float(thick_mm))

    def frame(self, x: float, y: float, w: float, h: float, wall: float, thick_mm: float, mat: str) -> None:
        """A hollow rectangle (a box seen from above: walls project as a thick border)."""
        self.rect(x, y, w, h, thick_mm, mat)
        self.rect(x + wall, y + wall, w - 2 * wall, h - 2 * wall, -thick_mm, mat)

    def ellipse(self, cx: float, cy: float, rx: float, ry: float, thick_mm: float, mat: str, angle: float = 0.0,
                density_scale: float = 1.0) -> None:
        """An extruded ellipse."""
        c = (int(round(cx / self.pitch * 16 + 16)), int(round(cy / self.pitch * 16 + 16)))
        ax = (max(1, int(round(rx / self.pitch * 16))), max(1, int(round(ry / self.pitch * 16))))
        r = max(ax)  # the rotated ellipse lies inside this circle
        pts = np.array([[c[0] - r, c[1] - r], [c[0] + r, c[1] + r]])
        H, W = self.a.shape[:2]
        lo = np.maximum(np.floor(pts.min(axis=0) / 16).astype(int) - 1, 0)
        hi = np.minimum(np.ceil(pts.max(axis=0) / 16).astype(int) + 2, (W, H))
        if hi[0] <= lo[0] or hi[1] <= lo[1]:
            return
        mask = np.zeros((hi[1] - lo[1], hi[0] - lo[0]), np.uint8)
        cv2.ellipse(mask, (c[0] - int(lo[0]) * 16, c[1] - int(lo[1]) * 16), ax, angle, 0, 360, 255, -1, cv2.LINE_AA,
                    shift=_SHIFT)
        self._add(mask.astype(np.float32), mat, density_scale, int(lo[1]), int(lo[0]), thick_mm / 255.0)
        self.depth_mm = max(self.depth_mm, float(thick_mm))

    def rod(self, p0: Point, p1: Point, radius: float, mat: str, bore: float = 0.0, density_scale: float = 1.0) -> None:
        """A revolved cylinder (tube when ``bore`` > 0) along the segment p0-p1 with rounded ends.

        Thickness at distance d from the axis is the chord 2*sqrt(r^2 - d^2), minus the bore's.
        """
        pit = self.pitch
        (x0, y0), (x1, y1) = p0, p1
        # pixel i is centred on (i - 1) * pitch mm (one pixel of margin, as in _px)
        lo_x = int(max(0, np.floor((min(x0, x1) - radius) / pit) + 1))
        hi_x = int(min(self.a.shape[1], np.ceil((max(x0, x1) + radius) / pit) + 2))
        lo_y = int(max(0, np.floor((min(y0, y1) - radius) / pit) + 1))
        hi_y = int(min(self.a.shape[0], np.ceil((max(y0, y1) + radius) / pit) + 2))
        if hi_x <= lo_x or hi_y <= lo_y:
            return
        xs = (np.arange(lo_x, hi_x, dtype=np.float32) - 1) * np.float32(pit) - np.float32(x0)
        ys = (np.arange(lo_y, hi_y, dtype=np.float32) - 1) * np.float32(pit) - np.float32(y0)
        gx, gy = xs[None, :], ys[:, None]
        dx, dy = np.float32(x1 - x0), np.float32(y1 - y0)
        seg2 = float(dx * dx + dy * dy)
        if seg2 > 0:
            t = np.clip((gx * dx + gy * dy) * np.float32(1.0 / seg2), 0.0, 1.0)
            d2 = (gx - t * dx) ** 2 + (gy - t * dy) ** 2
        else:
            d2 = gx * gx + gy * gy
        chord = 2.0 * np.sqrt(np.maximum(np.float32(radius * radius) - d2, 0.0))
        if bore > 0:
            chord -= 2.0 * np.sqrt(np.maximum(np.float32(bore * bore) - d2, 0.0))
        self._add(chord.astype(np.float32, copy=False), mat, density_scale, lo_y, lo_x)
        self.depth_mm = max(self.depth_mm, 2.0 * radius)

    def spring(self, p0: Point, p1: Point, radius: float, wire: float, turns: int, mat: str = "steel") -> None:
        """A coil spring seen from the side: a zig-zag of thin wire.

        Drawn as one anti-aliased stroke whose depth keeps the wire's mass per unit length
        (pi * wire^2 spread over the stroke's width), which is what the detector resolves.
        """
        (x0, y0), (x1, y1) = p0, p1
        length = float(np.hypot(x1 - x0, y1 - y0)) or 1.0
        ux, uy = (x1 - x0) / length, (y1 - y0) / length
        nx, ny = -uy, ux
        pts = [p0]
        for k in range(1, 2 * turns + 1):
            s = k / (2 * turns) * length
            side = radius if k % 2 else -radius
            pts.append((x0 + ux * s + nx * side, y0 + uy * s + ny * side))
        self.stroke(pts, wire, mat)
        self.depth_mm = max(self.depth_mm, 2.0 * radius)

    def stroke(self, pts: Sequence[Point], wire: float, mat: str) -> None:
        """A thin wire (radius ``wire`` mm) through the points, as one anti-aliased polyline."""
        px = self._px(pts)
        H, W = self.a.shape[:2]
        width = max(1, int(round(2 * wire / self.pitch)))
        lo = np.maximum(np.floor(px.min(axis=0) / 16).astype(int) - width - 1, 0)
        hi = np.minimum(np.ceil(px.max(axis=0) / 16).astype(int) + width + 2, (W, H))
        if hi[0] <= lo[0] or hi[1] <= lo[1]:
            return
        mask = np.zeros((hi[1] - lo[1], hi[0] - lo[0]), np.uint8)
        cv2.polylines(mask, [px - lo * 16], False, 255, width, cv2.LINE_AA, shift=_SHIFT)
        depth = np.pi * wire * wire / (width * self.pitch)  # mm of material under a fully covered pixel
        self._add(mask.astype(np.float32), mat, 1.0, int(lo[1]), int(lo[0]), depth / 255.0)

    def polyline(self, pts: Sequence[Point], radius: float, mat: str, bore: float = 0.0) -> None:
        """A bent rod or cable through the points."""
        for a, b in zip(pts[:-1], pts[1:], strict=False):
            self.rod(a, b, radius, mat, bore)
