"""``armscan scan``: screen files and folders with an exported model; table, JSON, JSONL and overlays.

Exit codes: 0 every scan was screened; 1 some inputs could not be read (each is reported and
the others are still screened); 2 the model or the arguments are unusable.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from armscan.datasets.readers import ImageReadError, find_images, read_image
from armscan.inference.engine import Detector, ModelLoadError
from armscan.inference.overlay import write_overlay
from armscan.inference.photo import PhotoClassifier, PhotoResult
from armscan.inference.result import ScanResult

# Beside the package in a source checkout (<repo>/models/bundled) and when installed (armscan/models/bundled).
DEFAULT_MODEL = Path(__file__).resolve().parent.parent / "models" / "bundled" / "armscan-det.onnx"
DEFAULT_PHOTO_MODEL = DEFAULT_MODEL.with_name("armscan-photo.onnx")


def _row(r: ScanResult) -> str:
    items = ", ".join(f"{d.cls}{'/' + d.type if d.type else ''}[{d.build}] {d.score:.2f}" for d in r.detections)
    flags = ",".join(k for k, v in r.flags.items() if v) or "-"
    return f"{Path(r.source).name[:32]:<32} {r.decision.upper():<9} {r.latency_ms:7.1f}  {flags:<36} {items or '-'}"


def _photo_row(r: PhotoResult) -> str:
    length = (f"{r.overall_length.mm:.0f}±{r.overall_length.plus_minus_mm:.0f}" if r.overall_length else "-")
    barrel = f"{r.barrel_length.mm:.0f}±{r.barrel_length.plus_minus_mm:.0f}" if r.barrel_length else "-"
    return (f"{Path(r.source).name[:32]:<32} {r.answer:<26} {r.probability:5.2f} {r.band:<10} {r.build or '-':<8} "
            f"{length:>10} {barrel:>10} {r.reference or '-':<6} {r.latency_ms:7.1f}")


def _overlay_root(paths: list[str]) -> Path:
    """The deepest folder holding every input: overlays are named after their scan's path below it."""
    return Path(os.path.commonpath([os.path.abspath(p if Path(p).is_dir() else Path(p).parent) for p in paths]))


def _overlay_path(out: Path, scan: Path, root: Path) -> Path:
    """Where ``scan``'s overlay goes: its path below ``root``, folders and suffix kept, plus ``.png``
    (``day1/0001.png`` -> ``out/day1/0001.png.png``), so that no two scans share an overlay."""
    rel = Path(os.path.relpath(os.path.abspath(scan), root))
    return out / rel.parent / f"{rel.name}.png"


def scan_command(paths: list[str], model: Path | None, as_json: bool, jsonl: Path | None, overlay: Path | None,
                 include_all: bool, threads: int | None, kind: str = "xray", rotations: bool | None = None) -> int:
    """Screen every image under ``paths`` (``kind`` xray: X-ray scans; photo: seizure photos); see the module
    docstring for the exit codes."""
    try:
        if kind == "photo":
            detector: Detector | PhotoClassifier = PhotoClassifier.from_onnx(model or DEFAULT_PHOTO_MODEL, threads)
        else:
            detector = Detector.from_onnx(model or DEFAULT_MODEL, threads=threads)
    except ModelLoadError as exc:
        print(f"armscan: error: {exc}", file=sys.stderr)
        return 2
    files = find_images(paths)
    if not files:
        print(f"armscan: error: no images found in {' '.join(paths)}", file=sys.stderr)
        return 2
    if overlay:
        overlay.mkdir(parents=True, exist_ok=True)
    root = _overlay_root(paths)
    sink = jsonl.open("a") if jsonl else None
    failed = alarms = uncertain = 0
    if not as_json:
        print(f"{'photo':<32} {'answer':<26} {'p':>5} {'band':<10} {'build':<8} {'length mm':>10} {'barrel mm':>10} "
              f"{'ref':<6} {'ms':>7}" if kind == "photo" else
              f"{'scan':<32} {'result':<9} {'ms':>7}  {'flags':<36} detections (class/type[build] score)")
    try:
        for f in files:
            try:
                image = read_image(f)
            except ImageReadError as exc:
                failed += 1
                print(f"armscan: cannot read {exc}", file=sys.stderr)
                if sink:
                    sink.write(json.dumps({"source": str(f), "error": exc.reason}) + "\n")
                continue
            result: ScanResult | PhotoResult
            if isinstance(detector, PhotoClassifier):
                result = detector.classify(image, source=str(f), rotations=rotations)
                alarms += result.answer not in ("no_firearm", "uncertain")
                uncertain += result.answer == "uncertain"
                print(result.model_dump_json() if as_json else _photo_row(result))
            else:
                result = detector.detect(image, source=str(f), include_below_alarm=include_all)
                alarms += result.decision == "alarm"
                uncertain += result.decision == "uncertain"
                print(result.model_dump_json() if as_json else _row(result))
            if sink:
                sink.write(result.model_dump_json() + "\n")
                sink.flush()
            if overlay:
                out = _overlay_path(overlay, f, root)
                out.parent.mkdir(parents=True, exist_ok=True)
                write_overlay(out, image, result)
    finally:
        if sink:
            sink.close()
    if not as_json:
        what = "weapon(s) or part(s)" if kind == "photo" else "alarm(s)"
        print(f"{len(files) - failed} {'classified' if kind == 'photo' else 'screened'}, {alarms} {what}, {uncertain} "
              f"uncertain, {failed} unreadable; model {detector.metadata.name} {detector.metadata.version}")
    return 1 if failed else 0
