"""A local drawing canvas that accumulates X-ray attenuation of 2.5D objects.

Each object is drawn in its own frame (millimetres, x to the right, y down) as extruded
polygons (constant thickness) and revolved primitives (rods and tubes whose thickness
across the axis is the chord of a circle). Every primitive adds its line integral of
linear attenuation, at both energies, to two float32 maps: ``a_low`` and ``a_high``
(dimensionless optical depth, T = exp(-a)). That is Beer-Lambert along a parallel beam.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from armscan.datasets.materials import material

Point = tuple[float, float]


class Canvas:
    """Optical-depth maps for one object, ``width_mm`` x ``height_mm`` at ``pitch`` mm/px."""

    def __init__(self, width_mm: float, height_mm: float, pitch: float) -> None:
        self.pitch = pitch
        w = max(2, int(np.ceil(width_mm / pitch)) + 2)
        h = max(2, int(np.ceil(height_mm / pitch)) + 2)
        self.a_low = np.zeros((h, w), np.float32)
        self.a_high = np.zeros((h, w), np.float32)

    def _px(self, pts: Sequence[Point]) -> np.ndarray:
        return np.round(np.asarray(pts, np.float64) / self.pitch * 16 + 16).astype(np.int32)

    def _add(self, thickness_cm: np.ndarray, mat: str, density_scale: float, y0: int = 0, x0: int = 0) -> None:
        m = material(mat)
        h, w = thickness_cm.shape
        scale = float(density_scale)
        self.a_low[y0 : y0 + h, x0 : x0 + w] += thickness_cm * (m.lin_low * scale)
        self.a_high[y0 : y0 + h, x0 : x0 + w] += thickness_cm * (m.lin_high * scale)

    def poly(self, pts: Sequence[Point], thick_mm: float, mat: str, density_scale: float = 1.0) -> None:
        """An extruded polygon (outline in mm) of constant thickness."""
        mask = np.zeros(self.a_low.shape, np.uint8)
        cv2.fillPoly(mask, [self._px(pts)], 255, lineType=cv2.LINE_AA, shift=4)
        self._add(mask.astype(np.float32) * (thick_mm / 10.0 / 255.0), mat, density_scale)

    def rect(self, x: float, y: float, w: float, h: float, thick_mm: float, mat: str, density_scale: float = 1.0) -> None:
        """An extruded axis-aligned rectangle."""
        self.poly([(x, y), (x + w, y), (x + w, y + h), (x, y + h)], thick_mm, mat, density_scale)

    def frame(self, x: float, y: float, w: float, h: float, wall: float, thick_mm: float, mat: str) -> None:
        """A hollow rectangle (a box seen from above: walls project as a thick border)."""
        self.rect(x, y, w, h, thick_mm, mat)
        self.rect(x + wall, y + wall, w - 2 * wall, h - 2 * wall, -thick_mm, mat)

    def ellipse(self, cx: float, cy: float, rx: float, ry: float, thick_mm: float, mat: str, angle: float = 0.0,
                density_scale: float = 1.0) -> None:
        """An extruded ellipse."""
        mask = np.zeros(self.a_low.shape, np.uint8)
        c = (int(round(cx / self.pitch * 16 + 16)), int(round(cy / self.pitch * 16 + 16)))
        ax = (max(1, int(round(rx / self.pitch * 16))), max(1, int(round(ry / self.pitch * 16))))
        cv2.ellipse(mask, c, ax, angle, 0, 360, 255, -1, cv2.LINE_AA, shift=4)
        self._add(mask.astype(np.float32) * (thick_mm / 10.0 / 255.0), mat, density_scale)

    def rod(self, p0: Point, p1: Point, radius: float, mat: str, bore: float = 0.0, density_scale: float = 1.0) -> None:
        """A revolved cylinder (tube when ``bore`` > 0) along the segment p0-p1 with rounded ends.

        Thickness at distance d from the axis is the chord 2*sqrt(r^2 - d^2), minus the bore's.
        """
        pit = self.pitch
        (x0, y0), (x1, y1) = p0, p1
        # pixel i is centred on (i - 1) * pitch mm (one pixel of margin, as in _px)
        lo_x = int(max(0, np.floor((min(x0, x1) - radius) / pit) + 1))
        hi_x = int(min(self.a_low.shape[1], np.ceil((max(x0, x1) + radius) / pit) + 2))
        lo_y = int(max(0, np.floor((min(y0, y1) - radius) / pit) + 1))
        hi_y = int(min(self.a_low.shape[0], np.ceil((max(y0, y1) + radius) / pit) + 2))
        if hi_x <= lo_x or hi_y <= lo_y:
            return
        xs = (np.arange(lo_x, hi_x, dtype=np.float32) - 1) * pit
        ys = (np.arange(lo_y, hi_y, dtype=np.float32) - 1) * pit
        gx, gy = np.meshgrid(xs, ys)
        dx, dy = x1 - x0, y1 - y0
        seg2 = dx * dx + dy * dy
        t = np.clip(((gx - x0) * dx + (gy - y0) * dy) / seg2, 0.0, 1.0) if seg2 > 0 else np.zeros_like(gx)
        d2 = (gx - x0 - t * dx) ** 2 + (gy - y0 - t * dy) ** 2
        chord = 2.0 * np.sqrt(np.maximum(radius * radius - d2, 0.0))
        if bore > 0:
            chord -= 2.0 * np.sqrt(np.maximum(bore * bore - d2, 0.0))
        self._add((chord / 10.0).astype(np.float32), mat, density_scale, lo_y, lo_x)

    def spring(self, p0: Point, p1: Point, radius: float, wire: float, turns: int, mat: str = "steel") -> None:
        """A coil spring seen from the side: a zig-zag of thin wire rods."""
        (x0, y0), (x1, y1) = p0, p1
        length = float(np.hypot(x1 - x0, y1 - y0)) or 1.0
        ux, uy = (x1 - x0) / length, (y1 - y0) / length
        nx, ny = -uy, ux
        prev = p0
        for k in range(1, 2 * turns + 1):
            s = k / (2 * turns) * length
            side = radius if k % 2 else -radius
            cur = (x0 + ux * s + nx * side, y0 + uy * s + ny * side)
            self.rod(prev, cur, wire, mat)
            prev = cur

    def polyline(self, pts: Sequence[Point], radius: float, mat: str, bore: float = 0.0) -> None:
        """A bent rod or cable through the points."""
        for a, b in zip(pts[:-1], pts[1:], strict=False):
            self.rod(a, b, radius, mat, bore)
