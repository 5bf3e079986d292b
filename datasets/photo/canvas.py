"""An X-ray :class:`Canvas` that also remembers what it drew, so the same geometry can be photographed.

:class:`PhotoCanvas` takes the X-ray engine's primitives (``rect``, ``poly``, ``ellipse``, ``rod``,
``stroke``; ``frame``, ``polyline`` and ``spring`` are built from those) in millimetres, and records each
one as an :class:`Op`: its outline, its thickness along the view, its X-ray material and, for the photo
renderer, a *look* (how the surface appears: blued steel, wood, printed PLA...) and a *tag* (``body``,
``barrel``, or ``hidden`` for internals that X-ray sees and a camera does not).

The optical-depth maps are only computed when something asks for them (``a``, ``a_low``, ``a_high`` or
:meth:`PhotoCanvas.xray`): the recorded calls are replayed on a plain :class:`Canvas`, so an X-ray item
built from a photo family is exactly what the X-ray engine would have drawn, and a photo render never pays
for attenuation maps it does not use.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from armscan.datasets.materials import MATERIALS
from armscan.datasets.synth.canvas import Canvas, Point

#: The look of a material when no look is given (looks are coloured per render by ``looks.py``).
DEFAULT_LOOK: dict[str, str] = {
    "steel": "steel",
    "aluminium": "aluminium",
    "zinc_alloy": "steel",
    "wood": "wood",
    "nylon": "polymer",
    "pom": "polymer",
    "pla": "printed",
    "abs": "plastic",
    "polyethylene": "rubber",
    "brass": "brass",
    "copper": "copper",
    "lead": "lead",
    "paper": "paper",
    "cotton": "fabric",
    "glass": "glass",
    "water": "glass",
}
#: Tags: ``barrel`` pixels form the barrel mask; ``hidden`` primitives exist only in X-ray.
TAGS: tuple[str, ...] = ("body", "barrel", "hidden")


class GeometryError(ValueError):
    """A primitive, tag or look that the photo canvas cannot draw."""


@dataclass(frozen=True)
class Op:
    """One recorded primitive: ``outline`` (N, 2) in mm is a closed polygon, or the path of a stroke."""

    kind: str  # "fill" (polygon), "rod" (capsule, shaded as a cylinder) or "stroke" (open polyline)
    outline: np.ndarray  # (N, 2) mm, object frame (x right, y down)
    thick: float  # extent along the view in mm; negative: a recess cut into what lies below
    mat: str
    look: str
    tag: str
    radius: float = 0.0  # rod radius or stroke half-width, mm
    axis: tuple[Point, Point] | None = None  # a rod's axis
    lift: float = 0.0  # mm it sits above the object's other parts of equal thickness (print on a surface)

    @property
    def top(self) -> float:
        """Stacking key: thicker (and lifted) primitives are seen on top."""
        return self.thick + self.lift


def _half_circle(n: int) -> np.ndarray:
    t = np.linspace(-np.pi / 2, np.pi / 2, n + 1)
    return np.stack([np.cos(t), np.sin(t)], axis=1)


HALF_CIRCLE = _half_circle(8)  # (9, 2) unit half circle facing +x


def capsule(p0: Point, p1: Point, r: float) -> np.ndarray:
    """Outline (18, 2) of a segment p0-p1 thickened by ``r``, with round ends."""
    (x0, y0), (x1, y1) = p0, p1
    d = np.array([x1 - x0, y1 - y0], np.float64)
    n = float(np.hypot(d[0], d[1]))
    c, s = (d / n) if n > 0 else (1.0, 0.0)
    rot = np.array([[c, s], [-s, c]]) * r  # row vectors: (x, y) @ rot rotates by the segment's angle and scales
    end = HALF_CIRCLE @ rot
    return np.concatenate([end + (x1, y1), (x0, y0) - end])


def ellipse_outline(cx: float, cy: float, rx: float, ry: float, angle_deg: float = 0.0, n: int = 24) -> np.ndarray:
    """Outline (n, 2) of an ellipse rotated by ``angle_deg`` (OpenCV's convention, y down)."""
    t = np.linspace(0, 2 * np.pi, n, endpoint=False)
    a = np.deg2rad(angle_deg)
    x, y = rx * np.cos(t), ry * np.sin(t)
    return np.stack([cx + x * np.cos(a) - y * np.sin(a), cy + x * np.sin(a) + y * np.cos(a)], axis=1)


def _plain(v: Any) -> Any:
    """Numbers as Python floats, points as tuples (the X-ray Canvas keeps float32 maps only with plain floats)."""
    if isinstance(v, np.ndarray | list | tuple):
        return tuple(_plain(x) for x in v) if isinstance(v, tuple) else [_plain(x) for x in v]
    if isinstance(v, np.floating | np.integer):
        return float(v)
    return v


def _shift_pts(pts: Sequence[Point], dx: float, dy: float) -> list[Point]:
    return [(x + dx, y + dy) for x, y in pts]


def _swap_pts(pts: Sequence[Point]) -> list[Point]:
    return [(y, x) for x, y in pts]


def _axis(pts: list[Point]) -> tuple[Point, Point]:
    return pts[0], pts[1]


def _shift_call(name: str, args: tuple[Any, ...], dx: float, dy: float) -> tuple[Any, ...]:
    """The recorded Canvas call ``name(*args)`` moved by (dx, dy) mm."""
    if name in ("poly", "stroke"):
        return (_shift_pts(args[0], dx, dy), *args[1:])
    if name in ("rect", "ellipse"):
        return (args[0] + dx, args[1] + dy, *args[2:])
    if name == "rod":
        (x0, y0), (x1, y1) = args[0], args[1]
        return ((x0 + dx, y0 + dy), (x1 + dx, y1 + dy), *args[2:])
    raise GeometryError(f"cannot move a recorded {name!r} call")


def _transpose_call(name: str, args: tuple[Any, ...]) -> tuple[Any, ...]:
    """The recorded Canvas call ``name(*args)`` mirrored across the diagonal."""
    if name in ("poly", "stroke"):
        return (_swap_pts(args[0]), *args[1:])
    if name == "rect":
        x, y, w, h, *rest = args
        return (y, x, h, w, *rest)
    if name == "ellipse":
        cx, cy, rx, ry, thick, mat, angle, dens = args
        return (cy, cx, ry, rx, thick, mat, -angle, dens)
    if name == "rod":
        (x0, y0), (x1, y1) = args[0], args[1]
        return ((y0, x0), (y1, x1), *args[2:])
    raise GeometryError(f"cannot transpose a recorded {name!r} call")


class PhotoCanvas(Canvas):
    """A ``width_mm`` x ``height_mm`` object frame whose primitives are recorded for the photo renderer.

    It is a :class:`Canvas` for the X-ray engine too: ``a`` (h, w, 2) is the optical depth at ``pitch``
    mm/px, computed on first use by replaying the recorded calls. Set the look and tag of the primitives
    that follow with :meth:`style`.
    """

    def __init__(self, width_mm: float, height_mm: float, pitch: float = 0.8) -> None:
        # Canvas.__init__ is not called: its maps are made lazily by xray().
        self.pitch = pitch
        self.width_mm, self.height_mm = float(width_mm), float(height_mm)
        self.depth_mm = 0.0
        self.ops: list[Op] = []
        self._calls: list[tuple[str, tuple[Any, ...]]] = []
        self._tag, self._look, self._lift = "body", "", 0.0
        self._xray: Canvas | None = None

    # -- the X-ray side -------------------------------------------------------------------------------
    @property
    def a(self) -> np.ndarray:
        """Optical depth (h, w, [low, high]) of everything recorded, hidden parts included."""
        return np.asarray(self.xray().a)

    @a.setter
    def a(self, value: np.ndarray) -> None:
        raise AttributeError("a PhotoCanvas computes its optical depth from its primitives: draw on it instead")

    def xray(self) -> Canvas:
        """The plain X-ray :class:`Canvas` of the recorded calls (cached until the next primitive)."""
        if self._xray is None:
            c = Canvas(self.width_mm, self.height_mm, self.pitch)
            for name, args in self._calls:
                getattr(c, name)(*_plain(args))
            self._xray = c
        return self._xray

    # -- recording ------------------------------------------------------------------------------------
    @contextmanager
    def style(self, look: str | None = None, tag: str | None = None, lift: float | None = None) -> Iterator[None]:
        """Draw the primitives inside this block with ``look`` (default: the material's), ``tag``, and
        ``lift`` mm above what they lie on (marks printed on a card or a ruler)."""
        if tag is not None and tag not in TAGS:
            raise GeometryError(f"Unknown tag {tag!r}. Valid tags: {', '.join(TAGS)}")
        saved = self._tag, self._look, self._lift
        self._tag = tag if tag is not None else self._tag
        self._look = look if look is not None else self._look
        self._lift = lift if lift is not None else self._lift
        try:
            yield
        finally:
            self._tag, self._look, self._lift = saved

    def _record(
        self,
        call: tuple[str, tuple[Any, ...]],
        kind: str,
        outline: np.ndarray,
        thick: float,
        mat: str,
        radius: float = 0.0,
        axis: tuple[Point, Point] | None = None,
    ) -> None:
        if mat not in MATERIALS:
            raise GeometryError(f"Unknown material {mat!r}. Known: {', '.join(sorted(MATERIALS))}")
        look = self._look or DEFAULT_LOOK[mat]
        self.ops.append(Op(kind, np.asarray(outline, np.float64), float(thick), mat, look, self._tag, radius, axis, self._lift))
        self._calls.append(call)
        self._xray = None

    def poly(self, pts: Sequence[Point], thick_mm: float, mat: str, density_scale: float = 1.0) -> None:
        """An extruded polygon (outline in mm) of constant thickness."""
        self._record(("poly", (list(pts), thick_mm, mat, density_scale)), "fill", np.asarray(pts), thick_mm, mat)
        self.depth_mm = max(self.depth_mm, float(thick_mm))

    def rect(self, x: float, y: float, w: float, h: float, thick_mm: float, mat: str, density_scale: float = 1.0) -> None:
        """An extruded axis-aligned rectangle."""
        x0, x1, y0, y1 = min(x, x + w), max(x, x + w), min(y, y + h), max(y, y + h)
        outline = np.array([(x0, y0), (x1, y0), (x1, y1), (x0, y1)])
        self._record(("rect", (x, y, w, h, thick_mm, mat, density_scale)), "fill", outline, thick_mm, mat)
        self.depth_mm = max(self.depth_mm, float(thick_mm))

    def ellipse(
        self,
        cx: float,
        cy: float,
        rx: float,
        ry: float,
        thick_mm: float,
        mat: str,
        angle: float = 0.0,
        density_scale: float = 1.0,
    ) -> None:
        """An extruded ellipse (``angle`` in degrees)."""
        outline = ellipse_outline(cx, cy, rx, ry, angle)
        self._record(("ellipse", (cx, cy, rx, ry, thick_mm, mat, angle, density_scale)), "fill", outline, thick_mm, mat)
        self.depth_mm = max(self.depth_mm, float(thick_mm))

    def rod(self, p0: Point, p1: Point, radius: float, mat: str, bore: float = 0.0, density_scale: float = 1.0) -> None:
        """A revolved cylinder along p0-p1 with rounded ends (a tube in X-ray when ``bore`` > 0)."""
        self._record(
            ("rod", (p0, p1, radius, mat, bore, density_scale)), "rod", capsule(p0, p1, radius), 2 * radius, mat, radius, (p0, p1)
        )
        self.depth_mm = max(self.depth_mm, 2.0 * radius)

    def stroke(self, pts: Sequence[Point], wire: float, mat: str) -> None:
        """A thin wire of radius ``wire`` mm through the points."""
        self._record(("stroke", (list(pts), wire, mat)), "stroke", np.asarray(pts), 2 * wire, mat, wire)

    def trim(self, margin: float = 4.0) -> tuple[float, float]:
        """Shift everything so the drawing starts ``margin`` mm from the top-left and fit the canvas to it.

        Families draw in any convenient frame and call this last; returns the shift (dx, dy) in mm.
        """
        pts = np.concatenate([o.outline for o in self.ops])
        lo, hi = pts.min(axis=0), pts.max(axis=0)
        dx, dy = float(margin - lo[0]), float(margin - lo[1])
        d = np.array([dx, dy])
        self.ops = [
            replace(o, outline=o.outline + d, axis=None if o.axis is None else _axis(_shift_pts(o.axis, dx, dy)))
            for o in self.ops
        ]
        self._calls = [(name, _shift_call(name, args, dx, dy)) for name, args in self._calls]
        self.width_mm, self.height_mm = float(hi[0] - lo[0] + 2 * margin), float(hi[1] - lo[1] + 2 * margin)
        self._xray = None
        return dx, dy

    def transpose(self) -> None:
        """Mirror the drawing across the diagonal (x <-> y), e.g. to lay a part drawn upright along x."""
        self.ops = [
            replace(o, outline=o.outline[:, ::-1].copy(), axis=None if o.axis is None else _axis(_swap_pts(o.axis)))
            for o in self.ops
        ]
        self._calls = [(name, _transpose_call(name, args)) for name, args in self._calls]
        self.width_mm, self.height_mm = self.height_mm, self.width_mm
        self._xray = None

    # -- geometry facts -------------------------------------------------------------------------------
    def visible_points(self) -> np.ndarray:
        """All outline points (N, 2) in mm of what a camera sees (no hidden parts, no recesses)."""
        pts = [o.outline for o in self.ops if o.tag != "hidden" and o.thick > 0]
        if not pts:
            raise GeometryError("nothing visible was drawn on this canvas")
        return np.concatenate(pts)

    def extent_x(self) -> tuple[float, float]:
        """The visible extent along x (the bore axis of a firearm), in mm."""
        pts = self.visible_points()
        return float(pts[:, 0].min()), float(pts[:, 0].max())
