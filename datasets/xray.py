"""Display of dual-energy X-ray transmissions, shared by the generator and the readers of raw scans.

A dual-energy scanner measures, per pixel, the transmitted fraction at a low and a high energy.
The ratio of their optical depths (-log T) rises with effective atomic number, so it sets the
display hue (organic orange, inorganic green, metal blue) and the high-energy transmission
sets the brightness. Greyscale shows the high-energy channel alone.
"""

from __future__ import annotations

import cv2
import numpy as np

STYLES = ("pseudo", "grey")


# OpenCV hue (0-180) at low/high attenuation ratios: organic orange, inorganic green, metal blue.
_RATIO_KNOTS = np.array([1.0, 1.7, 2.3, 3.4, 4.3, 8.0], np.float32)
_HUE_KNOTS = np.array([14.0, 16.0, 50.0, 60.0, 112.0, 118.0], np.float32)


def render(trans: np.ndarray, style: str) -> np.ndarray:
    """Display transmissions (H, W, 2) as a BGR uint8 image in ``style`` (see :data:`STYLES`)."""
    t_low, t_high = trans[..., 0], trans[..., 1]
    if style == "grey":
        grey = np.clip(np.power(t_high, 0.6) * 255.0, 0, 255).astype(np.uint8)
        return np.asarray(cv2.cvtColor(grey, cv2.COLOR_GRAY2BGR))
    if style != "pseudo":
        raise ValueError(f"Unknown style {style!r}. Valid styles: {', '.join(STYLES)}")
    a_low, a_high = -np.log(t_low), -np.log(t_high)
    ratio = cv2.blur(a_low, (3, 3)) / (cv2.blur(a_high, (3, 3)) + 1e-3)
    # A starved low channel while the high one still passes means heavy metal: the ratio is
    # unmeasurable there (clipped at the noise floor), and scanners show such pixels as metal.
    ratio = np.where(t_low < 2e-3, np.maximum(ratio, 5.0), ratio)
    hue = np.interp(ratio, _RATIO_KNOTS, _HUE_KNOTS).astype(np.float32)
    sat = np.clip(1.8 * (1.0 - np.power(t_high, 1.2)), 0, 1) * 255.0
    val = np.clip(np.power(t_high, 0.5) * 1.08, 0, 1) * 255.0
    hsv = np.dstack([hue, sat, val]).astype(np.uint8)
    return np.asarray(cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR))


def transmissions_from_raw16(low: np.ndarray, high: np.ndarray) -> np.ndarray:
    """Raw 16-bit low/high channels (full scale = unattenuated air) -> transmissions (H, W, 2) in (0, 1]."""
    if low.shape != high.shape or low.ndim != 2:
        raise ValueError(f"low and high channels must be 2-D and the same shape, got {low.shape} and {high.shape}")
    t = np.dstack([low, high]).astype(np.float32) / 65535.0
    out: np.ndarray = np.clip(t, 1.0 / 65535, 1.0)
    return out
