"""Write a model's Markdown model card from its ONNX metadata, its evaluation JSON and the training log.

    python training/model_card.py --model models/bundled/armscan-det.onnx \
        --metrics runs/test_metrics.json --log runs/train/log.csv --out models/bundled/MODEL_CARD.md
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
from pathlib import Path
from typing import Any

from armscan.datasets.synth import GENERATOR_VERSION
from armscan.inference.engine import Detector
from armscan.training.metrics import unresolved_note


def _band_line(th: Any) -> str:
    if not th.uncertain:
        return ""
    return (f"\nBelow it, a scan is **uncertain** (the model abstains and an officer inspects) when any box scores at or above "
            f"**{next(iter(th.uncertain.values())):.4f}**, chosen so that at most {th.uncertain_far:g} of clean validation "
            f"scans are uncertain or alarm.")


def _crossfit_line(chosen: str, target_far: float) -> str:
    """The cross-fitted target the per-class thresholds were chosen for, from ``chosen_on``'s JSON (if recorded)."""
    try:
        fit = json.loads(chosen).get("crossfit")
    except (ValueError, AttributeError):
        return ""
    if not fit:
        return ""
    return (f" So that they keep their rate on clean scans they were not chosen on, they were chosen for a FAR of "
            f"{fit['target']:g} on the calibration scans (`crossfit_target`): the largest at which thresholds chosen "
            f"on half of them kept {target_far:g} on the other half's clean scans ({fit['held_out_far']:g} there).")


def _threshold_section(th: Any, classes: list[str], metrics: dict[str, Any]) -> str:
    """The operating thresholds (one for every class, or one per class) and where they put the held-out scans."""
    where = th.chosen_on.split(": ", 1)
    if len(set(th.alarm.values())) == 1:
        text = (f"One alarm threshold for every class, **{next(iter(th.alarm.values())):.4f}**, chosen for a parcel "
                f"false-alarm rate of\n{th.target_far} on validation scans (seeds from 100,000,000): {th.chosen_on}.\n"
                f"A scan is an **alarm** when any box scores at or above it.{_band_line(th)}")
    else:
        band = th.uncertain or {}
        rows = [[c, f"{th.alarm[c]:.4f}", f"{band[c]:.4f}" if c in band else None] for c in classes]
        text = (f"An alarm threshold per class, chosen for a parcel false-alarm rate of {th.target_far} on "
                f"{where[0]} (`make model-card`'s validation scans: seeds from 100,000,000, 300,000,000 and 500,000,000 "
                f"at 416×416, from 320,000,000 and 520,000,000 at 480×416). A scan is an "
                f"**alarm** when any box reaches its class's threshold, and **uncertain** (the model abstains and an "
                f"officer inspects) when, short of that, a box reaches its class's lower edge, chosen so that at most "
                f"{th.uncertain_far} of clean validation scans are uncertain or alarm. Each class's threshold was lowered "
                f"as far as the false alarms it adds were worth the threats it finds "
                f"(`armscan.training.evaluate.choose_class_thresholds`); a threshold of 1.0000 alarms only on a "
                f"saturated score.{_crossfit_line(where[-1], th.target_far)}\n\n"
                f"{_table(['class', 'alarm', 'uncertain from'], rows)}\n\n"
                f"Chosen on: {where[-1]}.")
    op = metrics.get("at_thresholds")
    if op:
        text += (f"\n\nOn the held-out scans below, at these thresholds: parcel Pd **{op['alarm']['parcel_pd']}** at a FAR of "
                 f"**{op['alarm']['parcel_far']}** ({op['threat_scans']} threat and {op['clean_scans']} clean scans)")
        if "alarm_or_uncertain" in op:
            au = op["alarm_or_uncertain"]
            text += f"; alarm or uncertain: Pd {au['parcel_pd']} at a FAR of {au['parcel_far']}"
        text += "."
    return text


def _resolution_note(metrics: dict[str, Any], more_clean: dict[str, Any] | None) -> str:
    note = unresolved_note(int(metrics["clean_scans"]), 0.01)
    if not note:
        return ""
    return (f"\nOn these scans {note}" + ("; the figures resolved on 2,000 more clean scans are above, under "
                                          "Operating thresholds." if more_clean else "."))


def _weights_note(cfg: dict[str, Any]) -> str:
    weights = cfg.get("loss_weights") or {}
    return "; loss terms weighed " + ", ".join(f"{k} ×{v:g}" for k, v in weights.items()) if weights else ""


def _table(header: list[str], rows: list[list[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join("—" if v is None else str(v) for v in r) + " |" for r in rows]
    return "\n".join(lines)


def _coco_folders(data: dict[str, Any]) -> list[str]:
    """The COCO folders a config trained on (``data.coco_dir`` then ``data.coco_dirs``, as ``TrainConfig.coco_folders``)."""
    return [str(f) for f in ([data["coco_dir"]] if data.get("coco_dir") else []) + list(data.get("coco_dirs") or [])]


def _data_line(cfg: dict[str, Any]) -> str:
    data = cfg.get("data", {})
    if data.get("kind") == "coco":
        folders = _coco_folders(data)
        line = f"COCO folder{'s' if len(folders) > 1 else ''} {', '.join(f'`{f}`' for f in folders) or '(not recorded)'}"
        if data.get("replay"):
            line += (f", with {data['replay']:.0%} of each epoch's samples replayed from {data.get('cache_size', 0):,} "
                     "generated scans")
        return line
    first = data.get("train_seed", 0)
    if data.get("cache_size"):
        return (f"{data['cache_size']:,} scans (seeds {first:,}–{first + data['cache_size'] - 1:,}) generated in memory at "
                "the start of training and served with random flips and 90° turns")
    n = cfg.get("epochs", 0) * cfg.get("iters_per_epoch", 0) * cfg.get("batch_size", 0)
    return f"{n:,} scans generated on the fly (seeds {first:,}–{first + n - 1:,}), each seen once"


def _data_source(cfg: dict[str, Any]) -> str:
    """What the model was trained on: generated scans only, or COCO folders (with any generated replay)."""
    data = cfg.get("data", {})
    generated = (f"threat prevalence {data.get('threat_prob')}{_mix_note(data)}; scan sides {data.get('min_side')}–"
                 f"{data.get('max_side')} px")
    if data.get("kind") == "coco":
        replay = f" (armscan generator {GENERATOR_VERSION}; {generated})" if data.get("replay") else ""
        return f"The labelled scans of the {_data_line(cfg)}{replay}"
    return f"Synthetic dual-energy X-ray scans only (armscan generator {GENERATOR_VERSION}): {_data_line(cfg)};\n{generated}"


_SYNTHETIC_ONLY = ("- **Trained on synthetic scans only.** The generator ({}) models Beer–Lambert attenuation at two "
                   "effective\n  energies with NIST-derived coefficients, a line-scan detector, 3D tilts of every object, "
                   "hard negatives\n  (toy guns, tools, benign prints) and five scanner styles, but its objects are generic "
                   "procedural shapes and\n  its palettes are generic, not any vendor's. Expect a large drop on real scanner "
                   "images until the model is\n  fine-tuned on real, labelled scans.")


def _data_limitation(cfg: dict[str, Any]) -> str:
    data = cfg.get("data", {})
    if data.get("kind") != "coco":
        return _SYNTHETIC_ONLY.format(GENERATOR_VERSION)
    replay = " and generated replay scans" if data.get("replay") else ""
    return (f"- **Trained on {', '.join(f'`{f}`' for f in _coco_folders(data)) or 'COCO folders'}{replay}** only: it "
            "has seen those folders' scanners, sites and kinds of parcels; measure it on the site's own labelled scans.")


def _mix_note(data: dict[str, Any]) -> str:
    """The generated parcels' difficulty mix, when the config names it (configs before it was a setting did not)."""
    probs = data.get("difficulty_probs")
    if data.get("kind", "synth") != "synth" or not probs:
        return ""
    return f"; easy / hard / hidden parcels {' / '.join(f'{p:g}' for p in probs)}"


def _column(key: str) -> str:
    return key.replace("pd@far", "Pd @ FAR ").replace("far@pd", "FAR @ Pd ")


def _build_line(metrics: dict[str, Any]) -> str:
    builds = metrics.get("by_build", {})
    if not builds:
        return ""
    ap = ", ".join(f"{b} {v['mAP50']} ({v['boxes']} items)" for b, v in builds.items())
    printed = builds.get("printed", {}).get("pd", {}).get("firearm") or {}
    # the per-class row: a printed firearm found as a firearm box (IoU >= 0.5), its threshold set on the clean
    # scans' firearm scores: a FAR of the firearm class alone, not of the parcel alarm
    pd = (f"; printed firearms: Pd {printed['pd@far0.01']} as firearm boxes at a firearm-class FAR of 1% (the "
          f"firearm threshold that 1% of clean scans reach; {printed['n']} scans)"
          if printed.get("pd@far0.01") is not None else "")
    return f"\n- AP50 by build (other builds ignored): {ap}{pd}."


def _slices_table(metrics: dict[str, Any], fars: list[str]) -> str:
    """Parcel Pd (any threat) and mAP50 by difficulty and by build: the slices the generator labels."""
    rows = []
    for label, group in (("difficulty", metrics.get("by_difficulty", {})), ("build", metrics.get("by_build", {}))):
        for name, v in group.items():
            pd = v.get("pd", {}).get("any_threat")
            if pd:
                n = v.get("threat_scans", pd.get("n"))
                rows.append([f"{label}: {name}", v["mAP50"], n, *[pd.get(f) for f in fars]])
    if not rows:
        return ""
    return ("\n\nBy slice (thresholds set on all clean scans; only the threats are restricted to the slice):\n\n"
            + _table(["slice", "mAP50", "threat scans", *[_column(f) for f in fars]], rows))


def _calibration_line(metrics: dict[str, Any]) -> str:
    cal = metrics.get("calibration")
    if not cal:
        return ""
    if cal["temperature"] == 1.0:
        return f"\n- Calibration: expected calibration error of the scores {cal['ece']} (no temperature scaling)."
    return (f"\n- Calibration: expected calibration error of the scores {cal['ece_before_scaling']} without temperature "
            f"scaling, {cal['ece']} with the model's temperature {cal['temperature']:g} (fit on the validation scans).")


def _status(metrics: dict[str, Any], target: float) -> str:
    if metrics["mAP50"] is None:  # held-out scans without a threat box: mAP is undefined
        return "**Not measured**: the held-out scans hold no threat boxes, so mAP50 is undefined."
    if metrics["mAP50"] >= target:
        return f"Meets the project's target of mAP50 ≥ {target} on held-out generated scans."
    return (f"**Below the project's target**: mAP50 {metrics['mAP50']} on held-out generated scans, against a target of "
            f"{target}. Use it to try the tools, not to screen parcels.")


def _parent_line(training: dict[str, Any], lineage: str = "") -> str:
    """Where a refreshed model started: its parent's weights (by SHA-256) and, when given, how that parent was made;
    nothing for one trained from scratch."""
    parent = (training.get("lineage") or {}).get("parent_sha256")
    if not parent:
        if lineage.strip():
            raise ValueError("--lineage describes a parent, but this model was trained from scratch")
        return ""
    more = f"{lineage.strip()}\n" if lineage.strip() else ""
    return (f"Started from the weights of its parent (SHA-256 `{parent[:16]}…`, recorded in the model's metadata) "
            f"and trained further on the data below.\n{more}")


def _average_line(training: dict[str, Any]) -> str:
    """For weights averaged from several checkpoints (``armscan average``): which ones, by SHA-256; nothing otherwise."""
    soup = training.get("averaged_from") or []
    if not soup:
        return ""
    names = ", ".join(f"`{r['sha256'][:16]}…`" for r in soup)
    return (f"Its weights are the uniform average of {len(soup)} checkpoints of this network (`armscan average`; "
            f"SHA-256 {names}); the training run described below is the last one's.\n")


def budget_note(cfg: dict[str, Any], cpu_minutes: float | str | None) -> str:
    """How a training budget was counted, when not in wall time (CPU time: fair on a machine shared with other
    jobs); shared by the detector's and the photo model's cards."""
    if cfg.get("budget_clock") != "cpu" or not cpu_minutes:
        return ""
    return f", its budget counted in CPU time (`budget_clock: cpu`): {cpu_minutes} CPU-minutes over both cores"


def _more_clean_line(more: dict[str, Any] | None, target_far: float | None = None) -> str:
    """The parcel alarm on the held-out scans plus many more clean ones: the low FARs resolved, and whether the
    thresholds' FAR there is above their target beyond chance (more than two Poisson standard errors)."""
    if not more:
        return ""
    op, pd = more["at_thresholds"], more["pd"]["any_threat"]
    over = ""
    if target_far:
        expected, seen = target_far * more["clean_scans"], op["alarm"]["parcel_far"] * more["clean_scans"]
        if seen > expected + 2 * expected ** 0.5:
            over = (f" **The alarm's FAR at its thresholds is above the {target_far:.0%} target beyond chance** "
                    f"(about {seen:.0f} false alarms where {expected:.0f} were expected, more than two standard "
                    f"errors over): thresholds chosen class by class at the edge of the validation clean scans' "
                    f"scores do not hold that edge on new clean scans. Expect this FAR, not the target.")
    line = (f"\n\nWith {more['clean_scans']:,} held-out clean scans (the {more['images'] - more['clean_scans']:,} threat "
            f"scans above plus 2,000 more clean ones, seeds from 400,000,000), a FAR of 1% is resolved: at the model's "
            f"thresholds the alarm's FAR is **{op['alarm']['parcel_far']}** at Pd {op['alarm']['parcel_pd']}")
    if "alarm_or_uncertain" in op:
        line += f" (alarm or uncertain: FAR {op['alarm_or_uncertain']['parcel_far']})"
    return line + (f"; swept, the parcel alarm's Pd at a FAR of 1% / 2% / 5% is {pd['pd@far0.01']} / {pd['pd@far0.02']} / "
                   f"{pd['pd@far0.05']}.{over}")


def render_card(model: Path, metrics: dict[str, Any], log: list[dict[str, str]], target: float = 0.8,
                more_clean: dict[str, Any] | None = None, lineage: str = "") -> str:
    """The card's Markdown text; ``more_clean``: the evaluation of the held-out scans pooled with more clean scans;
    ``lineage``: a sentence on how the parent itself was made (a refresh of a refresh that was not shipped alone)."""
    md = Detector.from_onnx(model).metadata
    th = md.thresholds
    cfg = md.training.get("config", {})
    pd = metrics["pd"]
    fars = [k for k in pd["any_threat"] if k.startswith(("pd@", "far@"))]
    rows = [[c, metrics["AP50_per_class"].get(c), pd[c]["n"], *[pd[c][f] for f in fars]] for c in md.classes]
    rows.insert(0, ["**any threat (parcel alarm)**", "", pd["any_threat"]["n"], *[pd["any_threat"][f] for f in fars]])
    last = log[-1] if log else {}
    parent, averaged = _parent_line(md.training, lineage), _average_line(md.training)
    recipe = "a refresh of its parent" if parent else "`make train`"
    by_diff = ", ".join(f"{k} {v['mAP50']} ({v['images']} scans)" for k, v in metrics.get("by_difficulty", {}).items())
    return f"""# Model card: {md.name} {md.version}

`{model.name}` ({model.stat().st_size / 1e6:.1f} MB, sha256 `{hashlib.sha256(model.read_bytes()).hexdigest()[:16]}…`)
is armscan's bundled X-ray threat detector. It boxes firearms (with their type), firearm parts
(barrel, slide, frame/receiver, bolt, magazine, trigger group) and ammunition, and tells the
build of each item (metal, polymer or printed).

Status: {_status(metrics, target)}

## Model
- Architecture: {md.architecture}: anchor-free single-stage detector (FCOS-style heads for class, box,
  centreness, build and firearm type) on a MobileNetV3 backbone with an FPN-lite, trained from scratch.
- Input: {md.preprocess['size']}×{md.preprocess['size']} letterbox (aspect kept, padded with {md.preprocess['pad_value']}),
  {md.preprocess['channel_order']}, mean {md.preprocess['mean']}, std {md.preprocess['std']}. Output grid stride {md.stride}.
- The ONNX graph ends at the raw head outputs; decoding and NMS (IoU {th.nms_iou}) run in `armscan.inference`.

## Training data
{parent}{averaged}{_data_source(cfg)};
{cfg.get('epochs')} epochs × {cfg.get('iters_per_epoch')} iterations × batch {cfg.get('batch_size')}, AdamW at {cfg.get('lr')}
with warm-up and cosine decay{_weights_note(cfg)}.
Training took {md.training.get('train_minutes')} minutes on a 2-core CPU{budget_note(cfg, last.get('budget_min'))}
({recipe}; last epoch's loss terms:
{ {k: v for k, v in last.items() if k not in ('epoch', 'elapsed_min', 'budget_min', 'lr', 'iters')} }).

## Operating thresholds
{_threshold_section(th, md.classes, metrics)}{_more_clean_line(more_clean, th.target_far)}

## Held-out evaluation
{metrics['images']} generated scans from seeds 200,000,000 onwards (never used in training or threshold choice):
{metrics['threat_scans']} with threats, {metrics['clean_scans']} clean. `make model-card` reproduces these figures.

- COCO mAP@[.5:.95] **{metrics['mAP']}**, mAP50 **{metrics['mAP50']}** (pycocotools).
- mAP50 by difficulty: {by_diff}.{_build_line(metrics)}{_calibration_line(metrics)}{_slices_table(metrics, fars)}

Probability of detection (Pd) at fixed parcel false-alarm rates (FAR). Per class, a detection counts only if it
overlaps a true box of that class with IoU ≥ 0.5 and its threshold is set on the clean scans' scores for that
class; the parcel-alarm row sweeps the model's own rule over each scan's parcel score (each class's best score
moved by its alarm threshold; see `armscan/training/metrics.py`).{_resolution_note(metrics, more_clean)}

{_table(['class', 'AP50', 'scans with it', *[_column(f) for f in fars]], rows)}

## Limitations
{_data_limitation(cfg)}
- The figures above are on scans from the same generator; they are not a claim about real parcels.
- Thresholds were chosen on {th.chosen_on.split(':')[0] or 'validation scans'}; re-choose them on the site's own clean traffic.
- Small items (loose rounds, trigger groups) in large, cluttered parcels are the weakest cases.
- Type and build are per-box attributes; on whole firearms the type head is only trained on synthetic shapes.
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", type=Path, required=True)
    ap.add_argument("--metrics", type=Path, required=True)
    ap.add_argument("--log", type=Path)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--more-clean", type=Path, help="evaluation JSON of the held-out scans pooled with more clean scans")
    ap.add_argument("--lineage", default="", help="a sentence on how the parent was made, printed under its SHA-256")
    a = ap.parse_args()
    log = list(csv.DictReader(a.log.open())) if a.log and a.log.exists() else []
    more = json.loads(a.more_clean.read_text()) if a.more_clean else None
    a.out.write_text(render_card(a.model, json.loads(a.metrics.read_text()), log, more_clean=more,
                                  lineage=a.lineage))
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
