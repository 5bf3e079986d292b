"""COCO annotation files with armscan's attributes: write generated scans, read any COCO folder.

Our COCO files carry, per annotation, ``attributes: {"type": ..., "build": ...}`` (generated scans also
``occlusion``, the hidden fraction of the object, and ``tilt``, its out-of-plane angle in degrees) and, per
image, ``armscan: {seed, style, difficulty, ...}``. Reading accepts plain COCO too: category
names are mapped to our taxonomy (``EXTERNAL_LABELS``) and missing attributes are "unknown".
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from armscan.datasets.taxonomy import CLASSES, UNKNOWN, map_external_label, validate_attributes

ANNOTATIONS = "annotations.json"
_EXTRA_ATTRIBUTES = ("occlusion", "tilt")  # optional per-box attributes of generated scans, kept when present


@dataclass
class Record:
    """One image and its threat boxes (``bbox`` is COCO xywh in pixels)."""

    file: Path
    width: int
    height: int
    boxes: list[dict[str, Any]] = field(default_factory=list)  # {bbox, cls, type, build[, occlusion, tilt]}
    meta: dict[str, Any] = field(default_factory=dict)
    image_id: int = 0


def categories() -> list[dict[str, Any]]:
    """COCO categories for our classes (ids start at 1)."""
    return [{"id": i + 1, "name": name, "supercategory": "threat"} for i, name in enumerate(CLASSES)]


def write_coco(out_dir: Path, records: list[Record], info: dict[str, Any]) -> Path:
    """Write ``out_dir/annotations.json`` for ``records`` (file paths relative to ``out_dir``)."""
    images: list[dict[str, Any]] = []
    anns: list[dict[str, Any]] = []
    for rec in records:
        images.append({"id": rec.image_id, "file_name": rec.file.as_posix(), "width": rec.width, "height": rec.height,
                       "armscan": rec.meta})
        for b in rec.boxes:
            validate_attributes(b["cls"], b["type"], b["build"])
            x, y, w, h = (round(float(v), 2) for v in b["bbox"])
            anns.append({"id": len(anns) + 1, "image_id": rec.image_id, "category_id": CLASSES.index(b["cls"]) + 1,
                         "bbox": [x, y, w, h], "area": round(w * h, 2), "iscrowd": 0,
                         "attributes": {"type": b["type"], "build": b["build"],
                                        **{k: b[k] for k in _EXTRA_ATTRIBUTES if k in b}}})
    path = out_dir / ANNOTATIONS
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps({"info": info, "images": images, "annotations": anns, "categories": categories()}))
    tmp.replace(path)
    return path


class CocoFormatError(ValueError):
    """A COCO folder or file that cannot be read."""


def read_coco(folder: Path) -> list[Record]:
    """Read ``folder/annotations.json``; image paths resolve relative to ``folder`` (or ``folder/images``)."""
    path = folder / ANNOTATIONS
    if not path.is_file():
        raise CocoFormatError(f"{folder} is not a COCO folder: {ANNOTATIONS} is missing")
    try:
        data = json.loads(path.read_text())
        cat_map: dict[int, tuple[str, str] | None] = {
            int(c["id"]): (c["name"], UNKNOWN) if c["name"] in CLASSES else map_external_label(str(c["name"]))
            for c in data["categories"]
        }
        records: dict[int, Record] = {}
        for im in data["images"]:
            f = Path(im["file_name"])
            if not (folder / f).exists() and (folder / "images" / f).exists():
                f = Path("images") / f
            records[int(im["id"])] = Record(folder / f, int(im["width"]), int(im["height"]), [],
                                            dict(im.get("armscan", {})), int(im["id"]))
        for a in data["annotations"]:
            mapped = cat_map.get(int(a["category_id"]))
            if mapped is None:
                continue  # a benign category
            attrs = a.get("attributes", {})
            cls, type_ = mapped
            records[int(a["image_id"])].boxes.append({"bbox": [float(v) for v in a["bbox"]], "cls": cls,
                                                      "type": attrs.get("type", type_),
                                                      "build": attrs.get("build", UNKNOWN),
                                                      **{k: attrs[k] for k in _EXTRA_ATTRIBUTES if k in attrs}})
    except (KeyError, TypeError, ValueError) as exc:
        raise CocoFormatError(f"{path}: not a valid COCO annotation file ({exc})") from exc
    return list(records.values())


def dataset_hash(folder: Path) -> str:
    """Content hash of a COCO folder: its annotations and the names and sizes of its images."""
    h = hashlib.sha256()
    ann = folder / "annotations.json"
    if ann.is_file():
        h.update(ann.read_bytes())
    for p in sorted(folder.rglob("*")):
        if p.is_file() and p != ann:
            h.update(f"{p.relative_to(folder)}:{p.stat().st_size}".encode())
    return h.hexdigest()[:16]
