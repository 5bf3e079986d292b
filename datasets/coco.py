"""COCO annotation files with armscan's attributes: write generated scans, read any COCO folder.

Our COCO files carry, per annotation, ``attributes: {"type": ..., "build": ...}`` (generated scans also
``occlusion``, the hidden fraction of the object, and ``tilt``, its out-of-plane angle in degrees) and, per
image, ``armscan: {seed, style, difficulty, ...}``. Reading accepts plain COCO too: category
names are mapped to our taxonomy (``EXTERNAL_LABELS``; a name it does not know is an error, see
:func:`read_coco`) and missing attributes are "unknown".
"""

from __future__ import annotations

import hashlib
import json
import math
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from armscan.datasets.taxonomy import CLASSES, EXTERNAL_LABELS, UNKNOWN, map_external_label, validate_attributes

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
    """Write ``out_dir/annotations.json`` for ``records`` (file paths relative to ``out_dir``).

    Raises :class:`CocoFormatError` for a box with non-finite coordinates or a negative width or height: the
    file would not be valid JSON, or COCO evaluation would count a negative area. Importers drop such boxes first.
    """
    images: list[dict[str, Any]] = []
    anns: list[dict[str, Any]] = []
    for rec in records:
        images.append({"id": rec.image_id, "file_name": rec.file.as_posix(), "width": rec.width, "height": rec.height,
                       "armscan": rec.meta})
        for b in rec.boxes:
            validate_attributes(b["cls"], b["type"], b["build"])
            x, y, w, h = (round(float(v), 2) for v in b["bbox"])
            if not all(math.isfinite(v) for v in (x, y, w, h)) or w < 0 or h < 0:
                raise CocoFormatError(f"{rec.file}: box {b['bbox']} ({b['cls']}) is not a box: [x, y, width, height] "
                                      "must be finite, with width and height >= 0")
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


def read_coco(folder: Path, skip_unknown: bool = False) -> list[Record]:
    """Read ``folder/annotations.json``; image paths resolve relative to ``folder`` (or ``folder/images``).

    Category names are our classes or external names the taxonomy maps (``EXTERNAL_LABELS``). A box whose
    category is not defined in ``categories``, or whose name is neither, raises :class:`CocoFormatError`: read as
    benign, a threat would become a clean scan. Such labels are mapped (or declared benign) by importing the
    folder with a mapping file (``armscan data import coco``); ``armscan data check`` lists them. With
    ``skip_unknown`` (for tools that report them, such as the check) their boxes are left out instead.
    """
    path = folder / ANNOTATIONS
    if not path.is_file():
        raise CocoFormatError(f"{folder} is not a COCO folder: {ANNOTATIONS} is missing")
    undefined: list[str] = []
    unknown: Counter[str] = Counter()
    try:
        data = json.loads(path.read_text())
        names = {int(c["id"]): str(c["name"]) for c in data["categories"]}
        cat_map = {i: (n, UNKNOWN) if n in CLASSES else map_external_label(n) for i, n in names.items()}
        records: dict[int, Record] = {}
        for im in data["images"]:
            f = Path(im["file_name"])
            if not (folder / f).exists() and (folder / "images" / f).exists():
                f = Path("images") / f
            records[int(im["id"])] = Record(folder / f, int(im["width"]), int(im["height"]), [],
                                            dict(im.get("armscan", {})), int(im["id"]))
        for a in data["annotations"]:
            cat = int(a["category_id"])
            mapped = cat_map.get(cat)
            if mapped is None:
                if cat not in names:
                    undefined.append(f"annotation {a.get('id')} (category_id {cat})")
                else:
                    unknown[names[cat]] += 1
                continue
            attrs = a.get("attributes", {})
            cls, type_ = mapped
            records[int(a["image_id"])].boxes.append({"bbox": [float(v) for v in a["bbox"]], "cls": cls,
                                                      "type": attrs.get("type", type_),
                                                      "build": attrs.get("build", UNKNOWN),
                                                      **{k: attrs[k] for k in _EXTRA_ATTRIBUTES if k in attrs}})
    except (KeyError, TypeError, ValueError) as exc:
        raise CocoFormatError(f"{path}: not a valid COCO annotation file ({exc})") from exc
    problems = []
    if undefined:
        more = f" and {len(undefined) - 5} more" if len(undefined) > 5 else ""
        problems.append(f"boxes of a category that 'categories' does not define: {', '.join(undefined[:5])}{more} "
                        f"(defined: {dict(sorted(names.items())) or 'none'})")
    if unknown:
        problems.append(
            f"the categories {dict(unknown)} (boxes per name) are not in armscan's taxonomy, and their boxes cannot be "
            f"read as benign: they may be threats. Allowed names: the classes {', '.join(CLASSES)}, or a name the "
            f"taxonomy maps ({', '.join(sorted(EXTERNAL_LABELS))}; case, spaces and hyphens aside). Map them with "
            f"'armscan data import coco {folder} --out NEW --mapping MAP.yaml' (lines 'Name: class', or 'Name: null' "
            "for a benign label) and train on NEW; 'armscan data check' lists such labels")
    if problems and not skip_unknown:
        raise CocoFormatError(f"{path}: {'; '.join(problems)}.")
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
