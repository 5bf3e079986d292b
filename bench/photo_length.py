"""Where the length measurement goes wrong on held-out photo renders: the error split into scale and extent.

For every photo with a card (or a ruler, ``--reference ruler``) and a firearm, the photo model's masks are
computed once (cached in ``--cache``), then ``armscan.inference.measure.measure`` runs on them ("model masks":
the engine's, whose weapon and barrel masks are every orientation view's, turned back onto the photo and
averaged), on the first view's masks alone (what the engine used before), and on the ground-truth masks
brought to the model's stride
("oracle" masks: what the measurement does with perfect coarse masks), side by side. The relative error of
the overall length is split into

- the **scale** error: the true end points measured through the found card (the map the measurement made of
  it: a similarity for a small card, else an affine map or a homography; a ruler: mm per px at the centre),
  against the labelled length; "true card, affine map" is the same through the true corners and an affine map;
- the **extent** error: the measured end points of the weapon, mapped to mm with the true homography,
  against the labelled length;

and each photo is given one failure kind. Prints a table; ``--png-dir`` draws the worst photos.

    .venv/bin/python bench/photo_length.py --data runs/photos-test --reference card
    .venv/bin/python bench/photo_length.py --reference ruler --png-dir /tmp/length
    .venv/bin/python bench/photo_length.py --data runs/photos-phone --max-side 2400   # what-if: full resolution
"""

from __future__ import annotations

import argparse
import hashlib
import inspect
import json
import time
from collections import Counter
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from armscan.inference import measure as measure_mod
from armscan.inference.measure import measure
from armscan.inference.photo import PhotoClassifier
from armscan.training.photo_data import mask_planes  # the masks training teaches: each cell's covered share


def _model_masks(clf: PhotoClassifier, sha: str, items: list[dict[str, Any]], data: Path, cache: Path) -> dict[int, Any]:
    """Per image id: (mask probabilities (M, h, w) as the engine makes them, the first view's alone (how the
    engine made them before its views' masks were averaged), input scale, P(no firearm)), computed once per
    model and cache file (the cache records the SHA-256 of the model and of the engine's code that makes the masks:
    another model's or another engine's masks are recomputed, not reused)."""
    sha = f"{sha}:{hashlib.sha256(Path(inspect.getfile(PhotoClassifier)).read_bytes()).hexdigest()}"
    if cache.exists():
        z = np.load(cache)
        if "model_sha256" in z and str(z["model_sha256"]) == sha and all(f"f{it['id']}" in z for it in items):
            return {it["id"]: (z[f"m{it['id']}"].astype(np.float32), z[f"f{it['id']}"].astype(np.float32),
                               float(z[f"s{it['id']}"]), float(z[f"p{it['id']}"])) for it in items}
    md = clf.metadata
    out, store = {}, {}
    for it in items:
        image = cv2.imread(str(data / it["file_name"]), cv2.IMREAD_COLOR)
        fam, _, masks, scale = clf.probabilities(image)
        first = clf.probabilities(image, rotations=False)[2]
        p_none = float(fam[md.classes.index(md.no_firearm)]) if md.no_firearm in md.classes else 0.0
        out[it["id"]] = (masks, first, scale, p_none)
        store.update({f"m{it['id']}": masks.astype(np.float16), f"f{it['id']}": first.astype(np.float16),
                      f"s{it['id']}": scale, f"p{it['id']}": p_none})
    np.savez_compressed(cache, model_sha256=np.array(sha), **store)
    return out


def _to_mm(hom_px_to_mm: np.ndarray, pts: Any) -> np.ndarray:
    return cv2.perspectiveTransform(np.asarray(pts, np.float64).reshape(-1, 1, 2), hom_px_to_mm).reshape(-1, 2)


def _affine_length(corners: Any, ends: Any) -> float:
    """The distance between ``ends`` (px) in mm through the affine map that takes ``corners`` to the ID-1 card
    (corners in any order around the card, long side first or not): what the card alone makes of the length."""
    c = np.asarray(corners, np.float64)
    if np.linalg.norm(c[0] - c[1]) + np.linalg.norm(c[2] - c[3]) < np.linalg.norm(c[1] - c[2]) + np.linalg.norm(c[3] - c[0]):
        c = np.roll(c, -1, axis=0)
    dst = np.array([[0, 0], [85.6, 0], [85.6, 53.98], [0, 53.98]])
    sol, *_ = np.linalg.lstsq(np.hstack([c, np.ones((4, 1))]), dst, rcond=None)
    e = np.hstack([np.asarray(ends, np.float64), np.ones((2, 1))]) @ sol
    return float(np.linalg.norm(e[1] - e[0]))


def _card_length(m: Any, ends: Any) -> float:
    """The distance between ``ends`` (px) in mm through the map that the measurement made of its card's corners
    (``m.mapping``: similarity, affine or homography; :func:`armscan.inference.measure._plane_map`)."""
    hom = measure_mod._plane_map(np.asarray(m.card_corners, np.float64), (85.6, 53.98), m.mapping or "affine")
    e = measure_mod._to_plane(np.asarray(ends, np.float64), hom, 0.0)
    return float(np.linalg.norm(e[1] - e[0]))


def _corner_error(found: list[tuple[float, float]], true: list[list[float]]) -> float:
    """Largest corner distance (px) under the best matching of the two quadrilaterals' corner orders."""
    a, b = np.asarray(found), np.asarray(true)
    best = np.inf
    for seq in (b, b[::-1]):
        for k in range(4):
            best = min(best, float(np.linalg.norm(a - np.roll(seq, k, axis=0), axis=1).max()))
    return best


def _row(m: Any, meta: dict[str, Any], size: tuple[int, int], gated: bool) -> dict[str, Any]:
    """One photo's figures and failure kind."""
    px_to_mm = np.linalg.inv(np.asarray(meta["table_to_image"], np.float64))
    w, h = size
    centre = _to_mm(px_to_mm, [[w / 2, h / 2], [w / 2 + 1, h / 2]])
    true_mm_px = float(np.linalg.norm(centre[1] - centre[0]))
    affine = None
    if meta.get("card_corners_px") is not None:
        affine = _affine_length(meta["card_corners_px"], meta["ends_px"]) / float(meta["length_mm"]) - 1
    row: dict[str, Any] = {"affine_floor": affine, "measured": False, "kind": "", "rel": None, "scale": None, "extent": None,
                           "corner_px": None, "covered": None}
    if not gated:
        row["kind"] = "classifier: no firearm"
        return row
    if m.reference is None:
        row["kind"] = "reference not found"
        return row
    L = float(meta["length_mm"])
    if m.card_corners is not None and meta.get("card_corners_px") is not None:
        row["corner_px"] = _corner_error(m.card_corners, meta["card_corners_px"])
        row["scale"] = _card_length(m, meta["ends_px"]) / L - 1  # the true ends through our card's map
    elif m.mm_per_px:
        row["scale"] = m.mm_per_px / true_mm_px - 1
    if m.overall is None:
        row["kind"] = "no weapon outline"
        return row
    row["measured"] = True
    row["rel"] = m.overall.mm / L - 1
    row["covered"] = abs(m.overall.mm - L) <= m.overall.plus_minus_mm
    if getattr(m, "ends", None) is not None:  # getattr: the previous measure.py (before `ends`) can be scored too
        e = _to_mm(px_to_mm, m.ends)
        row["extent"] = float(np.linalg.norm(e[1] - e[0])) / L - 1
    card_side = 85.6 / true_mm_px
    if m.reference == "card" and row["corner_px"] is not None and row["corner_px"] > 0.5 * card_side:
        row["kind"] = "card: wrong object"
    elif abs(row["rel"]) < 0.05:
        row["kind"] = "ok (<5%)"
    elif row["scale"] is not None and abs(row["scale"]) >= 0.05 and (row["extent"] is None or abs(row["extent"]) < 0.05):
        row["kind"] = "scale off"
    elif row["extent"] is not None and abs(row["extent"]) >= 0.05 and abs(row["scale"] or 0) < 0.05:
        row["kind"] = "extent too long" if row["extent"] > 0 else "extent too short"
    else:
        row["kind"] = "both off"
    return row


def _summary(name: str, rows: list[dict[str, Any]], ms: list[float]) -> None:
    rel = np.array([abs(r["rel"]) for r in rows if r["measured"]])
    scale = np.array([abs(r["scale"]) for r in rows if r["measured"] and r["scale"] is not None])
    ext = np.array([abs(r["extent"]) for r in rows if r["measured"] and r["extent"] is not None])
    cov = [r["covered"] for r in rows if r["measured"]]
    q = (lambda a, p: f"{np.percentile(a, p):.3f}" if len(a) else "  -  ")  # noqa: E731
    print(f"\n== {name}: {len(rows)} photos, measured {len(rel) / max(len(rows), 1):.3f}")
    print(f"   |rel error|  median {q(rel, 50)}  p90 {q(rel, 90)}  under 5% {np.mean(rel < 0.05) if len(rel) else 0:.3f}"
          f"  (of all photos: {np.sum(rel < 0.05) / max(len(rows), 1):.3f})"
          f"  over 20% {np.mean(rel > 0.2) if len(rel) else 0:.3f}")
    floor = np.array([abs(r["affine_floor"]) for r in rows if r.get("affine_floor") is not None])
    print(f"   |true card, affine map| median {q(floor, 50)}  p90 {q(floor, 90)}  (the card's own limit under tilt)")
    signed = {k: np.array([r[k] for r in rows if r["measured"] and r[k] is not None]) for k in ("scale", "extent")}
    print(f"   |scale err|  median {q(scale, 50)}  p90 {q(scale, 90)}  under 5% {np.mean(scale < 0.05) if len(scale) else 0:.3f}"
          f"  (signed median {q(signed['scale'], 50)})")
    print(f"   |extent err| median {q(ext, 50)}  p90 {q(ext, 90)}  under 5% {np.mean(ext < 0.05) if len(ext) else 0:.3f}"
          f"  (signed median {q(signed['extent'], 50)})")
    print(f"   +/- covers the truth on {np.mean(cov) if cov else 0:.3f};  measure() median {np.median(ms):.1f} ms,"
          f" p90 {np.percentile(ms, 90):.1f} ms")
    for kind, n in sorted(Counter(r["kind"] for r in rows).items(), key=lambda x: -x[1]):
        print(f"   {kind:24s} {n:4d}")


def _draw(path: Path, image: np.ndarray, m: Any, meta: dict[str, Any], masks: np.ndarray, scale: float) -> None:
    out = image.copy()
    h, w = image.shape[:2]
    for i, colour in ((0, (0, 0, 255)), (2, (255, 0, 0))):  # the coarse weapon and card masks
        big = cv2.resize(masks[i], (round(masks.shape[2] * 4 / scale), round(masks.shape[1] * 4 / scale)))[:h, :w]
        out[big > 0.35] = (0.6 * out[big > 0.35] + 0.4 * np.array(colour)).astype(np.uint8)
    if meta.get("card_corners_px"):
        cv2.polylines(out, [np.round(np.array(meta["card_corners_px"])).astype(np.int32)], True, (0, 255, 0), 1)
    if m.card_corners:
        cv2.polylines(out, [np.round(np.array(m.card_corners)).astype(np.int32)], True, (0, 255, 255), 1)
    for p in meta["ends_px"]:
        cv2.circle(out, (round(p[0]), round(p[1])), 4, (0, 255, 0), 1)
    for p in getattr(m, "ends", None) or []:
        cv2.circle(out, (round(p[0]), round(p[1])), 6, (0, 255, 255), 1)
    zoom = max(1, 900 // max(h, w))
    cv2.imwrite(str(path), cv2.resize(out, (w * zoom, h * zoom), interpolation=cv2.INTER_NEAREST))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=Path("runs/photos-test"))
    ap.add_argument("--model", type=Path, default=Path("models/bundled/armscan-photo.onnx"))
    ap.add_argument("--reference", choices=("card", "ruler"), default="card")
    ap.add_argument("--cache", type=Path, default=Path("/tmp/armscan_photo_masks.npz"))
    ap.add_argument("--png-dir", type=Path, default=None, help="draw the worst photos here")
    ap.add_argument("--show", type=int, default=8)
    ap.add_argument("--kind", default=None, help='show (and draw) only photos of this failure kind, e.g. "extent too long"')
    ap.add_argument("--no-oracle", action="store_true", help="skip the ground-truth masks run")
    # what-ifs on the measurement's two resolution settings (armscan.inference.measure), for this run only
    ap.add_argument("--max-side", type=int, default=None, help=f"measuring resolution (default {measure_mod.MAX_SIDE} px)")
    ap.add_argument("--projective-min-px", type=float, default=None,
                    help=f"smallest card fitted with a homography (default {measure_mod.PROJECTIVE_MIN_PX:g} px)")
    args = ap.parse_args()
    if args.max_side is not None:
        measure_mod.MAX_SIDE = args.max_side
    if args.projective_min_px is not None:
        measure_mod.PROJECTIVE_MIN_PX = args.projective_min_px

    ann = json.loads((args.data / "annotations.json").read_text())
    items = [it for it in ann["images"] if it["armscan"]["reference"] == args.reference
             and it["armscan"]["label"] != "no_firearm" and it["armscan"]["length_mm"]]
    clf = PhotoClassifier.from_onnx(args.model, threads=1)
    md = clf.metadata
    cached = _model_masks(clf, hashlib.sha256(args.model.read_bytes()).hexdigest(), items, args.data, args.cache)
    names = ["model masks", "first view's masks", "oracle masks"]
    runs: dict[str, list[dict[str, Any]]] = {n: [] for n in names}
    times: dict[str, list[float]] = {n: [] for n in names}
    worst = []
    for it in items:
        meta = it["armscan"]
        image = cv2.imread(str(args.data / it["file_name"]), cv2.IMREAD_COLOR)
        masks, first, scale, p_none = cached[it["id"]]
        sets = [("model masks", masks, p_none < 0.5), ("first view's masks", first, p_none < 0.5)]
        if not args.no_oracle:
            gt = cv2.imread(str(args.data / meta["mask"]), cv2.IMREAD_UNCHANGED)
            sets.append(("oracle masks", mask_planes(gt, clf.spec, md.mask_stride).astype(np.float32), True))
        for name, mk, gated in sets:
            t = time.perf_counter()
            m = measure(mk, image, md.card_mm, scale, md.mask_stride, md.masks)
            times[name].append((time.perf_counter() - t) * 1000)
            row = _row(m, meta, (image.shape[1], image.shape[0]), gated)
            row["id"] = it["id"]
            runs[name].append(row)
            if name == "model masks" and gated and args.kind in (None, row["kind"]):
                worst.append((abs(row["rel"]) if row["measured"] else 9.0, it, m, masks, scale))
    for name, rows in runs.items():
        if rows:
            _summary(f"{args.reference}, {name}", rows, times[name])
    worst.sort(key=lambda x: -x[0])
    print("\nworst (model masks):  id  rel  scale  extent  corner_px  card_px  kind")
    for _, it, m, masks, scale in worst[: args.show]:
        r = next(x for x in runs["model masks"] if x["id"] == it["id"])
        card_px = 85.6 * it["armscan"]["px_per_mm"]
        f = (lambda v: f"{v:+.3f}" if v is not None else "   -  ")  # noqa: E731
        print(f"  {it['id']}  {f(r['rel'])} {f(r['scale'])} {f(r['extent'])} "
              f"{r['corner_px'] if r['corner_px'] is None else round(r['corner_px'], 1)}  {card_px:.0f}  {r['kind']}")
        if args.png_dir is not None:
            args.png_dir.mkdir(parents=True, exist_ok=True)
            image = cv2.imread(str(args.data / it["file_name"]), cv2.IMREAD_COLOR)
            _draw(args.png_dir / f"{it['id']}.png", image, m, it["armscan"], masks, scale)


if __name__ == "__main__":
    main()
