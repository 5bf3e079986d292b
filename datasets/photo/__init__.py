"""Procedural seizure photos: firearms, loose parts or benign things lying on a table beside a card or a ruler.

The firearm families are drawn with the X-ray engine's primitives (:class:`PhotoCanvas` is a
:class:`~armscan.datasets.synth.canvas.Canvas`), so each family is also an X-ray item (:func:`xray_item`).

    from armscan.datasets.photo import PhotoConfig, render_photo, write_photo_dataset
    sample = render_photo(7)                      # image (BGR), label, build, masks, length_mm, ...
    write_photo_dataset(Path("runs/photos"), 1000, seed=0)
"""

from armscan.datasets.photo.canvas import PhotoCanvas
from armscan.datasets.photo.config import (
    MASK_BARREL,
    MASK_CARD,
    MASK_RULER,
    MASK_WEAPON,
    PhotoConfig,
    PhotoConfigError,
    PhotoSample,
)
from armscan.datasets.photo.families import FAMILIES, FamilyError, draw, xray_item
from armscan.datasets.photo.render import render_photo
from armscan.datasets.photo.writer import (
    PhotoDatasetError,
    PhotoRecord,
    iter_photos,
    read_photo_dataset,
    write_photo_dataset,
    write_photo_gallery,
)

__all__ = [
    "FAMILIES",
    "MASK_BARREL",
    "MASK_CARD",
    "MASK_RULER",
    "MASK_WEAPON",
    "FamilyError",
    "PhotoCanvas",
    "PhotoConfig",
    "PhotoConfigError",
    "PhotoDatasetError",
    "PhotoRecord",
    "PhotoSample",
    "draw",
    "iter_photos",
    "read_photo_dataset",
    "render_photo",
    "write_photo_dataset",
    "write_photo_gallery",
    "xray_item",
]
