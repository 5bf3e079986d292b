"""Write a generated dataset to disk: ``DIR/images/*.png`` and ``DIR/annotations.json`` (COCO); optionally
the raw 16-bit dual-energy pairs (``DIR/raw/NAME_low.tiff``, ``NAME_high.tiff``) and YOLO labels
(``DIR/labels/NAME.txt``: ``class cx cy w h`` normalised, class = index in ``CLASSES``)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from armscan.datasets.coco import Record, write_coco
from armscan.datasets.synth import GENERATOR_VERSION
from armscan.datasets.synth.scene import Scan, SceneConfig, generate
from armscan.datasets.taxonomy import CLASSES


def iter_scans(n: int, seed: int, width: int, height: int, cfg: SceneConfig,
               style: str | None = None) -> Iterator[tuple[int, Scan]]:
    """Scans ``seed, seed + 1, ...``: scan ``k`` depends only on ``seed + k``, so sets are reproducible.
    ``style`` forces one display style (default: drawn per scan from ``cfg.style_probs``)."""
    for k in range(n):
        yield seed + k, generate(seed + k, width, height, cfg, style=style)


def _write(path: Path, image: object, params: tuple[int, ...] = ()) -> None:
    if not cv2.imwrite(str(path), image, list(params)):  # type: ignore[call-overload]
        raise OSError(f"could not write {path}")


def _yolo_lines(boxes: list[dict[str, Any]], width: int, height: int) -> str:
    lines = []
    for b in boxes:
        x, y, w, h = (float(v) for v in b["bbox"])
        lines.append(f"{CLASSES.index(str(b['cls']))} {(x + w / 2) / width:.6f} {(y + h / 2) / height:.6f} "
                     f"{w / width:.6f} {h / height:.6f}")
    return "".join(line + "\n" for line in lines)


def write_dataset(out: Path, n: int, seed: int, width: int = 512, height: int = 512,
                  cfg: SceneConfig | None = None, raw: bool = False, yolo: bool = False) -> Path:
    """Generate ``n`` scans and write images and COCO annotations under ``out``; returns the annotation path."""
    cfg = cfg or SceneConfig()
    (out / "images").mkdir(parents=True, exist_ok=True)
    for sub, wanted in (("raw", raw), ("labels", yolo)):
        if wanted:
            (out / sub).mkdir(exist_ok=True)
    records = []
    for s, scan in iter_scans(n, seed, width, height, cfg):
        name = Path("images") / f"scan_{s:08d}.png"
        _write(out / name, scan.image)
        if raw:
            low, high = scan.raw16()
            _write(out / "raw" / f"scan_{s:08d}_low.tiff", low)
            _write(out / "raw" / f"scan_{s:08d}_high.tiff", high)
        if yolo:
            (out / "labels" / f"scan_{s:08d}.txt").write_text(_yolo_lines(scan.boxes, width, height))
        records.append(Record(name, width, height, scan.boxes, scan.meta, image_id=s))
    info = {"description": f"armscan synthetic dual-energy X-ray scans (generator {GENERATOR_VERSION})", "seed": seed, "n": n,
            "width": width, "height": height, "threat_prob": cfg.threat_prob}
    return write_coco(out, records, info)


def turn_hue(folder: Path, degrees: int = 120) -> int:
    """Turn the hue of every image in ``folder/images`` by ``degrees``, in place: the scans of a site whose scanner
    colours materials otherwise than the generator (the analysts' fine-tuning scenario). Returns the image count."""
    n = 0
    for p in sorted((folder / "images").iterdir()):
        image = cv2.imread(str(p))
        if image is None:
            raise ValueError(f"{p} is not an image OpenCV can read")
        hsv = cv2.cvtColor(image, cv2.COLOR_BGR2HSV).astype(np.int16)
        hsv[..., 0] = (hsv[..., 0] + degrees // 2) % 180  # OpenCV's 8-bit hue runs over 0..179 (2 degrees a step)
        cv2.imwrite(str(p), cv2.cvtColor(hsv.astype(np.uint8), cv2.COLOR_HSV2BGR))
        n += 1
    return n


def write_gallery(path: Path, n: int = 12, seed: int = 0, tile: int = 320, cols: int = 4,
                  cfg: SceneConfig | None = None, style: str | None = None) -> Path:
    """A contact sheet of ``n`` scans with their threat boxes (class/build, occlusion), captioned with style and
    difficulty; ``style`` shows every scan in one scanner style (see :data:`STYLES`)."""
    cfg = cfg or SceneConfig()
    tiles = []
    for s, scan in iter_scans(n, seed, tile, tile, cfg, style):
        img = scan.image.copy()
        for b in scan.boxes:
            x, y, w, h = (round(v) for v in b["bbox"])
            cv2.rectangle(img, (x, y), (x + w, y + h), (0, 0, 230), 1)
            cv2.putText(img, f"{b['cls']}/{b['build']} occ {b['occlusion']:.2f}", (x, max(10, y - 3)),
                        cv2.FONT_HERSHEY_SIMPLEX, 0.35, (0, 0, 230), 1, cv2.LINE_AA)
        caption = f"seed {s}  {scan.meta['style']}  {scan.meta['difficulty']}"
        cv2.putText(img, caption, (4, tile - 6), cv2.FONT_HERSHEY_SIMPLEX, 0.38, (0, 0, 0), 1, cv2.LINE_AA)
        tiles.append(cv2.copyMakeBorder(img, 2, 2, 2, 2, cv2.BORDER_CONSTANT, value=(90, 90, 90)))
    blank = np.full_like(tiles[0], 255)
    rows = [np.hstack(tiles[i:i + cols] + [blank] * (cols - len(tiles[i:i + cols]))) for i in range(0, len(tiles), cols)]
    path.parent.mkdir(parents=True, exist_ok=True)
    _write(path, np.vstack(rows), (cv2.IMWRITE_PNG_COMPRESSION, 9))
    return path
