"""Does decoding JPEGs at DCT scale cost accuracy? mAP50 with full and with reduced decoding, in one run.

    python bench/reduced_decode_accuracy.py --data runs/test --width 1024

Each held-out scan of a COCO folder (``make model-card`` writes runs/test) is upscaled to ``--width``
and saved as a JPEG; the bundled model then screens every JPEG decoded at full size and decoded at
the smallest DCT scale that still covers its input (what ``armscan batch`` and the service do). Boxes
go back to the scan's pixels and pycocotools scores both. Needs the train extra (pycocotools).
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import cv2
import numpy as np

from armscan.datasets.coco import read_coco
from armscan.datasets.readers import read_scan
from armscan.inference.engine import Detector
from armscan.serve.scan import DEFAULT_MODEL
from armscan.training.metrics import Prediction, coco_map


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", type=Path, default=DEFAULT_MODEL)
    ap.add_argument("--data", type=Path, default=Path("runs/test"))
    ap.add_argument("--width", type=int, default=1024, help="JPEG width the scans are upscaled to")
    ap.add_argument("--quality", type=int, default=92)
    a = ap.parse_args()
    records = read_coco(a.data)
    det = Detector.from_onnx(a.model)
    with tempfile.TemporaryDirectory() as tmp:
        jpegs = []
        for r in records:
            img = cv2.imread(str(r.file))
            s = a.width / img.shape[1]
            f = Path(tmp) / f"{r.file.stem}.jpg"
            cv2.imwrite(str(f), cv2.resize(img, None, fx=s, fy=s, interpolation=cv2.INTER_CUBIC),
                        [cv2.IMWRITE_JPEG_QUALITY, a.quality])
            jpegs.append((f, s))
        for name, reduce_to in (("full decode", None), ("DCT-scaled decode", det.spec.size)):
            preds = []
            for f, s in jpegs:
                scan = read_scan(f, reduce_to)
                raw = det.raw(scan.image)
                boxes = raw.boxes * (scan.width / scan.image.shape[1]) / s
                preds.append(Prediction(boxes.astype(np.float32), raw.scores, raw.labels))
            shape = f"{scan.image.shape[1]}x{scan.image.shape[0]}"
            print(f"{name:<18} ({shape} decoded): mAP50 {coco_map(records, preds, det.metadata.classes)['mAP50']}")


if __name__ == "__main__":
    main()
