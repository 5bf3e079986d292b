"""``armscan scan``: screen files and folders with an exported model; table, JSON, JSONL and overlays.

Exit codes: 0 every scan was screened; 1 some inputs could not be read (each is reported and
the others are still screened); 2 the model or the arguments are unusable.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from armscan.datasets.readers import ImageReadError, find_images, read_image
from armscan.inference.engine import Detector, ModelLoadError
from armscan.inference.overlay import write_overlay
from armscan.inference.result import ScanResult

# Beside the package in a source checkout (<repo>/models/bundled) and when installed (armscan/models/bundled).
DEFAULT_MODEL = Path(__file__).resolve().parent.parent / "models" / "bundled" / "armscan-det.onnx"


def _row(r: ScanResult) -> str:
    items = ", ".join(f"{d.cls}{'/' + d.type if d.type else ''}[{d.build}] {d.score:.2f}" for d in r.detections)
    flags = ",".join(k for k, v in r.flags.items() if v) or "-"
    return f"{Path(r.source).name[:32]:<32} {r.decision.upper():<9} {r.latency_ms:7.1f}  {flags:<36} {items or '-'}"


def scan_command(paths: list[str], model: Path, as_json: bool, jsonl: Path | None, overlay: Path | None,
                 include_all: bool, threads: int | None) -> int:
    """Screen every image under ``paths``; see the module docstring for the exit codes."""
    try:
        detector = Detector.from_onnx(model, threads=threads)
    except ModelLoadError as exc:
        print(f"armscan: error: {exc}", file=sys.stderr)
        return 2
    files = find_images(paths)
    if not files:
        print(f"armscan: error: no images found in {' '.join(paths)}", file=sys.stderr)
        return 2
    if overlay:
        overlay.mkdir(parents=True, exist_ok=True)
    sink = jsonl.open("a") if jsonl else None
    failed = alarms = uncertain = 0
    if not as_json:
        print(f"{'scan':<32} {'result':<9} {'ms':>7}  {'flags':<36} detections (class/type[build] score)")
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
            result = detector.detect(image, source=str(f), include_below_alarm=include_all)
            alarms += result.decision == "alarm"
            uncertain += result.decision == "uncertain"
            print(result.model_dump_json() if as_json else _row(result))
            if sink:
                sink.write(result.model_dump_json() + "\n")
                sink.flush()
            if overlay:
                write_overlay(overlay / f"{f.stem}.png", image, result)
    finally:
        if sink:
            sink.close()
    if not as_json:
        print(f"{len(files) - failed} screened, {alarms} alarm(s), {uncertain} uncertain, {failed} unreadable; model "
              f"{detector.metadata.name} {detector.metadata.version}")
    return 1 if failed else 0
