"""The line-scan detector model: optical depth (H, W, 2) in, measured transmissions (H, W, 2) out.

In order: Beer-Lambert transmission; mild scatter (a low-frequency share of the transmitted field,
computed at 1/8 resolution); the detector's blur, sharper across the detector line than along the
belt; fixed-pattern gain of the detector elements (per column, sometimes one weak element) and
source flicker along the belt (per row); quantum noise (variance T / photons, fewer photons at the
low energy) plus electronic noise; a gain slightly above full scale, so air saturates at 1.

Noise comes from a per-process bank of standard normals (drawn once from a fixed seed), read at a
random offset and orientation: the result is still a pure function of the seed, and it costs a
slice instead of drawing half a million normals per scan.
"""

from __future__ import annotations

from functools import lru_cache

import cv2
import numpy as np

_BANK = 1024  # side of the noise bank; larger scans draw their noise directly


@lru_cache(maxsize=1)
def _noise_bank() -> np.ndarray:
    return np.random.default_rng(20240611).standard_normal((_BANK, _BANK, 2), dtype=np.float32)


def _noise(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """(h, w, 2) standard normals: a random window of the bank (a view; rows strided, as OpenCV allows)."""
    if h > _BANK // 2 or w > _BANK // 2:
        return rng.standard_normal((h, w, 2), dtype=np.float32)
    y, x = int(rng.integers(0, _BANK - h)), int(rng.integers(0, _BANK - w))
    return _noise_bank()[y : y + h, x : x + w]


def detect(optical_depth: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Simulate the dual-energy line-scan detector on optical depth (H, W, 2).

    Returns the measured transmissions (H, W, 2) float32 in (0, 1], low energy first.
    """
    h, w = optical_depth.shape[:2]
    s = float(rng.uniform(0.01, 0.035))  # scatter share
    sx = float(rng.uniform(0.5, 0.8))  # detector blur across the line; the belt axis a little more
    sy = sx * float(rng.uniform(1.0, 1.4))
    row = (1.0 + rng.normal(0, 0.002, (h, 1))).astype(np.float32) * np.float32(rng.uniform(1.0, 1.03))
    col = (1.0 + rng.normal(0, 0.004, (2, 1, w))).astype(np.float32)  # per channel: separate detector arrays
    if rng.random() < 0.1:
        col[:, 0, int(rng.integers(w))] *= np.float32(0.9)  # a weak detector element
    photons = float(rng.uniform(4e3, 3e4))  # at the high energy; the low channel gets half
    e2 = float(rng.uniform(1e-4, 6e-4) ** 2)  # electronic noise variance
    noise = _noise(rng, h, w)

    t = cv2.exp(-np.ascontiguousarray(optical_depth, np.float32))
    # scatter: a few per cent of the detected signal is a very blurred copy of the field
    small = cv2.GaussianBlur(cv2.resize(t, (max(1, w // 8), max(1, h // 8)), interpolation=cv2.INTER_AREA), (0, 0), 3.0)
    t = cv2.addWeighted(t, 1.0 - s, cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR), s, 0.0)
    t = cv2.GaussianBlur(t, (0, 0), sigmaX=sx, sigmaY=sy)
    # fixed-pattern gain of the detector elements (columns) and source flicker along the belt (rows);
    # the gain is a little above full scale, so unattenuated air saturates at 1
    gain = cv2.merge([row * col[0], row * col[1]])  # (H, W, 2)
    t = cv2.multiply(t, gain)
    # quantum noise (variance t / photons) + electronic noise
    # (OpenCV takes a per-channel scalar here; its type stubs list arrays only)
    var = cv2.add(cv2.multiply(t, (2.0 / photons, 1.0 / photons, 0.0, 0.0)), (e2, e2, 0.0, 0.0))  # type: ignore[call-overload]
    t = cv2.add(t, cv2.multiply(noise, cv2.sqrt(var)))
    out: np.ndarray = np.clip(t, 1.0 / 65535, 1.0, out=t)
    return out
