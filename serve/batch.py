"""``armscan batch INPUT... --out DIR``: unattended screening that never loses or duplicates a result.

Outputs in DIR:
- ``scans.jsonl``: the ledger, one row per input (a screening result, or ``status: error`` with the
  reason). Rows are appended and flushed one by one, and fsync'd every ``SYNC_EVERY`` rows and at the end.
- ``parcels.jsonl``, ``results.csv`` and ``report.html`` (summary counts, and the thumbnail with its boxes
  of every alarm and every uncertain scan; self-contained, opens from disk): rebuilt from the ledger and replaced atomically.
- ``thumbs/``: the thumbnails of alarm and uncertain scans that the report embeds.
- ``tdr/``: for every alarm, a JSON threat detection report (``armscan-tdr-json/1``), the JSON
  equivalent of a DICOS Threat Detection Report: the scan, the algorithm and its version, the
  assessment, and each threat object with its class, type, build, probability and bounding polygon.

Resume: rerunning the same command after a crash (even ``kill -9``) reads the ledger, drops a torn last
line, and screens only the inputs that have no row yet, so each input appears exactly once.

Exit codes: 0 every input screened; 1 finished, but some inputs could not be read or their thumbnail or
TDR could not be written (error rows); 2 nothing was screened because the model, the output folder, its
ledger or a manifest is unusable. ``armscan batch`` exits 3 when it stops on an unexpected error.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import sys
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from queue import Queue
from typing import Any

import cv2
import numpy as np
from numpy.typing import NDArray
from tqdm import tqdm

from armscan.datasets.readers import Decoded, ImageReadError
from armscan.inference.engine import Detector, ModelLoadError
from armscan.inference.overlay import render_overlay
from armscan.inference.result import ScanResult
from armscan.serve.batch_inputs import ManifestError, ScanInput, expand_inputs
from armscan.serve.report import write_reports

LEDGER = "scans.jsonl"
SYNC_EVERY = 50
THUMB_SIDE = 360


class LedgerError(ValueError):
    """A ledger line other than the torn last one is not a row: the ledger needs a person to look at it."""


def usable_cpus() -> int:
    """The cores this process may run on (its affinity mask where the platform has one, as in containers)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def read_ledger(path: Path) -> list[dict[str, Any]]:
    """Rows of an existing ledger. A torn last line (a crash mid-write) is cut off the file.

    Raises :class:`LedgerError`, naming the file and line, for any other line that is not a JSON row.
    """
    if not path.exists():
        return []
    data = path.read_bytes()
    end = data.rfind(b"\n") + 1
    if end < len(data):
        with path.open("r+b") as f:
            f.truncate(end)
    rows = []
    for number, line in enumerate(data[:end].split(b"\n"), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError as exc:  # JSONDecodeError or UnicodeDecodeError
            raise LedgerError(f"{path}:{number}: corrupt ledger line ({exc}); repair or delete that line, "
                              "then rerun to screen its input again") from exc
        if not isinstance(row, dict) or "key" not in row:
            raise LedgerError(f"{path}:{number}: not a ledger row (a JSON object with a 'key'); repair or delete "
                              "that line, then rerun to screen its input again")
        rows.append(row)
    return rows


def _thumb(out: Path, key: str, image: NDArray[np.uint8], result: ScanResult) -> str:
    # Shrink by a whole factor f first (OpenCV's fast area path; the last < f rows and columns are dropped),
    # then draw: for a full-size 1024x768 scan that is a quarter of the cost of drawing first.
    h, w = image.shape[:2]
    f = max(h, w) // THUMB_SIDE
    if f > 1:  # a side thinner than f keeps one row or column (all of its pixels averaged)
        sh, sw = max(1, h // f), max(1, w // f)
        small = cv2.resize(image[: min(h, sh * f), : min(w, sw * f)], (sw, sh), interpolation=cv2.INTER_AREA)
        image = np.asarray(small, np.uint8)
    overlay = render_overlay(image, result)  # boxes are scaled from the result's size to the image's
    oh, ow = overlay.shape[:2]
    scale = THUMB_SIDE / max(oh, ow)
    if scale < 1:  # by less than 2x here, where bilinear is as sharp as area averaging
        size = (max(1, round(ow * scale)), max(1, round(oh * scale)))
        overlay = np.asarray(cv2.resize(overlay, size, interpolation=cv2.INTER_LINEAR), np.uint8)
    name = f"thumbs/{hashlib.sha1(key.encode()).hexdigest()[:16]}.jpg"
    ok, buf = cv2.imencode(".jpg", overlay, [cv2.IMWRITE_JPEG_QUALITY, 85])
    if not ok:
        raise ValueError(f"JPEG encoding of a {overlay.shape[1]}x{overlay.shape[0]} thumbnail failed")
    _atomic_bytes(out / name, buf.tobytes())
    return name


def _atomic_bytes(path: Path, data: bytes) -> None:
    """Write ``path`` whole or not at all, and durably: on disk before the ledger row that names it."""
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    tmp.replace(path)
    _fsync_dir(path.parent)


def _fsync_dir(folder: Path) -> None:
    """Make a rename in ``folder`` durable. Skipped where folders cannot be opened (Windows) or synced."""
    if not hasattr(os, "O_DIRECTORY"):
        return
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    except OSError as exc:
        if exc.errno not in (errno.EINVAL, errno.ENOTSUP, errno.EBADF):  # file systems that cannot sync a folder
            raise
    finally:
        os.close(fd)


def _tdr(out: Path, item: ScanInput, result: ScanResult) -> str:
    """Write the alarm's JSON threat detection report; returns its path relative to ``out``."""
    objects = [{"id": k + 1, "class": d.cls, "type": d.type, "build": d.build, "probability": d.score,
                "bounding_polygon": [[d.box[0], d.box[1]], [d.box[2], d.box[1]], [d.box[2], d.box[3]],
                                     [d.box[0], d.box[3]]]}
               for k, d in enumerate(x for x in result.detections if x.alarm)]
    report = {"format": "armscan-tdr-json/1", "equivalent_of": "DICOS Threat Detection Report", "scan": item.key,
              "parcel": item.parcel, "created": datetime.now(UTC).isoformat(timespec="seconds"),
              "algorithm": {"name": result.model_name, "version": result.model_version},
              "assessment": "threat", "image": {"width": result.width, "height": result.height},
              "threat_objects": objects}
    name = f"tdr/{hashlib.sha1(item.key.encode()).hexdigest()[:16]}.json"
    _atomic_bytes(out / name, json.dumps(report, indent=1).encode())
    return name


Loaded = tuple[ScanInput, Decoded | None, str | None]


def load_item(item: ScanInput, reduce_to: int | None) -> Loaded:
    """Decode one input; any failure becomes the reason string instead of an exception."""
    try:
        return item, item.load(reduce_to), None
    except ImageReadError as exc:
        return item, None, exc.reason
    except Exception as exc:  # an unattended job records any decoder failure and goes on
        return item, None, f"cannot decode ({type(exc).__name__}: {exc})"


def screen_loaded(detector: Detector, out: Path, loaded: Loaded) -> dict[str, Any]:
    """The ledger row for one decoded input; writes its thumbnail and TDR if it alarms."""
    item, scan, error = loaded
    row: dict[str, Any] = {"key": item.key, **item.parcel}
    if scan is None:
        return row | {"status": "error", "error": error}
    try:
        result = detector.detect(scan.image, source=item.key, original_size=(scan.width, scan.height))
    except Exception as exc:  # one odd image must not stop the night's batch
        return row | {"status": "error", "error": f"screening failed ({type(exc).__name__}: {exc})"}
    files: dict[str, str] = {}
    what = "thumbnail"
    try:  # a failed write is this scan's error row, not the end of the batch (nor of every resume)
        if result.decision != "clear":  # the report shows alarms and uncertain scans to an officer
            files["thumb"] = _thumb(out, item.key, scan.image, result)
        if result.decision == "alarm":
            what = "threat report (TDR)"
            files["tdr"] = _tdr(out, item, result)
    except Exception as exc:  # the row keeps the result (nothing lost); the error puts the parcel in front of a person
        return row | result.model_dump(exclude={"source"}) | files | {
            "status": "error", "error": f"screened {result.decision}, but its {what} could not be written "
                                        f"({type(exc).__name__}: {exc})"}
    return row | {"status": "ok", **result.model_dump(exclude={"source"})} | files


def prepare(inputs: list[str], out: Path) -> tuple[list[ScanInput], int]:
    """The inputs not yet in ``out``'s ledger, and how many are; creates the output folders."""
    items = expand_inputs(inputs)
    out.mkdir(parents=True, exist_ok=True)
    (out / "thumbs").mkdir(exist_ok=True)
    (out / "tdr").mkdir(exist_ok=True)
    if not items:
        raise ManifestError(f"no scans found in {' '.join(inputs)}")
    done = {r["key"] for r in read_ledger(out / LEDGER)}
    if done:
        print(f"resuming: {len(done)} of {len(items)} inputs already screened")
    return [it for it in items if it.key not in done], len(items)


class LedgerWriter:
    """Appends rows to the ledger: one flushed line each, fsync'd every ``SYNC_EVERY`` rows and on close."""

    def __init__(self, out: Path) -> None:
        self._f = (out / LEDGER).open("a")
        self._n = 0

    def write(self, row: dict[str, Any]) -> None:
        self._f.write(json.dumps(row) + "\n")
        self._f.flush()
        self._n += 1
        if self._n % SYNC_EVERY == 0:
            os.fsync(self._f.fileno())

    def close(self) -> None:
        os.fsync(self._f.fileno())
        self._f.close()


def finish(out: Path) -> int:
    """Rebuild the reports from the ledger, print the summary; returns the exit code."""
    counts = write_reports(out, read_ledger(out / LEDGER))
    print(f"{counts['scans']} scans in {counts['parcels']} parcels: {counts['alarm']} alarm, "
          f"{counts['uncertain']} uncertain, {counts['clear']} clear, {counts['error']} error(s); reports in {out}")
    return 1 if counts["error"] else 0


def run_batch(inputs: list[str], out: Path, model: Path, threads: int | None = None, decode_threads: int = 1,
              prefetch: int | None = None, progress: bool = True, workers: int = 1) -> int:
    """Screen every input not yet in ``out``'s ledger; returns the exit code (see the module docstring).

    ``decode_threads`` decode ahead of inference; ``workers`` screen in parallel, each with its own
    onnxruntime session of ``threads`` intra-op threads (default: the cores divided among the workers),
    which sleep between runs rather than spin, so that decoding gets the cores they would hold.
    JPEGs are decoded at the smallest DCT scale that still covers the model's input size. At most
    ``prefetch`` inputs (default: ``max(8, 2 * (workers + decode_threads))``) are in flight at once.
    """
    if prefetch is None:
        prefetch = max(8, 2 * (workers + decode_threads))
    if prefetch < 1:
        raise ValueError(f"prefetch must be >= 1, not {prefetch}")
    try:
        n_threads = threads or max(1, usable_cpus() // workers)
        detectors = [Detector.from_onnx(model, threads=n_threads, spin=False) for _ in range(workers)]
        todo, _ = prepare(inputs, out)
    except (ModelLoadError, ManifestError, LedgerError, OSError) as exc:
        print(f"armscan: error: {exc}", file=sys.stderr)
        return 2
    reduce_to = detectors[0].spec.size
    free: Queue[Detector] = Queue()
    for d in detectors:
        free.put(d)

    def decode_and_screen(item: ScanInput) -> dict[str, Any]:
        loaded = load_item(item, reduce_to)
        det = free.get()
        try:
            return screen_loaded(det, out, loaded)
        finally:
            free.put(det)

    ledger = LedgerWriter(out)
    bar = tqdm(total=len(todo), unit="scan", desc="screening", disable=not progress, mininterval=2.0)
    try:
        with ThreadPoolExecutor(workers + decode_threads) as pool:
            window: deque[Future[dict[str, Any]]] = deque()
            queue = iter(todo)
            for it in queue:  # decoding and inference overlap in threads (OpenCV and onnxruntime release the GIL)
                window.append(pool.submit(decode_and_screen, it))
                if len(window) >= prefetch:
                    break
            while window:
                row = window.popleft().result()  # rows are written in input order
                nxt = next(queue, None)
                if nxt is not None:
                    window.append(pool.submit(decode_and_screen, nxt))
                ledger.write(row)
                bar.update(1)
    finally:
        ledger.close()
        bar.close()
    return finish(out)
