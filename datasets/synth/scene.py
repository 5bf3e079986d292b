"""Compose parcels from objects and render them as dual-energy X-ray scans.

A scan is built in optical depth: each object's canvas is flipped, rotated and added into
the scene's ``a_low``/``a_high`` maps, so overlapping objects attenuate multiplicatively in
transmission (Beer-Lambert). The detector then blurs, adds quantum and electronic noise,
and the display maps the measured pair to a pseudo-colour image (hue from the low/high
attenuation ratio, a proxy for effective atomic number) or to single-energy greyscale.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np

from armscan.datasets.synth.benign import container, random_benign
from armscan.datasets.synth.threats import Item, random_threat
from armscan.datasets.xray import STYLES, render

DIFFICULTIES = ("easy", "hard", "hidden")
_FOOTPRINT = 0.02  # optical depth above which a pixel belongs to an object's box


@dataclass(frozen=True)
class SceneConfig:
    """How parcels are drawn. ``threat_prob`` is the share of scans holding at least one threat."""

    threat_prob: float = 0.6
    max_threats: int = 3
    style_probs: tuple[float, float] = (0.8, 0.2)
    difficulty_probs: tuple[float, float, float] = (0.4, 0.4, 0.2)


@dataclass
class Scan:
    """One generated scan: BGR image, box annotations and provenance."""

    image: np.ndarray  # (H, W, 3) uint8 BGR
    boxes: list[dict[str, Any]] = field(default_factory=list)  # {bbox: [x, y, w, h], cls, type, build}
    meta: dict[str, Any] = field(default_factory=dict)
    transmissions: np.ndarray | None = None  # (H, W, 2) float32 low/high, what the detector measured

    def raw16(self) -> tuple[np.ndarray, np.ndarray]:
        """The low and high channels as 16-bit images (full scale = unattenuated air)."""
        if self.transmissions is None:
            raise ValueError("this scan was generated without its transmissions")
        t = np.round(self.transmissions * 65535.0).astype(np.uint16)
        return t[..., 0], t[..., 1]


def _place(scene: np.ndarray, item: Item, rng: np.random.Generator, centre: tuple[float, float] | None,
           margin: int) -> tuple[float, float, float, float] | None:
    """Flip, rotate and add ``item`` into ``scene`` (H, W, 2); return its box (x, y, w, h) or None."""
    maps = np.dstack([item.canvas.a_low, item.canvas.a_high])  # (h, w, 2)
    if rng.random() < 0.5:
        maps = maps[:, ::-1]
    h, w = maps.shape[:2]
    angle = float(rng.uniform(0, 360))
    rot = cv2.getRotationMatrix2D((w / 2, h / 2), angle, 1.0)
    cos, sin = abs(rot[0, 0]), abs(rot[0, 1])
    nw, nh = int(np.ceil(h * sin + w * cos)), int(np.ceil(h * cos + w * sin))
    rot[0, 2] += nw / 2 - w / 2
    rot[1, 2] += nh / 2 - h / 2
    warped = cv2.warpAffine(np.ascontiguousarray(maps), rot, (nw, nh), flags=cv2.INTER_LINEAR)
    H, W = scene.shape[:2]
    if nw >= W - 2 * margin or nh >= H - 2 * margin:
        return None
    if centre is None:
        x0 = int(rng.integers(margin, W - margin - nw))
        y0 = int(rng.integers(margin, H - margin - nh))
    else:
        x0 = int(np.clip(centre[0] - nw / 2, margin, W - margin - nw))
        y0 = int(np.clip(centre[1] - nh / 2, margin, H - margin - nh))
    scene[y0 : y0 + nh, x0 : x0 + nw] += warped
    ys, xs = np.nonzero(warped[..., 1] > _FOOTPRINT)
    if len(xs) == 0:
        return None
    return float(x0 + xs.min()), float(y0 + ys.min()), float(xs.max() - xs.min() + 1), float(ys.max() - ys.min() + 1)


def compose(seed: int, width: int, height: int,
            cfg: SceneConfig = SceneConfig()) -> tuple[np.ndarray, list[dict[str, Any]], dict[str, Any]]:
    """Build the optical-depth maps (H, W, 2) of one parcel and its threat boxes."""
    rng = np.random.default_rng(seed)
    # Postal parcels and cabin bags (350-850 mm) mostly; one scan in seven is a large case or long
    # parcel (950-1250 mm), the only ones that can hold a whole rifle or shotgun.
    long_mm = rng.uniform(950, 1250) if rng.random() < 0.15 else rng.uniform(350, 850)
    pitch = long_mm / max(width, height)
    scene = np.zeros((height, width, 2), np.float32)
    cw, ch = width * pitch * rng.uniform(0.86, 0.97), height * pitch * rng.uniform(0.86, 0.97)
    box = container(rng, pitch, cw, ch)
    _place_container(scene, box)
    difficulty = str(rng.choice(DIFFICULTIES, p=cfg.difficulty_probs))
    n_clutter = {"easy": (2, 6), "hard": (6, 12), "hidden": (8, 14)}[difficulty]
    margin = int(min(width, height) * 0.06)
    dense_spots: list[tuple[float, float]] = []
    for _ in range(int(rng.integers(*n_clutter))):
        item = random_benign(rng, pitch)
        bb = _place(scene, item, rng, None, margin)
        if bb is not None and item.name in ("laptop", "clothing", "book", "powerbank", "wrench", "pliers"):
            dense_spots.append((bb[0] + bb[2] / 2, bb[1] + bb[3] / 2))
    boxes: list[dict[str, Any]] = []
    if rng.random() < cfg.threat_prob:
        allow_long = long_mm > 950
        for _ in range(int(rng.integers(1, cfg.max_threats + 1))):
            item = random_threat(rng, pitch, allow_long)
            centre = None
            if difficulty == "hidden" and dense_spots:
                centre = dense_spots[int(rng.integers(len(dense_spots)))]
            for _attempt in range(3):
                bb = _place(scene, item, rng, centre, margin)
                if bb is not None:
                    boxes.append({"bbox": list(bb), "cls": item.cls, "type": item.type, "build": item.build})
                    break
    meta = {"seed": int(seed), "difficulty": difficulty, "pitch_mm": round(pitch, 4), "container": box.name}
    return scene, boxes, meta


def _place_container(scene: np.ndarray, box: Item) -> None:
    h = min(box.canvas.a_low.shape[0], scene.shape[0])
    w = min(box.canvas.a_low.shape[1], scene.shape[1])
    y0, x0 = (scene.shape[0] - h) // 2, (scene.shape[1] - w) // 2
    scene[y0 : y0 + h, x0 : x0 + w, 0] += box.canvas.a_low[:h, :w]
    scene[y0 : y0 + h, x0 : x0 + w, 1] += box.canvas.a_high[:h, :w]


def detect(optical_depth: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Simulate the line-scan detector: blur, quantum + electronic noise. Returns transmissions (H, W, 2)."""
    t = np.exp(-optical_depth)
    t = cv2.GaussianBlur(t, (0, 0), float(rng.uniform(0.5, 0.9)))
    photons = float(rng.uniform(4e3, 3e4))
    noise = rng.standard_normal(t.shape).astype(np.float32)
    t = t + noise * np.sqrt(t / photons + 1e-6)
    out: np.ndarray = np.clip(t, 1.0 / 65535, 1.0).astype(np.float32)
    return out


def generate(seed: int, width: int = 512, height: int = 512, cfg: SceneConfig = SceneConfig(),
             style: str | None = None) -> Scan:
    """Generate one scan, fully determined by ``seed`` and the arguments."""
    depth, boxes, meta = compose(seed, width, height, cfg)
    rng = np.random.default_rng([seed, 1])
    if style is None:
        style = str(rng.choice(STYLES, p=cfg.style_probs))
    trans = detect(depth, rng)
    meta["style"] = style
    return Scan(image=render(trans, style), boxes=boxes, meta=meta, transmissions=trans)
