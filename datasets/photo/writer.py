"""Write and read generated photo sets, and draw a contact sheet.

A photo set is a COCO folder: ``images/photo_SEED.jpg``, ``masks/photo_SEED.png`` (the bit-flag mask,
see :data:`MASK_WEAPON` and co.) and ``annotations.json``. Each image's ``armscan`` dict holds the photo
labels (``kind: "photo"``, ``label``, ``build``, ``length_mm``, ``barrel_mm``, ``reference``,
``card_corners_px``, ``ruler_mm``, ``mask``, ``seed``...), and a firearm or a part also gets a box (class
``firearm`` with its X-ray ``type``, or the part's class) so X-ray tools can read the same file.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from armscan.datasets.coco import CocoFormatError, Record, read_coco, write_coco
from armscan.datasets.photo.config import MASK_BARREL, MASK_CARD, MASK_RULER, MASK_WEAPON, PhotoConfig, PhotoSample
from armscan.datasets.photo.render import render_photo
from armscan.datasets.taxonomy import BUILDS, NO_FIREARM, PHOTO_CLASSES, PHOTO_TO_XRAY_TYPE, UNKNOWN

IMAGE_FORMATS = ("jpg", "png")


class PhotoDatasetError(ValueError):
    """A photo set that cannot be written or read."""


@dataclass(frozen=True)
class PhotoRecord:
    """One photo of a set on disk, with its labels."""

    image: Path
    mask: Path | None  # None for photos imported without masks (the user's own)
    label: str
    build: str
    length_mm: float | None
    barrel_mm: float | None
    reference: str
    card_corners_px: list[list[float]] | None
    ruler_mm: int | None
    mm_per_px: float
    meta: dict[str, Any]


def iter_photos(n: int, seed: int, cfg: PhotoConfig | None = None) -> Iterator[tuple[int, PhotoSample]]:
    """Photos ``seed, seed + 1, ...``: photo ``k`` depends only on ``seed + k``."""
    for k in range(n):
        yield seed + k, render_photo(seed + k, cfg or PhotoConfig())


def _jsonable(v: Any) -> Any:
    if isinstance(v, dict):
        return {str(k): _jsonable(x) for k, x in v.items()}
    if isinstance(v, list | tuple):
        return [_jsonable(x) for x in v]
    if isinstance(v, np.ndarray):
        return _jsonable(v.tolist())
    if isinstance(v, np.bool_ | bool):
        return bool(v)
    if isinstance(v, np.integer):
        return int(v)
    if isinstance(v, np.floating | float):
        return float(f"{float(v):.7g}")  # 7 significant digits: a homography's perspective terms are ~1e-5
    return v


def photo_meta(smp: PhotoSample, mask_name: str) -> dict[str, Any]:
    """The ``armscan`` dict of one photo in ``annotations.json``."""
    meta = {k: v for k, v in smp.meta.items() if k not in ("label", "build")}
    out: dict[str, Any] = _jsonable(
        {
            "kind": "photo",
            "label": smp.label,
            "build": smp.build,
            "length_mm": smp.length_mm,
            "barrel_mm": smp.barrel_mm,
            "reference": smp.reference,
            "card_corners_px": smp.card_corners_px,
            "ruler_mm": smp.ruler_mm,
            "mm_per_px": smp.mm_per_px,
            "mask": mask_name,
            **meta,
        }
    )
    return out


def _boxes(smp: PhotoSample) -> list[dict[str, Any]]:
    ys, xs = np.nonzero(smp.masks & MASK_WEAPON)
    if smp.label == NO_FIREARM or len(xs) == 0:
        return []
    bbox = [float(xs.min()), float(ys.min()), float(xs.max() - xs.min() + 1), float(ys.max() - ys.min() + 1)]
    part = smp.meta.get("part")
    if part:
        return [{"bbox": bbox, "cls": part, "type": UNKNOWN, "build": smp.build}]
    return [{"bbox": bbox, "cls": "firearm", "type": PHOTO_TO_XRAY_TYPE[smp.label], "build": smp.build}]


def _write(path: Path, image: np.ndarray, params: list[int]) -> None:
    if not cv2.imwrite(str(path), image, params):
        raise OSError(f"could not write {path}")


def write_photo_dataset(out: Path, n: int, seed: int, cfg: PhotoConfig | None = None, image_format: str = "jpg") -> Path:
    """Render ``n`` photos from ``seed`` into ``out`` (images/, masks/, annotations.json); returns the annotation path."""
    if n < 1:
        raise PhotoDatasetError(f"n must be >= 1, not {n}")
    if image_format not in IMAGE_FORMATS:
        raise PhotoDatasetError(f"Unknown image format {image_format!r}. Valid: {', '.join(IMAGE_FORMATS)}")
    cfg = cfg or PhotoConfig()
    (out / "images").mkdir(parents=True, exist_ok=True)
    (out / "masks").mkdir(exist_ok=True)
    records = []
    for s, smp in iter_photos(n, seed, cfg):
        name = f"photo_{s:08d}"
        image, mask = Path("images") / f"{name}.{image_format}", Path("masks") / f"{name}.png"
        _write(out / image, smp.image, [cv2.IMWRITE_JPEG_QUALITY, 95] if image_format == "jpg" else [])
        _write(out / mask, smp.masks, [cv2.IMWRITE_PNG_COMPRESSION, 3])
        H, W = smp.masks.shape
        records.append(Record(image, W, H, _boxes(smp), photo_meta(smp, mask.as_posix()), image_id=s))
    info = {
        "description": "armscan procedural seizure photos (photo renderer v1)",
        "kind": "photo",
        "seed": seed,
        "n": n,
        "classes": list(PHOTO_CLASSES),
        "builds": list(BUILDS),
        "mask_bits": {"weapon": MASK_WEAPON, "barrel": MASK_BARREL, "card": MASK_CARD, "ruler": MASK_RULER},
        "config": _jsonable(vars(cfg)),
    }
    return write_coco(out, records, info)


def read_photo_dataset(folder: Path) -> list[PhotoRecord]:
    """Read a photo set written by :func:`write_photo_dataset` (image and mask paths resolve under ``folder``)."""
    try:
        recs = read_coco(folder)
    except CocoFormatError as exc:
        raise PhotoDatasetError(f"{folder} is not a photo dataset: {exc}") from None
    out = []
    for r in recs:
        m = r.meta
        if m.get("kind") != "photo":
            raise PhotoDatasetError(
                f"{folder} is not a photo dataset: image {r.file.name} has no armscan kind 'photo' "
                "(write one with 'armscan photos synth')"
            )
        if m.get("label") not in PHOTO_CLASSES:
            raise PhotoDatasetError(f"{r.file.name}: unknown photo label {m.get('label')!r}. Valid: {', '.join(PHOTO_CLASSES)}")
        mask = folder / str(m["mask"]) if m.get("mask") else None
        if (mask is not None and not mask.is_file()) or not r.file.is_file():
            raise PhotoDatasetError(f"{r.file.name}: image or mask file missing under {folder}")
        out.append(
            PhotoRecord(
                r.file,
                mask,
                m["label"],
                m.get("build", UNKNOWN),
                m.get("length_mm"),
                m.get("barrel_mm"),
                m.get("reference", "none"),
                m.get("card_corners_px"),
                m.get("ruler_mm"),
                float(m.get("mm_per_px", 0.0)),
                m,
            )
        )
    return out


def _tile(smp: PhotoSample, tw: int, th: int) -> np.ndarray:
    """The photo fitted into a tw x th tile with thin outlines of the weapon (green), barrel (red) and card (blue)."""
    H, W = smp.image.shape[:2]
    k = min(tw / W, (th - 30) / H)
    small = cv2.resize(smp.image, (int(W * k), int(H * k)), interpolation=cv2.INTER_AREA)
    for bit, colour in ((MASK_WEAPON, (60, 220, 60)), (MASK_BARREL, (40, 40, 240))):
        contours, _ = cv2.findContours(((smp.masks & bit) > 0).astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        cv2.drawContours(small, [np.round(c * k).astype(np.int32) for c in contours], -1, colour, 1, cv2.LINE_AA)
    if smp.card_corners_px is not None:
        cv2.polylines(small, [np.round(smp.card_corners_px * k).astype(np.int32)], True, (240, 120, 30), 1, cv2.LINE_AA)
    tile = np.full((th, tw, 3), 245, np.uint8)
    tile[: small.shape[0], : small.shape[1]] = small
    length = f"{smp.length_mm:.0f} mm" if smp.length_mm else "-"
    barrel = f" barrel {smp.barrel_mm:.0f}" if smp.barrel_mm else ""
    for row, text in enumerate((f"{smp.label} / {smp.build}", f"L {length}{barrel}  ref {smp.reference}")):
        cv2.putText(tile, text, (4, th - 18 + row * 13), cv2.FONT_HERSHEY_SIMPLEX, 0.38, (20, 20, 20), 1, cv2.LINE_AA)
    return cv2.copyMakeBorder(tile, 2, 2, 2, 2, cv2.BORDER_CONSTANT, value=(120, 120, 120))


def write_photo_gallery(
    path: Path, n: int = 12, seed: int = 0, cols: int = 4, tile_width: int = 296, cfg: PhotoConfig | None = None
) -> Path:
    """A contact sheet PNG of ``n`` photos, captioned with label, build, length and reference (palette PNG, small)."""
    if n < 1 or cols < 1:
        raise PhotoDatasetError(f"n and cols must be >= 1, not n={n}, cols={cols}")
    from PIL import Image

    tiles = [_tile(smp, tile_width, int(tile_width * 0.75) + 30) for _, smp in iter_photos(n, seed, cfg)]
    blank = np.full_like(tiles[0], 255)
    rows = [np.hstack(tiles[i : i + cols] + [blank] * (cols - len(tiles[i : i + cols]))) for i in range(0, n, cols)]
    sheet = np.vstack(rows)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(sheet[..., ::-1]).quantize(256, method=Image.Quantize.MEDIANCUT).save(path, optimize=True)
    return path
