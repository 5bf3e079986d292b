"""What a fine-tune learns on a new site against what it forgets of the old scans, side by side, per learning rate.

    python bench/finetune_forgetting.py [--parent models/bundled/armscan-det.onnx] [--lr 1e-3 3e-4 1e-4]

The scenario of ``tests/test_analyst_loop.py``, the analysts' loop: 300 scans from a "new site" whose scanner
colours materials otherwise (the generator's palette turned 120 degrees in hue; seeds from 320,000,000), imported
as YOLO files and split by hash 60/40; 200 scans in the old palettes (seeds from 310,000,000) stand for what the
parent already knew. At each learning rate the parent is fine-tuned on the site's 60% with the loop test's short
recipe (``training/finetune.yaml`` at 8 epochs of 20 iterations of 8 scans: half of them synthetic replay, the
parent's batch-norm statistics kept), exported with thresholds chosen on 220 calibration scans (seeds from
100,000,000), and scored through the torch-free engine, with the parent, on the site's 40% and on the old scans.

Prints one row per model: mAP50 and the parcel alarm's Pd at 1% FAR on each set (the site's held-out part has
about 24 clean scans and the old set about 100, so that Pd is set by the top one or two clean scores; mAP50 is
the steadier figure), and the training minutes. ``--recipe full`` uses ``training/finetune.yaml`` as it is
(about seven minutes a rate: 5.7 of training for 0.7.0). Everything is written under ``--work`` (default ``runs/bench/finetune``).
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

from armscan.datasets.synth.scene import SceneConfig
from armscan.datasets.synth.writer import turn_hue, write_dataset
from armscan.datasets.taxonomy import CLASSES
from armscan.serve.cli import main as armscan

SHORT = ["batch_size=8", "epochs=8", "iters_per_epoch=20", "warmup_iters=5", "ema_decay=0.99", "val_images=0",
         'data={"cache_size": 240}']  # the loop test's recipe, but for the learning rate


def _data(work: Path) -> tuple[Path, Path, Path, Path]:
    """The site's train and test parts, the old suite and the calibration scans (written once, then reused)."""
    site, split, old, calib = work / "site", work / "split", work / "old", work / "calib"
    if not (split / "test" / "annotations.json").exists():
        write_dataset(site, 300, seed=320_000_000, width=416, height=416, cfg=SceneConfig(threat_prob=0.8), yolo=True)
        (site / "classes.txt").write_text("\n".join(CLASSES) + "\n")
        turn_hue(site, 120)
        _ok(["data", "import", "yolo", str(site), "--out", str(work / "imported")])
        _ok(["data", "split", str(work / "imported"), "--out", str(split), "--by", "hash", "--ratios", "0.6", "0", "0.4"])
    if not (old / "annotations.json").exists():
        write_dataset(old, 200, seed=310_000_000, width=416, height=416, cfg=SceneConfig(threat_prob=0.5))
    if not (calib / "annotations.json").exists():
        write_dataset(calib, 220, seed=100_000_000, width=416, height=416, cfg=SceneConfig(threat_prob=0.5))
    return split / "train", split / "test", old, calib


def _ok(argv: list[str]) -> None:
    rc = armscan(argv)
    if rc != 0:
        raise SystemExit(f"armscan {' '.join(argv)} exited {rc}")


def _score(model: Path, test: Path, old: Path, out: Path) -> dict[str, float]:
    """mAP50 and the parcel alarm's Pd at 1% FAR of an exported model on the site's held-out part and the old set."""
    row = {}
    for name, data in (("site", test), ("old", old)):
        _ok(["eval", "--model", str(model), "--data", str(data), "--out", str(out / f"{name}.json")])
        m = json.loads((out / f"{name}.json").read_text())
        pd = m["pd"]["any_threat"]["pd@far0.01"]  # None (undefined) on a suite without clean scans
        row[f"{name}_mAP50"] = float(m["mAP50"]) if m["mAP50"] is not None else math.nan
        row[f"{name}_pd"] = float(pd) if pd is not None else math.nan
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--parent", type=Path, default=Path("models/bundled/armscan-det.onnx"),
                    help="exported detector with its .pt beside it, or a checkpoint")
    ap.add_argument("--lr", type=float, nargs="+", default=[1e-3, 3e-4, 1e-4])
    ap.add_argument("--recipe", choices=["short", "full"], default="short")
    ap.add_argument("--work", type=Path, default=Path("runs/bench/finetune"))
    ap.add_argument("--json", type=Path, help="also write the rows here")
    args = ap.parse_args()
    work = args.work
    work.mkdir(parents=True, exist_ok=True)
    train, test, old, calib = _data(work)

    parent = args.parent
    if parent.suffix == ".pt":  # score a checkpoint through the engine too: export it once
        parent_onnx = work / "parent.onnx"
        _ok(["export", "--checkpoint", str(parent), "--out", str(parent_onnx), "--version", "0.0.0-parent",
             "--calib", str(calib)])
        parent = parent_onnx
    (work / "parent").mkdir(exist_ok=True)
    rows = [{"model": f"parent ({args.parent})", "lr": None, "train_min": 0.0, **_score(parent, test, old, work / "parent")}]
    for lr in args.lr:
        run = work / f"lr{lr:g}"
        t0 = time.perf_counter()
        _ok(["train", "--init-from", str(args.parent), "--data", str(train), "--set",
             *(SHORT if args.recipe == "short" else []), f"lr={lr}", f"out_dir={run}"])
        minutes = (time.perf_counter() - t0) / 60
        onnx = run / "candidate.onnx"
        _ok(["export", "--checkpoint", str(run / "last.pt"), "--out", str(onnx), "--version", "0.0.0-ft",
             "--calib", str(calib)])
        rows.append({"model": f"fine-tuned, lr {lr:g}", "lr": lr, "train_min": round(minutes, 1),
                     **_score(onnx, test, old, run)})

    print(f"\nfine-tuning {args.parent} ({args.recipe} recipe) on the new site's {train}")
    print(f"{'model':<44} {'site mAP50':>10} {'site Pd@1%':>10} {'old mAP50':>10} {'old Pd@1%':>10} {'train min':>9}")
    for r in rows:
        print(f"{r['model']:<44} {r['site_mAP50']:>10.3f} {r['site_pd']:>10.3f} {r['old_mAP50']:>10.3f} "
              f"{r['old_pd']:>10.3f} {r['train_min']:>9.1f}")
    if args.json:
        args.json.write_text(json.dumps({"parent": str(args.parent), "recipe": args.recipe, "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
