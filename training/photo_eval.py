"""Export and evaluation of the seizure-photo model.

``export_photo`` writes the ONNX (raw logits and mask logits, dynamic batch) with its metadata, then
runs the exported model through the torch-free engine on validation renders to fit the temperatures
and choose the confidence bands, and stores them in the metadata.

``evaluate_photo`` measures, on held-out photos: top-1 accuracy and expected calibration error per
class, the bands (share answered and accuracy of each), build accuracy, **rotation agreement** (the
answer on each of the 7 other flips and quarter turns of a photo against the answer on the photo
itself), and the **length error** against a card, against a ruler, and how often a photo without a
reference is correctly reported as unmeasurable.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np
import torch

from armscan.inference.photo import PHOTO_OUTPUTS, PhotoClassifier, dihedral_views
from armscan.training.calibration import expected_calibration_error
from armscan.training.checkpoint import save_weights_checkpoint
from armscan.training.config import VAL_SEED
from armscan.training.export import write_metadata
from armscan.training.model_card import budget_note
from armscan.training.photo import _labelled, _renders, calibrate, model_from_photo_checkpoint, photo_metadata


def export_photo(checkpoint: Path, out: Path, version: str, calib_n: int = 600, calib_seed: int = VAL_SEED,
                 calib: Path | None = None, opset: int = 18) -> Any:
    """Export a photo checkpoint; calibrate on ``calib`` (a photo folder) or ``calib_n`` renders from ``calib_seed``."""
    from armscan.datasets.photo import read_photo_dataset

    ckpt = torch.load(checkpoint, map_location="cpu", weights_only=False)
    model = model_from_photo_checkpoint(ckpt)
    size = int(ckpt["preprocess"]["size"])
    out.parent.mkdir(parents=True, exist_ok=True)
    batch = torch.export.Dim("batch", min=1, max=64)
    program = torch.onnx.export(model, (torch.zeros(2, 3, size, size),), dynamo=True, input_names=["images"],
                                output_names=list(PHOTO_OUTPUTS), dynamic_shapes={"x": {0: batch}},
                                opset_version=opset, verbose=False)
    if program is None:
        raise RuntimeError("torch.onnx.export returned no program")
    program.save(str(out))
    if checkpoint.resolve() != out.with_suffix(".pt").resolve():
        save_weights_checkpoint(checkpoint, out.with_suffix(".pt"))  # beside the ONNX: what fine-tuning starts from
    summary = {"config": ckpt.get("config", {}), "epochs_done": ckpt.get("epoch"), "lineage": ckpt.get("lineage"),
               "train_minutes": round(ckpt.get("elapsed_s", 0.0) / 60, 1), "ema_updates": ckpt.get("ema_updates"),
               "budget_minutes": round(ckpt.get("budget_spent_s", 0.0) / 60, 1),
               "checkpoint_sha256": hashlib.sha256(checkpoint.read_bytes()).hexdigest()[:16],
               "data": "procedural renders (armscan.datasets.photo): no real photographs"
               if ckpt.get("config", {}).get("data", {}).get("kind") != "coco" else "photo folders"}
    md = photo_metadata(ckpt, version, summary)
    write_metadata(out, md)
    classifier = PhotoClassifier.from_onnx(out)
    samples = read_photo_dataset(calib) if calib is not None else _renders(calib_n, calib_seed)
    labelled = _labelled(samples)
    md.refine, md.refine_weight, options = choose_refine(classifier, labelled)  # for callers that ask for one view
    md.orientation_average = True  # the default answer: the same for every orientation of the photo
    classifier.metadata.refine, classifier.metadata.refine_weight = md.refine, md.refine_weight
    classifier.metadata.orientation_average = md.orientation_average
    t, tb, bands, stats = calibrate(classifier, samples)
    md.temperature, md.build_temperature, md.bands = t, tb, bands
    classifier.metadata.temperature, classifier.metadata.build_temperature = t, tb  # as the export will answer
    md.mask_views, views = choose_mask_views(classifier, labelled)
    md.training["calibration"] = {**stats, "on": str(calib) if calib else f"{calib_n} renders from seed {calib_seed}",
                                  "second_look": {"chosen": f"{md.refine}@{md.refine_weight:g}", "options": options},
                                  "mask_views": views}
    write_metadata(out, md)
    return md


def choose_mask_views(classifier: PhotoClassifier, labelled: list[dict[str, Any]]) -> tuple[Any, dict[str, Any]]:
    """Which masks the orientation average measures lengths on (``mask_views``): each option's median relative
    error of the overall length on the validation photos that show a card and a firearm of known length. The
    views' average (the default) unless the photo's own view is better. Returns (choice, every option's figures)."""
    md = classifier.metadata
    usable = [s for s in labelled if s["reference"] == "card" and s["length_mm"] and s["label"] != md.no_firearm]
    scores: dict[str, Any] = {"photos": len(usable)}
    for views in ("average", "photo"):
        md.mask_views = views
        errors = []
        for s in usable:
            got = classifier.classify(s["image"], rotations=True).overall_length
            errors.append(abs(got.mm / s["length_mm"] - 1) if got is not None else np.inf)  # not measured: a miss
        scores[views] = {"median_error": round(float(np.median(errors)), 4) if errors else None,
                         "under_5pct": round(float(np.mean(np.asarray(errors) < 0.05)), 4) if errors else None}
    md.mask_views = "average"
    if usable and scores["photo"]["median_error"] < scores["average"]["median_error"]:
        md.mask_views = "photo"
    scores["chosen"] = md.mask_views
    return md.mask_views, scores


REFINE_OPTIONS = (("none", 0.5), ("crop", 0.5), ("upright", 0.5), ("upright", 1.0))
REFINE_TIE = 0.01  # top-1 differences under this are a tie on validation photos


def choose_refine(classifier: PhotoClassifier, labelled: list[dict[str, Any]], agreement_n: int = 100
                  ) -> tuple[Any, float, dict[str, dict[str, float]]]:
    """The second look (and its weight) for the exported model, chosen on validation photos: the most accurate
    option, unless one within ``REFINE_TIE`` of its top-1 agrees more under flips and quarter turns (measured on
    the first ``agreement_n`` photos). Returns (refine, weight, every option's top-1 and agreement)."""
    md = classifier.metadata
    scores: dict[str, dict[str, float]] = {}
    for refine, weight in REFINE_OPTIONS:
        md.refine, md.refine_weight = refine, weight  # type: ignore[assignment]
        top1 = float(np.mean([md.classes[int(np.argmax(classifier.probabilities(s["image"], False)[0]))] == s["label"]
                              for s in labelled]))
        agree = []
        for s in labelled[:agreement_n]:
            own = int(np.argmax(classifier.probabilities(s["image"], False)[0]))
            agree += [int(np.argmax(classifier.probabilities(v, False)[0])) == own for v in _dihedral(s["image"])]
        scores[f"{refine}@{weight:g}"] = {"top1": round(top1, 4), "rotation_agreement": round(float(np.mean(agree)), 4)}
    best = max(scores.values(), key=lambda r: r["top1"])["top1"]
    key = max((k for k, r in scores.items() if r["top1"] >= best - REFINE_TIE),
              key=lambda k: (scores[k]["rotation_agreement"], scores[k]["top1"]))
    chosen, weight_text = key.split("@")
    return chosen, float(weight_text), scores


def _dihedral(image: np.ndarray) -> list[np.ndarray]:
    """The 7 other flips and quarter turns of an image."""
    return [np.ascontiguousarray(v) for v in dihedral_views(image)[1:]]


def evaluate_photo(classifier: PhotoClassifier, samples: list[Any], rotations: bool = True,
                   progress: bool = True, other_n: int = 100) -> dict[str, Any]:
    """Metrics on labelled photos (renders, or records of a photo folder); see the module docstring. The model
    answers in its own mode (one view, or the orientation average of ``orientation_average`` models). The first
    ``other_n`` photos are also classified in the other mode, in each of their eight orientations: its top-1
    and rotation agreement go under ``other_mode``."""
    from tqdm import tqdm

    md = classifier.metadata
    other = not md.orientation_average
    alt = []
    for s in tqdm(_labelled(samples)[:other_n] if rotations else [], desc="the other mode", unit="photo",
                  mininterval=5.0, disable=not progress):
        labels = [md.classes[int(np.argmax(classifier.probabilities(v, rotations=other)[0]))]
                  for v in [s["image"], *_dihedral(s["image"])]]
        alt.append((labels[0] == s["label"], float(np.mean([v == labels[0] for v in labels[1:]]))))
    rows = []
    for s in tqdm(_labelled(samples), desc="evaluating photos", unit="photo", mininterval=5.0, disable=not progress):
        r = classifier.classify(s["image"])
        row = {"label": s["label"], "pred": r.label, "answer": r.answer, "p": r.probability, "band": r.band,
               "build": s["build"], "build_pred": r.build, "reference": s["reference"], "length_mm": s["length_mm"],
               "barrel_mm": s["barrel_mm"], "found": r.reference,
               "overall": r.overall_length.mm if r.overall_length else None,
               "overall_pm": r.overall_length.plus_minus_mm if r.overall_length else None,
               "barrel": r.barrel_length.mm if r.barrel_length else None}
        if rotations:
            views = [classifier.classify(v, measure_length=False) for v in _dihedral(s["image"])]
            row["agree_label"] = float(np.mean([v.label == r.label for v in views]))
            row["agree_answer"] = float(np.mean([v.answer == r.answer for v in views]))
        rows.append(row)
    out = summarise(rows, md.classes)
    out["mode"] = "orientation average" if md.orientation_average else "one view"
    if alt:
        out["other_mode"] = {"mode": "orientation average" if other else "one view", "n": len(alt),
                             "top1": round(float(np.mean([t[0] for t in alt])), 4),
                             "rotation_agreement": round(float(np.mean([t[1] for t in alt])), 4)}
    return out


def _rel(rows: list[dict[str, Any]], est: str, true: str) -> list[float]:
    return [abs(r[est] - r[true]) / r[true] for r in rows if r[est] is not None and r[true]]


def _stats(errors: list[float]) -> dict[str, Any]:
    if not errors:
        return {"n": 0}
    e = np.asarray(errors)
    return {"n": len(e), "median_rel_error": round(float(np.median(e)), 4), "mean_rel_error": round(float(e.mean()), 4),
            "p90_rel_error": round(float(np.percentile(e, 90)), 4), "share_under_5pct": round(float((e < 0.05).mean()), 4)}


def summarise(rows: list[dict[str, Any]], classes: list[str]) -> dict[str, Any]:
    """Aggregate per-photo rows into the metrics dict."""
    right = np.array([r["pred"] == r["label"] for r in rows])
    p = np.array([r["p"] for r in rows])
    per_class = {}
    for c in classes:
        idx = [i for i, r in enumerate(rows) if r["label"] == c]
        if idx:
            e, _ = expected_calibration_error(p[idx], right[idx], 10)
            per_class[c] = {"n": len(idx), "top1": round(float(right[idx].mean()), 4), "ece": round(e, 4)}
    bands = {}
    for b in ("confident", "probable", "uncertain"):
        idx = [i for i, r in enumerate(rows) if r["band"] == b]
        bands[b] = {"share": round(len(idx) / max(len(rows), 1), 4),
                    "accuracy": round(float(right[idx].mean()), 4) if idx else None}
    answered = [i for i, r in enumerate(rows) if r["answer"] != "uncertain"]
    builds = [r for r in rows if r["build"] not in (None, "unknown") and r["build_pred"] is not None]
    with_card = [r for r in rows if r["reference"] == "card" and r["label"] != "no_firearm"]
    with_ruler = [r for r in rows if r["reference"] == "ruler" and r["label"] != "no_firearm"]
    without = [r for r in rows if r["reference"] == "none" and r["label"] != "no_firearm"]
    covered = [abs(r["overall"] - r["length_mm"]) <= r["overall_pm"] for r in with_card
               if r["overall"] is not None and r["length_mm"]]
    out: dict[str, Any] = {
        "photos": len(rows), "top1": round(float(right.mean()), 4),
        "ece": round(expected_calibration_error(p, right, 15)[0], 4), "per_class": per_class, "bands": bands,
        "answered_share": round(len(answered) / max(len(rows), 1), 4),
        "answered_accuracy": round(float(right[answered].mean()), 4) if answered else None,
        "build_accuracy": round(float(np.mean([r["build"] == r["build_pred"] for r in builds])), 4) if builds else None,
        "length_card": {"overall": _stats(_rel(with_card, "overall", "length_mm")),
                        "barrel": _stats(_rel(with_card, "barrel", "barrel_mm")),
                        "measured_share": round(float(np.mean([r["overall"] is not None for r in with_card])), 4)
                        if with_card else None,
                        "interval_coverage": round(float(np.mean(covered)), 4) if covered else None},
        "length_ruler": {"overall": _stats(_rel(with_ruler, "overall", "length_mm")),
                         "measured_share": round(float(np.mean([r["overall"] is not None for r in with_ruler])), 4)
                         if with_ruler else None},
        "no_reference": {"n": len(without),
                         "reported_unmeasurable": round(float(np.mean([r["overall"] is None for r in without])), 4)
                         if without else None},
    }
    if rows and "agree_label" in rows[0]:
        out["rotation_agreement"] = round(float(np.mean([r["agree_label"] for r in rows])), 4)
        out["rotation_agreement_answer"] = round(float(np.mean([r["agree_answer"] for r in rows])), 4)
    return out


def load_photo_classifier(model: str | Path) -> PhotoClassifier:
    """An exported .onnx, or a training checkpoint (evaluated through the same engine, uncalibrated)."""
    from armscan.training.photo import torch_classifier

    path = Path(model)
    if path.suffix == ".onnx":
        return PhotoClassifier.from_onnx(path)
    ckpt = torch.load(path, map_location="cpu", weights_only=False)
    return torch_classifier(model_from_photo_checkpoint(ckpt), photo_metadata(ckpt, "checkpoint"))


def _trained_on(training: dict[str, Any]) -> str:
    """What the model card says the model was trained on: renders, or photo folders fine-tuned from a parent."""
    data = training.get("config", {}).get("data", {})
    scenes = ("generic firearm silhouettes drawn with the X-ray engine's primitives, painted as metal, polymer or "
              "printed plastic, on wood, laminate, metal, cloth, paper or cutting-mat tables, with an ID-1 card or a "
              "ruler, distractors, mild camera tilt, lighting, noise and JPEG artefacts")
    lineage = training.get("lineage") or {}
    if data.get("kind") != "coco":
        renders = f"{data.get('cache_size', '?')} photos, seeds from {data.get('train_seed', 0)}"
        if lineage.get("parent"):  # a refresh on renders the parent had not seen
            renders = (f"refreshed from `{lineage['parent']}` (SHA-256 {str(lineage.get('parent_sha256'))[:16]}, itself "
                       f"trained on renders) on {renders}")
        return f"**Procedural renders only** (`armscan.datasets.photo`, {renders}): {scenes}."
    folders = ", ".join(f"`{f}` (content hash {h})" for f, h in (lineage.get("datasets") or {}).items()) or "photo folders"
    parent = f", fine-tuned from `{lineage['parent']}` (SHA-256 {str(lineage.get('parent_sha256'))[:16]})" \
        if lineage.get("parent") else ""
    replay = f"; {data.get('replay', 0):g} of each epoch replayed {data.get('cache_size')} procedural renders: {scenes}" \
        if data.get("replay") else ""
    return f"**Labelled photo folders**: {folders}{parent}{replay}."


def _recipe(training: dict[str, Any]) -> str:
    """The shipped recipe a photo model came from: photo folders (fine-tuning), a refresh of a parent on renders
    (the mask refresh), or renders from scratch."""
    if training.get("config", {}).get("data", {}).get("kind") == "coco":
        return "photo_finetune"
    return "photo_masks" if (training.get("lineage") or {}).get("parent") else "photo_small"


def _weights_note(cfg: dict[str, Any]) -> str:
    weights = cfg.get("loss_weights") or {}
    return "; loss weights " + ", ".join(f"{k} x{v:g}" for k, v in weights.items()) if weights else ""


def photo_card(model: Path, metrics: dict[str, Any], latency_ms: float | None = None) -> str:
    """The photo model's card (Markdown) from its metadata and ``evaluate_photo`` metrics on held-out renders."""
    md = PhotoClassifier.from_onnx(model).metadata
    cal = md.training.get("calibration", {})
    cfg = md.training.get("config", {})
    budget = budget_note(cfg, md.training.get("budget_minutes"))
    data = cfg.get("data", {})
    lines = [
        f"# Model card: {md.name} {md.version} (seizure photos)", "",
        "## What it does",
        "Classifies a photo of a seized weapon lying on a table into one of "
        f"{len(md.classes) - 2} firearm families (by mechanism), `part_only` or `no_firearm`; flags its build "
        "(metal, polymer or printed); and predicts four masks (weapon, barrel, ID-1 card, ruler) from which "
        "`armscan.inference.measure` measures the overall and barrel length against the card or ruler. "
        "When the top probability is under the `probable` threshold it answers `uncertain` instead of guessing.", "",
        "## What it was trained on", _trained_on(md.training), *(
        [] if data.get("kind") == "coco" else [
            "**It has never seen a real photograph.** Real seized weapons, real cards and real tables differ; "
            "fine-tune it on labelled real photos (`armscan data import imagefolder DIR --photos`, then "
            f"`armscan train --init-from {model} --data FOLDER`) before relying on it."]),
        f"Recipe: `training/{_recipe(md.training)}.yaml` ({md.architecture}, {md.preprocess.get('size')} px, "
        f"{md.training.get('epochs_done')} epochs, {md.training.get('train_minutes')} min on 2 CPU cores{budget}"
        f"{_weights_note(cfg)}).",
        "",
        "## Calibration and bands (chosen on validation renders, stored in the model)",
        f"- temperature {md.temperature} (family), {md.build_temperature} (build); expected calibration error "
        f"{cal.get('ece_before')} before, {cal.get('ece_after')} after, on {cal.get('on', '?')}",
        f"- `confident`: probability >= {md.bands.confident} (answers above reach 98% accuracy on validation, "
        f"lower 95% bound); `probable`: >= {md.bands.probable} (90%); below: `uncertain`",
        f"- second look: `{md.refine}` (weight {md.refine_weight:g} on its logits); on validation renders, top-1 and "
        "rotation agreement of each option: " + "; ".join(
            f"{k} {v['top1']} / {v['rotation_agreement']}" for k, v in cal.get("second_look", {}).get("options", {}).items()),
        *([f"- lengths measured on the weapon masks of `{md.mask_views}` (the orientation views' average, or the photo's "
           f"own view); on {views['photos']} validation renders with a card, median error / under 5%: " + "; ".join(
               f"{k} {views[k]['median_error']} / {views[k]['under_5pct']}" for k in ("average", "photo"))]
          if (views := cal.get("mask_views")) else []),
        "",
        f"## Held-out renders ({metrics['photos']} photos, seeds from 200,000,000)",
        f"- top-1 accuracy {metrics['top1']}, expected calibration error {metrics['ece']}",
        f"- answered (not uncertain): {metrics['answered_share']} of photos, accuracy {metrics['answered_accuracy']}",
        "- bands: " + ", ".join(f"{b} {v['share']} of photos (accuracy {v['accuracy']})"
                                 for b, v in metrics["bands"].items()),
        f"- build accuracy (photos with a weapon): {metrics['build_accuracy']}",
        f"- answering with {metrics.get('mode', 'one view')}: rotation agreement (the answer on the 7 other flips and "
        "quarter turns, against the photo's own): "
        f"{metrics.get('rotation_agreement')} (label), {metrics.get('rotation_agreement_answer')} (answer)",
    ]
    if "other_mode" in metrics:
        t = metrics["other_mode"]
        lines.append(f"- in the other mode, {t['mode']} (first {t['n']} photos): top-1 {t['top1']}, rotation "
                     f"agreement {t['rotation_agreement']}")
    lc, lr = metrics["length_card"], metrics["length_ruler"]
    lines += [
        f"- overall length against a card: measured on {lc['measured_share']} of such photos; relative error "
        f"median {lc['overall'].get('median_rel_error')}, p90 {lc['overall'].get('p90_rel_error')}, under 5% on "
        f"{lc['overall'].get('share_under_5pct')}; the stated +/- covers the truth on {lc['interval_coverage']}",
        f"- visible barrel length against a card: median error {lc['barrel'].get('median_rel_error')} (a barrel "
        "hidden under a fore-end or magazine tube reads short: this is the visible length)",
        f"- overall length against a ruler: measured on {lr['measured_share']}; median error "
        f"{lr['overall'].get('median_rel_error')}, under 5% on {lr['overall'].get('share_under_5pct')}",
        f"- no reference in the photo: reported as not measurable on {metrics['no_reference']['reported_unmeasurable']}",
        "", "| class | n | top-1 | ECE |", "|---|---|---|---|",
        *(f"| {c} | {v['n']} | {v['top1']} | {v['ece']} |" for c, v in metrics["per_class"].items()), "",
    ]
    if latency_ms is not None:
        lines += [f"Latency: {latency_ms:.1f} ms per photo in onnxruntime (batch 1, 2 threads); "
                  "`python bench/photo_latency.py` compares it with Basegun's classifier in one run.", ""]
    lines += [
        "## Limitations",
        "- Renders only: accuracy on real photos is unknown until measured on a labelled real folder "
        "(`armscan eval --model ... --data FOLDER`).",
        "- The families are generic mechanism silhouettes; real models within a family vary far more.",
        "- Lengths assume the weapon and the reference lie flat on the same table, seen from roughly above; "
        "a small card far from a long gun gives a less precise scale (the +/- grows accordingly).",
        "- A weapon photographed in pieces, folded, or partly out of frame is measured as what is visible.",
        "",
    ]
    return "\n".join(lines)
