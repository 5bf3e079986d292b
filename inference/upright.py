"""The upright view of the weapon in a seizure photo: its orientation removed before a second look.

A weapon lies on the table at any angle, face up or face down. Classified as it is, the network must
recognise every orientation, and the same photo turned by 90 degrees can get another answer. The upright
view takes the orientation away, from the weapon mask of the first look:

1. the long axis (the principal axis of the mask, each cell weighted by its probability) is turned
   horizontal, about the mask's centroid;
2. along the axis, the end where the mass bunches (a grip, a stock) goes right; across it, the side where
   the mass reaches out furthest (a grip, a magazine) goes down. These are the signs of the third moments
   (skewness) along and across the axis, and they settle the 180-degree turn and the mirror image;
3. the view is cut around the mask with a margin and drawn at the model's input size.

The same weapon photographed at any angle, turned or mirrored, then gives nearly the same view, so the
second look answers about the weapon, not the camera. Training draws its upright views with this same
function from the true masks (:mod:`armscan.training.photo_data`), so the network learns the views it is
shown in service.
"""

from __future__ import annotations

import cv2
import numpy as np
from numpy.typing import NDArray

MIN_CELLS = 4  # fewer mask cells than this: no weapon to turn upright
SKEW_DEADBAND = 0.05  # |skewness| under this: the mass is balanced either way; the sign is left as it comes


def _skew(t: NDArray[np.float64], w: NDArray[np.float64]) -> float:
    """Weighted skewness of the coordinates ``t`` (centred)."""
    var = float((w * t**2).sum() / w.sum())
    return float((w * t**3).sum() / w.sum() / max(var, 1e-12) ** 1.5)


def weapon_axes(xy: NDArray[np.float64], w: NDArray[np.float64]
                ) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]:
    """Centroid ``c`` and the upright view's axes: ``u`` along the weapon towards the end where its mass bunches
    (negative skewness), ``v`` across it towards the side where the mass reaches furthest (positive skewness).
    ``u`` and ``v`` may form a mirrored frame."""
    c = (xy * w[:, None]).sum(0) / w.sum()
    d = xy - c
    _, evecs = np.linalg.eigh((d.T * w) @ d / w.sum())
    u = evecs[:, 1]  # the largest eigenvalue's vector: the long axis
    if _skew(d @ u, w) > SKEW_DEADBAND:
        u = -u
    v = np.array([-u[1], u[0]])
    if _skew(d @ v, w) < -SKEW_DEADBAND:
        v = -v
    return c, u, v


def upright_view(image: NDArray[np.uint8], weapon: NDArray[np.float32], scale: float, stride: int, size: int,
                 threshold: float = 0.3, margin: float = 0.12, pad_value: int = 255) -> NDArray[np.uint8] | None:
    """The weapon turned upright and cut out of ``image``, its longer side ``size`` pixels; None without a weapon.

    ``weapon`` (g, g) is the weapon mask (probabilities, or the true coverage in training) on the stride-
    ``stride`` grid of the letterboxed model input, and ``scale`` the letterbox scale (input pixels per
    photo pixel; the letterbox is top-left aligned, so a photo pixel is an input pixel divided by it).
    Cells under ``threshold`` are left out; the others weigh by their probability.
    """
    ys, xs = np.nonzero(weapon >= threshold)
    if len(xs) < MIN_CELLS:
        return None
    w = weapon[ys, xs].astype(np.float64)
    xy = np.stack([(xs + 0.5) * stride, (ys + 0.5) * stride], axis=1) / scale  # photo pixels
    c, u, v = weapon_axes(xy, w)
    d = xy - c
    a, b = d @ u, d @ v
    half = stride / scale / 2  # a cell's half-width in photo pixels: the mask's extent reaches the cells' edges
    a0, a1, b0, b1 = a.min() - half, a.max() + half, b.min() - half, b.max() + half
    m = margin * (a1 - a0)
    a0, a1, b0, b1 = a0 - m, a1 + m, b0 - m, b1 + m
    k = size / max(a1 - a0, b1 - b0)  # view pixels per photo pixel
    out_w, out_h = max(8, round((a1 - a0) * k)), max(8, round((b1 - b0) * k))
    src = image
    if k < 0.5:  # shrink the photo first (area averaging), so that the warp does not alias
        src = np.asarray(cv2.resize(image, None, fx=2 * k, fy=2 * k, interpolation=cv2.INTER_AREA), np.uint8)
        c, k_left = c * 2 * k, 0.5
    else:
        k_left = k
    # view (x, y) = k * ((p - c) . u - a0, (p - c) . v - b0): an affine map (mirrored when u, v are)
    rot = np.stack([u, v]) * k_left
    shift = -rot @ c - k * np.array([a0, b0])
    affine = np.concatenate([rot, shift[:, None]], axis=1)
    view = cv2.warpAffine(src, affine, (out_w, out_h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT,
                          borderValue=(pad_value,) * 3)
    return np.asarray(view, np.uint8)
