"""Validate COCO folders, find duplicates and leakage between splits, make splits, write a dataset card.

    armscan data check runs/data/train runs/data/val runs/data/test --card runs/data/CARD.md
    armscan data split runs/data/sixray --out runs/data/sixray-splits --by group

Checks: images that cannot be decoded or whose size differs from the annotation; boxes out of the
image or degenerate; labels outside the taxonomy and boxes of undefined categories; exact duplicates
(SHA-256 of the file) and near duplicates (64-bit difference hash of the image, Hamming distance <= ``NEAR``);
and, across several folders given as splits, images or groups (a parcel's views, a GDXray series) that appear
in more than one.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from armscan.datasets.coco import ANNOTATIONS, Record, read_coco, write_coco
from armscan.datasets.readers import ImageReadError, decode_image
from armscan.datasets.taxonomy import CLASSES, map_external_label

NEAR = 4  # bits of 64 in which two difference hashes may differ and still be near duplicates
MIN_SIDE = 2.0  # boxes thinner than this (pixels) are degenerate


@dataclass
class Finding:
    """One problem: where, and what."""

    folder: str
    item: str
    problem: str


@dataclass
class CheckReport:
    """Everything ``check`` found, and the counts for the card."""

    findings: list[Finding] = field(default_factory=list)
    counts: dict[str, Counter[str]] = field(default_factory=lambda: defaultdict(Counter))

    @property
    def ok(self) -> bool:
        return not self.findings

    def by_kind(self) -> Counter[str]:
        """How many findings of each kind (the text before the first colon)."""
        return Counter(f.problem.split(":")[0] for f in self.findings)


def dhash(image: np.ndarray) -> int:
    """64-bit difference hash: robust to re-encoding, resizing and small brightness changes."""
    grey = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY) if image.ndim == 3 else image
    small = cv2.resize(grey, (9, 8), interpolation=cv2.INTER_AREA).astype(np.int16)
    bits = (small[:, 1:] > small[:, :-1]).ravel()
    return int(np.packbits(bits).view(">u8")[0])


def _label_findings(folder: Path) -> list[Finding]:
    """Boxes whose category ``annotations.json`` does not define, and labels outside the taxonomy (by name)."""
    data = json.loads((folder / ANNOTATIONS).read_text())
    names = {int(c["id"]): str(c["name"]) for c in data["categories"]}
    found = [Finding(folder.name, f"annotation {a.get('id')}", f"undefined category: category_id {a['category_id']} "
                     f"is not in the file's categories (defined: {sorted(names)})")
             for a in data["annotations"] if int(a["category_id"]) not in names]
    used = Counter(names[int(a["category_id"])] for a in data["annotations"] if int(a["category_id"]) in names)
    found += [Finding(folder.name, label, f"unknown label: {n} box(es) labelled {label!r} are not in the taxonomy")
              for label, n in used.items() if label not in CLASSES and map_external_label(label) is None]
    return found


def _near_pairs(hashes: list[tuple[str, int]]) -> list[tuple[str, str, int]]:
    """Pairs within NEAR bits: candidates share one of (NEAR+1) 64/(NEAR+1)-bit bands (pigeonhole)."""
    bands = NEAR + 1
    width = 64 // bands + 1
    buckets: dict[tuple[int, int], list[int]] = defaultdict(list)
    for i, (_, h) in enumerate(hashes):
        for b in range(bands):
            buckets[(b, (h >> (b * width)) & ((1 << width) - 1))].append(i)
    pairs: set[tuple[int, int]] = set()
    for idx in buckets.values():
        for a in range(len(idx)):
            for b in range(a + 1, len(idx)):
                pairs.add((idx[a], idx[b]))
    out = []
    for i, j in sorted(pairs):
        d = bin(hashes[i][1] ^ hashes[j][1]).count("1")
        if d <= NEAR:
            out.append((hashes[i][0], hashes[j][0], d))
    return out


def check(folders: list[Path]) -> CheckReport:
    """Check each COCO folder; with several, also check leakage between them (they are splits)."""
    rep = CheckReport()
    sha: dict[str, list[str]] = defaultdict(list)
    hashes: list[tuple[str, int]] = []
    groups: dict[str, set[str]] = defaultdict(set)
    for folder in folders:
        name = folder.name
        records = read_coco(folder, skip_unknown=True)  # a file it cannot read at all is an error; its labels are findings
        rep.findings += _label_findings(folder)
        for rec in records:
            item = f"{name}/{rec.file.name}"
            _count(rep, rec)
            try:
                data = rec.file.read_bytes()
                image = decode_image(data, str(rec.file))
            except (OSError, ImageReadError) as exc:
                rep.findings.append(Finding(name, item, f"unreadable image: {getattr(exc, 'reason', exc)}"))
                continue
            h, w = image.shape[:2]
            if (w, h) != (rec.width, rec.height):
                rep.findings.append(Finding(name, item, f"size mismatch: file is {w}x{h}, annotation says "
                                                        f"{rec.width}x{rec.height}"))
            for b in rec.boxes:
                x, y, bw, bh = b["bbox"]
                if not all(math.isfinite(float(v)) for v in b["bbox"]):
                    rep.findings.append(Finding(name, item, f"box with non-finite coordinates: {b['cls']} {b['bbox']}"))
                elif bw < MIN_SIDE or bh < MIN_SIDE:
                    rep.findings.append(Finding(name, item, f"degenerate box: {b['cls']} {b['bbox']}"))
                elif x < -1 or y < -1 or x + bw > w + 1 or y + bh > h + 1:
                    rep.findings.append(Finding(name, item, f"box out of the image: {b['cls']} {b['bbox']} in {w}x{h}"))
            sha[hashlib.sha256(data).hexdigest()].append(item)
            hashes.append((item, dhash(image)))
            if rec.meta.get("group"):
                groups[str(rec.meta["group"])].add(name)
    for items in sha.values():
        if len(items) > 1:
            across = len({i.split("/")[0] for i in items}) > 1
            kind = "leak between splits (identical file)" if across else "exact duplicate"
            rep.findings.append(Finding(items[0].split("/")[0], ", ".join(items), f"{kind}: {len(items)} copies"))
    exact = {i for items in sha.values() if len(items) > 1 for i in items}
    for first, second, d in _near_pairs(hashes):
        if first in exact and second in exact:
            continue
        across = first.split("/")[0] != second.split("/")[0]
        kind = "leak between splits (near duplicate)" if across else "near duplicate"
        rep.findings.append(Finding(first.split("/")[0], f"{first}, {second}", f"{kind}: difference hashes {d} bit(s) apart"))
    if len(folders) > 1:
        for g, where in groups.items():
            if len(where) > 1:
                rep.findings.append(Finding(", ".join(sorted(where)), g, f"leak between splits (group): group {g!r} "
                                                                        f"is in {', '.join(sorted(where))}"))
    return rep


def _count(rep: CheckReport, rec: Record) -> None:
    c = rep.counts
    c["images"]["with threats" if rec.boxes else "without threats"] += 1
    for b in rec.boxes:
        c["class"][b["cls"]] += 1
        c["build"][b["build"]] += 1
        if b["cls"] == "firearm":
            c["firearm type"][b["type"]] += 1
    for key in ("style", "difficulty", "format"):
        if rec.meta.get(key):
            c[key][str(rec.meta[key])] += 1
    for label in rec.meta.get("image_labels", []):
        c["image-level label"][label] += 1


def card(folders: list[Path], rep: CheckReport) -> str:
    """A Markdown dataset card: what is in the folders, and what the check found."""
    lines = [f"# Dataset card: {', '.join(f.name for f in folders)}", ""]
    for key, counts in rep.counts.items():
        lines += [f"## {key}", "", "| value | count |", "|---|---|"]
        lines += [f"| {k} | {v} |" for k, v in sorted(counts.items(), key=lambda kv: -kv[1])]
        lines.append("")
    lines += ["## Check", ""]
    if rep.ok:
        lines.append("No problems found.")
    else:
        lines += [f"- {kind}: {n}" for kind, n in rep.by_kind().most_common()]
        lines += ["", "| folder | item | problem |", "|---|---|---|"]
        lines += [f"| {f.folder} | {f.item} | {f.problem} |" for f in rep.findings[:200]]
    return "\n".join(lines) + "\n"


def _bucket(key: str, ratios: tuple[float, ...]) -> int:
    u = int(hashlib.sha256(key.encode()).hexdigest()[:12], 16) / float(16**12)
    acc = 0.0
    for k, r in enumerate(ratios):
        acc += r
        if u < acc:
            return k
    return len(ratios) - 1


def split(folder: Path, out: Path, by: str = "group", ratios: tuple[float, ...] = (0.8, 0.1, 0.1),
          names: tuple[str, ...] = ("train", "val", "test")) -> dict[str, int]:
    """Write ``out/<name>/annotations.json`` for each split. ``by``: 'hash' (of each image's file) or 'group'
    (every image of a group, e.g. a parcel's views, lands in the same split). Deterministic."""
    if by not in ("hash", "group"):
        raise ValueError(f"invalid split key {by!r}; use 'hash' or 'group'")
    if len(ratios) != len(names) or abs(sum(ratios) - 1.0) > 1e-6 or min(ratios) < 0:
        raise ValueError(f"ratios must be {len(names)} non-negative numbers that sum to 1, got {ratios}")
    parts: dict[int, list[Record]] = defaultdict(list)
    for rec in read_coco(folder):
        key = str(rec.meta.get("group") or rec.file.name) if by == "group" else str(
            rec.meta.get("sha256") or hashlib.sha256(rec.file.read_bytes()).hexdigest())
        parts[_bucket(key, ratios)].append(rec)
    sizes = {}
    for k, name in enumerate(names):
        d = out / name
        d.mkdir(parents=True, exist_ok=True)
        recs = [Record(r.file.resolve(), r.width, r.height, r.boxes, {**r.meta, "split": name}, r.image_id)
                for r in parts.get(k, [])]
        write_coco(d, recs, {"description": f"{name} split of {folder} by {by}", "ratios": list(ratios)})
        sizes[name] = len(recs)
    return sizes


def summary(rep: CheckReport) -> dict[str, Any]:
    """JSON-ready summary for the command line."""
    return {"ok": rep.ok, "problems": dict(rep.by_kind()), "counts": {k: dict(v) for k, v in rep.counts.items()}}
