"""``armscan scan``: screen files and folders with an exported model; table, JSON, JSONL and overlays.

Exit codes: see :data:`EXIT_CODES` (also printed by ``armscan scan --help``).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import TextIO

import numpy as np
from numpy.typing import NDArray

from armscan.datasets.readers import ImageReadError, find_images, read_image
from armscan.inference.engine import Detector, ModelLoadError, ModelOutputError, UnscreenableImageError
from armscan.inference.overlay import write_overlay
from armscan.inference.photo import PhotoClassifier, PhotoResult
from armscan.inference.result import ScanResult

# Beside the package in a source checkout (<repo>/models/bundled) and when installed (armscan/models/bundled).
DEFAULT_MODEL = Path(__file__).resolve().parent.parent / "models" / "bundled" / "armscan-det.onnx"
DEFAULT_PHOTO_MODEL = DEFAULT_MODEL.with_name("armscan-photo.onnx")

EXIT_CODES = """exit codes: 0 every scan was screened; 1 some scans could not be read or screened (unreadable, blank or
too small, or the model's outputs were not finite); 2 the model or the arguments are unusable (nothing screened);
3 some scans failed on an unexpected error (a bug, or an OS error such as a full disk while writing an overlay), or
the run stopped because the JSONL or stdout could not be written. A scan that fails is reported on stderr (and as
a {"source", "error"} object with --json and in --jsonl) and the others are still screened; 3 wins over 1."""


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


def _screen(detector: Detector | PhotoClassifier, image: NDArray[np.uint8], f: Path, include_all: bool,
            rotations: bool | None) -> ScanResult | PhotoResult:
    """One scan's result: the detector's, or the photo classifier's."""
    if isinstance(detector, PhotoClassifier):
        return detector.classify(image, source=str(f), rotations=rotations)
    return detector.detect(image, source=str(f), include_below_alarm=include_all)


def _report_failure(f: Path, what: str, reason: str, as_json: bool, sink: TextIO | None) -> None:
    """Report a scan that gave no result: one line on stderr, and an error object with --json and in the JSONL."""
    print(f"armscan: {what} {f}: {reason}", file=sys.stderr)
    row = json.dumps({"source": str(f), "error": reason})
    if as_json:
        print(row)
    if sink:
        sink.write(row + "\n")
        sink.flush()


def scan_command(paths: list[str], model: Path | None, as_json: bool, jsonl: Path | None, overlay: Path | None,
                 include_all: bool, threads: int | None, kind: str = "xray", rotations: bool | None = None) -> int:
    """Screen every image under ``paths`` (``kind`` xray: X-ray scans; photo: seizure photos). A scan that fails
    is reported and the others are still screened; the exit code is one of :data:`EXIT_CODES`."""
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
    unreadable = failed = crashed = alarms = uncertain = 0
    if not as_json:
        print(f"{'photo':<32} {'answer':<26} {'p':>5} {'band':<10} {'build':<8} {'length mm':>10} {'barrel mm':>10} "
              f"{'ref':<6} {'ms':>7}" if kind == "photo" else
              f"{'scan':<32} {'result':<9} {'ms':>7}  {'flags':<36} detections (class/type[build] score)")
    try:
        for f in files:
            try:
                image = read_image(f)
                result = _screen(detector, image, f, include_all, rotations)
                if overlay:  # before the result is printed: a scan is reported once, as a result or as an error
                    out = _overlay_path(overlay, f, root)
                    out.parent.mkdir(parents=True, exist_ok=True)
                    write_overlay(out, image, result)
            except (UnscreenableImageError, ModelOutputError) as exc:  # blank or too small; NaN outputs
                failed += 1
                reason = exc.reason if isinstance(exc, ImageReadError) else str(exc)
                _report_failure(f, "cannot screen", reason, as_json, sink)
                continue
            except ImageReadError as exc:
                unreadable += 1
                _report_failure(f, "cannot read", exc.reason, as_json, sink)
                continue
            except Exception as exc:  # a bug or an OS error must not stop the other scans, nor exit 1
                crashed += 1
                _report_failure(f, "cannot screen", f"unexpected error ({type(exc).__name__}: {exc})", as_json, sink)
                continue
            if isinstance(result, PhotoResult):
                alarms += result.answer not in ("no_firearm", "uncertain")
                uncertain += result.answer == "uncertain"
                print(result.model_dump_json() if as_json else _photo_row(result))
            else:
                alarms += result.decision == "alarm"
                uncertain += result.decision == "uncertain"
                print(result.model_dump_json() if as_json else _row(result))
            if sink:
                sink.write(result.model_dump_json() + "\n")
                sink.flush()
    except OSError as exc:  # writing the JSONL or stdout (a full disk, a closed pipe): the rest cannot be recorded
        kept = f"; the rows already in {jsonl} are kept" if jsonl else ""
        print(f"armscan: error: the scan stopped: {exc}{kept}", file=sys.stderr)
        return 3
    finally:
        if sink:
            sink.close()
    if not as_json:
        what = "weapon(s) or part(s)" if kind == "photo" else "alarm(s)"
        errors = f", {failed + crashed} failed" if failed + crashed else ""
        print(f"{len(files) - unreadable - failed - crashed} {'classified' if kind == 'photo' else 'screened'}, "
              f"{alarms} {what}, {uncertain} uncertain, {unreadable} unreadable{errors}; model "
              f"{detector.metadata.name} {detector.metadata.version}")
    return 3 if crashed else 1 if unreadable or failed else 0
