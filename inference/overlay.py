"""Draw a screening result on the scan (boxes, labels and the decision banner), or a photo's answer."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import cv2
import numpy as np
from numpy.typing import NDArray

from armscan.inference.result import ScanResult

if TYPE_CHECKING:
    from armscan.inference.photo import PhotoResult

_ALARM = (0, 0, 230)  # BGR red
_UNCERTAIN = (0, 165, 255)  # amber: in the abstention band
_WEAK = (150, 150, 150)  # grey: below both thresholds (listed only on request)
_CLEAR = (40, 160, 40)


def render_overlay(image: NDArray[np.uint8], result: ScanResult) -> NDArray[np.uint8]:
    """A copy of ``image`` (BGR) with every detection boxed and labelled and a decision banner on top.

    ``image`` may be a reduced copy of the scan (a thumbnail): boxes are scaled from the result's size.
    """
    out = image.copy()
    h, w = out.shape[:2]
    sx, sy = w / max(result.width, 1), h / max(result.height, 1)
    thick = max(1, round(max(h, w) / 400))
    font = max(0.4, max(h, w) / 1200)
    for d in result.detections:
        x0, y0, x1, y1 = round(d.box[0] * sx), round(d.box[1] * sy), round(d.box[2] * sx), round(d.box[3] * sy)
        colour = {"alarm": _ALARM, "uncertain": _UNCERTAIN}.get(d.level, _WEAK)
        cv2.rectangle(out, (x0, y0), (x1, y1), colour, thick)
        label = f"{d.cls}{'/' + d.type if d.type else ''} {d.build} {d.score:.2f}"
        (tw, th), _ = cv2.getTextSize(label, cv2.FONT_HERSHEY_SIMPLEX, font, 1)
        ty = y0 - 4 if y0 - th - 6 > 0 else y1 + th + 4
        cv2.rectangle(out, (x0, ty - th - 3), (x0 + tw + 4, ty + 3), colour, -1)
        cv2.putText(out, label, (x0 + 2, ty), cv2.FONT_HERSHEY_SIMPLEX, font, (255, 255, 255), 1, cv2.LINE_AA)
    banner = max(18, round(h / 20))
    colour = {"alarm": _ALARM, "uncertain": _UNCERTAIN}.get(result.decision, _CLEAR)
    bar = np.full((banner, w, 3), colour, np.uint8)
    text = f"{result.decision.upper()}  {len(result.detections)} item(s)  {result.model_name} {result.model_version}"
    cv2.putText(bar, text, (6, banner - 6), cv2.FONT_HERSHEY_SIMPLEX, banner / 40, (255, 255, 255), 1, cv2.LINE_AA)
    return np.vstack([bar, out])


def render_photo_overlay(image: NDArray[np.uint8], result: PhotoResult) -> NDArray[np.uint8]:
    """A copy of a seizure photo with the reference card outlined and a banner: answer, band, build, lengths."""
    out = image.copy()
    h, w = out.shape[:2]
    sx, sy = w / max(result.width, 1), h / max(result.height, 1)
    if result.card_corners:
        pts = np.array([[x * sx, y * sy] for x, y in result.card_corners], np.int32)
        cv2.polylines(out, [pts], True, (255, 160, 0), max(1, round(max(h, w) / 400)), cv2.LINE_AA)
    banner = max(18, round(h / 20))
    colour = _UNCERTAIN if result.band == "uncertain" else _ALARM if result.answer != "no_firearm" else _CLEAR
    lines = [f"{result.answer.upper()} ({result.label} {result.probability:.2f}, {result.band})"
             + (f"  build {result.build} {result.build_probability:.2f}" if result.build else "")]
    if result.overall_length:
        lines.append(f"length {result.overall_length.mm:.0f} +/- {result.overall_length.plus_minus_mm:.0f} mm"
                     + (f", barrel {result.barrel_length.mm:.0f} +/- {result.barrel_length.plus_minus_mm:.0f} mm"
                        if result.barrel_length else "") + f" (against the {result.reference})")
    elif result.length_note:
        lines.append(result.length_note)
    bars = []
    for text in lines:
        bar = np.full((banner, w, 3), colour, np.uint8)
        cv2.putText(bar, text, (6, banner - 6), cv2.FONT_HERSHEY_SIMPLEX, banner / 45, (255, 255, 255), 1, cv2.LINE_AA)
        bars.append(bar)
    return np.vstack([*bars, out])


def write_overlay(path: str | Path, image: NDArray[np.uint8], result: ScanResult | PhotoResult) -> None:
    """Write the overlay (of a scan or of a photo) as PNG (atomically)."""
    path = Path(path)
    drawn = render_overlay(image, result) if isinstance(result, ScanResult) else render_photo_overlay(image, result)
    ok, buf = cv2.imencode(".png", drawn)
    if not ok:
        raise OSError(f"could not encode overlay for {path}")
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(buf.tobytes())
    tmp.replace(path)
