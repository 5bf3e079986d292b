"""Image readers for the CLI and (later) the batch job and service: one place for decoding.

Any bit depth and channel count becomes 8-bit BGR: 16-bit scans are scaled by their full
range, greyscale is replicated, alpha is dropped. Every failure is one :class:`ImageReadError`
naming the file and the reason.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
from numpy.typing import NDArray

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp"})
MAX_PIXELS = 64_000_000  # refuse decompression bombs


class ImageReadError(ValueError):
    """An image that cannot be read; ``str()`` names the file and the reason."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason


def to_bgr8(img: NDArray[np.generic], source: str = "<image>") -> NDArray[np.uint8]:
    """Normalise a decoded image of any depth and channel count to (H, W, 3) uint8 BGR."""
    if img.ndim == 2:
        img = img[..., None]
    if img.ndim != 3 or img.shape[2] not in (1, 3, 4):
        raise ImageReadError(source, f"unsupported image shape {img.shape}")
    if img.dtype == np.uint16:
        img = (img.astype(np.float32) * (255.0 / 65535.0) + 0.5).astype(np.uint8)
    elif img.dtype in (np.float32, np.float64):
        img = (np.clip(img, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    elif img.dtype != np.uint8:
        raise ImageReadError(source, f"unsupported pixel type {img.dtype}")
    if img.shape[2] == 1:
        img = np.repeat(img, 3, axis=2)
    elif img.shape[2] == 4:
        img = img[..., :3]
    return np.ascontiguousarray(img, dtype=np.uint8)


def decode_image(data: bytes, source: str = "<bytes>") -> NDArray[np.uint8]:
    """Decode image bytes (PNG, JPEG, TIFF 8/16-bit, BMP) to BGR uint8, honouring EXIF orientation."""
    if not data:
        raise ImageReadError(source, "empty file")
    buf = np.frombuffer(data, np.uint8)
    img = cv2.imdecode(buf, cv2.IMREAD_ANYDEPTH | cv2.IMREAD_ANYCOLOR)
    if img is None:
        raise ImageReadError(source, "not a decodable image (supported: PNG, JPEG, TIFF, BMP)")
    if img.shape[0] * img.shape[1] > MAX_PIXELS:
        raise ImageReadError(source, f"{img.shape[1]}x{img.shape[0]} exceeds the {MAX_PIXELS} pixel limit")
    return to_bgr8(img, source)


def read_image(path: str | Path) -> NDArray[np.uint8]:
    """Read an image file to BGR uint8; raises :class:`ImageReadError` with the reason."""
    p = Path(path)
    try:
        data = p.read_bytes()
    except OSError as exc:
        raise ImageReadError(str(p), exc.strerror or str(exc)) from exc
    return decode_image(data, str(p))


def find_images(paths: list[str]) -> list[Path]:
    """Expand files and folders (recursively, sorted) into image paths; a missing path is kept so that
    the caller reports it."""
    out: list[Path] = []
    for s in paths:
        p = Path(s)
        if p.is_dir():
            out.extend(sorted(f for f in p.rglob("*") if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES))
        else:
            out.append(p)
    return out
