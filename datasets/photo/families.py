"""The photo families and loose parts: one registry, builds per family, and X-ray items from the same geometry.

    drawn = draw("lever_action", np.random.default_rng(0))   # PhotoCanvas + length, barrel segment, build
    item = xray_item("revolver", np.random.default_rng(0), pitch=0.8)   # a threats.Item for the X-ray engine

Every family is drawn on a :class:`PhotoCanvas`, so its optical depth is a valid X-ray canvas.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np

from armscan.datasets.photo.canvas import PhotoCanvas
from armscan.datasets.photo.handguns import pistol_drawing, revolver, semi_auto_pistol, submachine_gun
from armscan.datasets.photo.long_guns import (
    bolt_action,
    break_action,
    lever_action,
    old_mechanism,
    pump_action,
    semi_auto_rifle_military,
    semi_auto_rifle_sporting,
)
from armscan.datasets.photo.parts import STEEL, Drawn, Mat, barrel, box_magazine, finish, frame_mat, pistol_grip, rect, rod
from armscan.datasets.synth.threats import Item
from armscan.datasets.taxonomy import BUILDS, NO_FIREARM, PART_ONLY, PHOTO_FAMILIES, PHOTO_TO_XRAY_TYPE

Family = Callable[[np.random.Generator, str, float], Drawn]

FAMILIES: dict[str, Family] = {
    "semi_auto_pistol": semi_auto_pistol,
    "revolver": revolver,
    "bolt_action": bolt_action,
    "lever_action": lever_action,
    "pump_action": pump_action,
    "break_action": break_action,
    "semi_auto_rifle_sporting": semi_auto_rifle_sporting,
    "semi_auto_rifle_military": semi_auto_rifle_military,
    "submachine_gun": submachine_gun,
    "old_mechanism": old_mechanism,
}
assert tuple(FAMILIES) == PHOTO_FAMILIES, "one generator per photo family, in the taxonomy's order"

#: P(metal, polymer, printed) per family: revolvers and old mechanisms are nearly always metal.
FAMILY_BUILDS: dict[str, tuple[float, float, float]] = {
    "semi_auto_pistol": (0.35, 0.45, 0.20),
    "revolver": (0.93, 0.02, 0.05),
    "bolt_action": (0.75, 0.10, 0.15),
    "lever_action": (0.90, 0.03, 0.07),
    "pump_action": (0.80, 0.10, 0.10),
    "break_action": (0.90, 0.02, 0.08),
    "semi_auto_rifle_sporting": (0.70, 0.15, 0.15),
    "semi_auto_rifle_military": (0.50, 0.25, 0.25),
    "submachine_gun": (0.45, 0.25, 0.30),
    "old_mechanism": (0.96, 0.00, 0.04),
}
#: Loose parts of a ``part_only`` photo and the builds they come in.
PARTS: dict[str, tuple[str, ...]] = {
    "slide": ("metal", "printed"),
    "barrel": ("metal",),
    "frame_receiver": ("metal", "polymer", "printed"),
    "magazine": ("metal", "polymer"),
    "bolt": ("metal",),
}


class FamilyError(ValueError):
    """An unknown family, part or build."""


def draw_build(rng: np.random.Generator, family: str, weights: Mapping[str, tuple[float, float, float]] | None = None) -> str:
    """Draw a build for ``family`` from ``weights`` (default :data:`FAMILY_BUILDS`)."""
    p = np.asarray((weights or FAMILY_BUILDS)[family], np.float64)
    return str(BUILDS[int(rng.choice(len(BUILDS), p=p / p.sum()))])


def draw(
    label: str,
    rng: np.random.Generator,
    build: str | None = None,
    pitch: float = 0.8,
    weights: Mapping[str, tuple[float, float, float]] | None = None,
) -> Drawn:
    """Draw a firearm of family ``label`` (or a loose part for ``part_only``) with ``build`` (default: drawn)."""
    if build is not None and build not in BUILDS:
        raise FamilyError(f"Unknown build {build!r}. Valid builds: {', '.join(BUILDS)}")
    if label == PART_ONLY:
        return loose_part(rng, None, build, pitch)
    if label not in FAMILIES:
        raise FamilyError(f"Unknown photo family {label!r}. Valid: {', '.join(PHOTO_FAMILIES)}, {PART_ONLY}")
    return FAMILIES[label](rng, build or draw_build(rng, label, weights), pitch)


def loose_part(rng: np.random.Generator, part: str | None = None, build: str | None = None, pitch: float = 0.8) -> Drawn:
    """A loose slide, barrel, frame or receiver, magazine or bolt, lying alone; its long axis is x."""
    part = part or str(rng.choice(list(PARTS), p=[0.2, 0.2, 0.25, 0.2, 0.15]))
    if part not in PARTS:
        raise FamilyError(f"Unknown part {part!r}. Valid parts: {', '.join(PARTS)}")
    if build is None or build not in PARTS[part]:
        build = str(rng.choice(list(PARTS[part])))
    if part == "slide":
        return pistol_drawing(rng, build, pitch, ("slide",))
    if part == "barrel":
        if rng.random() < 0.5:
            return pistol_drawing(rng, build, pitch, ("barrel",))
        c = PhotoCanvas(800, 60, pitch)
        L, r = rng.uniform(300, 650), rng.uniform(7, 11)
        bar = barrel(c, 0, L, r)
        if rng.random() < 0.5:  # chamber end
            rod(c, STEEL, (r + 2, 0), (rng.uniform(30, 60), 0), r + rng.uniform(2, 5))
        return finish(c, PART_ONLY, build, bar, {"barrel": "rifle"}, part)
    if part == "frame_receiver":
        if rng.random() < 0.6:
            return pistol_drawing(rng, build, pitch, ("frame",))
        c = PhotoCanvas(400, 250, pitch)
        m = frame_mat(rng, build)
        L, h, t = rng.uniform(180, 260), rng.uniform(40, 60), rng.uniform(28, 36)
        rect(c, m, 0, -h / 2, L, h, t)
        rect(c, m, L * 0.45, h / 2 - 1, rng.uniform(34, 40), rng.uniform(20, 35), t - 4)  # magazine well
        pistol_grip(c, m, L * 0.15, h / 2 - 2, 32, rng.uniform(80, 105), 26, t + 1)
        return finish(c, PART_ONLY, build, None, {"frame": "receiver"}, part)
    if part == "magazine":
        c = PhotoCanvas(300, 120, pitch)
        m = STEEL if build == "metal" else Mat("nylon", 1.0, "polymer")
        box_magazine(c, m, 0, 0, rng.uniform(26, 36), rng.uniform(95, 250), rng.uniform(0, 50), rng.uniform(20, 26))
        c.transpose()
        return finish(c, PART_ONLY, build, None, {"magazine": m.look}, part)
    c = PhotoCanvas(300, 120, pitch)  # bolt
    L, r = rng.uniform(90, 200), rng.uniform(8, 11)
    rod(c, STEEL, (r, 0), (L - r, 0), r)
    handle = rng.random() < 0.6
    if handle:  # a bolt-action bolt: handle and knob
        hx, tip = L * rng.uniform(0.6, 0.85), (L * rng.uniform(0.55, 0.9), rng.uniform(35, 55))
        rod(c, STEEL, (hx, 0), tip, 3.8)
        with c.style("steel"):
            c.ellipse(tip[0], tip[1], 8, 8, 16, "steel")
    else:
        rect(c, STEEL, 0, -r - 6, L * 0.7, 8, r)  # carrier key
    return finish(c, PART_ONLY, build, None, {"bolt": "handle" if handle else "carrier"}, part)


def xray_item(label: str, rng: np.random.Generator, pitch: float = 0.8, build: str | None = None) -> Item:
    """The same geometry as an X-ray :class:`Item` (cls ``firearm`` with its X-ray type, or the part's class)."""
    if label == NO_FIREARM:
        raise FamilyError(f"{NO_FIREARM!r} has no firearm to project; use the X-ray engine's benign items")
    d = draw(label, rng, build, pitch)
    if d.part is not None:
        return Item(d.canvas, d.part, "unknown", d.build, f"photo:{d.part}")
    return Item(d.canvas, "firearm", PHOTO_TO_XRAY_TYPE[label], d.build, f"photo:{label}")
