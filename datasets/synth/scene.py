"""Compose parcels from objects and render them as dual-energy X-ray scans.

A scan is built in optical depth. Each object's canvas gets a random 3D orientation
(:func:`orient`): tilting it by an angle t about an in-plane axis shortens its footprint by
|cos t| across that axis and spreads its depth over ``depth_mm * |sin t|``, keeping its
attenuation integral (mass) unchanged, so a pistol seen edge-on is a thin dense bar. It is
then flipped, rotated in the plane and added into the scene's (H, W, 2) map, so overlapping
objects attenuate multiplicatively in transmission (Beer-Lambert). The detector model
(:func:`detect`) adds scatter, blur, line-scan gain patterns, quantum and electronic noise
and saturation; the display (:func:`armscan.datasets.xray.render`) maps the measured pair
to one of the styles in :data:`STYLES`.

In a share of threat scans (``SceneConfig.disassembled_prob``) the threat is one firearm taken apart
(:func:`armscan.datasets.synth.threats.disassembled_gun`): its parts go to cells of the parcel far from
one another, each boxed with its part class and the gun's build, and the scan's metadata says
``"disassembled": true`` (with ``disassembled_type``, the gun's type).

Each threat box records ``occlusion``: the fraction of the object's footprint (pixels where
its own high-energy optical depth exceeds ``_FOOTPRINT``) at which the other objects in the
parcel (clutter and other threats, not the container shell) attenuate more than the object
itself does. Its ``bbox`` is the tight box of that footprint.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np

from armscan.datasets.synth._alloc import keep_heap_warm
from armscan.datasets.synth.benign import DENSE_CLUTTER, container, random_benign
from armscan.datasets.synth.detector import detect
from armscan.datasets.synth.threats import Item, disassembled_gun, random_threat
from armscan.datasets.xray import STYLES, render

__all__ = ["DIFFICULTIES", "STYLES", "Placement", "Scan", "SceneConfig", "compose", "detect", "generate", "occlusion",
           "orient", "place"]

DIFFICULTIES = ("easy", "hard", "hidden")
_FOOTPRINT = 0.02  # high-energy optical depth above which a pixel belongs to an object


@dataclass(frozen=True)
class SceneConfig:
    """How parcels are drawn. ``threat_prob`` is the share of scans holding at least one threat;
    ``style_probs`` weighs :data:`STYLES` (pseudo, vendor_a, vendor_b, vendor_c, grey) when no style is given;
    ``max_tilt_deg`` bounds the out-of-plane tilt (0: every object lies flat); ``disassembled_prob`` is the share of
    threat scans that hold one firearm taken apart, its parts spread through the parcel, instead of loose threats."""

    threat_prob: float = 0.6
    max_threats: int = 3
    style_probs: tuple[float, ...] = (0.4, 0.15, 0.15, 0.15, 0.15)
    difficulty_probs: tuple[float, float, float] = (0.4, 0.4, 0.2)
    max_tilt_deg: float = 90.0
    disassembled_prob: float = 0.08

    def __post_init__(self) -> None:
        if len(self.style_probs) != len(STYLES):
            raise ValueError(f"style_probs needs one weight per style ({', '.join(STYLES)}), got {self.style_probs}")
        if not 0.0 <= self.disassembled_prob <= 1.0:
            raise ValueError(f"disassembled_prob must lie within [0, 1], got {self.disassembled_prob}")
        probs = self.difficulty_probs
        if len(probs) != len(DIFFICULTIES) or min(probs) < 0 or abs(sum(probs) - 1.0) > 1e-6:
            raise ValueError(f"difficulty_probs needs one non-negative weight per difficulty ({', '.join(DIFFICULTIES)}) "
                             f"summing to 1, got {tuple(probs)}")


@dataclass
class Scan:
    """One generated scan: BGR image, box annotations and provenance."""

    image: np.ndarray  # (H, W, 3) uint8 BGR
    boxes: list[dict[str, Any]] = field(default_factory=list)  # {bbox: [x, y, w, h], cls, type, build, occlusion, tilt}
    meta: dict[str, Any] = field(default_factory=dict)
    transmissions: np.ndarray | None = None  # (H, W, 2) float32 low/high, what the detector measured
    masks: list[np.ndarray] = field(default_factory=list)  # per box: (H, W) bool footprint of the object

    def raw16(self) -> tuple[np.ndarray, np.ndarray]:
        """The low and high channels as 16-bit images (full scale = unattenuated air)."""
        if self.transmissions is None:
            raise ValueError("this scan was generated without its transmissions")
        t = np.round(self.transmissions * 65535.0).astype(np.uint16)
        return t[..., 0], t[..., 1]


@dataclass
class Placement:
    """Where an object landed: its own optical depth ``own`` (h, w, 2) at (x0, y0) and its tilt in degrees."""

    x0: int
    y0: int
    own: np.ndarray
    tilt_deg: float

    def footprint(self) -> np.ndarray:
        """(h, w) bool: the pixels the object covers."""
        return np.asarray(self.own[..., 1] > _FOOTPRINT)

    def box(self) -> tuple[float, float, float, float] | None:
        """Tight (x, y, w, h) box of the footprint in scene pixels, or None when it is empty."""
        fp = self.footprint()
        rows, cols = np.flatnonzero(fp.any(axis=1)), np.flatnonzero(fp.any(axis=0))
        if len(rows) == 0:
            return None
        return (float(self.x0 + cols[0]), float(self.y0 + rows[0]), float(cols[-1] - cols[0] + 1),
                float(rows[-1] - rows[0] + 1))


_Placed = list[tuple[Item, Placement, tuple[float, float, float, float]]]  # labelled items, their placement and box


def _draw_tilt(rng: np.random.Generator, max_deg: float) -> float:
    """Out-of-plane tilt in degrees: most objects lie about flat, one in five stands steep or on its edge."""
    u = rng.random()
    deg = abs(rng.normal(0, 10)) if u < 0.55 else rng.uniform(0, 60) if u < 0.8 else rng.uniform(60, 90)
    return float(min(deg, max_deg))


def orient(maps: np.ndarray, depth_mm: float, pitch: float, tilt_deg: float, axis: int) -> np.ndarray:
    """Tilt an object's optical-depth maps (h, w, 2) by ``tilt_deg`` about the in-plane ``axis`` (0: x, 1: y).

    The footprint shrinks by |cos| across the axis (area resampling, depth scaled so the sum is
    kept) and the depth spreads over the object's thickness seen sideways (``depth_mm * |sin|``).
    Edge-on, a plate of height H and thickness d becomes a bar d wide whose path length is H.
    """
    c, s = abs(np.cos(np.radians(tilt_deg))), abs(np.sin(np.radians(tilt_deg)))
    if c > 0.985:
        return maps
    h, w = maps.shape[:2]
    n = max(1, int(round((h if axis == 0 else w) * c)))
    size = (w, n) if axis == 0 else (n, h)
    out: np.ndarray = cv2.resize(maps, size, interpolation=cv2.INTER_AREA) * np.float32((h * w) / (size[0] * size[1]))
    k = max(1, int(round(depth_mm * s / pitch)))
    if k > 1:
        pad = (k // 2 + 1, k // 2 + 1, 0, 0) if axis == 0 else (0, 0, k // 2 + 1, k // 2 + 1)
        out = cv2.copyMakeBorder(out, *pad, cv2.BORDER_CONSTANT, value=0)
        out = cv2.blur(out, (1, k) if axis == 0 else (k, 1), borderType=cv2.BORDER_CONSTANT)
    return np.asarray(out)


def place(scene: np.ndarray, item: Item, rng: np.random.Generator, centre: tuple[float, float] | None,
          margin: int, max_tilt_deg: float = 90.0) -> Placement | None:
    """Orient, flip, rotate and add ``item`` into ``scene`` (H, W, 2); None when it does not fit."""
    tilt = _draw_tilt(rng, max_tilt_deg)
    maps = orient(item.canvas.a, item.canvas.depth_mm, item.canvas.pitch, tilt, int(rng.integers(2)))
    if rng.random() < 0.5:
        maps = cv2.flip(maps, 1)
    h, w = maps.shape[:2]
    angle = float(rng.uniform(0, 360))
    rot = cv2.getRotationMatrix2D((w / 2, h / 2), angle, 1.0)
    cos, sin = abs(rot[0, 0]), abs(rot[0, 1])
    nw, nh = int(np.ceil(h * sin + w * cos)), int(np.ceil(h * cos + w * sin))
    rot[0, 2] += nw / 2 - w / 2
    rot[1, 2] += nh / 2 - h / 2
    H, W = scene.shape[:2]
    if nw >= W - 2 * margin or nh >= H - 2 * margin:
        return None
    warped = cv2.warpAffine(maps, rot, (nw, nh), flags=cv2.INTER_LINEAR)
    if centre is None:
        x0 = int(rng.integers(margin, W - margin - nw))
        y0 = int(rng.integers(margin, H - margin - nh))
    else:
        x0 = int(np.clip(centre[0] - nw / 2, margin, W - margin - nw))
        y0 = int(np.clip(centre[1] - nh / 2, margin, H - margin - nh))
    region = scene[y0 : y0 + nh, x0 : x0 + nw]
    cv2.add(region, warped, dst=region)
    return Placement(x0, y0, warped, round(tilt, 1))


def occlusion(scene: np.ndarray, p: Placement) -> float:
    """Fraction of ``p``'s footprint where everything else in ``scene`` (H, W, 2) attenuates more than the object."""
    h, w = p.own.shape[:2]
    own = p.own[..., 1]
    others = scene[p.y0 : p.y0 + h, p.x0 : p.x0 + w, 1] - own
    fp = own > _FOOTPRINT
    n = int(np.count_nonzero(fp))
    return float(np.count_nonzero(fp & (others > own)) / n) if n else 0.0


def compose(seed: int, width: int, height: int, cfg: SceneConfig = SceneConfig(),
            masks: list[np.ndarray] | None = None) -> tuple[np.ndarray, list[dict[str, Any]], dict[str, Any]]:
    """Build the optical-depth maps (H, W, 2) of one parcel and its threat boxes (and masks, when a list is given)."""
    rng = np.random.default_rng(seed)
    # Postal parcels and cabin bags (350-850 mm) mostly; one scan in seven is a large case or long
    # parcel (950-1250 mm), the only ones that can hold a whole rifle or shotgun.
    long_mm = rng.uniform(950, 1250) if rng.random() < 0.15 else rng.uniform(350, 850)
    pitch = long_mm / max(width, height)
    scene = np.zeros((height, width, 2), np.float32)  # objects only; the container is added last
    cw, ch = width * pitch * rng.uniform(0.86, 0.97), height * pitch * rng.uniform(0.86, 0.97)
    box = container(rng, pitch, cw, ch)
    difficulty = str(rng.choice(DIFFICULTIES, p=cfg.difficulty_probs))
    n_clutter = {"easy": (2, 6), "hard": (6, 12), "hidden": (8, 14)}[difficulty]
    margin = int(min(width, height) * 0.06)
    dense_spots: list[tuple[float, float]] = []
    for _ in range(int(rng.integers(*n_clutter))):
        item = random_benign(rng, pitch)
        pl = place(scene, item, rng, None, margin, cfg.max_tilt_deg)
        bb = pl.box() if pl is not None and item.name in DENSE_CLUTTER else None
        if bb is not None:
            dense_spots.append((bb[0] + bb[2] / 2, bb[1] + bb[3] / 2))
    placed: _Placed = []
    gun_type = None
    if rng.random() < cfg.threat_prob:
        if rng.random() < cfg.disassembled_prob:
            max_len = 0.85 * (min(width, height) - 2 * margin) * pitch  # the longest part still fits at any angle
            gun_type, _build, parts = disassembled_gun(rng, pitch, max_len)
            _spread_parts(scene, parts, rng, margin, cfg.max_tilt_deg, placed)
        else:
            spots = dense_spots if difficulty == "hidden" else []
            _place_threats(scene, rng, pitch, long_mm > 950, spots, margin, cfg, placed)
    boxes: list[dict[str, Any]] = []
    for item, pl, bb in placed:
        boxes.append({"bbox": list(bb), "cls": item.cls, "type": item.type, "build": item.build,
                      "occlusion": round(occlusion(scene, pl), 3), "tilt": pl.tilt_deg})
        if masks is not None:
            m = np.zeros((height, width), bool)
            fh, fw = pl.own.shape[:2]
            m[pl.y0 : pl.y0 + fh, pl.x0 : pl.x0 + fw] = pl.footprint()
            masks.append(m)
    _place_container(scene, box)
    meta = {"seed": int(seed), "difficulty": difficulty, "pitch_mm": round(pitch, 4), "container": box.name,
            "disassembled": gun_type is not None}
    if gun_type is not None:
        meta["disassembled_type"] = gun_type
    return scene, boxes, meta


def _place_one(scene: np.ndarray, item: Item, rng: np.random.Generator, centre: tuple[float, float] | None,
               margin: int, max_tilt_deg: float) -> tuple[Placement, tuple[float, float, float, float]] | None:
    """Place ``item`` (three tries, each with a fresh pose); its placement and box, or None when it never fits."""
    for _attempt in range(3):
        pl = place(scene, item, rng, centre, margin, max_tilt_deg)
        bb = pl.box() if pl is not None else None
        if pl is not None and bb is not None:
            return pl, bb
    return None


def _place_threats(scene: np.ndarray, rng: np.random.Generator, pitch: float, allow_long: bool,
                   spots: list[tuple[float, float]], margin: int, cfg: SceneConfig, placed: _Placed) -> None:
    """Place 1 to ``cfg.max_threats`` random threats, each centred on one of ``spots`` when any are given."""
    for _ in range(int(rng.integers(1, cfg.max_threats + 1))):
        item = random_threat(rng, pitch, allow_long)
        centre = spots[int(rng.integers(len(spots)))] if spots else None
        got = _place_one(scene, item, rng, centre, margin, cfg.max_tilt_deg)
        if got is not None:
            placed.append((item, *got))


def _spread_centres(rng: np.random.Generator, n: int, width: int, height: int, margin: int) -> list[tuple[float, float]]:
    """Up to ``n`` centres far apart: the cells of a jittered 3 x 3 grid over the parcel, farthest-first from a random one."""
    cw, ch = (width - 2 * margin) / 3, (height - 2 * margin) / 3
    cells = [(margin + (i + 0.5 + rng.uniform(-0.2, 0.2)) * cw, margin + (j + 0.5 + rng.uniform(-0.2, 0.2)) * ch)
             for j in range(3) for i in range(3)]
    order = [cells.pop(int(rng.integers(len(cells))))]
    while cells and len(order) < n:
        far = max(range(len(cells)), key=lambda k: min(np.hypot(cells[k][0] - x, cells[k][1] - y) for x, y in order))
        order.append(cells.pop(far))
    return order


def _spread_parts(scene: np.ndarray, parts: list[Item], rng: np.random.Generator, margin: int, max_tilt_deg: float,
                  placed: _Placed) -> None:
    """Place a disassembled gun's parts far apart in ``scene``, largest first (the most constrained); the labelled
    ones go to ``placed``, stocks and fore-ends are drawn without a box."""
    parts = sorted(parts, key=lambda it: -it.canvas.a.shape[0] * it.canvas.a.shape[1])
    centres = _spread_centres(rng, len(parts), scene.shape[1], scene.shape[0], margin)
    for k, item in enumerate(parts):
        got = _place_one(scene, item, rng, centres[k] if k < len(centres) else None, margin, max_tilt_deg)
        if got is not None and item.cls is not None:
            placed.append((item, *got))


def _place_container(scene: np.ndarray, box: Item) -> None:
    h = min(box.canvas.a.shape[0], scene.shape[0])
    w = min(box.canvas.a.shape[1], scene.shape[1])
    y0, x0 = (scene.shape[0] - h) // 2, (scene.shape[1] - w) // 2
    region = scene[y0 : y0 + h, x0 : x0 + w]
    cv2.add(region, box.canvas.a[:h, :w], dst=region)


def generate(seed: int, width: int = 512, height: int = 512, cfg: SceneConfig = SceneConfig(),
             style: str | None = None, with_masks: bool = False) -> Scan:
    """Generate one scan, fully determined by ``seed`` and the arguments (``with_masks``: fill ``Scan.masks``)."""
    keep_heap_warm()
    masks: list[np.ndarray] | None = [] if with_masks else None
    depth, boxes, meta = compose(seed, width, height, cfg, masks)
    rng = np.random.default_rng([seed, 1])
    if style is None:
        p = np.asarray(cfg.style_probs, np.float64)
        style = str(STYLES[int(rng.choice(len(STYLES), p=p / p.sum()))])
    trans = detect(depth, rng)
    meta["style"] = style
    return Scan(image=render(trans, style), boxes=boxes, meta=meta, transmissions=trans, masks=masks or [])
