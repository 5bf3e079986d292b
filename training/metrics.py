"""Detection metrics: COCO mAP (pycocotools) and the screening metrics (Pd and FAR at operating points).

Screening definitions (used in reports, the model card and threshold selection):
- A *clean* scan holds no threat box. The parcel false-alarm rate (FAR) at threshold t is the
  share of clean scans with any detection scoring >= t.
- Per class c, Pd at a FAR is the share of scans holding a c box in which a c detection with
  IoU >= 0.5 to a c box scores >= t, where t is set on the clean scans' c scores for that FAR
  (a localised, per-class operating point).
- ``any_threat``: Pd of the parcel alarm, i.e. scans holding any threat where some detection
  scores >= t, t set on clean scans' best score for that FAR (not localised: it is the decision
  that sends the parcel to be opened). A model with an alarm threshold per class is swept on its
  own rule: each class's scores are moved, in logit space, by the distance between its threshold
  and the thresholds' mean (:func:`parcel_scores`), so every class alarms at the same point of the
  sweep and the model's stored thresholds are one point on the curve. With one threshold for every
  class this is the best score itself.
- FAR at a Pd p: the false-alarm rate of the highest threshold that still detects a share p of the
  scans; ``None`` when no threshold does (too many threats are never detected at all).
- Without clean scans no false-alarm rate is measured: Pd at a FAR and FAR at a Pd are ``None`` (undefined),
  never the Pd of an alarm on every scan. Without true boxes, mAP is ``None`` too.
- Breakdowns (a difficulty, a build): only the *threats* are restricted to the subset (scans of that
  difficulty; boxes of that build). Thresholds are always set on every clean scan of the set, because in
  service one threshold serves all traffic. AP per build ignores (neither hit nor false alarm) the boxes
  of the other builds.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from armscan.datasets.coco import Record

FARS: tuple[float, ...] = (0.01, 0.02, 0.05)
PDS: tuple[float, ...] = (0.90, 0.95)

BoxFilter = Callable[[dict[str, Any]], bool]


@dataclass
class Prediction:
    """Detections of one image in original pixels."""

    boxes: np.ndarray  # (N, 4) xyxy
    scores: np.ndarray  # (N,)
    labels: np.ndarray  # (N,) class index


def _coco_eval(records: list[Record], preds: list[Prediction], classes: list[str],
               keep: BoxFilter | None = None, iou_thrs: tuple[float, ...] | None = None) -> COCOeval | None:
    """A finished COCOeval, or None without detections. Boxes failing ``keep`` are ignored (crowd regions).
    ``iou_thrs`` replaces COCO's ten IoU thresholds (0.5 to 0.95)."""
    gt: dict[str, Any] = {"images": [{"id": i, "width": r.width, "height": r.height} for i, r in enumerate(records)],
                          "categories": [{"id": k + 1, "name": c} for k, c in enumerate(classes)], "annotations": []}
    for i, r in enumerate(records):
        for b in r.boxes:
            x, y, w, h = b["bbox"]
            gt["annotations"].append({"id": len(gt["annotations"]) + 1, "image_id": i,
                                      "category_id": classes.index(b["cls"]) + 1, "bbox": [x, y, w, h],
                                      "area": w * h, "iscrowd": int(keep is not None and not keep(b))})
    dets = [{"image_id": i, "category_id": int(lab) + 1, "bbox": [float(b[0]), float(b[1]), float(b[2] - b[0]),
                                                                  float(b[3] - b[1])], "score": float(s)}
            for i, p in enumerate(preds) for b, s, lab in zip(p.boxes, p.scores, p.labels, strict=True)]
    if not dets:
        return None
    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = COCO()
        coco_gt.dataset = gt
        coco_gt.createIndex()
        ev = COCOeval(coco_gt, coco_gt.loadRes(dets), "bbox")
        if iou_thrs is not None:
            ev.params.iouThrs = np.asarray(iou_thrs, np.float64)
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return ev


def coco_map(records: list[Record], preds: list[Prediction], classes: list[str],
             keep: BoxFilter | None = None) -> dict[str, Any]:
    """COCO mAP@[.5:.95], mAP50 and per-class AP50 via pycocotools (``None``: no box of that class; all three
    ``None`` without any box, e.g. on clean scans only, where AP is undefined rather than 0)."""
    present = {b["cls"] for r in records for b in r.boxes if keep is None or keep(b)}
    if not present:
        return {"mAP": None, "mAP50": None, "AP50_per_class": dict.fromkeys(classes)}
    ev = _coco_eval(records, preds, classes, keep)
    if ev is None:
        return {"mAP": 0.0, "mAP50": 0.0, "AP50_per_class": {c: 0.0 if c in present else None for c in classes}}
    precision = ev.eval["precision"]  # (T iou, R recall, K class, A area, M maxdets)
    per_class = {}
    for k, c in enumerate(classes):
        p = precision[0, :, k, 0, 2]
        per_class[c] = round(float(p[p > -1].mean()), 4) if (p > -1).any() else None
    return {"mAP": round(max(float(ev.stats[0]), 0.0), 4), "mAP50": round(max(float(ev.stats[1]), 0.0), 4),
            "AP50_per_class": per_class}


def pr_curves(records: list[Record], preds: list[Prediction], classes: list[str]) -> dict[str, np.ndarray]:
    """Precision at COCO's 101 recall points (0, 0.01, ..., 1) per class, at IoU 0.5 (-1: no box of the class)."""
    ev = _coco_eval(records, preds, classes)
    if ev is None:
        return {c: np.zeros(101) for c in classes}
    return {c: np.asarray(ev.eval["precision"][0, :, k, 0, 2], np.float64) for k, c in enumerate(classes)}


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(N, 4) x (M, 4) xyxy -> (N, M) IoU, by pycocotools."""
    def xywh(x: np.ndarray) -> np.ndarray:
        return np.concatenate([x[:, :2], x[:, 2:] - x[:, :2]], axis=1).astype(np.float64)

    return np.asarray(mask_utils.iou(xywh(a), xywh(b), [0] * len(b))).reshape(len(a), len(b))


def gt_xyxy(r: Record, cls: str | None = None) -> np.ndarray:
    """(G, 4) xyxy true boxes of ``r`` (of class ``cls`` only, if given)."""
    return np.array([[b["bbox"][0], b["bbox"][1], b["bbox"][0] + b["bbox"][2], b["bbox"][1] + b["bbox"][3]]
                     for b in r.boxes if cls is None or b["cls"] == cls], np.float32).reshape(-1, 4)


def threshold_at_far(clean_scores: np.ndarray, far: float) -> float:
    """Lowest threshold whose false-alarm share on ``clean_scores`` (best score per clean scan) is <= far.
    Without clean scans no threshold is set by a false-alarm rate: ``ValueError``."""
    if len(clean_scores) == 0:
        raise ValueError(f"no clean scans: a threshold for a false-alarm rate of {far:g} is undefined without them")
    allowed = int(np.floor(far * len(clean_scores) + 1e-9))
    ranked = np.sort(clean_scores)[::-1]
    if allowed >= len(ranked):
        return 0.0
    return float(np.nextafter(np.float32(ranked[allowed]), np.float32(np.inf)))


def far_at_pd(pos: np.ndarray, neg: np.ndarray, pd: float) -> float | None:
    """FAR on ``neg`` at the highest threshold detecting a share ``pd`` of ``pos`` (0 = never detected); ``None``
    without threats, without clean scans, or when no threshold reaches ``pd``."""
    if len(pos) == 0 or len(neg) == 0:
        return None
    k = int(np.ceil(pd * len(pos) - 1e-9))
    t = np.sort(pos)[::-1][max(k, 1) - 1]
    if t <= 0:
        return None
    return float((neg >= t).mean())


def operating_points(pos: np.ndarray, neg: np.ndarray, fars: tuple[float, ...] = FARS,
                     pds: tuple[float, ...] = PDS) -> dict[str, Any]:
    """``pd@farX`` and ``far@pdY`` for positive scores ``pos`` against clean scores ``neg`` (``None``: undefined,
    without positives or without clean scans)."""
    out: dict[str, Any] = {"n": len(pos)}
    defined = len(pos) > 0 and len(neg) > 0
    for far in fars:
        out[f"pd@far{far:g}"] = round(float((pos >= threshold_at_far(neg, far)).mean()), 4) if defined else None
    for pd in pds:
        v = far_at_pd(pos, neg, pd)
        out[f"far@pd{pd:g}"] = None if v is None else round(v, 4)
    return out


def pd_far_curve(pos: np.ndarray, neg: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(FAR, Pd) at every threshold, from the strictest to the loosest."""
    t = np.unique(np.concatenate([pos, neg, [np.inf]]))[::-1]
    t = t[t > 0]
    far = (neg[None, :] >= t[:, None]).mean(axis=1) if len(neg) else np.zeros(len(t))
    pd = (pos[None, :] >= t[:, None]).mean(axis=1) if len(pos) else np.zeros(len(t))
    return far, pd


#: Clean scans resolve a false-alarm rate when they allow this many false alarms at it (1,000 clean scans for 1%).
#: Thresholds per class are only chosen on such calibration scans (training.evaluate.choose_alarm_thresholds); the
#: gate and the model card say when a suite is smaller. Chosen on 189 clean scans for 1%, two earlier variants of
#: the per-class rule alarmed on 6% and 8% of held-out clean scans (README, "Alarm thresholds").
MIN_FALSE_ALARMS = 10


def clean_scans_needed(far: float) -> int:
    """How many clean scans resolve a false-alarm rate of ``far`` (:data:`MIN_FALSE_ALARMS`)."""
    return int(np.ceil(MIN_FALSE_ALARMS / max(far, 1e-9) - 1e-9))


def unresolved_note(clean: int, far: float) -> str | None:
    """Why a rate ``far`` measured on ``clean`` clean scans moves with a scan or two; None when they resolve it."""
    if clean >= clean_scans_needed(far):
        return None
    return (f"a FAR of {far:g} is set by the {int(np.floor(far * clean + 1e-9)) + 1} highest-scoring of {clean} clean "
            f"scans, so its Pd moves with a scan or two; {clean_scans_needed(far):,} clean scans resolve it")


def _logit(p: np.ndarray) -> np.ndarray:
    q = np.clip(np.asarray(p, np.float64), 1e-7, 1 - 1e-7)
    return np.log(q / (1 - q))


def parcel_scores(best_by_class: np.ndarray, alarm: np.ndarray | None = None) -> np.ndarray:
    """The parcel alarm's score of each scan from its best score per class (N, C), under per-class ``alarm``
    thresholds (C,): ``max_c sigmoid(logit(s_c) - logit(t_c) + mean_k logit(t_k))``. A scan's score reaches
    ``sigmoid(mean_k logit(t_k))`` exactly when some class reaches its own threshold. Without thresholds,
    or with one for every class, it is the best score (a scan without detections scores 0)."""
    if alarm is None or np.all(alarm == alarm[0]):
        return np.asarray(best_by_class.max(axis=1, initial=0.0), np.float64)
    shift = _logit(alarm) - _logit(alarm).mean()
    moved = 1.0 / (1.0 + np.exp(-(_logit(best_by_class) - shift[None, :])))
    return np.asarray(np.where(best_by_class > 0, moved, 0.0).max(axis=1, initial=0.0), np.float64)


def alarm_reference(alarm: np.ndarray) -> float:
    """The parcel score (:func:`parcel_scores`) at which the per-class thresholds ``alarm`` raise the alarm."""
    return float(1.0 / (1.0 + np.exp(-_logit(alarm).mean())))


@dataclass
class ScoreTable:
    """The scores every screening figure is computed from, gathered in one pass over the predictions."""

    classes: list[str]
    clean: np.ndarray  # (N,) bool: the scan holds no threat
    best: np.ndarray  # (N,) the parcel alarm's score of each scan (parcel_scores; 0: no detection)
    best_by_class: np.ndarray  # (N, C) best score of each class in each scan
    box_image: np.ndarray  # (G,) scan of each true box
    box_class: np.ndarray  # (G,) class index of each true box
    box_build: np.ndarray  # (G,) build of each true box
    box_hit: np.ndarray  # (G,) best score of a same-class detection with IoU >= 0.5 (0: missed)

    @classmethod
    def build(cls, records: list[Record], preds: list[Prediction], classes: list[str],
              alarm: np.ndarray | None = None) -> ScoreTable:
        """Score ``preds`` against ``records``; ``alarm``: the model's alarm threshold per class (parcel_scores)."""
        best_by_class = np.zeros((len(records), len(classes)))
        image, label, build, hit = [], [], [], []
        for i, (r, p) in enumerate(zip(records, preds, strict=True)):
            for k in np.unique(p.labels):
                best_by_class[i, k] = p.scores[p.labels == k].max()
            for b, g in zip(r.boxes, gt_xyxy(r), strict=True):
                k = classes.index(b["cls"])
                m = p.labels == k
                ok = (box_iou(p.boxes[m], g[None]) >= 0.5)[:, 0] if m.any() else np.zeros(0, bool)
                image.append(i)
                label.append(k)
                build.append(str(b.get("build", "unknown")))
                hit.append(float(p.scores[m][ok].max()) if ok.any() else 0.0)
        return cls(classes=list(classes), clean=np.array([not r.boxes for r in records], bool),
                   best=parcel_scores(best_by_class, alarm), best_by_class=best_by_class,
                   box_image=np.array(image, np.int64), box_class=np.array(label, np.int64),
                   box_build=np.array(build, dtype=object), box_hit=np.array(hit))

    def positives(self, cls: int | None, images: np.ndarray | None = None, build: str | None = None) -> np.ndarray:
        """Scores of the scans holding a box of class ``cls`` (None: any threat, scored by the parcel alarm's
        best score) among ``images`` (bool mask) and of ``build``."""
        sel = np.ones(len(self.box_image), bool) if images is None else images[self.box_image]
        if build is not None:
            sel &= self.box_build == build
        if cls is None:
            return np.asarray(self.best[np.unique(self.box_image[sel])], np.float64)
        sel &= self.box_class == cls
        scans = np.unique(self.box_image[sel])
        out = np.zeros(len(scans))
        np.maximum.at(out, np.searchsorted(scans, self.box_image[sel]), self.box_hit[sel])
        return out

    def negatives(self, cls: int | None) -> np.ndarray:
        """Scores of all clean scans: their best score, or their best score for class ``cls``."""
        return np.asarray(self.best[self.clean] if cls is None else self.best_by_class[self.clean, cls], np.float64)

    def rows(self, images: np.ndarray | None = None, build: str | None = None, fars: tuple[float, ...] = FARS,
             pds: tuple[float, ...] = PDS, skip_empty: bool = False) -> dict[str, dict[str, Any]]:
        """The Pd table: the parcel alarm (``any_threat``) and each class."""
        out = {}
        for name, k in [("any_threat", None), *((c, i) for i, c in enumerate(self.classes))]:
            row = operating_points(self.positives(k, images, build), self.negatives(k), fars, pds)
            if row["n"] or not skip_empty:
                out[name] = row
        return out


def at_thresholds(table: ScoreTable, alarm: np.ndarray, uncertain: np.ndarray | None = None) -> dict[str, Any]:
    """The parcel decision at a model's stored thresholds (C,): Pd and FAR of ``alarm``, and of ``alarm or
    uncertain`` (the scans an officer looks at) when the model has an abstention band."""
    def point(th: np.ndarray) -> dict[str, Any]:
        hit = np.asarray((table.best_by_class >= th[None, :]).any(axis=1), bool)
        return {"parcel_pd": round(float(hit[~table.clean].mean()), 4) if (~table.clean).any() else None,
                "parcel_far": round(float(hit[table.clean].mean()), 4) if table.clean.any() else None}

    out = {"clean_scans": int(table.clean.sum()), "threat_scans": int((~table.clean).sum()), "alarm": point(alarm)}
    if uncertain is not None:
        out["alarm_or_uncertain"] = point(np.minimum(uncertain, alarm))
    return out


def screening(records: list[Record], preds: list[Prediction], classes: list[str],
              fars: tuple[float, ...] = FARS, pds: tuple[float, ...] = PDS) -> dict[str, object]:
    """Pd per class and for the parcel alarm at each FAR in ``fars``, and FAR at each Pd in ``pds``."""
    table = ScoreTable.build(records, preds, classes)
    return {"clean_scans": int(table.clean.sum()), "threat_scans": int((~table.clean).sum()),
            "pd": table.rows(fars=fars, pds=pds)}


def _of_build(build: str) -> BoxFilter:
    return lambda box: box.get("build") == build


def breakdowns(records: list[Record], preds: list[Prediction], classes: list[str],
               table: ScoreTable | None = None) -> dict[str, Any]:
    """``by_difficulty`` (image attribute ``armscan.difficulty``) and ``by_build`` (box attribute ``build``).

    Each difficulty has COCO AP on its scans, the Pd table, and the Pd table per build; each build has
    COCO AP with the other builds' boxes ignored and the Pd table (rows without such boxes are left out).
    """
    table = table or ScoreTable.build(records, preds, classes)
    builds = sorted({str(b) for b in table.box_build} - {"unknown"})
    out: dict[str, Any] = {}
    diffs = sorted({str(r.meta["difficulty"]) for r in records if r.meta.get("difficulty")})
    by_diff: dict[str, Any] = {}
    for diff in diffs:
        mask = np.array([r.meta.get("difficulty") == diff for r in records], bool)
        idx = np.flatnonzero(mask)
        sub_r, sub_p = [records[i] for i in idx], [preds[i] for i in idx]
        by_diff[diff] = {"images": len(idx), "clean_scans": int(table.clean[mask].sum()),
                         "threat_scans": int((~table.clean[mask]).sum()), **coco_map(sub_r, sub_p, classes),
                         "pd": table.rows(images=mask, skip_empty=True),
                         "by_build": {b: {"pd": table.rows(images=mask, build=b, skip_empty=True)} for b in builds}}
    if by_diff:
        out["by_difficulty"] = by_diff
    by_build: dict[str, Any] = {}
    for b in builds:
        ap = coco_map(records, preds, classes, keep=_of_build(b))
        by_build[b] = {"boxes": int((table.box_build == b).sum()),
                       "images": len(np.unique(table.box_image[table.box_build == b])), "mAP50": ap["mAP50"],
                       "AP50_per_class": {c: v for c, v in ap["AP50_per_class"].items() if v is not None},
                       "pd": table.rows(build=b, skip_empty=True)}
    if by_build:
        out["by_build"] = by_build
    return out
