"""Table surfaces seen through the camera.

A surface is textured in a table-aligned raster at half the image's resolution (millimetres through the
raster's scale, so wood grain and weave have their real size), warped by the camera's homography at that
resolution and enlarged to the image. A cutting mat's grid lines are then drawn in the image itself,
through the same homography, so its 10 mm squares really are 10 mm squares on the table.
"""

from __future__ import annotations

from collections.abc import Callable

import cv2
import numpy as np

from armscan.datasets.photo.looks import noise_line, noise_tile

Raster = tuple[int, int]  # (H, W)

_WOODS = ((190, 140, 95), (160, 110, 70), (120, 80, 50), (210, 175, 130), (95, 60, 40), (175, 150, 120))
_CLOTHS = ((35, 45, 90), (40, 90, 50), (110, 110, 112), (28, 28, 30), (150, 40, 40), (200, 185, 160), (60, 60, 70), (20, 60, 110))
_MATS = ((45, 110, 75), (40, 70, 140), (70, 72, 75), (30, 30, 32))


def _smooth(rng: np.random.Generator, shape: Raster, cells: int) -> np.ndarray:
    """Low-frequency noise (H, W) float32, about unit amplitude, with ``cells`` blobs across the long side."""
    H, W = shape
    ch, cw = max(2, round(cells * H / max(H, W))), max(2, round(cells * W / max(H, W)))
    return cv2.resize(rng.standard_normal((ch, cw)).astype(np.float32), (W, H), interpolation=cv2.INTER_CUBIC)


def _tiled_noise(shape: Raster) -> np.ndarray:
    """Unit Gaussian noise (H, W) from the fixed tile, repeated."""
    H, W = shape
    t = noise_tile()
    return np.asarray(np.tile(t, (-(-H // t.shape[0]), -(-W // t.shape[1])))[:H, :W])


def _colour(rgb: tuple[int, int, int], rng: np.random.Generator, jitter: float = 0.08) -> np.ndarray:
    k = rng.uniform(1 - jitter, 1 + jitter, 3)
    return np.array([rgb[2] * k[2], rgb[1] * k[1], rgb[0] * k[0]], np.float32)


def _grid(shape: Raster) -> tuple[np.ndarray, np.ndarray]:
    H, W = shape
    return np.arange(H, dtype=np.float32)[:, None], np.arange(W, dtype=np.float32)[None, :]


def _wood(rng: np.random.Generator, half: Raster, s: float, planks: bool) -> np.ndarray:
    yy, xx = _grid(half)
    th = rng.uniform(0, np.pi)
    k = np.float32(1.0 / s)  # mm per raster pixel
    along = (xx * np.float32(np.cos(th)) + yy * np.float32(np.sin(th))) * k
    across = (yy * np.float32(np.cos(th)) - xx * np.float32(np.sin(th))) * k
    period = np.float32(rng.uniform(3, 9))
    phase = across / period + _smooth(rng, half, 4) * np.float32(rng.uniform(0.5, 2.0))
    tone = np.ones(half, np.float32)
    if planks:
        width = rng.uniform(90, 200)
        idx = np.floor(across / np.float32(width)).astype(np.int32)
        shades = rng.uniform(0.85, 1.12, 64).astype(np.float32)
        tone = shades[idx & 63]
        phase = phase + (idx * 7.3).astype(np.float32)
        seam = np.abs(across / np.float32(width) - np.round(across / np.float32(width))) * np.float32(width * s)
        tone = tone * np.where(seam < 0.6, np.float32(0.55), np.float32(1.0))
    ring = (phase.astype(np.int32) + 2048) & 4095
    g = 0.5 + 0.5 * np.sin(phase * np.float32(2 * np.pi)) * (0.6 + 0.4 * noise_line()[ring])
    fine = noise_line()[((along * np.float32(0.7)).astype(np.int32) + (across * 5).astype(np.int32) * 31) & 4095]
    f = tone * (1 - np.float32(rng.uniform(0.12, 0.3)) * g * g) * (1 + np.float32(0.03) * fine)
    return np.asarray(f[..., None] * _colour(_WOODS[rng.integers(len(_WOODS))], rng), np.float32)


def _metal(rng: np.random.Generator, shape: Raster, s: float) -> np.ndarray:
    H, W = shape
    grey = rng.uniform(110, 175)
    base = np.array([grey * rng.uniform(1.0, 1.08), grey * rng.uniform(0.98, 1.03), grey * rng.uniform(0.94, 1.0)], np.float32)
    line = noise_line()
    streaks = (
        line[(np.arange(H) * 7 + int(rng.integers(4096))) & 4095][:, None]
        if rng.random() < 0.5
        else line[(np.arange(W) * 7 + int(rng.integers(4096))) & 4095][None, :]
    )
    f = 1 + np.float32(0.03) * streaks + np.float32(0.05) * _smooth(rng, shape, 3)
    return np.asarray(f[..., None] * base, np.float32)


def _cloth(rng: np.random.Generator, shape: Raster, s: float) -> np.ndarray:
    H, W = shape
    yy, xx = _grid(shape)
    period = max(1, int(round(rng.uniform(0.6, 1.6) * s)))
    weave = np.where(((yy.astype(np.int32) // period + xx.astype(np.int32) // period) & 1) == 1, 0.02, -0.02)
    wrinkle = np.sin(_smooth(rng, shape, int(rng.integers(3, 6))) * np.float32(rng.uniform(0.8, 2.0)))
    f = 1 + weave.astype(np.float32) + np.float32(rng.uniform(0.04, 0.1)) * wrinkle
    f += np.float32(0.04) * _tiled_noise(shape)
    return np.asarray(f[..., None] * _colour(_CLOTHS[rng.integers(len(_CLOTHS))], rng), np.float32)


def _paper(rng: np.random.Generator, shape: Raster, s: float) -> np.ndarray:
    H, W = shape
    base = _colour((238, 236, 228), rng, 0.03)
    f = 1 + np.float32(0.03) * _smooth(rng, shape, 2)
    f += np.float32(0.015) * _tiled_noise(shape)
    return np.asarray(f[..., None] * base, np.float32)


def _grid_lines(rng: np.random.Generator, img: np.ndarray, hom: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> None:
    """Draw a cutting mat's 10 mm grid (thicker every 50 mm) over the table region [lo, hi] (mm) into ``img``."""
    ink = tuple(float(c) for c in _colour((235, 235, 220), rng, 0.05))
    s = float(np.sqrt(abs(np.linalg.det(hom[:2, :2] / hom[2, 2]))))
    segs: dict[int, list[np.ndarray]] = {1: [], 2: []}
    for axis in (0, 1):
        for k in range(int(np.ceil(lo[axis] / 10)), int(np.floor(hi[axis] / 10)) + 1):
            a, b = lo.copy(), hi.copy()
            a[axis] = b[axis] = k * 10.0
            segs[2 if k % 5 == 0 and s > 1.2 else 1].append(np.array([a, b]))
    for thick, lines in segs.items():
        if lines:
            pts = cv2.perspectiveTransform(np.concatenate(lines).reshape(-1, 1, 2), hom).reshape(-1, 2, 2)
            cv2.polylines(img, list(np.round(pts * 16).astype(np.int32)), False, ink, thick, cv2.LINE_AA, 4)


BACKGROUNDS: tuple[str, ...] = ("wood", "laminate", "metal_desk", "cloth", "paper", "cutting_mat")


def background(kind: str, rng: np.random.Generator, hom: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """A (H, W, 3) uint8 BGR table surface of ``kind`` seen through ``hom`` (table mm -> image px) at ``size`` (W, H)."""
    if kind not in BACKGROUNDS:
        raise KeyError(f"Unknown background {kind!r}. Valid backgrounds: {', '.join(BACKGROUNDS)}")
    W, H = size
    corners = cv2.perspectiveTransform(
        np.array([[[0, 0]], [[W, 0]], [[W, H]], [[0, H]]], np.float64), np.linalg.inv(hom)
    ).reshape(-1, 2)
    lo, hi = corners.min(axis=0) - 2, corners.max(axis=0) + 2  # the table seen, in mm
    s = 0.5 * float(np.sqrt(abs(np.linalg.det(hom[:2, :2] / hom[2, 2]))))  # raster px per mm: half the image's
    half = (max(2, int(np.ceil((hi[1] - lo[1]) * s))), max(2, int(np.ceil((hi[0] - lo[0]) * s))))
    makers: dict[str, Callable[[], np.ndarray]] = {
        "wood": lambda: _wood(rng, half, s, planks=False),
        "laminate": lambda: _wood(rng, half, s, planks=True),
        "metal_desk": lambda: _metal(rng, half, s),
        "cloth": lambda: _cloth(rng, half, s),
        "paper": lambda: _paper(rng, half, s),
        "cutting_mat": lambda: (
            (1 + np.float32(0.03) * _smooth(rng, half, 3))[..., None] * _colour(_MATS[rng.integers(len(_MATS))], rng)
        ),
    }
    small = np.clip(makers[kind](), 0, 255).astype(np.uint8)
    raster = np.array([[s, 0, -lo[0] * s], [0, s, -lo[1] * s], [0, 0, 1]])
    to_half = np.diag([0.5, 0.5, 1.0]) @ hom @ np.linalg.inv(raster)
    small = cv2.warpPerspective(
        small, to_half, ((W + 1) // 2, (H + 1) // 2), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT
    )
    img = np.asarray(cv2.resize(small, (W, H), interpolation=cv2.INTER_LINEAR))
    if kind == "cutting_mat":
        _grid_lines(rng, img, hom, lo, hi)
    return img
