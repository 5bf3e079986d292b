"""The ``armscan`` command line: scan, batch, synth, train, eval and export.

    armscan scan datasets/samples --overlay runs/overlays --json
    armscan batch /data/night1 parcels.csv --out runs/night1
    armscan synth --n 500 --seed 200000000 --out runs/test
    armscan train --config training/det_small.yaml
    armscan eval --model models/bundled/armscan-det.onnx --data runs/test
    armscan export --checkpoint runs/train/last.pt --out model.onnx --calib runs/val
    armscan serve --port 8000; armscan users create-admin --username chief; armscan audit verify
    armscan data import voc /data/SIXray --out runs/data/sixray; armscan data check runs/data/sixray

Training, evaluation and export need the ``train`` extra (torch); scan and synth do not.
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import sys
import traceback
import zipfile
from pathlib import Path
from typing import Any

from armscan.inference.engine import ModelLoadError
from armscan.serve.scan import DEFAULT_MODEL, EXIT_CODES, scan_command

#: What torch.load raises for a file that is not a checkpoint: random bytes (UnpicklingError), an empty or cut
#: file (EOFError, OSError), a zip that is not torch's (RuntimeError from its stream reader, BadZipFile).
_CHECKPOINT_ERRORS = (pickle.UnpicklingError, EOFError, zipfile.BadZipFile, RuntimeError, OSError)


class CheckpointLoadError(ValueError):
    """A training checkpoint (.pt) that cannot be read, or is not an armscan checkpoint."""


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="armscan", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("scan", help="screen X-ray scans, or classify seizure photos (--kind photo)", epilog=EXIT_CODES)
    s.add_argument("paths", nargs="+", help="image files or folders (searched recursively)")
    s.add_argument("--kind", choices=["xray", "photo"], default="xray",
                   help="xray: parcel and baggage scans (detector); photo: photos of seized weapons (family, build, "
                        "length against an ID-1 card or a ruler)")
    s.add_argument("--model", default=None, help="exported ONNX model (default: the bundled one for --kind)")
    views = s.add_mutually_exclusive_group()
    views.add_argument("--rotations", action="store_const", const=True, dest="rotations",
                       help="photo: average over the photo's orientations, so that the answer does not depend on "
                            "how it is turned (4x the model's time; the default of models exported since 0.2)")
    views.add_argument("--single-view", action="store_const", const=False, dest="rotations",
                       help="photo: classify the photo as it is (one view, faster; the answer can change with "
                            "the photo's orientation)")
    s.add_argument("--json", action="store_true", help="print one JSON object per scan instead of a table")
    s.add_argument("--jsonl", type=Path, help="also append one JSON object per scan to this file")
    s.add_argument("--overlay", type=Path, help="write PNG overlays with boxes into this folder")
    s.add_argument("--all", action="store_true", help="also list detections below the alarm threshold")
    s.add_argument("--threads", type=int, default=None, help="onnxruntime threads (default: all cores)")

    b = sub.add_parser("batch", help="unattended, resumable screening of folders, archives and manifests")
    b.add_argument("inputs", nargs="+", help="folders, zip/tar archives, image files, or CSV/JSONL parcel manifests")
    b.add_argument("--out", type=Path, required=True, help="output folder; rerun the same command to resume")
    b.add_argument("--model", default=str(DEFAULT_MODEL), help="exported ONNX model (default: the bundled one)")
    b.add_argument("--workers", type=int, default=None,
                   help="parallel screening workers, each with its own model session (default: one per core; "
                        "ray: free CPUs / threads)")
    b.add_argument("--threads", type=int, default=None,
                   help="onnxruntime threads per worker (default: cores / workers; ray: 1)")
    b.add_argument("--decode-threads", type=int, default=1, help="extra threads decoding images ahead of inference")
    b.add_argument("--prefetch", type=int, default=None,
                   help="inputs in flight at once, decoded or being screened (default: the larger of 8 and "
                        "2 x (workers + decode threads); local engine only)")
    b.add_argument("--engine", choices=["local", "ray"], default="local",
                   help="local: this process; ray: Ray Data actors, on one machine or a cluster (needs the ray extra)")
    b.add_argument("--address", default=None,
                   help="with --engine ray: 'auto' (the cluster this node joined with 'ray start'), HOST:6379 or "
                        "ray://HOST:10001 (default: a new local Ray instance)")
    b.add_argument("--no-progress", action="store_true", help="no progress bar (for logs)")

    k = sub.add_parser("kits", help="find firearms sent as parts across parcels to one consignee")
    k.add_argument("runs", nargs="+", help="batch output folders (or their parcels.jsonl files)")
    k.add_argument("--window-hours", type=float, default=24 * 14, help="parcels this close in time are grouped")
    k.add_argument("--by-sender", action="store_true", help="group by consignee and sender")
    k.add_argument("--rules", type=Path, help="YAML or JSON rules file (default: built-in pistol and long-gun kits)")

    g = sub.add_parser("synth", help="generate synthetic dual-energy X-ray scans with COCO annotations")
    g.add_argument("action", nargs="?", choices=["gallery", "project"],
                   help="'gallery': write a contact-sheet PNG to --out; 'project': insert threats into --backgrounds")
    g.add_argument("--n", type=int, default=None, help="number of scans (gallery: 12; project: per background, 1)")
    g.add_argument("--seed", type=int, default=0, help="first seed; scan k uses seed + k")
    g.add_argument("--out", type=Path, required=True, help="output folder (images/ and annotations.json)")
    g.add_argument("--width", type=int, default=512)
    g.add_argument("--height", type=int, default=512)
    g.add_argument("--threat-prob", type=float, default=0.6, help="share of scans holding a threat")
    g.add_argument("--raw", action="store_true", help="also write raw 16-bit low/high TIFF pairs under raw/")
    g.add_argument("--yolo", action="store_true", help="also write YOLO labels under labels/")
    g.add_argument("--backgrounds", nargs="+", type=Path, default=None, metavar="PATH",
                   help="project: your bag scans, files or folders (raw NAME_low/NAME_high.tiff pairs or images)")
    g.add_argument("--max-threats", type=int, default=2, help="project: 1 to this many threats per image")
    g.add_argument("--style", default=None,
                   help="gallery: every scan in this scanner style (pseudo, vendor_a, vendor_b, vendor_c, grey; "
                        "default: mixed); project: how raw pairs are shown (default: pseudo)")

    t = sub.add_parser("train", help="train a detector (needs the train extra)")
    t.add_argument("--config", type=Path, help="YAML config overlaying the defaults")
    t.add_argument("--set", nargs="*", action="extend", default=[], metavar="KEY=JSON",
                   help="override top-level config keys (repeatable: every --set counts)")
    t.add_argument("--no-resume", action="store_true", help="start over even if OUT/last.pt exists")
    t.add_argument("--init-from", type=Path, metavar="MODEL",
                   help="fine-tune: start from this checkpoint (.pt), or the checkpoint kept beside this .onnx; "
                        "without --config the fine-tuning recipe training/finetune.yaml is used")
    t.add_argument("--data", type=Path, nargs="+", metavar="FOLDER",
                   help="COCO folders to train on (e.g. from 'armscan data import'); with --init-from, mixed with "
                        "synthetic replay")
    t.add_argument("--replay", type=float, default=None,
                   help="share of synthetic replay scans in each epoch when training on --data (default: the recipe's)")

    e = sub.add_parser("eval", help="COCO mAP and Pd at fixed false-alarm rates (needs the train extra)")
    e.add_argument("--model", required=True, help="exported .onnx or a training checkpoint")
    e.add_argument("--data", type=Path, required=True, nargs="+", metavar="FOLDER",
                   help="COCO folder, e.g. written by 'armscan synth' (detectors: several are pooled)")
    e.add_argument("--out", type=Path, help="also write the JSON here (then only a summary is printed)")
    e.add_argument("--report", type=Path, help="also write PR and Pd/FAR curves (PNG) and report.md here")
    e.add_argument("--card", type=Path, help="photo models: also write the model card (Markdown) here")

    x = sub.add_parser("export", help="export a checkpoint to ONNX with metadata (needs the train extra)")
    x.add_argument("--checkpoint", type=Path, required=True)
    x.add_argument("--out", type=Path, required=True)
    x.add_argument("--version", default="0.1.0")
    x.add_argument("--calib", type=Path, nargs="+", metavar="FOLDER",
                   help="COCO folders (pooled) on which to choose the alarm thresholds; photo models: one folder")
    x.add_argument("--target-far", type=float, default=0.01, help="parcel false-alarm rate for the thresholds")
    x.add_argument("--alarm-rule", choices=("per-class", "single"), default="per-class",
                   help="an alarm threshold per class (default), or one for every class")
    x.add_argument("--uncertain-far", type=float, default=0.05,
                   help="share of clean scans allowed to be uncertain or alarm (sets the abstention band; 0: none)")
    v = sub.add_parser("average", help="average the weights of checkpoints of one network, such as the ends of "
                                       "consecutive refreshes (needs the train extra)")
    v.add_argument("checkpoints", type=Path, nargs="+", metavar="CHECKPOINT", help="two or more .pt checkpoints")
    v.add_argument("--out", type=Path, required=True, help="the averaged weights checkpoint (.pt) to write")
    from armscan.serve import data_commands, gate, photo_commands
    from armscan.serve.service import commands

    commands.add_parsers(sub)
    data_commands.add_parsers(sub)
    gate.add_parsers(sub)
    photo_commands.add_parsers(sub)
    return p


def _fail(msg: str, code: int = 2) -> int:
    print(f"armscan: error: {msg}", file=sys.stderr)
    return code


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit code (0 ok, 1 some inputs failed, 2 bad usage, an unusable model or checkpoint,
    or another fatal error, 3 batch or scan hit an unexpected error mid-run)."""
    args = _parser().parse_args(argv)
    try:
        if args.command == "scan":
            return scan_command(list(args.paths), Path(args.model) if args.model else None, bool(args.json), args.jsonl,
                                args.overlay, bool(args.all), args.threads, kind=args.kind, rotations=args.rotations)
        if args.command == "batch":
            return _batch(args)
        if args.command == "synth":
            return _synth(args)
        if args.command == "kits":
            return _kits(args)
        if args.command == "models":
            from armscan.serve import gate

            return gate.run(args)
        if args.command == "data":
            from armscan.serve import data_commands

            return data_commands.run(args)
        if args.command == "photos":
            from armscan.serve import photo_commands

            return photo_commands.run(args)
        if args.command in ("serve", "users", "audit", "db"):
            from armscan.serve.service.commands import run

            return run(args)
        return _train_commands(args)
    except ModuleNotFoundError as exc:
        if exc.name in ("torch", "torchvision", "onnx", "onnxscript", "pycocotools", "tqdm", "yaml"):
            return _fail(f"'{args.command}' needs the training extra ({exc.name} is missing): pip install '.[train]'")
        raise
    except ModelLoadError as exc:  # an .onnx that is missing, not a model, or not an armscan one; the message names it
        return _fail(str(exc))
    except (pickle.UnpicklingError, EOFError, zipfile.BadZipFile) as exc:  # a checkpoint the training code reads
        given = _model_files(args)  # (those named on the command line are read by _load_checkpoint first)
        return _fail(f"cannot read a model or checkpoint file ({type(exc).__name__}: {exc})"
                     + (f"; given: {given}" if given else ""))
    except (OSError, ValueError) as exc:  # CheckpointLoadError among them
        return _fail(str(exc))
    except KeyboardInterrupt:
        return _fail("interrupted; what was finished is kept (rerun the same batch or train command to resume)", 130)


def _model_files(args: argparse.Namespace) -> str:
    """The model and checkpoint files named on the command line, for an error message."""
    names = [getattr(args, a, None) for a in ("model", "checkpoint", "init_from")] + list(getattr(args, "checkpoints", []))
    return ", ".join(str(n) for n in names if n is not None)


def _load_checkpoint(path: str | Path) -> dict[str, Any]:
    """A training checkpoint read with torch, or :class:`CheckpointLoadError` naming the file and what is wrong."""
    from armscan.training.checkpoint import load_checkpoint

    if not Path(path).is_file():
        raise CheckpointLoadError(f"checkpoint not found: {path}")
    try:
        ckpt = load_checkpoint(path)
    except _CHECKPOINT_ERRORS as exc:
        raise CheckpointLoadError(f"{path}: not a readable training checkpoint ({type(exc).__name__}: {exc})") from exc
    if not isinstance(ckpt, dict):
        raise CheckpointLoadError(f"{path}: not an armscan training checkpoint (it holds a {type(ckpt).__name__})")
    return ckpt


def _batch(args: argparse.Namespace) -> int:
    """``armscan batch``: exit 3, with the traceback on stderr, when it stops on an unexpected error."""
    if (args.workers is not None and args.workers < 1) or args.decode_threads < 0 or (
            args.threads is not None and args.threads < 1):
        return _fail("--workers and --threads must be >= 1, --decode-threads >= 0")
    if args.prefetch is not None and args.prefetch < 1:
        return _fail(f"--prefetch must be >= 1 (got {args.prefetch})")
    try:
        if args.engine == "ray":
            if args.prefetch is not None:
                return _fail("--prefetch needs --engine local (Ray Data schedules its own inputs)")
            from armscan.serve.batch_ray import run_batch_ray

            return run_batch_ray(list(args.inputs), args.out, Path(args.model), args.address, args.workers,
                                 args.threads or 1, progress=not args.no_progress)
        if args.address is not None:
            return _fail("--address needs --engine ray")
        from armscan.serve.batch import run_batch, usable_cpus

        return run_batch(list(args.inputs), args.out, Path(args.model), args.threads, args.decode_threads,
                         prefetch=args.prefetch, progress=not args.no_progress, workers=args.workers or usable_cpus())
    except ModuleNotFoundError:
        raise  # main's handler: exit 2, naming the extra to install
    except OSError as exc:  # the setup's are answered inside (exit 2); this one came mid-run: a full disk, a lost mount
        return _fail(f"the batch stopped: {exc}; every row already in {args.out / 'scans.jsonl'} is kept: "
                     "fix the cause and rerun the same command to resume", 3)
    except Exception as exc:  # a bug must not exit 1, which means "finished, some inputs unreadable"
        traceback.print_exc(file=sys.stderr)
        return _fail(f"the batch stopped on an unexpected error ({type(exc).__name__}: {exc}); every row already in "
                     f"{args.out / 'scans.jsonl'} is kept: rerun the same command to resume", 3)


def _kits(args: argparse.Namespace) -> int:
    from datetime import timedelta

    from armscan.datasets.taxonomy import CLASSES
    from armscan.serve.kits import find_kits, load_rules, read_parcels

    rules = load_rules(args.rules, set(CLASSES))
    alerts = find_kits(read_parcels(list(args.runs)), rules, timedelta(hours=args.window_hours), args.by_sender)
    for a in alerts:
        print(json.dumps(a))
    print(f"{len(alerts)} kit alert(s)", file=sys.stderr)
    return 0


def _synth(args: argparse.Namespace) -> int:
    from armscan.datasets.synth.scene import SceneConfig
    from armscan.datasets.synth.writer import write_dataset, write_gallery
    from armscan.datasets.xray import STYLES

    if args.style is not None and args.style not in STYLES:
        return _fail(f"Unknown --style {args.style!r}. Valid styles: {', '.join(STYLES)}")
    cfg = SceneConfig(threat_prob=args.threat_prob)
    n = args.n if args.n is not None else {"gallery": 12, "project": 1}.get(args.action, 0)
    if n < 1 or min(args.width, args.height) < 128 or not 0.0 <= args.threat_prob <= 1.0:
        return _fail("--n must be >= 1, --width/--height >= 128 and --threat-prob within [0, 1]")
    if args.action == "project":
        from armscan.datasets.synth.projection import ProjectionConfig, write_projected

        if not args.backgrounds or args.max_threats < 1:
            return _fail("synth project needs --backgrounds PATH... and --max-threats >= 1")
        path = write_projected(list(args.backgrounds), args.out, n, args.seed, args.style or "pseudo",
                               ProjectionConfig(max_threats=args.max_threats), raw=args.raw)
        print(f"wrote {path}")
        return 0
    if args.action == "gallery":
        if args.out.suffix.lower() != ".png":
            return _fail("synth gallery writes a PNG: give --out FILE.png")
        print(f"wrote {write_gallery(args.out, n, args.seed, cfg=cfg, style=args.style)}")
        return 0
    path = write_dataset(args.out, n, args.seed, args.width, args.height, cfg, raw=args.raw, yolo=args.yolo)
    print(f"wrote {n} scans and {path}")
    return 0


def _train_commands(args: argparse.Namespace) -> int:
    if args.command == "train":
        import armscan.training as training_pkg
        from armscan.training.config import TrainConfig
        from armscan.training.train import train

        overrides: dict[str, Any] = {}
        for item in args.set:
            key, eq, value = item.partition("=")
            if not eq or not key:
                return _fail(f"--set takes KEY=VALUE (VALUE in JSON where it is not a plain string), not {item!r}")
            try:
                overrides[key] = json.loads(value)
            except json.JSONDecodeError:
                overrides[key] = value
        data: dict[str, Any] = {}
        if args.data:
            data |= {"kind": "coco", "coco_dir": None, "coco_dirs": [str(d) for d in args.data]}
            missing = [str(d) for d in args.data if not (d / "annotations.json").is_file()]
            if missing:
                return _fail(f"--data needs COCO folders with an annotations.json; not one: {', '.join(missing)}")
        if args.replay is not None:
            data["replay"] = args.replay
        if data:
            overrides["data"] = {**overrides.get("data", {}), **data}
        config = args.config
        try:
            if args.init_from is not None:
                parent = _resolve_model(args.init_from)
                overrides["init_from"] = str(parent)
                # the checkpoint trained from: the .pt itself, or the one kept beside an .onnx (init_checkpoint's rule);
                # read here so that a file that is not one is refused (exit 2) before training starts
                kept = parent.with_suffix(".pt") if parent.suffix == ".onnx" else parent
                parent_ckpt = _load_checkpoint(kept) if kept.is_file() else None
                if config is None:  # the recipe for the parent's kind: an X-ray detector or a seizure-photo model
                    photo = (parent_ckpt.get("task") == "photo" if parent_ckpt is not None
                             else _is_photo_model(str(parent)))
                    config = Path(training_pkg.__file__).parent / ("photo_finetune.yaml" if photo else "finetune.yaml")
            cfg = TrainConfig.load(config, overrides)
            ckpt = train(cfg, resume=not args.no_resume)
        except (FileNotFoundError, ValueError) as exc:
            return _fail(str(exc))
        if os.environ.get("RANK", "0") == "0":  # under torchrun only rank 0 reports
            print(f"checkpoint: {ckpt}")
        return 0
    if args.command == "eval":
        from armscan.training.evaluate import evaluate

        if _is_photo_model(args.model):
            from armscan.datasets.photo import read_photo_dataset
            from armscan.training.photo_eval import evaluate_photo, load_photo_classifier

            if len(args.data) > 1:
                return _fail("photo models are evaluated on one folder at a time")
            metrics = evaluate_photo(load_photo_classifier(args.model), read_photo_dataset(args.data[0]))
            if args.card:
                from armscan.training.photo_eval import photo_card

                args.card.write_text(photo_card(Path(args.model), metrics))
        else:
            metrics = evaluate(args.model, args.data, report_dir=args.report)
        text = json.dumps(metrics, indent=2)
        if args.out:
            args.out.write_text(text)
            keys = ("images", "mAP", "mAP50", "AP50_per_class", "photos", "top1", "ece", "rotation_agreement",
                    "mode", "other_mode")
            print(json.dumps({k: metrics[k] for k in keys if k in metrics}))
        else:
            print(text)
        return 0
    if args.command == "average":
        from armscan.training.checkpoint import average_checkpoints

        if args.out.suffix != ".pt" or args.out.resolve() in {c.resolve() for c in args.checkpoints}:
            return _fail("--out must be a new .pt file, not one of the checkpoints")
        for c in args.checkpoints:  # each refused by name (exit 2) if it is not a readable checkpoint
            _load_checkpoint(c)
        print(f"wrote {average_checkpoints(list(args.checkpoints), args.out)}: the average of "
              f"{len(args.checkpoints)} checkpoints")
        return 0
    from armscan.training.export import export

    if _load_checkpoint(args.checkpoint).get("task") == "photo":
        from armscan.training.photo_eval import export_photo

        if args.calib and len(args.calib) > 1:
            return _fail("photo models are calibrated on one folder")
        pmd = export_photo(args.checkpoint, args.out, args.version, calib=args.calib[0] if args.calib else None)
        print(f"exported {args.out} (temperature {pmd.temperature}, bands: confident >= {pmd.bands.confident}, "
              f"probable >= {pmd.bands.probable})")
        return 0
    md = export(args.checkpoint, args.out, args.version, args.calib, args.target_far,
                uncertain_far=args.uncertain_far or None, per_class=args.alarm_rule == "per-class")
    band = md.thresholds.uncertain or {}
    print(f"exported {args.out}; thresholds per class (alarm / uncertain from):")
    for c in md.classes:
        print(f"  {c:16s} {md.thresholds.alarm[c]:.4f}" + (f" / {band[c]:.4f}" if c in band else ""))
    return 0


def _resolve_model(ref: Path) -> Path:
    """A model file, or a registry key (``name@version``, a unique name, or ``champion``) in ARMSCAN_MODELS_DIR."""
    if ref.exists():
        return ref
    from armscan.serve.registry import Registry, RegistryError
    from armscan.serve.service.settings import get_settings

    reg = Registry(get_settings().models_dir)
    if not reg.path.is_file():
        raise FileNotFoundError(f"{ref}: no such model file, and {reg.dir} is not a registry to look the key up in")
    entry = reg.champion() if str(ref) == "champion" else reg.get(str(ref))
    if entry is None:
        raise RegistryError("the registry has no champion")
    return reg.verify(entry)


def _is_photo_model(model: str) -> bool:
    """Whether ``model`` (an .onnx or a checkpoint) is a seizure-photo model."""
    from armscan.inference.engine import open_session

    if str(model).endswith(".onnx"):
        return open_session(model)[1].get("task") == "photo"
    return _load_checkpoint(model).get("task") == "photo"


if __name__ == "__main__":
    raise SystemExit(main())
