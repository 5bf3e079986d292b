"""``armscan export``: a checkpoint -> ONNX with the raw head outputs and the armscan metadata.

With ``--calib`` (COCO folders of validation scans, pooled), the exported model itself, run through the
inference engine, chooses its NMS mode (per class or across classes, by mAP50), fits the temperature
of its scores (``armscan.training.calibration``), and then chooses an alarm threshold per class for a
target parcel false-alarm rate (``--alarm-rule single``: one for every class) and the abstention band.
A false-alarm rate of 1% is only resolved by many clean scans: ``make model-card`` adds 2,000.

    armscan export --checkpoint runs/train/last.pt --out models/bundled/armscan-det.onnx --calib DIR [DIR ...]

The checkpoint's weights (without the optimizer state) are written beside the ONNX with the suffix
``.pt``: ``armscan train --init-from MODEL.onnx`` fine-tunes from it. The runtime never reads it.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
from pathlib import Path
from typing import Any

import onnx
import torch

from armscan.inference.decode import OUTPUT_NAMES
from armscan.inference.engine import Detector
from armscan.inference.metadata import METADATA_KEY, ModelMetadata, Thresholds
from armscan.inference.photo import PhotoMetadata
from armscan.training.calibration import fit_on
from armscan.training.checkpoint import (
    load_checkpoint,
    metadata_from_checkpoint,
    model_from_checkpoint,
    save_weights_checkpoint,
)
from armscan.training.evaluate import check_rate, choose_alarm_thresholds, predict, read_folders
from armscan.training.metrics import coco_map


def export_onnx(model: torch.nn.Module, size: int, path: Path, opset: int = 18) -> None:
    """Export with the dynamo exporter and a dynamic batch axis (example batch of 2)."""
    example = torch.zeros(2, 3, size, size)
    batch = torch.export.Dim("batch", min=1, max=64)
    program = torch.onnx.export(model.eval(), (example,), dynamo=True, input_names=["images"],
                                output_names=list(OUTPUT_NAMES), dynamic_shapes={"x": {0: batch}}, opset_version=opset,
                                verbose=False)
    if program is None:
        raise RuntimeError("torch.onnx.export returned no program")
    program.save(str(path))


def write_metadata(path: Path, metadata: ModelMetadata | PhotoMetadata) -> None:
    """Store the metadata JSON in the ONNX file (replacing any previous one) and check the model."""
    proto = onnx.load(str(path))
    for p in list(proto.metadata_props):
        if p.key == METADATA_KEY:
            proto.metadata_props.remove(p)
    proto.metadata_props.add(key=METADATA_KEY, value=metadata.to_json())
    proto.producer_name = "armscan"
    onnx.checker.check_model(proto)
    onnx.save(proto, str(path))


def _partial(path: Path, token: str) -> Path:
    """Where ``path`` is written until the export has succeeded: a hidden file beside it, so that
    :func:`os.replace` onto ``path`` is atomic (created by the writer, with the usual permissions)."""
    return path.with_name(f".{path.stem}.{token}.partial{path.suffix}")


def export(checkpoint: Path, out: Path, version: str, calib: Path | list[Path] | None = None,
           target_far: float = 0.01, training: dict[str, Any] | None = None, uncertain_far: float | None = 0.05,
           fit_temperature: bool = True, per_class: bool = True) -> ModelMetadata:
    """Export ``checkpoint`` to ``out``; with ``calib`` (COCO folders, pooled), set the alarm thresholds for
    ``target_far``: one per class (``per_class``) or one for every class.

    With ``uncertain_far`` (greater than ``target_far``) the lower edge of the abstention band is set
    so that at most that share of clean calibration scans come out uncertain or alarm (per class: from
    the alarm thresholds down). With ``fit_temperature``, the score temperature is fit on ``calib`` first
    and the thresholds are then chosen on the scaled scores, as inference will see them.

    Both rates must lie in (0, 1) (``ValueError`` before any work). The ONNX and its weights (``.pt``) are
    written to temporary files beside ``out`` and moved into place only when everything, calibration
    included, has succeeded: a failed export leaves a model already at ``out`` as it was.
    """
    check_rate("target_far", target_far)
    if uncertain_far is not None:
        check_rate("uncertain_far", uncertain_far)
    ckpt = load_checkpoint(checkpoint)
    model = model_from_checkpoint(ckpt)
    out.parent.mkdir(parents=True, exist_ok=True)
    token = f"{os.getpid()}-{secrets.token_hex(4)}"
    onnx_tmp, weights = _partial(out, token), out.with_suffix(".pt")
    moves = [] if checkpoint.resolve() == weights.resolve() else [(_partial(weights, token), weights)]
    moves.append((onnx_tmp, out))  # the served file is replaced last
    try:
        metadata = _export_to(checkpoint, ckpt, model, onnx_tmp, version, calib, target_far, training,
                              uncertain_far, fit_temperature, per_class)
        if len(moves) > 1:  # beside the ONNX: what fine-tuning starts from
            save_weights_checkpoint(checkpoint, moves[0][0])
        for tmp, final in moves:
            os.replace(tmp, final)
    finally:  # after a failure: nothing of this export is left behind
        for tmp, _ in moves:
            tmp.unlink(missing_ok=True)
            tmp.with_suffix(".tmp").unlink(missing_ok=True)  # save_weights_checkpoint's own temporary
    return metadata


def _export_to(checkpoint: Path, ckpt: dict[str, Any], model: torch.nn.Module, path: Path, version: str,
               calib: Path | list[Path] | None, target_far: float, training: dict[str, Any] | None,
               uncertain_far: float | None, fit_temperature: bool, per_class: bool) -> ModelMetadata:
    """:func:`export`'s work, on the ONNX file ``path``."""
    export_onnx(model, int(ckpt["preprocess"]["size"]), path)
    summary = {"config": ckpt.get("config", {}), "epochs_done": ckpt.get("epoch"),
               "train_minutes": round(ckpt.get("elapsed_s", 0.0) / 60, 1), "world_size": ckpt.get("world_size", 1),
               "ema_updates": ckpt.get("ema_updates"), "lineage": ckpt.get("lineage"),
               **({"averaged_from": ckpt["averaged_from"]} if ckpt.get("averaged_from") else {}),
               "checkpoint_sha256": hashlib.sha256(checkpoint.read_bytes()).hexdigest()[:16], **(training or {})}
    metadata = metadata_from_checkpoint(ckpt, version=version, training=summary)
    write_metadata(path, metadata)
    if calib is not None:
        folders = [calib] if isinstance(calib, Path) else list(calib)
        records = read_folders(folders)
        detector = Detector.from_onnx(path)
        # NMS across classes or per class: whichever gives the higher mAP50 on the calibration scans
        # (None: the scans hold no threat, and per class is kept).
        scores, preds = {}, {}
        for agnostic in (False, True):
            detector.metadata.thresholds.nms_class_agnostic = agnostic
            preds[agnostic] = predict(detector, records, progress=False)
            scores[agnostic] = coco_map(records, preds[agnostic], metadata.classes)["mAP50"]
        agnostic = (scores[True] or 0.0) > (scores[False] or 0.0)
        detector.metadata.thresholds.nms_class_agnostic = agnostic
        chosen = preds[agnostic]
        calibration: dict[str, Any] = {}
        if fit_temperature:  # scaling is monotone: the NMS choice above (by mAP50) does not depend on it
            calibration = fit_on(records, chosen, metadata.classes)
            detector.metadata.thresholds.temperature = calibration["temperature"]
            if calibration["temperature"] != 1.0:
                chosen = predict(detector, records, progress=False)  # the scores inference will give
        alarm, stats = choose_alarm_thresholds(detector, records, target_far, chosen, per_class)
        stats["mAP50_nms_per_class"], stats["mAP50_nms_agnostic"] = scores[False], scores[True]
        if calibration:
            stats["calibration"] = calibration
        band = None
        if uncertain_far is not None and uncertain_far > target_far:
            band, ustats = choose_alarm_thresholds(detector, records, uncertain_far, chosen, per_class, start=alarm)
            band = {c: min(band[c], alarm[c]) for c in metadata.classes}
            stats["uncertain"] = {k: ustats[k] for k in ("parcel_pd", "parcel_far", "crossfit") if k in ustats}
        metadata.thresholds = Thresholds(alarm=alarm, nms_class_agnostic=agnostic,
                                         temperature=detector.metadata.thresholds.temperature,
                                         target_far=target_far, uncertain=band,
                                         uncertain_far=uncertain_far if band else None,
                                         chosen_on=f"{' + '.join(f.name for f in folders)}: {json.dumps(stats)}")
        write_metadata(path, metadata)
    return metadata
