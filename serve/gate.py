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
It also compares the decision each model will make in service, at its own stored alarm thresholds: the
parcel Pd, and the challenger's parcel FAR against the target its thresholds were chosen for.
``promote`` runs the same comparison and refuses (exit 1) if any class's Pd
drops by more than ``--tolerance``, if the parcel Pd at the models' own thresholds does, if the
challenger's FAR at its thresholds is above its target beyond chance, if the challenger's thresholds were
never calibrated (no target FAR), or if a suite has no clean scans or no threats to compare on, unless
``--force --reason TEXT``; every promotion, forced or not, is written to the service's audit log.
Evaluation needs the ``train`` extra (pycocotools).
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


def _drop(pa: float, pb: float, n: int, z: float) -> tuple[float, float]:
    """The drop of a Pd from ``pa`` to ``pb`` on ``n`` positives, less ``z`` standard errors of the difference of
    the two proportions (what must exceed the tolerance to fail), and that noise margin."""
    margin = z * math.sqrt((pa * (1 - pa) + pb * (1 - pb)) / max(n, 1))
    return pa - pb - margin, margin


def _class_rows(name: str, m: dict[str, dict[str, Any]], key: str, far: float, tolerance: float, z: float,
                failures: list[str]) -> dict[str, Any]:
    """Per class (and the parcel alarm): Pd at the swept FAR ``key`` and AP50 of both models; a drop beyond the
    tolerance plus noise is appended to ``failures``. Pd is None (not compared) on a suite without clean scans."""
    rows = {}
    for cls in sorted(set(m["champion"]["pd"]) | set(m["challenger"]["pd"])):
        a, b = m["champion"]["pd"].get(cls, {}), m["challenger"]["pd"].get(cls, {})
        if not a.get("n") and not b.get("n"):
            continue
        pa, pb = a.get(key), b.get(key)
        n = int(b.get("n", a.get("n")) or 0)
        row = {"n": n, "pd_champion": pa, "pd_challenger": pb, "pd_delta": None, "noise": None,
               "ap50_champion": m["champion"]["AP50_per_class"].get(cls),
               "ap50_challenger": m["challenger"]["AP50_per_class"].get(cls)}
        if pa is not None and pb is not None:
            excess, margin = _drop(pa, pb, n, z)
            row.update(pd_delta=round(pb - pa, 4), noise=round(margin, 4))
            if excess > tolerance:
                failures.append(f"{name}: {cls} Pd at FAR {far:g} drops {pa:.3f} -> {pb:.3f} "
                                f"(n={n}; more than the tolerance {tolerance:g} plus {margin:.3f} of noise)")
        rows[cls] = row
    return rows


def _threshold_rows(name: str, m: dict[str, dict[str, Any]], target: float | None, tolerance: float, z: float,
                    failures: list[str]) -> dict[str, Any]:
    """The parcel decision at each model's own stored alarm thresholds (``at_thresholds``): Pd compared as a
    class's is, and the challenger's FAR against its ``target``: it fails when the FAR less ``z`` standard errors
    (binomial, at the FAR measured on the suite's clean scans) is still above the target."""
    a, b = (m[k]["at_thresholds"] for k in ("champion", "challenger"))
    threats, clean = int(b["threat_scans"]), int(b["clean_scans"])
    pa, pb = a["alarm"]["parcel_pd"], b["alarm"]["parcel_pd"]
    fa, fb = a["alarm"]["parcel_far"], b["alarm"]["parcel_far"]
    out: dict[str, Any] = {"pd": {"n": threats, "champion": pa, "challenger": pb, "delta": None, "noise": None},
                           "far": {"n": clean, "champion": fa, "challenger": fb, "target": target, "noise": None}}
    if pa is not None and pb is not None:
        excess, margin = _drop(pa, pb, threats, z)
        out["pd"].update(delta=round(pb - pa, 4), noise=round(margin, 4))
        if excess > tolerance:
            failures.append(f"{name}: parcel Pd at the models' own alarm thresholds drops {pa:.3f} -> {pb:.3f} "
                            f"(n={threats}; more than the tolerance {tolerance:g} plus {margin:.3f} of noise)")
    if fb is not None and target is not None:
        margin = z * math.sqrt(fb * (1 - fb) / max(clean, 1))
        out["far"]["noise"] = round(margin, 4)
        if fb - margin > target:
            failures.append(f"{name}: the challenger's parcel FAR at its own alarm thresholds is {fb:.4f} on {clean} "
                            f"clean scans, above its target {target:g} by more than {margin:.4f} of noise")
    return out


def compare(challenger: Path, champion: Path, suites: list[Path] | list[list[Path]], tolerance: float,
            z: float = 1.645) -> dict[str, Any]:
    """Both models on every suite: per-class AP50 and Pd deltas, the parcel decision at each model's own
    thresholds, latency, and the gate's verdict.

    A class fails the gate when its Pd drops by more than ``tolerance`` beyond its sampling error: the drop
    minus ``z`` standard errors (of the difference of two proportions over the class's ``n`` positives)
    must exceed the tolerance. On a suite with 12 positives of a class, two missed scans are noise; on
    one with 500, they are not. ``z=0`` compares raw Pd. The parcel Pd at the models' own thresholds is
    held to the same rule, and the challenger's parcel FAR at its thresholds may not be above the target
    they were chosen for beyond ``z`` standard errors. The gate refuses a challenger without a target
    (thresholds never calibrated) and a suite without clean scans (no FAR is defined) or without threats.
    """
    from armscan.inference.engine import Detector
    from armscan.training.evaluate import evaluate_records, read_folders
    from armscan.training.metrics import unresolved_note

    if not suites:
        raise ValueError("give at least one --suite (a COCO folder) to compare on")
    det = {"champion": Detector.from_onnx(champion), "challenger": Detector.from_onnx(challenger)}
    far = det["champion"].metadata.thresholds.target_far or 0.01
    target = det["challenger"].metadata.thresholds.target_far
    out: dict[str, Any] = {"far": far, "tolerance": tolerance, "z": z, "challenger_target_far": target,
                           "suites": {}, "failures": []}
    failures: list[str] = out["failures"]
    if target is None:
        failures.append("the challenger's metadata has no target_far: its alarm thresholds were never calibrated "
                        "(export it with --calib), so the FAR it will alarm at is unknown")
    for suite in suites:
        folders = [suite] if isinstance(suite, Path) else list(suite)
        name = " + ".join(f.name for f in folders)
        records = read_folders(folders)
        m = {k: evaluate_records(d, records, progress=False) for k, d in det.items()}
        key = _pd_key(m["champion"], far)
        clean = int(m["champion"]["clean_scans"])
        if not clean:
            failures.append(f"{name}: no clean scans, so no false-alarm rate and no Pd at one is defined; "
                            f"refusing to compare on it (--suite {folders[0]} MORE_CLEAN_SCANS)")
        rows = _class_rows(name, m, key, far, tolerance, z, failures)
        if not rows:
            failures.append(f"{name}: no threat scans, so there is no Pd to compare; refusing to pass on it")
        out["suites"][name] = {
            "images": len(records), "clean_scans": clean, "pd_key": key, "classes": rows,
            "at_thresholds": _threshold_rows(name, m, target, tolerance, z, failures),
            "mAP50": {k: v["mAP50"] for k, v in m.items()},
            "by_build": {k: v.get("by_build") for k, v in m.items() if v.get("by_build")},
            "latency_ms": {k: _latency_ms(d, [r.file for r in records]) for k, d in det.items()}}
        note = unresolved_note(clean, far) if clean else None  # the threshold at `far` rests on few clean scans
        if note:
            out["suites"][name]["note"] = f"{note} (--suite {folders[0]} MORE_CLEAN_SCANS)"
    out["passed"] = not failures
    return out


def _f(v: float | None, spec: str) -> str:
    """``v`` formatted, or a dash where it is undefined."""
    return "—" if v is None else format(v, spec)


def _print(c: dict[str, Any], challenger: str, champion: str) -> None:
    print(f"challenger {challenger} vs champion {champion}; Pd at parcel FAR {c['far']:g}, tolerance {c['tolerance']}")
    for name, s in c["suites"].items():
        print(f"\n{name} ({s['images']} scans): mAP50 {s['mAP50']['champion']} -> {s['mAP50']['challenger']}, "
              f"latency {s['latency_ms']['champion']} -> {s['latency_ms']['challenger']} ms")
        print(f"{'class':<18}{'n':>5} {'Pd champion':>12} {'Pd challenger':>14} {'delta':>7} {'noise':>6} {'AP50':>13}")
        for cls, r in s["classes"].items():
            print(f"{cls:<18}{r['n']:>5} {_f(r['pd_champion'], '.3f'):>12} {_f(r['pd_challenger'], '.3f'):>14} "
                  f"{_f(r['pd_delta'], '+.3f'):>7} {_f(r['noise'], '.3f'):>6} "
                  f"{r['ap50_champion'] or 0:>6.3f}->{r['ap50_challenger'] or 0:.3f}")
        t = s["at_thresholds"]
        print("at each model's own alarm thresholds (the decision in service):")
        print(f"{'parcel Pd':<18}{t['pd']['n']:>5} {_f(t['pd']['champion'], '.3f'):>12} "
              f"{_f(t['pd']['challenger'], '.3f'):>14} {_f(t['pd']['delta'], '+.3f'):>7} {_f(t['pd']['noise'], '.3f'):>6}")
        print(f"{'parcel FAR':<18}{t['far']['n']:>5} {_f(t['far']['champion'], '.4f'):>12} "
              f"{_f(t['far']['challenger'], '.4f'):>14} {'':>7} {_f(t['far']['noise'], '.4f'):>6}  "
              f"challenger's target {_f(t['far']['target'], 'g')}")
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
