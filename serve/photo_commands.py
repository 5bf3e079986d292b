"""``armscan photos synth|gallery``: procedural seizure photos for the photo classifier (torch-free).

    armscan photos synth --n 5000 --seed 0 --out runs/photos/train
    armscan photos synth --n 500 --seed 100000000 --out runs/photos/val --config photos.yaml --format png
    armscan photos gallery --n 12 --seed 0 --out docs/img/photo-gallery.png

Photo ``k`` of a set depends only on ``seed + k``. ``--config`` is a YAML or JSON mapping of
:class:`~armscan.datasets.photo.PhotoConfig` fields (unknown keys are refused).

Exit codes: 0 done; 2 bad arguments or an unusable output path.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def _count(text: str) -> int:
    """An ``--n`` value: an integer >= 1."""
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be an integer >= 1, not {text!r}") from None
    if n < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, not {n}")
    return n


def add_parsers(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Register ``photos`` and its actions."""
    p = sub.add_parser("photos", help="generate procedural seizure photos (firearm families, parts, none) with masks")
    pa = p.add_subparsers(dest="action", required=True)
    s = pa.add_parser("synth", help="write a photo set: images/, masks/ (bit flags) and COCO annotations.json")
    s.add_argument("--n", type=_count, required=True, help="number of photos (>= 1)")
    s.add_argument("--seed", type=int, default=0, help="first seed; photo k uses seed + k")
    s.add_argument("--out", type=Path, required=True, help="output folder")
    s.add_argument("--format", choices=["jpg", "png"], default="jpg", help="image format (masks are always PNG)")
    s.add_argument("--config", type=Path, help="YAML or JSON file of PhotoConfig fields")
    g = pa.add_parser("gallery", help="write a contact sheet PNG of photos with their labels")
    g.add_argument("--n", type=_count, default=12, help="number of photos (>= 1)")
    g.add_argument("--seed", type=int, default=0)
    g.add_argument("--out", type=Path, required=True, help="the PNG file to write")


def _fail(msg: str) -> int:
    print(f"armscan: error: {msg}", file=sys.stderr)
    return 2


def run(args: argparse.Namespace) -> int:
    """Run one ``photos`` action; returns the exit code."""
    from armscan.datasets.photo import (
        PhotoConfig,
        PhotoConfigError,
        PhotoDatasetError,
        write_photo_dataset,
        write_photo_gallery,
    )

    try:
        if args.n < 1:
            return _fail(f"--n must be >= 1, not {args.n}")
        if args.action == "gallery":
            if args.out.suffix.lower() != ".png":
                return _fail(f"photos gallery writes a PNG: give --out FILE.png, not {args.out}")
            print(f"wrote {write_photo_gallery(args.out, args.n, args.seed)}")
            return 0
        cfg = PhotoConfig()
        if args.config is not None:
            import yaml

            data = yaml.safe_load(args.config.read_text())
            if not isinstance(data, dict):
                return _fail(f"{args.config}: a photo config is a mapping of PhotoConfig fields")
            cfg = PhotoConfig.from_dict(data)
        if args.out.exists() and not args.out.is_dir():
            return _fail(f"--out {args.out} exists and is not a folder")
        path = write_photo_dataset(args.out, args.n, args.seed, cfg, args.format)
        print(f"wrote {args.n} photos and {path}")
        return 0
    except (PhotoConfigError, PhotoDatasetError, OSError, ValueError, TypeError) as exc:
        return _fail(str(exc))
