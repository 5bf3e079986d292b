"""Bring the user's own labelled data into armscan's COCO layout, mapped to the taxonomy.

    armscan data import voc /data/SIXray --out runs/data/sixray --mapping sixray.yaml

Formats (``FORMATS``):
- ``coco`` and ``pidray``: a COCO ``annotations.json`` (PIDray's splits are COCO files) beside the images;
- ``voc``: Pascal VOC, ``Annotations/*.xml`` and ``JPEGImages/`` (SIXray's layout);
- ``yolo``: ``images/`` and ``labels/*.txt`` (class cx cy w h, normalised) with ``classes.txt`` or ``data.yaml``;
- ``gdxray``: GDXray-style series folders, each with images ``<SERIES>_<nnnn>.png`` and a
  ``ground_truth.txt`` of rows ``index x1 x2 y1 y2``; the series name is the label to map;
- ``imagefolder``: ``ROOT/<label>/*.jpg``, image-level labels only (no boxes);
- ``feedback``: the JSON lines of the service's ``GET /v1/feedback/export``: confirmed detections
  (with any corrected class) and missed boxes become boxes, rejected ones are dropped. A scan's rows merge in
  order: the last verdict on a detection wins, missed boxes add up, and a comment alone changes nothing.

With ``photos`` (``armscan data import imagefolder DIR --photos``), the images are seizure photos: each
label maps to one photo class (a firearm family, ``part_only`` or ``no_firearm``; see
``taxonomy.PHOTO_CLASSES``), directly by name or through the mapping file (``label: {photo: revolver,
build: metal}``), and each image's metadata gets ``kind: photo``, ``label`` and ``build``: what
``armscan train`` (task photo) and ``armscan eval`` of a photo model read.

Labels map through a small YAML (or JSON) file the user can edit: ``label: class``, ``label:
{class: firearm, type: pistol, build: printed}``, or ``label: null`` for a benign label. Labels not in
the file fall back to the taxonomy's map of common names (gun, pistol, bullet, ...); any other label
is counted as unknown and skipped (``--strict`` refuses). Images are copied (or hard-linked) into
``OUT/images`` under a name that starts with their SHA-256, and each image keeps its source path,
hash and group in its ``armscan`` metadata for splitting and leakage checks. The group is a real one where
the format has it (a GDXray series, a VOC parcel ``<parcel>_<view>``, the scan of a feedback row, a COCO
image's ``group``); otherwise each image is its own group (its SHA-256), so ``armscan data split --by group``
spreads an import over the splits. Sizes are those of the upright image (after EXIF orientation), as the
readers and the service see it. Images that cannot be read are skipped, and so are boxes that are not finite
or have no area (``skipped_images``, ``skipped_boxes``).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
import xml.etree.ElementTree as ET
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from armscan.datasets.coco import Record, write_coco
from armscan.datasets.readers import IMAGE_SUFFIXES, ImageInfo, ImageReadError, _exif_orientation, probe_image
from armscan.datasets.taxonomy import BUILDS, CLASSES, PHOTO_CLASSES, UNKNOWN, map_external_label, validate_attributes

FORMATS = ("coco", "pidray", "voc", "yolo", "gdxray", "imagefolder", "feedback")
_BENIGN = object()
_ENTRY_KEYS = ("class", "type", "build", "photo")


class DatasetImportError(ValueError):
    """A source that cannot be imported; the message says what is missing or wrong."""


@dataclass
class Mapping:
    """External label -> (class, type, build), or benign."""

    table: dict[str, dict[str, str] | None] = field(default_factory=dict)

    @classmethod
    def load(cls, path: Path | None) -> Mapping:
        """Read a YAML/JSON mapping file (None: the taxonomy's defaults only)."""
        if path is None:
            return cls()
        try:
            raw = yaml.safe_load(path.read_text()) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise DatasetImportError(f"{path}: unreadable mapping file ({exc})") from exc
        if not isinstance(raw, dict):
            raise DatasetImportError(f"{path}: a mapping file is 'label: class' lines")
        table: dict[str, dict[str, str] | None] = {}
        for label, target in raw.items():
            if target is None:
                table[_key(str(label))] = None
                continue
            try:
                entry = _entry(target)
                if "photo" in entry:  # a seizure-photo label
                    if entry["photo"] not in PHOTO_CLASSES:
                        raise ValueError(f"unknown photo class {entry['photo']!r}; valid: {', '.join(PHOTO_CLASSES)}")
                    if entry["build"] not in (*BUILDS, UNKNOWN):
                        raise ValueError(f"unknown build {entry['build']!r}; valid: {', '.join(BUILDS)}, unknown")
                if "class" in entry:
                    validate_attributes(entry["class"], entry["type"], entry["build"])
            except (ValueError, KeyError) as exc:
                raise DatasetImportError(f"{path}: label {label!r}: {exc}") from exc
            table[_key(str(label))] = entry
        return cls(table)

    def resolve(self, label: str) -> dict[str, str] | object | None:
        """The target of ``label``: a dict, ``_BENIGN``, or None when the label is unknown."""
        k = _key(label)
        if k in self.table:
            return self.table[k] if self.table[k] is not None else _BENIGN
        if label in CLASSES:
            return {"class": label, "type": UNKNOWN, "build": UNKNOWN}
        mapped = map_external_label(label)
        return None if mapped is None else {"class": mapped[0], "type": mapped[1], "build": UNKNOWN}


def _entry(target: object) -> dict[str, str]:
    """A mapping file's value as ``{class, type, build[, photo]}``; ValueError says what is allowed."""
    allowed = "a class name, null (benign) or {class: ..., type: ..., build: ...} (or photo: ... for seizure photos)"
    if isinstance(target, str):
        return {"class": target, "type": UNKNOWN, "build": UNKNOWN}
    if not isinstance(target, dict):
        raise ValueError(f"expected {allowed}, got a {type(target).__name__} ({target!r})")
    extra = sorted(str(k) for k in target if k not in _ENTRY_KEYS)
    if extra:
        raise ValueError(f"unknown keys {extra}; the keys are {', '.join(_ENTRY_KEYS)}")
    if "class" not in target and "photo" not in target:
        raise ValueError(f"needs 'class' (or 'photo'); expected {allowed}")
    bad = {k: v for k, v in target.items() if not isinstance(v, str)}
    if bad:
        raise ValueError(f"values must be names, got {bad}")
    return {"type": UNKNOWN, "build": UNKNOWN, **target}


def photo_label(mapping: Mapping, label: str) -> tuple[str, str] | None:
    """The photo class and build of an image-level ``label``: from the mapping file, or the label itself."""
    k = _key(label)
    entry = mapping.table.get(k)
    if entry is not None and "photo" in entry:
        return entry["photo"], entry.get("build", UNKNOWN)
    return (k, UNKNOWN) if k in PHOTO_CLASSES else None


def _key(label: str) -> str:
    return label.strip().lower().replace(" ", "_").replace("-", "_")


@dataclass
class Source:
    """One image of the source and its labelled boxes (xywh) or image-level labels."""

    path: Path
    labels: list[tuple[str, list[float] | None, dict[str, str]]]  # (label, bbox or None, attribute overrides)
    group: str | None = None  # a parcel or series; None: the image is its own group (its SHA-256)
    normalized: bool = False  # boxes are fractions of the upright image's size (YOLO)
    problems: list[str] = field(default_factory=list)  # boxes the reader could not parse, for the report


@dataclass
class ImportReport:
    """What an import did."""

    images: int = 0
    boxes: int = 0
    skipped_images: list[str] = field(default_factory=list)
    skipped_boxes: list[str] = field(default_factory=list)  # "path: what was wrong" for boxes left out
    unknown_labels: Counter[str] = field(default_factory=Counter)
    benign_labels: Counter[str] = field(default_factory=Counter)


def _images_in(folder: Path) -> Iterator[Path]:
    return (p for p in sorted(folder.rglob("*")) if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def _coco(src: Path) -> Iterator[Source]:
    ann = src if src.is_file() else src / "annotations.json"
    if not ann.is_file():
        cands = sorted(src.glob("*.json")) + sorted((src / "annotations").glob("*.json"))
        if not cands:
            raise DatasetImportError(f"{src}: no COCO annotations.json found")
        ann = cands[0]
    data = json.loads(ann.read_text())
    names = {int(c["id"]): str(c["name"]) for c in data["categories"]}
    by_image: dict[int, list[tuple[str, list[float] | None, dict[str, str]]]] = {}
    for a in data.get("annotations", []):
        by_image.setdefault(int(a["image_id"]), []).append(
            (names[int(a["category_id"])], [float(v) for v in a["bbox"]], dict(a.get("attributes", {}))))
    root = ann.parent
    for im in data["images"]:
        f = Path(im["file_name"])
        path = next((p for p in (root / f, root / "images" / f, root.parent / "images" / f.name) if p.is_file()), root / f)
        group = im.get("group") or (im.get("armscan") or {}).get("group")  # plain COCO has none
        yield Source(path, by_image.get(int(im["id"]), []), str(group) if group else None)


def _voc(src: Path) -> Iterator[Source]:
    ann_dir = src / "Annotations"
    if not ann_dir.is_dir():
        raise DatasetImportError(f"{src}: a VOC folder needs Annotations/ (and JPEGImages/)")
    for xml in sorted(ann_dir.glob("*.xml")):
        try:
            root = ET.parse(xml).getroot()
        except ET.ParseError as exc:
            raise DatasetImportError(f"{xml}: not valid XML ({exc})") from exc
        fname = root.findtext("filename") or f"{xml.stem}.jpg"
        path = src / "JPEGImages" / fname
        if not path.is_file():
            path = next(iter(sorted((src / "JPEGImages").glob(f"{xml.stem}.*"))), path)
        labels: list[tuple[str, list[float] | None, dict[str, str]]] = []
        for obj in root.iter("object"):
            bb = obj.find("bndbox")
            if bb is None:
                continue
            x0, y0, x1, y1 = (float(bb.findtext(k) or 0) for k in ("xmin", "ymin", "xmax", "ymax"))
            labels.append((obj.findtext("name") or "", [x0, y0, x1 - x0, y1 - y0], {}))
        yield Source(path, labels, xml.stem.split("_")[0])


def _yolo_names(src: Path) -> dict[int, str]:
    """Class index -> name from ``classes.txt`` (one per line) or ``data.yaml``'s ``names`` (a list, or a dict by index)."""
    if (src / "classes.txt").is_file():
        return dict(enumerate(n.strip() for n in (src / "classes.txt").read_text().splitlines() if n.strip()))
    f = src / "data.yaml"
    if not f.is_file():
        return {}
    raw = yaml.safe_load(f.read_text())
    if not isinstance(raw, dict):
        raise DatasetImportError(f"{f}: expected a YAML mapping with 'names' (a list, or index: name), "
                                 f"got {type(raw).__name__ if raw is not None else 'an empty file'}")
    names = raw.get("names") or {}
    if isinstance(names, list):
        return {k: str(n) for k, n in enumerate(names)}
    if not isinstance(names, dict) or not all(isinstance(k, int) for k in names):
        raise DatasetImportError(f"{f}: 'names' must be a list or a mapping of class index to name, got {names!r}")
    return {int(k): str(n) for k, n in names.items()}


def _yolo(src: Path) -> Iterator[Source]:
    names = _yolo_names(src)
    if not names:
        raise DatasetImportError(f"{src}: a YOLO folder needs classes.txt or data.yaml with 'names'")
    for img in _images_in(src / "images"):
        lab = src / "labels" / img.relative_to(src / "images").with_suffix(".txt")
        labels: list[tuple[str, list[float] | None, dict[str, str]]] = []
        problems = []
        for n, line in enumerate(lab.read_text().splitlines() if lab.is_file() else [], start=1):
            parts = line.split()
            if not parts:
                continue
            try:
                k, cx, cy, w, h = int(parts[0]), *(float(v) for v in parts[1:5])
            except ValueError:  # too few numbers, or not numbers
                problems.append(f"{lab}:{n}: not 'class cx cy w h' ({line.strip()!r})")
                continue
            if k not in names:
                labels.append((f"<class index {k}>", None, {}))
            else:
                labels.append((names[k], [cx - w / 2, cy - h / 2, w, h], {}))
        yield Source(img, labels, normalized=True, problems=problems)


def _gdxray(src: Path) -> Iterator[Source]:
    one_series = (src / "ground_truth.txt").is_file()
    series = [src] if one_series else [d for d in sorted(src.iterdir()) if d.is_dir()]
    for d in series:
        gt: dict[int, list[list[float]]] = {}
        for f in sorted(d.glob("ground_truth*.txt")):
            for line in f.read_text().splitlines():
                v = line.split()
                if len(v) >= 5:
                    i, x1, x2, y1, y2 = int(float(v[0])), *(float(x) for x in v[1:5])
                    gt.setdefault(i, []).append([x1, y1, x2 - x1, y2 - y1])
        for img in _images_in(d):
            idx = int(img.stem.rsplit("_", 1)[-1]) if img.stem.rsplit("_", 1)[-1].isdigit() else -1
            yield Source(img, [(d.name, b, {}) for b in gt.get(idx, [])], d.name)


def _imagefolder(src: Path) -> Iterator[Source]:
    for d in (d for d in sorted(src.iterdir()) if d.is_dir()):
        for img in _images_in(d):
            yield Source(img, [(d.name, None, {})])  # a folder is a label, not a group


@dataclass
class _ScanFeedback:
    """Every feedback row of one scan, merged in order."""

    row: dict[str, Any]  # the latest row: the scan and its result
    verdicts: dict[int, dict[str, Any]] = field(default_factory=dict)  # detection index -> its latest verdict
    missed: dict[tuple[str, tuple[float, ...]], dict[str, Any]] = field(default_factory=dict)  # (cls, box) -> box


def _feedback(src: Path) -> Iterator[Source]:
    scans: dict[str, _ScanFeedback] = {}
    for line in src.read_text().splitlines():
        if line.strip():
            row = json.loads(line)
            if row.get("kind", "xray") != "xray":
                continue  # seizure-photo feedback (family, not boxes) is not X-ray training data
            # rows come in feedback order; a later row adds to the earlier ones (a comment alone changes nothing)
            merged = scans.setdefault(row["scan"]["id"], _ScanFeedback(row))
            merged.row = row
            for v in row["feedback"].get("detections", []):
                merged.verdicts[int(v["index"])] = v  # the last verdict on a box wins
            for m in row["feedback"].get("missed", []):
                merged.missed[(m["cls"], tuple(m["box"]))] = m  # the same box twice is one box
    for merged in scans.values():
        path = merged.row["scan"].get("image_path")
        if not path:
            continue  # retention kept only a thumbnail
        dets = merged.row["result"]["detections"]
        labels: list[tuple[str, list[float] | None, dict[str, str]]] = []
        for i, v in sorted(merged.verdicts.items()):
            if v["verdict"] == "confirmed" and i < len(dets):
                d = dets[i]
                x0, y0, x1, y1 = d["box"]
                attrs = {"build": d.get("build", UNKNOWN)} | ({"type": d["type"]} if d.get("type") else {})
                labels.append((v.get("cls") or d["cls"], [x0, y0, x1 - x0, y1 - y0], attrs))
        for m in merged.missed.values():
            x0, y0, x1, y1 = m["box"]
            labels.append((m["cls"], [x0, y0, x1 - x0, y1 - y0], {"build": m.get("build") or UNKNOWN}))
        yield Source(Path(path), labels, merged.row["scan"]["id"])


_READERS = {"coco": _coco, "pidray": _coco, "voc": _voc, "yolo": _yolo, "gdxray": _gdxray,
            "imagefolder": _imagefolder, "feedback": _feedback}


def _place(path: Path, images: Path, data: bytes, link: bool) -> tuple[Path, str]:
    digest = hashlib.sha256(data).hexdigest()
    dest = images / f"{digest[:16]}_{path.name}"
    if not dest.exists():
        if link:
            try:
                os.link(path, dest)
            except OSError:
                shutil.copyfile(path, dest)
        else:
            shutil.copyfile(path, dest)
    return dest, digest


def _upright(data: bytes, info: ImageInfo) -> tuple[int, int]:
    """Width and height as the readers decode the image: OpenCV turns JPEG and PNG by their EXIF orientation
    (Pillow's header size of a TIFF is already turned)."""
    if info.format in ("jpeg", "png") and _exif_orientation(data) in (5, 6, 7, 8):
        return info.height, info.width
    return info.width, info.height


def _bad_box(bbox: list[float]) -> str | None:
    """Why an ``[x, y, w, h]`` box cannot be used (None if it can)."""
    if len(bbox) != 4 or not all(math.isfinite(v) for v in bbox):
        return "not four finite numbers"
    if bbox[2] <= 0 or bbox[3] <= 0:
        return "no area (its right or bottom edge is not past its left or top one)"
    return None


def import_dataset(fmt: str, src: Path, out: Path, mapping: Mapping, link: bool = False,
                   strict: bool = False, photos: bool = False) -> ImportReport:
    """Import ``src`` (in format ``fmt``) into the COCO folder ``out``; see the module docstring."""
    if fmt not in _READERS:
        raise DatasetImportError(f"unknown format {fmt!r}; formats are {', '.join(FORMATS)}")
    if photos and fmt != "imagefolder":
        raise DatasetImportError("--photos imports an ImageFolder (ROOT/<label>/*.jpg) of seizure photos; "
                                 f"not {fmt!r}")
    if not src.exists():
        raise DatasetImportError(f"{src} does not exist")
    images = out / "images"
    images.mkdir(parents=True, exist_ok=True)
    report, records = ImportReport(), list[Record]()
    try:
        sources = list(_READERS[fmt](src))
    except (OSError, KeyError, TypeError, ValueError, json.JSONDecodeError, yaml.YAMLError) as exc:
        if isinstance(exc, DatasetImportError):
            raise
        raise DatasetImportError(f"{src}: cannot read it as {fmt} ({type(exc).__name__}: {exc})") from exc
    for s in sources:
        try:
            data = s.path.read_bytes()
            width, height = _upright(data, probe_image(data, str(s.path)))
        except (OSError, ImageReadError) as exc:
            report.skipped_images.append(f"{s.path}: {getattr(exc, 'reason', exc)}")
            continue
        report.skipped_boxes += s.problems
        if photos:
            found = photo_label(mapping, s.labels[0][0]) if s.labels else None
            if found is None:
                report.unknown_labels[s.labels[0][0] if s.labels else "<none>"] += 1
                continue
            dest, digest = _place(s.path, images, data, link)
            records.append(Record(dest.relative_to(out), width, height, [],
                                  {"kind": "photo", "label": found[0], "build": found[1], "reference": "none",
                                   "source": str(s.path), "sha256": digest, "group": s.group or digest, "format": fmt},
                                  image_id=len(records) + 1))
            report.images += 1
            continue
        boxes, image_labels = [], []
        for label, bbox, attrs in s.labels:
            if bbox is not None:
                bbox = [v * (width if k % 2 == 0 else height) for k, v in enumerate(bbox)] if s.normalized else bbox
                why = _bad_box(bbox)
                if why:
                    report.skipped_boxes.append(f"{s.path}: box {bbox} of {label!r}: {why}")
                    continue
            target = mapping.resolve(label)
            if target is None:
                report.unknown_labels[label] += 1
                continue
            if target is _BENIGN:
                report.benign_labels[label] += 1
                continue
            assert isinstance(target, dict)
            if "class" not in target:
                raise DatasetImportError(f"mapping label {label!r} names only a seizure-photo class "
                                         f"(photo: {target.get('photo')}); an X-ray import needs 'class: ...' "
                                         "(import seizure photos with --photos)")
            cls = target["class"]
            typ = attrs.get("type", target["type"]) if cls == "firearm" else UNKNOWN
            build = attrs.get("build", target["build"])
            build = build if build in BUILDS else UNKNOWN
            if bbox is None:
                image_labels.append(cls)
            else:
                boxes.append({"bbox": bbox, "cls": cls, "type": typ, "build": build})
        dest, digest = _place(s.path, images, data, link)
        records.append(Record(dest.relative_to(out), width, height, boxes,
                              {"source": str(s.path), "sha256": digest, "group": s.group or digest, "format": fmt,
                               **({"image_labels": sorted(set(image_labels))} if image_labels else {})},
                              image_id=len(records) + 1))
        report.images += 1
        report.boxes += len(boxes)
    if strict and report.unknown_labels:
        raise DatasetImportError(f"unknown labels {dict(report.unknown_labels)}: map them in the mapping file "
                           "(to a class, or to null for benign)")
    write_coco(out, records, {"description": f"imported from {src} ({fmt})", "format": fmt})
    return report
