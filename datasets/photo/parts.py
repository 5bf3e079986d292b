"""Building blocks shared by the photo families: materials per build, stocks, grips, guards, magazines.

Every piece is a generic outline (boxes, tubes and a few polygon corners) with sizes drawn from broad
ranges; nothing here follows a real design or could be made from. Coordinates are millimetres in the
object frame: x along the bore towards the muzzle, y down, the bore on y = 0.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np

from armscan.datasets.photo.canvas import PhotoCanvas
from armscan.datasets.synth.canvas import Point

# Printed parts are PLA at 20-60% infill with solid walls (the X-ray engine's assumption too).
PRINTED_DENSITY = (0.35, 0.75)


class Mat(NamedTuple):
    """A material as drawn: X-ray material, density scale and photo look."""

    mat: str
    dens: float
    look: str


STEEL = Mat("steel", 1.0, "steel")
BRASS = Mat("brass", 1.0, "brass")


@dataclass
class Drawn:
    """A drawn firearm, part or object with its geometry facts in mm (object frame, after trimming)."""

    canvas: PhotoCanvas
    label: str  # a PHOTO_CLASSES name
    build: str  # a BUILDS name, or "unknown"
    length_mm: float | None
    ends: tuple[Point, Point] | None  # the overall-length segment, on the bore axis
    barrel: tuple[Point, Point] | None  # breech face to muzzle
    part: str | None = None  # for part_only: the X-ray class of the part
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def barrel_mm(self) -> float | None:
        """Barrel length in mm (None without a barrel)."""
        if self.barrel is None:
            return None
        (x0, y0), (x1, y1) = self.barrel
        return float(np.hypot(x1 - x0, y1 - y0))


def finish(
    c: PhotoCanvas,
    label: str,
    build: str,
    barrel: tuple[Point, Point] | None,
    details: dict[str, Any],
    part: str | None = None,
    axis_y: float = 0.0,
) -> Drawn:
    """Trim the canvas and measure: overall length is the visible extent along the bore axis (x)."""
    dx, dy = c.trim()
    x0, x1 = c.extent_x()
    ends = ((x0, axis_y + dy), (x1, axis_y + dy))
    if barrel is not None:
        barrel = ((barrel[0][0] + dx, barrel[0][1] + dy), (barrel[1][0] + dx, barrel[1][1] + dy))
    return Drawn(c, label, build, x1 - x0, ends, barrel, part, details)


def frame_mat(rng: np.random.Generator, build: str) -> Mat:
    """The frame or receiver material of a build."""
    if build == "metal":
        return STEEL if rng.random() < 0.65 else Mat("aluminium", 1.0, "aluminium")
    if build == "polymer":
        return Mat(str(rng.choice(["nylon", "pom"])), 1.0, "polymer")
    return Mat("pla", float(rng.uniform(*PRINTED_DENSITY)), "printed")


def furniture(rng: np.random.Generator, build: str, wood_p: float = 0.6) -> Mat:
    """Stock, fore-end and grip material: wood or synthetic on metal guns, the frame's on the others."""
    if build == "printed":
        return Mat("pla", float(rng.uniform(*PRINTED_DENSITY)), "printed2" if rng.random() < 0.3 else "printed")
    if build == "metal" and rng.random() < wood_p:
        return Mat("wood", 1.0, "wood")
    return Mat("nylon", 1.0, "polymer")


def poly(c: PhotoCanvas, m: Mat, pts: list[Point], thick: float, tag: str | None = None) -> None:
    """An extruded polygon in material ``m``."""
    with c.style(m.look, tag):
        c.poly(pts, thick, m.mat, m.dens)


def rect(c: PhotoCanvas, m: Mat, x: float, y: float, w: float, h: float, thick: float, tag: str | None = None) -> None:
    """An extruded rectangle in material ``m``."""
    with c.style(m.look, tag):
        c.rect(x, y, w, h, thick, m.mat, m.dens)


def rod(c: PhotoCanvas, m: Mat, p0: Point, p1: Point, r: float, tag: str | None = None) -> None:
    """A round bar (hollow for X-ray when it is a barrel) in material ``m``."""
    with c.style(m.look, tag):
        c.rod(p0, p1, r, m.mat, r * 0.5 if tag == "barrel" else 0.0, m.dens)


def bent(c: PhotoCanvas, m: Mat, pts: list[Point], r: float) -> None:
    """A bent bar through the points (a trigger guard, a lever, a wire stock)."""
    with c.style(m.look):
        c.polyline(pts, r, m.mat)


def barrel(c: PhotoCanvas, x0: float, x1: float, r: float, y: float = 0.0) -> tuple[Point, Point]:
    """A steel barrel from x0 (breech) to x1 (muzzle) whose outline spans exactly [x0, x1]."""
    rod(c, STEEL, (x0 + r, y), (x1 - r, y), r, tag="barrel")
    return (x0, y), (x1, y)


def trigger_guard(c: PhotoCanvas, m: Mat, x: float, y: float, w: float, h: float, r: float = 2.5) -> None:
    """A loop hanging below y from x (rear) to x + w (front), with a trigger inside."""
    bent(c, m, [(x, y - 1), (x - 2, y + h * 0.7), (x + w * 0.3, y + h), (x + w, y + h * 0.8), (x + w + 3, y - 1)], r)
    rod(c, STEEL if m.mat != "pla" else m, (x + w * 0.5, y), (x + w * 0.4, y + h * 0.65), 2.2)


def pistol_grip(c: PhotoCanvas, m: Mat, x: float, y: float, w: float, h: float, slant: float, thick: float) -> None:
    """A grip hanging from (x, y) (its rear top corner), ``w`` wide, slanted back by ``slant`` over ``h``."""
    poly(
        c,
        m,
        [
            (x - 2, y - 2),
            (x + w, y - 2),
            (x + w - slant + 2, y + h - 3),
            (x + w - slant - 3, y + h),
            (x - slant + 2, y + h),
            (x - slant - 1, y + h - 4),
        ],
        thick,
    )


def box_magazine(c: PhotoCanvas, m: Mat, x: float, y: float, w: float, length: float, curve: float, thick: float) -> None:
    """A box magazine from the receiver's underside at (x, y), ``w`` wide, bending forward by ``curve``."""
    t = np.linspace(0, 1, 6)
    front = [(x + w + curve * k * k, y + length * k) for k in t]
    rear = [(x + curve * k * k - (curve * 0.15 * k), y + length * k) for k in t[::-1]]
    poly(c, m, [*front, *rear], thick)
    rect(c, m, x + curve - 3, y + length - 2, w + 6, 6, thick + 0.5)  # floor plate


def sporter_stock(
    c: PhotoCanvas, m: Mat, rng: np.random.Generator, x_rr: float, rec_bot: float, thick: float, pistol: bool
) -> float:
    """A one-piece butt stock from x = 0 to the receiver's rear ``x_rr``; returns the wrist's bottom y."""
    comb = rng.uniform(4, 14)
    butt_h = rng.uniform(105, 145)
    wrist_x = x_rr - rng.uniform(40, 70)
    wrist_y = rec_bot + rng.uniform(18, 30)
    pts: list[Point] = [(0, comb), (wrist_x - 60, comb + 4), (x_rr + 2, rec_bot - 2), (x_rr + 2, rec_bot + 14)]
    if pistol:
        pts += [(wrist_x + 16, wrist_y + 42), (wrist_x - 8, wrist_y + 46), (wrist_x - 22, wrist_y + 10)]
    else:
        pts += [(wrist_x, wrist_y)]
    pts += [(0, comb + butt_h)]
    poly(c, m, pts, thick)
    rect(c, Mat("polyethylene", 1.0, "rubber"), -rng.uniform(10, 22), comb, rng.uniform(10, 22) + 1, butt_h, thick - 2)
    return wrist_y


def fore_end(c: PhotoCanvas, m: Mat, x0: float, x1: float, top: float, depth: float, thick: float) -> None:
    """A fore-end under the barrel from x0 to x1, its top edge at ``top``, ``depth`` deep, with a rounded tip."""
    poly(c, m, [(x0, top), (x1 - 8, top), (x1, top + depth * 0.3), (x1 - 6, top + depth), (x0, top + depth)], thick)


def scope(c: PhotoCanvas, rng: np.random.Generator, x0: float, x1: float, y_top: float) -> None:
    """A telescopic sight on two mounts above the receiver (the mounts stand on ``y_top``)."""
    r = rng.uniform(11, 16)
    y = y_top - rng.uniform(18, 30) - r
    m = Mat("aluminium", 1.0, "aluminium")
    for mx in (x0 + (x1 - x0) * 0.3, x0 + (x1 - x0) * 0.68):
        rect(c, m, mx - 6, y, 12, y_top - y + 2, 24)
    rod(c, m, (x0 + 20, y), (x1 - 30, y), r)
    rod(c, m, (x1 - 50, y), (x1, y), r + rng.uniform(4, 10))  # objective bell
    rod(c, m, (x0, y), (x0 + 45, y), r + 3)  # ocular


def hidden_cartridges(c: PhotoCanvas, x: float, y: float, n: int, step: float, cal: float) -> None:
    """Rounds inside a magazine: seen by X-ray, not by the camera."""
    with c.style(tag="hidden"):
        for k in range(n):
            c.rod((x, y + k * step), (x + cal * 2.2, y + k * step), cal / 2, "brass")
