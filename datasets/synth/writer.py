"""Write a generated dataset to disk: ``DIR/images/*.png`` and ``DIR/annotations.json`` (COCO)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import cv2

from armscan.datasets.coco import Record, write_coco
from armscan.datasets.synth.scene import Scan, SceneConfig, generate


def iter_scans(n: int, seed: int, width: int, height: int, cfg: SceneConfig) -> Iterator[tuple[int, Scan]]:
    """Scans ``seed, seed + 1, ...``: scan ``k`` depends only on ``seed + k``, so sets are reproducible."""
    for k in range(n):
        yield seed + k, generate(seed + k, width, height, cfg)


def write_dataset(out: Path, n: int, seed: int, width: int = 512, height: int = 512,
                  cfg: SceneConfig | None = None) -> Path:
    """Generate ``n`` scans and write images and COCO annotations under ``out``; returns the annotation path."""
    cfg = cfg or SceneConfig()
    (out / "images").mkdir(parents=True, exist_ok=True)
    records = []
    for s, scan in iter_scans(n, seed, width, height, cfg):
        name = Path("images") / f"scan_{s:08d}.png"
        if not cv2.imwrite(str(out / name), scan.image):
            raise OSError(f"could not write {out / name}")
        records.append(Record(name, width, height, scan.boxes, scan.meta, image_id=s))
    info = {"description": "armscan synthetic dual-energy X-ray scans (generator v1)", "seed": seed, "n": n,
            "width": width, "height": height, "threat_prob": cfg.threat_prob}
    return write_coco(out, records, info)
