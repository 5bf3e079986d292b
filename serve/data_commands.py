"""``armscan data import|check|split``: the analysts' data commands (torch-free).

    armscan data import voc /data/SIXray --out runs/data/sixray --mapping sixray.yaml
    armscan data check runs/data/train runs/data/val --card runs/data/CARD.md
    armscan data split runs/data/sixray --out runs/data/sixray-splits --by group --ratios 0.8 0.1 0.1

Exit codes: 0 done (check: no problem found); 1 check found problems (listed); 2 unusable input.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def add_parsers(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Register ``data`` and its actions."""
    from armscan.datasets.importers import FORMATS

    d = sub.add_parser("data", help="import, check and split labelled data")
    da = d.add_subparsers(dest="action", required=True)
    i = da.add_parser("import", help="import a dataset into armscan's COCO layout, mapped to the taxonomy")
    i.add_argument("format", choices=FORMATS)
    i.add_argument("source", type=Path, help="the dataset's folder (feedback: the exported JSONL file)")
    i.add_argument("--out", type=Path, required=True, help="COCO folder to write (images/ and annotations.json)")
    i.add_argument("--mapping", type=Path, help="YAML 'label: class' file (default: the built-in common names)")
    i.add_argument("--link", action="store_true", help="hard-link images instead of copying them")
    i.add_argument("--strict", action="store_true", help="refuse labels that the mapping does not know")
    i.add_argument("--photos", action="store_true",
                   help="imagefolder of seizure photos: folder names (or the mapping's 'photo:') are photo classes")
    c = da.add_parser("check", help="validate COCO folders; several folders are checked for leakage as splits")
    c.add_argument("folders", nargs="+", type=Path)
    c.add_argument("--card", type=Path, help="also write a Markdown dataset card here")
    s = da.add_parser("split", help="split a COCO folder by image hash or by group, deterministically")
    s.add_argument("folder", type=Path)
    s.add_argument("--out", type=Path, required=True)
    s.add_argument("--by", choices=["group", "hash"], default="group")
    s.add_argument("--ratios", type=float, nargs=3, default=[0.8, 0.1, 0.1], metavar=("TRAIN", "VAL", "TEST"))


def run(args: argparse.Namespace) -> int:
    """Run one ``data`` action; returns the exit code."""
    from armscan.datasets.check import card, check, split, summary
    from armscan.datasets.coco import CocoFormatError
    from armscan.datasets.importers import DatasetImportError, Mapping, import_dataset

    try:
        if args.action == "import":
            imp = import_dataset(args.format, args.source, args.out, Mapping.load(args.mapping), args.link, args.strict,
                                 photos=args.photos)
            print(f"imported {imp.images} images with {imp.boxes} boxes into {args.out}")
            for what, counts in (("unknown labels (skipped; map them with --mapping)", imp.unknown_labels),
                                 ("benign labels", imp.benign_labels)):
                if counts:
                    print(f"{what}: {dict(counts)}")
            for line in [*imp.skipped_images, *imp.skipped_boxes]:
                print(f"skipped {line}", file=sys.stderr)
            return 0
        if args.action == "split":
            sizes = split(args.folder, args.out, args.by, tuple(args.ratios))
            print(json.dumps(sizes))
            return 0
        rep = check(list(args.folders))
        if args.card:
            args.card.write_text(card(list(args.folders), rep))
        for f in rep.findings:
            print(f"{f.folder}: {f.item}: {f.problem}")
        print(json.dumps(summary(rep)))
        return 0 if rep.ok else 1
    except (DatasetImportError, CocoFormatError, ValueError, OSError) as exc:
        print(f"armscan: error: {exc}", file=sys.stderr)
        return 2
