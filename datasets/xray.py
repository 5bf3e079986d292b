"""Display of dual-energy X-ray transmissions, shared by the generator and the readers of raw scans.

A dual-energy scanner measures, per pixel, the transmitted fraction at a low and a high energy.
The ratio of their optical depths (-log T) rises with effective atomic number, so it gives an
estimate of Z_eff (:func:`z_eff`, calibrated on the material table), and Z_eff sets the display
hue (organic orange, inorganic green, metal blue) while the high-energy transmission sets the
brightness. Scanner vendors differ in palette, gamma and edge enhancement; the ``vendor_*``
styles are three generic, visibly different palettes of that kind. ``grey`` shows the high
channel alone (a single-energy scanner).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import cv2
import numpy as np

from armscan.datasets.materials import MATERIALS

STYLES = ("pseudo", "vendor_a", "vendor_b", "vendor_c", "grey")

_RATIO_SCALE = 36.0  # ratio r is quantised to uint8 as (r - 1) * _RATIO_SCALE (r in [1, 8.1])
_STARVED = 2e-3  # low-channel transmission below which the ratio is unmeasurable (heavy metal)


@dataclass(frozen=True)
class _Palette:
    z_knots: tuple[float, ...]  # effective atomic number ...
    hue_knots: tuple[float, ...]  # ... -> OpenCV hue (0-180)
    sat_gain: float  # saturation = sat_gain * (1 - T_high ** 1.2)
    val_gamma: float  # brightness = val_gain * T_high ** val_gamma
    val_gain: float
    sharpen: float = 0.0  # unsharp-mask amount (vendor edge enhancement)
    tint: tuple[float, float, float] = (1.0, 1.0, 1.0)  # BGR gain of the whole image (background tint)


_PALETTES = {
    # armscan's own: orange organic, green inorganic, blue metal.
    "pseudo": _Palette((5.0, 8.6, 11.4, 15.3, 18.9, 30.0), (14, 16, 50, 60, 112, 118), 1.8, 0.5, 1.08),
    # bright and light: yellow-amber organics, grass green, royal-blue metal.
    "vendor_a": _Palette((5.0, 9.0, 11.0, 16.0, 19.0, 30.0), (24, 26, 48, 70, 106, 112), 1.5, 0.32, 1.04),
    # dark, contrasty and edge-enhanced: red-brown organics, olive inorganics, cyan-blue metal.
    "vendor_b": _Palette((5.0, 8.0, 10.5, 15.0, 18.0, 30.0), (6, 9, 30, 38, 94, 98), 2.6, 0.9, 1.15, sharpen=0.8),
    # cool blue-grey background, saturated orange organics, violet-blue metal.
    "vendor_c": _Palette((5.0, 8.5, 11.5, 16.0, 20.0, 30.0), (12, 14, 56, 80, 124, 132), 2.4, 0.6, 1.0,
                         tint=(1.0, 0.93, 0.86)),
}


@lru_cache(maxsize=1)
def _z_calibration() -> tuple[np.ndarray, np.ndarray]:
    """(ratio knots, Z_eff knots) from the material table, monotone in both.

    Lead is left out: at our energies its K-edge (88 keV) lies above the high channel, so its
    ratio falls below iron's; scanners show it as metal all the same.
    """
    pts = sorted((m.mu_low / m.mu_high, m.z_eff) for m in MATERIALS.values() if m.z_eff <= 30)
    ratios, zs = [1.0], [4.0]
    for r, z in pts:
        if r > ratios[-1] and z > zs[-1]:
            ratios.append(r)
            zs.append(z)
    ratios.append(9.0)
    zs.append(31.0)
    return np.array(ratios, np.float32), np.array(zs, np.float32)


def _log_depths(trans: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """-(optical depth) at low and high energy, (H, W) each, smoothed over 3x3 so noise does not speckle the hue."""
    a_low, a_high = cv2.split(cv2.blur(cv2.log(np.ascontiguousarray(trans, np.float32)), (3, 3)))
    return a_low, a_high


def _ratio(a_low: np.ndarray, a_high: np.ndarray) -> np.ndarray:
    """Low/high optical-depth ratio (H, W) from :func:`_log_depths` (both negative: the ratio is positive)."""
    return np.asarray(cv2.divide(a_low, a_high - np.float32(1e-3)))


def z_eff(trans: np.ndarray) -> np.ndarray:
    """Effective atomic number (H, W) estimated from transmissions (H, W, 2); heavy metal reads about 26-31."""
    a_low, a_high = _log_depths(trans)
    r = _ratio(a_low, a_high)
    np.maximum(r, np.float32(6.0), out=r, where=a_low < np.log(_STARVED))  # starved low channel: heavy metal
    kr, kz = _z_calibration()
    z: np.ndarray = np.interp(r, kr, kz).astype(np.float32)
    return z


@lru_cache(maxsize=8)
def _luts(style: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(hue by quantised ratio, saturation and value by quantised sqrt(T_high)), each (256,) uint8."""
    p = _PALETTES[style]
    kr, kz = _z_calibration()
    z = np.interp(1.0 + np.arange(256) / _RATIO_SCALE, kr, kz)
    hue = np.interp(z, p.z_knots, p.hue_knots)
    t = (np.arange(256) / 255.0) ** 2
    sat = np.clip(p.sat_gain * (1.0 - t**1.2), 0, 1) * 255.0
    val = np.clip(p.val_gain * t**p.val_gamma, 0, 1) * 255.0
    h, s, v = (np.round(x).astype(np.uint8) for x in (hue, sat, val))
    return h, s, v


def render(trans: np.ndarray, style: str) -> np.ndarray:
    """Display transmissions (H, W, 2) as a BGR uint8 image in ``style`` (see :data:`STYLES`)."""
    if style not in STYLES:
        raise ValueError(f"Unknown style {style!r}. Valid styles: {', '.join(STYLES)}")
    trans = np.ascontiguousarray(trans, np.float32)
    t_high = cv2.extractChannel(trans, 1)
    if style == "grey":
        grey = cv2.convertScaleAbs(cv2.pow(t_high, 0.6), alpha=255.0)
        return np.asarray(cv2.cvtColor(grey, cv2.COLOR_GRAY2BGR))
    p = _PALETTES[style]
    hue_lut, sat_lut, val_lut = _luts(style)
    a_low, a_high = _log_depths(trans)
    rq = cv2.convertScaleAbs(_ratio(a_low, a_high), alpha=_RATIO_SCALE, beta=-_RATIO_SCALE)  # (H, W) uint8
    # A starved low channel while the high one still passes means heavy metal: the ratio is
    # unmeasurable there (clipped at the noise floor), and scanners show such pixels as metal.
    np.maximum(rq, np.uint8(round((5.0 - 1.0) * _RATIO_SCALE)), out=rq, where=a_low < np.log(_STARVED))
    tq = cv2.convertScaleAbs(cv2.sqrt(t_high), alpha=255.0)
    hsv = cv2.merge([cv2.LUT(rq, hue_lut), cv2.LUT(tq, sat_lut), cv2.LUT(tq, val_lut)])
    img = cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR)
    if p.sharpen:
        img = cv2.addWeighted(img, 1.0 + p.sharpen, cv2.GaussianBlur(img, (0, 0), 1.5), -p.sharpen, 0)
    if p.tint != (1.0, 1.0, 1.0):
        img = cv2.LUT(img, _tint_lut(p.tint))
    return np.asarray(img)


@lru_cache(maxsize=4)
def _tint_lut(tint: tuple[float, float, float]) -> np.ndarray:
    """(256, 1, 3) uint8: a per-channel gain as an OpenCV lookup table."""
    ramp = np.arange(256, dtype=np.float64)[:, None, None]
    lut: np.ndarray = np.clip(np.round(ramp * np.array(tint)[None, None, :]), 0, 255).astype(np.uint8)
    return lut


def transmissions_from_raw16(low: np.ndarray, high: np.ndarray) -> np.ndarray:
    """Raw 16-bit low/high channels (full scale = unattenuated air) -> transmissions (H, W, 2) in (0, 1]."""
    if low.shape != high.shape or low.ndim != 2:
        raise ValueError(f"low and high channels must be 2-D and the same shape, got {low.shape} and {high.shape}")
    t = np.dstack([low, high]).astype(np.float32) / 65535.0
    out: np.ndarray = np.clip(t, 1.0 / 65535, 1.0)
    return out
