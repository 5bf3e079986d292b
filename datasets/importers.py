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
  (with any corrected class) and missed boxes become boxes, rejected ones are dropped.

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
hash and group (parcel, series or folder) in its ``armscan`` metadata for splitting and leakage checks.
"""

from __future__ import annotations

import hashlib
import json
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
from armscan.datasets.readers import IMAGE_SUFFIXES, ImageReadError, probe_image
from armscan.datasets.taxonomy import BUILDS, CLASSES, PHOTO_CLASSES, UNKNOWN, map_external_label, validate_attributes

FORMATS = ("coco", "pidray", "voc", "yolo", "gdxray", "imagefolder", "feedback")
_BENIGN = object()


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
            entry = {"class": target} if isinstance(target, str) else dict(target)
            entry.setdefault("type", UNKNOWN)
            entry.setdefault("build", UNKNOWN)
            try:
                if "photo" in entry:  # a seizure-photo label
                    if entry["photo"] not in PHOTO_CLASSES:
                        raise ValueError(f"unknown photo class {entry['photo']!r}; valid: {', '.join(PHOTO_CLASSES)}")
                    if entry["build"] not in (*BUILDS, UNKNOWN):
                        raise ValueError(f"unknown build {entry['build']!r}; valid: {', '.join(BUILDS)}, unknown")
                else:
                    validate_attributes(str(entry["class"]), str(entry["type"]), str(entry["build"]))
            except (ValueError, KeyError) as exc:
                raise DatasetImportError(f"{path}: label {label!r}: {exc}") from exc
            table[_key(str(label))] = {k: str(v) for k, v in entry.items()}
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
    group: str


@dataclass
class ImportReport:
    """What an import did."""

    images: int = 0
    boxes: int = 0
    skipped_images: list[str] = field(default_factory=list)
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
        yield Source(path, by_image.get(int(im["id"]), []), str(im.get("group", path.parent.name)))


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


def _yolo(src: Path) -> Iterator[Source]:
    names: list[str] = []
    if (src / "classes.txt").is_file():
        names = [n.strip() for n in (src / "classes.txt").read_text().splitlines() if n.strip()]
    elif (src / "data.yaml").is_file():
        raw = yaml.safe_load((src / "data.yaml").read_text()).get("names", [])
        names = [raw[k] for k in sorted(raw)] if isinstance(raw, dict) else list(raw)
    if not names:
        raise DatasetImportError(f"{src}: a YOLO folder needs classes.txt or data.yaml with 'names'")
    for img in _images_in(src / "images"):
        info = probe_image(img.read_bytes(), str(img))
        lab = src / "labels" / img.relative_to(src / "images").with_suffix(".txt")
        labels: list[tuple[str, list[float] | None, dict[str, str]]] = []
        for line in lab.read_text().splitlines() if lab.is_file() else []:
            parts = line.split()
            if len(parts) < 5:
                continue
            k, cx, cy, w, h = int(parts[0]), *(float(v) for v in parts[1:5])
            if not 0 <= k < len(names):
                labels.append((f"<class index {k}>", None, {}))
                continue
            labels.append((names[k], [(cx - w / 2) * info.width, (cy - h / 2) * info.height, w * info.width,
                                      h * info.height], {}))
        yield Source(img, labels, img.parent.name)


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
            yield Source(img, [(d.name, None, {})], d.name)


def _feedback(src: Path) -> Iterator[Source]:
    latest: dict[str, dict[str, Any]] = {}
    for line in src.read_text().splitlines():
        if line.strip():
            row = json.loads(line)
            if row.get("kind", "xray") != "xray":
                continue  # seizure-photo feedback (family, not boxes) is not X-ray training data
            latest[row["scan"]["id"]] = row  # rows come in feedback order: the last word wins
    for row in latest.values():
        path = row["scan"].get("image_path")
        if not path:
            continue  # retention kept only a thumbnail
        dets, fb = row["result"]["detections"], row["feedback"]
        labels: list[tuple[str, list[float] | None, dict[str, str]]] = []
        for v in fb.get("detections", []):
            if v["verdict"] == "confirmed" and v["index"] < len(dets):
                d = dets[v["index"]]
                x0, y0, x1, y1 = d["box"]
                attrs = {"build": d.get("build", UNKNOWN)} | ({"type": d["type"]} if d.get("type") else {})
                labels.append((v.get("cls") or d["cls"], [x0, y0, x1 - x0, y1 - y0], attrs))
        for m in fb.get("missed", []):
            x0, y0, x1, y1 = m["box"]
            labels.append((m["cls"], [x0, y0, x1 - x0, y1 - y0], {"build": m.get("build") or UNKNOWN}))
        yield Source(Path(path), labels, row["scan"]["id"])


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
            info = probe_image(data, str(s.path))
        except (OSError, ImageReadError) as exc:
            report.skipped_images.append(f"{s.path}: {getattr(exc, 'reason', exc)}")
            continue
        if photos:
            found = photo_label(mapping, s.labels[0][0]) if s.labels else None
            if found is None:
                report.unknown_labels[s.labels[0][0] if s.labels else "<none>"] += 1
                continue
            dest, digest = _place(s.path, images, data, link)
            records.append(Record(dest.relative_to(out), info.width, info.height, [],
                                  {"kind": "photo", "label": found[0], "build": found[1], "reference": "none",
                                   "source": str(s.path), "sha256": digest, "group": s.group, "format": fmt},
                                  image_id=len(records) + 1))
            report.images += 1
            continue
        boxes, image_labels = [], []
        for label, bbox, attrs in s.labels:
            target = mapping.resolve(label)
            if target is None:
                report.unknown_labels[label] += 1
                continue
            if target is _BENIGN:
                report.benign_labels[label] += 1
                continue
            assert isinstance(target, dict)
            cls = target["class"]
            typ = attrs.get("type", target["type"]) if cls == "firearm" else UNKNOWN
            build = attrs.get("build", target["build"])
            build = build if build in BUILDS else UNKNOWN
            if bbox is None:
                image_labels.append(cls)
            else:
                boxes.append({"bbox": bbox, "cls": cls, "type": typ, "build": build})
        dest, digest = _place(s.path, images, data, link)
        records.append(Record(dest.relative_to(out), info.width, info.height, boxes,
                              {"source": str(s.path), "sha256": digest, "group": s.group, "format": fmt,
                               **({"image_labels": sorted(set(image_labels))} if image_labels else {})},
                              image_id=len(records) + 1))
        report.images += 1
        report.boxes += len(boxes)
    if strict and report.unknown_labels:
        raise DatasetImportError(f"unknown labels {dict(report.unknown_labels)}: map them in the mapping file "
                           "(to a class, or to null for benign)")
    write_coco(out, records, {"description": f"imported from {src} ({fmt})", "format": fmt})
    return report
