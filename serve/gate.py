"""``armscan models``: the registry and the champion/challenger gate.

    export ARMSCAN_MODELS_DIR=/srv/armscan/models            # a folder with registry.json
    armscan models register runs/new.onnx --parent armscan_det_small@0.4.0 --data runs/data/seizure-7
    armscan models compare armscan_det_small@0.5.0 --suite runs/hidden --suite runs/data/real-test
    armscan models promote armscan_det_small@0.5.0 --suite runs/hidden --suite runs/data/real-test
    armscan models promote armscan_det_small@0.5.0 --suite runs/test runs/test-clean   # one suite, two folders
    armscan models rollback --reason "false alarms on lane 3"

``compare`` evaluates the challenger and the champion on the same frozen suites (COCO folders: the
synthetic hidden split, the user's held-out real set) and prints, per suite, the deltas of AP50 and
of Pd at the champion's operating false-alarm rate per class (and per build where the suite labels
it), and the latency. A suite may pool several folders (``--suite A B``): add clean scans to a suite so
that its false-alarm rate is resolved (1% of 194 clean scans is the second-highest scoring of them).
``promote`` runs the same comparison and refuses (exit 1) if any class's Pd
drops by more than ``--tolerance``, unless ``--force --reason TEXT``; every promotion, forced or not,
is written to the service's audit log. Evaluation needs the ``train`` extra (pycocotools).
"""

from __future__ import annotations

import argparse
import getpass
import json
import math
import statistics
import sys
import time
from pathlib import Path
from typing import Any

DEFAULT_TOLERANCE = 0.02


def add_parsers(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Register ``models`` and its actions."""
    m = sub.add_parser("models", help="model registry and the champion/challenger gate")
    ma = m.add_subparsers(dest="action", required=True)
    for name in ("list", "register", "compare", "promote", "rollback"):
        p = ma.add_parser(name)
        p.add_argument("--dir", type=Path, help="models folder (default: ARMSCAN_MODELS_DIR)")
        if name == "register":
            p.add_argument("model", type=Path)
            p.add_argument("--parent", help="registry key of the model it was fine-tuned from")
            p.add_argument("--data", type=Path, nargs="*", default=[], help="training datasets (hashed for lineage)")
            p.add_argument("--card", type=Path, help="its Markdown model card")
        if name in ("compare", "promote"):
            p.add_argument("challenger", help="registry key (name@version)")
            p.add_argument("--champion", help="compare against this key (default: the current champion)")
            p.add_argument("--suite", type=Path, nargs="+", action="append", default=[],
                           help="COCO folder, or several pooled into one suite; repeat for several suites")
            p.add_argument("--tolerance", type=float, default=DEFAULT_TOLERANCE, help="largest Pd drop allowed per class")
            p.add_argument("--z", type=float, default=1.645,
                           help="a drop must exceed the tolerance by this many standard errors to fail (0: raw Pd)")
            p.add_argument("--json", type=Path, help="also write the comparison here")
        if name == "promote":
            p.add_argument("--force", action="store_true", help="promote despite a failed gate (needs --reason)")
        if name in ("promote", "rollback"):
            p.add_argument("--reason", default="", help="why; written to the audit log")


def _latency_ms(detector: Any, files: list[Path], n: int = 40) -> float:
    from armscan.datasets.readers import read_image

    images = [read_image(f) for f in files[:n]]
    for im in images[:3]:
        detector.detect(im)
    times = []
    for im in images:
        t = time.perf_counter()
        detector.detect(im)
        times.append((time.perf_counter() - t) * 1000)
    return round(statistics.median(times), 2) if times else 0.0


def _pd_key(metrics: dict[str, Any], far: float) -> str:
    keys = {k for v in metrics.get("pd", {}).values() for k in v if k.startswith("pd@far")}
    return min(keys, key=lambda k: abs(float(k[6:]) - far)) if keys else f"pd@far{far:g}"


def compare(challenger: Path, champion: Path, suites: list[Path] | list[list[Path]], tolerance: float,
            z: float = 1.645) -> dict[str, Any]:
    """Both models on every suite: per-class AP50 and Pd deltas, latency, and the gate's verdict.

    A class fails the gate when its Pd drops by more than ``tolerance`` beyond its sampling error: the drop
    minus ``z`` standard errors (of the difference of two proportions over the class's ``n`` positives)
    must exceed the tolerance. On a suite with 12 positives of a class, two missed scans are noise; on
    one with 500, they are not. ``z=0`` compares the raw Pd.
    """
    from armscan.inference.engine import Detector
    from armscan.training.evaluate import evaluate_records, read_folders
    from armscan.training.metrics import unresolved_note

    if not suites:
        raise ValueError("give at least one --suite (a COCO folder) to compare on")
    det = {"champion": Detector.from_onnx(champion), "challenger": Detector.from_onnx(challenger)}
    far = det["champion"].metadata.thresholds.target_far or 0.01
    out: dict[str, Any] = {"far": far, "tolerance": tolerance, "z": z, "suites": {}, "failures": []}
    for suite in suites:
        folders = [suite] if isinstance(suite, Path) else list(suite)
        name = " + ".join(f.name for f in folders)
        records = read_folders(folders)
        m = {k: evaluate_records(d, records, progress=False) for k, d in det.items()}
        key = _pd_key(m["champion"], far)
        rows = {}
        for cls in sorted(set(m["champion"]["pd"]) | set(m["challenger"]["pd"])):
            a, b = m["champion"]["pd"].get(cls, {}), m["challenger"]["pd"].get(cls, {})
            if not a.get("n") and not b.get("n"):
                continue
            pa, pb = a.get(key, 0.0), b.get(key, 0.0)
            ap_a = m["champion"]["AP50_per_class"].get(cls)
            ap_b = m["challenger"]["AP50_per_class"].get(cls)
            n = max(int(b.get("n", a.get("n")) or 0), 1)
            margin = z * math.sqrt((pa * (1 - pa) + pb * (1 - pb)) / n)
            rows[cls] = {"n": b.get("n", a.get("n")), "pd_champion": pa, "pd_challenger": pb,
                         "pd_delta": round(pb - pa, 4), "noise": round(margin, 4), "ap50_champion": ap_a,
                         "ap50_challenger": ap_b}
            if pa - pb - margin > tolerance:
                out["failures"].append(f"{name}: {cls} Pd at FAR {far:g} drops {pa:.3f} -> {pb:.3f} "
                                       f"(n={n}; more than the tolerance {tolerance:g} plus {margin:.3f} of noise)")
        files = [r.file for r in records]
        clean = int(m["champion"]["clean_scans"])
        out["suites"][name] = {
            "images": len(records), "clean_scans": clean, "pd_key": key, "classes": rows,
            "mAP50": {k: v["mAP50"] for k, v in m.items()},
            "by_build": {k: v.get("by_build") for k, v in m.items() if v.get("by_build")},
            "latency_ms": {k: _latency_ms(d, files) for k, d in det.items()}}
        note = unresolved_note(clean, far)  # the threshold at `far` rests on the few highest clean scans
        if note:
            out["suites"][name]["note"] = f"{note} (--suite {folders[0]} MORE_CLEAN_SCANS)"
    out["passed"] = not out["failures"]
    return out


def _print(c: dict[str, Any], challenger: str, champion: str) -> None:
    print(f"challenger {challenger} vs champion {champion}; Pd at parcel FAR {c['far']:g}, tolerance {c['tolerance']}")
    for name, s in c["suites"].items():
        print(f"\n{name} ({s['images']} scans): mAP50 {s['mAP50']['champion']} -> {s['mAP50']['challenger']}, "
              f"latency {s['latency_ms']['champion']} -> {s['latency_ms']['challenger']} ms")
        print(f"{'class':<18}{'n':>5} {'Pd champion':>12} {'Pd challenger':>14} {'delta':>7} {'noise':>6} {'AP50':>13}")
        for cls, r in s["classes"].items():
            print(f"{cls:<18}{r['n']:>5} {r['pd_champion']:>12.3f} {r['pd_challenger']:>14.3f} {r['pd_delta']:>+7.3f} "
                  f"{r.get('noise', 0):>6.3f} {r['ap50_champion'] or 0:>6.3f}->{r['ap50_challenger'] or 0:.3f}")
        if s.get("note"):
            print(f"note: {s['note']}")
    print("\nGATE " + ("PASSED" if c["passed"] else "FAILED:\n  " + "\n  ".join(c["failures"])))


def _audit(action: str, key: str, details: dict[str, Any]) -> None:
    from armscan.serve.service import audit
    from armscan.serve.service.db import make_engine, session_factory, upgrade
    from armscan.serve.service.settings import get_settings

    engine = make_engine(get_settings().db_url)
    try:
        upgrade(engine)
        with session_factory(engine)() as db:
            audit.append(db, f"cli:{getpass.getuser()}", action, key, key, details)
            db.commit()
    finally:
        engine.dispose()


def run(args: argparse.Namespace) -> int:
    """Run one ``models`` action; returns the exit code (1: the gate refused)."""
    from armscan.inference.engine import ModelLoadError
    from armscan.serve.registry import Registry, RegistryError
    from armscan.serve.service.settings import get_settings

    reg = Registry(args.dir or get_settings().models_dir)
    by = f"cli:{getpass.getuser()}"
    try:
        if args.action == "list":
            for e in reg.read().models:
                print(f"{e.key:<36} {e.status:<10} {e.sha256[:12]}  parent={e.parent or '-'}  {e.file}")
            return 0
        if args.action == "register":
            e = reg.register(args.model, by, args.parent, list(args.data), card=args.card)
            print(f"registered {e.key} as a candidate ({e.file}, sha256 {e.sha256[:16]}…)")
            return 0
        if args.action == "rollback":
            e = reg.rollback(by, args.reason)
            _audit("model.rollback", e.key, {"reason": args.reason})
            print(f"rolled back: {e.key} is the champion again")
            return 0
        challenger = reg.get(args.challenger)
        champion = reg.get(args.champion) if args.champion else reg.champion()
        if champion is None or champion.key == challenger.key:
            if args.action == "promote":  # nothing to compare with: the first champion
                reg.promote(challenger.key, by, args.reason or "first champion")
                _audit("model.promote", challenger.key, {"reason": args.reason, "gate": "no champion yet"})
                print(f"promoted {challenger.key} (first champion)")
                return 0
            raise RegistryError("no champion to compare with; give --champion KEY")
        c = compare(reg.verify(challenger), reg.verify(champion), list(args.suite), args.tolerance, args.z)
        _print(c, challenger.key, champion.key)
        if args.json:
            args.json.write_text(json.dumps(c, indent=1))
        if args.action == "compare":
            return 0 if c["passed"] else 1
        if not c["passed"] and not args.force:
            print("promotion refused; fix the model, or --force --reason '...' (audited)", file=sys.stderr)
            return 1
        if not c["passed"] and not args.reason.strip():
            print("armscan: error: --force needs --reason", file=sys.stderr)
            return 2
        reg.promote(challenger.key, by, args.reason)
        _audit("model.promote_forced" if not c["passed"] else "model.promote", challenger.key,
               {"reason": args.reason, "replaces": champion.key, "failures": c["failures"]})
        print(f"promoted {challenger.key}; {champion.key} retired")
        return 0
    except (RegistryError, ModelLoadError, ValueError, OSError) as exc:
        print(f"armscan: error: {exc}", file=sys.stderr)
        return 2
