"""Surface looks: the colour, gloss and texture of each material as a camera sees it, drawn per object.

A look is sampled once per object (a pistol's steel is all blued or all stainless; a phone's plastic has
one colour), and its texture is a function of the object-frame coordinates (``u`` along the object's long
axis, ``v`` across, in mm), so grain and layer lines follow the object when it turns.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np

RGB = tuple[int, int, int]

_STEEL: dict[str, tuple[RGB, float, str]] = {  # finish -> (RGB, gloss, texture)
    "blued": ((42, 46, 62), 0.75, "env"),
    "black": ((30, 30, 33), 0.45, "env"),
    "stainless": ((168, 170, 174), 0.8, "brushed"),
    "parkerized": ((78, 78, 74), 0.12, "stipple"),
    "nickel": ((192, 190, 182), 0.9, "env"),
}
_ALU: dict[str, tuple[RGB, float, str]] = {
    "black_anodised": ((36, 36, 40), 0.3, "stipple"),
    "raw": ((166, 169, 173), 0.5, "brushed"),
    "bronze_anodised": ((120, 100, 70), 0.3, "stipple"),
}
_WOOD: tuple[RGB, ...] = ((120, 72, 40), (150, 95, 55), (92, 56, 32), (176, 126, 80), (72, 42, 26), (140, 80, 50))
_POLYMER: tuple[RGB, ...] = ((32, 32, 35), (32, 32, 35), (170, 146, 106), (86, 92, 62), (96, 99, 102))
_PRINTED: tuple[RGB, ...] = (
    (240, 120, 25),
    (205, 35, 35),
    (45, 170, 65),
    (40, 85, 205),
    (236, 236, 230),
    (140, 140, 142),
    (245, 210, 45),
    (130, 60, 170),
    (35, 35, 38),
)
_BRIGHT: tuple[RGB, ...] = (
    (230, 40, 40),
    (40, 90, 220),
    (250, 200, 30),
    (40, 160, 70),
    (240, 120, 30),
    (230, 230, 228),
    (30, 30, 32),
    (120, 120, 125),
    (200, 60, 150),
    (60, 190, 200),
)
_LEATHER: tuple[RGB, ...] = ((90, 55, 35), (50, 35, 28), (28, 26, 26), (140, 95, 60), (160, 40, 40))
_FUR: tuple[RGB, ...] = ((120, 118, 115), (200, 130, 60), (40, 38, 36), (225, 220, 210), (150, 110, 80))
_FIXED: dict[str, tuple[RGB, float, str]] = {
    "brass": ((205, 165, 75), 0.8, "env"),
    "copper": ((190, 110, 70), 0.7, "env"),
    "lead": ((112, 112, 118), 0.3, "none"),
    "glass": ((200, 210, 215), 0.9, "env"),
    "gold": ((215, 180, 95), 0.8, "none"),
    "screen": ((16, 19, 24), 1.0, "env"),
    "paper": ((238, 236, 228), 0.02, "stipple"),
}


@dataclass(frozen=True)
class Look:
    """How one material of one object looks: ``colour`` is BGR 0-255."""

    name: str
    colour: tuple[float, float, float]
    gloss: float  # 0 matte .. 1 mirror-like highlights
    texture: str  # none, env, brushed, stipple, grain, layers, fur, weave
    amp: float = 0.0  # texture strength
    period_mm: float = 1.0
    phase: float = 0.0
    angle: float = 0.0  # texture direction in the object frame, radians (0: along u)


def _bgr(rgb: RGB, rng: np.random.Generator, jitter: float = 0.08) -> tuple[float, float, float]:
    k = rng.uniform(1 - jitter, 1 + jitter, 3) * rng.uniform(0.9, 1.1)
    r, g, b = (float(np.clip(c * kk, 0, 255)) for c, kk in zip(rgb, k, strict=True))
    return b, g, r


def sample_look(name: str, rng: np.random.Generator) -> Look:
    """Draw the look ``name`` (a key of :data:`LOOK_NAMES`) for one object."""
    ph = float(rng.uniform(0, 2 * np.pi))
    if name in ("steel", "aluminium"):
        table = _STEEL if name == "steel" else _ALU
        finish = str(rng.choice(list(table)))
        rgb, gloss, tex = table[finish]
        return Look(
            f"{name}:{finish}", _bgr(rgb, rng, 0.05), gloss, tex, float(rng.uniform(0.08, 0.2)), float(rng.uniform(15, 60)), ph
        )
    if name == "wood":
        return Look(
            name,
            _bgr(_WOOD[rng.integers(len(_WOOD))], rng),
            float(rng.uniform(0.15, 0.5)),
            "grain",
            float(rng.uniform(0.18, 0.4)),
            float(rng.uniform(1.2, 4.0)),
            ph,
            float(rng.normal(0, 0.05)),
        )
    if name == "polymer":
        return Look(
            name,
            _bgr(_POLYMER[rng.integers(len(_POLYMER))], rng, 0.04),
            float(rng.uniform(0.05, 0.2)),
            "stipple",
            float(rng.uniform(0.03, 0.08)),
            1.0,
            ph,
        )
    if name in ("printed", "printed2"):
        angle = 0.0 if rng.random() < 0.7 else float(np.pi / 2)
        return Look(
            name,
            _bgr(_PRINTED[rng.integers(len(_PRINTED))], rng, 0.04),
            float(rng.uniform(0.15, 0.35)),
            "layers",
            float(rng.uniform(0.08, 0.2)),
            float(rng.uniform(0.2, 0.35)),
            ph,
            angle,
        )
    if name in ("plastic", "toy"):
        return Look(name, _bgr(_BRIGHT[rng.integers(len(_BRIGHT))], rng), float(rng.uniform(0.2, 0.6)), "none")
    if name == "rubber":
        grey = int(rng.integers(18, 70))
        return Look(name, _bgr((grey, grey, grey + 2), rng, 0.03), 0.05, "stipple", 0.06, 1.0, ph)
    if name in ("leather", "fabric"):
        rgb = _LEATHER[rng.integers(len(_LEATHER))] if name == "leather" else _BRIGHT[rng.integers(len(_BRIGHT))]
        return Look(
            name,
            _bgr(rgb, rng),
            0.3 if name == "leather" else 0.02,
            "stipple" if name == "leather" else "weave",
            float(rng.uniform(0.05, 0.12)),
            float(rng.uniform(0.6, 1.5)),
            ph,
        )
    if name == "fur":
        return Look(
            name,
            _bgr(_FUR[rng.integers(len(_FUR))], rng),
            0.02,
            "fur",
            float(rng.uniform(0.2, 0.4)),
            float(rng.uniform(6, 14)),
            ph,
            float(rng.uniform(0, np.pi)),
        )
    if name in ("card", "ink"):
        rgb = _BRIGHT[rng.integers(len(_BRIGHT))] if name == "card" else (30, 30, 60)
        return Look(name, _bgr(rgb, rng, 0.15), 0.35 if name == "card" else 0.0, "none")
    if name in _FIXED:
        rgb, gloss, tex = _FIXED[name]
        return Look(name, _bgr(rgb, rng, 0.04), gloss, tex, float(rng.uniform(0.08, 0.2)), float(rng.uniform(10, 40)), ph)
    raise KeyError(f"Unknown look {name!r}. Known looks: {', '.join(LOOK_NAMES)}")


LOOK_NAMES: tuple[str, ...] = (
    "steel",
    "aluminium",
    "wood",
    "polymer",
    "printed",
    "printed2",
    "plastic",
    "toy",
    "rubber",
    "leather",
    "fabric",
    "fur",
    "card",
    "ink",
    *_FIXED,
)


@lru_cache(maxsize=1)
def noise_tile() -> np.ndarray:
    """A fixed 256 x 256 tile of unit Gaussian noise (made on first use, deterministic)."""
    return np.random.default_rng(8_000_000).standard_normal((256, 256)).astype(np.float32)


@lru_cache(maxsize=1)
def noise_line() -> np.ndarray:
    """A fixed smooth-ish 1D noise of 4096 samples in [-1, 1], for grain rings and brushing."""
    r = np.random.default_rng(8_000_001).standard_normal(4096 + 8)
    sm = np.convolve(r, np.ones(3) / 3, mode="same")[:4096]
    return np.asarray(sm / np.abs(sm).max(), np.float32)


def texture(look: Look, u: np.ndarray, v: np.ndarray, py: np.ndarray, px: np.ndarray, s: float) -> np.ndarray:
    """Brightness factor (N,) float32 of ``look`` at object-frame points (``u``, ``v``) mm, image pixels (``py``,
    ``px``). ``s`` is the image's pixels per mm there: periods below about 1.6 px are widened so they stay visible.
    """
    return np.asarray(_texture(look, u, v, py, px, s), np.float32)


def _texture(look: Look, u: np.ndarray, v: np.ndarray, py: np.ndarray, px: np.ndarray, s: float) -> Any:
    t = look.texture
    if t == "none" or look.amp <= 0:
        return np.ones(u.shape, np.float32)
    if look.angle:
        ca, sa = np.float32(np.cos(look.angle)), np.float32(np.sin(look.angle))
        u, v = u * ca + v * sa, v * ca - u * sa
    amp = np.float32(look.amp)
    if t in ("stipple", "weave"):
        n = noise_tile()[py & 255, px & 255]
        if t == "weave":
            n = n * 0.5 + np.where((py + px) & 1, 0.8, -0.8).astype(np.float32)
        return 1 + amp * n
    if t == "env":  # broad reflections of the room across the part
        return (1 + amp * 2 * np.sin(v * np.float32(2 * np.pi / look.period_mm) + np.float32(look.phase))).astype(np.float32)
    line = noise_line()
    if t == "brushed":
        idx = (v * np.float32(8 * s) + 997).astype(np.int32) & 4095
        return 1 + amp * 0.6 * line[idx]
    period = np.float32(max(look.period_mm, 1.6 / s))
    if t == "layers":
        return (1 - amp * (0.5 + 0.5 * np.sin(v * np.float32(2 * np.pi) / period))).astype(np.float32)
    if t == "grain":
        phase = (
            v / period
            + np.float32(0.9) * np.sin(u * np.float32(1 / 55.0) + np.float32(look.phase))
            + np.float32(0.3) * np.sin(u * np.float32(1 / 13.0))
        )
        ring = (phase.astype(np.int32) + 2048) & 4095
        g = 0.5 + 0.5 * np.sin(phase * np.float32(2 * np.pi)) * (0.6 + 0.4 * line[ring])
        return (1 - amp * g * g).astype(np.float32)
    if t == "fur":
        n = noise_tile()[py & 255, px & 255] * 0.5
        stripes = np.sin(u * np.float32(2 * np.pi) / np.float32(look.period_mm) + np.float32(look.phase))
        return (1 + amp * (n * 0.6 + 0.5 * stripes)).astype(np.float32)
    raise KeyError(f"Unknown texture {t!r} in look {look.name!r}")
