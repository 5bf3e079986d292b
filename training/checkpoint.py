"""Self-describing checkpoints (model name, args, config, preprocessing, taxonomy) and the model metadata
built from them."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np
import torch

from armscan.datasets.taxonomy import BUILDS, CLASSES, FIREARM_TYPES, FLAG_RULES
from armscan.inference.decode import OUTPUT_NAMES
from armscan.inference.engine import Detector
from armscan.inference.metadata import ModelMetadata, Thresholds
from armscan.models import get_model
from armscan.models.detector import STRIDE


def save_checkpoint(path: Path, model: torch.nn.Module, model_name: str, model_args: dict[str, Any],
                    config: dict[str, Any], preprocess: dict[str, Any], state: dict[str, Any]) -> None:
    """Write atomically: the model and everything needed to rebuild it, plus training ``state``."""
    ckpt = {"model_name": model_name, "model_args": model_args, "model_state": model.state_dict(),
            "config": config, "preprocess": preprocess, "classes": list(CLASSES), "builds": list(BUILDS),
            "types": list(FIREARM_TYPES), "stride": STRIDE, **state}
    tmp = path.with_suffix(".tmp")
    torch.save(ckpt, tmp)
    tmp.replace(path)


#: What a checkpoint for fine-tuning keeps: the network, how to rebuild it, and how it was trained.
_KEEP = ("task", "model_name", "model_args", "model_state", "config", "preprocess", "classes", "builds", "types", "stride",
         "masks", "mask_stride", "epoch", "elapsed_s", "budget_spent_s", "history", "world_size", "ema_updates", "lineage",
         "averaged_from")


def save_weights_checkpoint(src: str | Path, dst: Path) -> Path:
    """Write ``src`` without its optimizer, scheduler and raw training weights: a quarter of the size,
    enough to evaluate, export or fine-tune from (not to resume the run)."""
    ckpt = load_checkpoint(src)
    tmp = dst.with_suffix(".tmp")
    torch.save({k: ckpt[k] for k in _KEEP if k in ckpt}, tmp)
    tmp.replace(dst)
    return dst


#: What checkpoints must share to be averaged: the same network, built the same way, on the same label space.
_SAME_NETWORK = ("task", "model_name", "model_args", "preprocess", "classes", "builds", "types", "stride")


def average_checkpoints(paths: list[Path], out: Path) -> Path:
    """Write the uniform average of the networks in ``paths`` (a "model soup") to ``out``, as a weights checkpoint.

    Meant for the ends of consecutive refreshes of one model: they lie in one basin, so the average of their
    weights (and of their batch-norm statistics) is a network of its own, often better than either. Unrelated
    networks do not average to anything useful; measure before using the result. The checkpoints must share the
    network, its arguments, preprocessing and label space (else ``ValueError``). The result keeps the last
    checkpoint's training record and lineage, and lists what was averaged (path and SHA-256) in ``averaged_from``.
    """
    if len(paths) < 2:
        raise ValueError("averaging needs two checkpoints or more")
    missing = [str(p) for p in paths if not Path(p).is_file()]
    if missing:
        raise ValueError(f"checkpoint not found: {', '.join(missing)}")
    ckpts = [load_checkpoint(p) for p in paths]
    first, last = ckpts[0], ckpts[-1]
    for p, c in zip(paths[1:], ckpts[1:], strict=True):
        differ = [k for k in _SAME_NETWORK if c.get(k) != first.get(k)]
        if differ or c["model_state"].keys() != first["model_state"].keys():
            raise ValueError(f"{p} is another network than {paths[0]} (they differ in: "
                             f"{', '.join(differ) or 'the names of their weights'}); only checkpoints of one network "
                             "can be averaged")
    state = {}
    for key, tensor in last["model_state"].items():
        if tensor.is_floating_point():
            mean = torch.stack([c["model_state"][key].double() for c in ckpts]).mean(dim=0)
            state[key] = mean.to(tensor.dtype)
        else:  # counters such as num_batches_tracked
            state[key] = tensor
    record = [{"path": str(p), "sha256": hashlib.sha256(Path(p).read_bytes()).hexdigest()} for p in paths]
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp")
    torch.save({**{k: last[k] for k in _KEEP if k in last}, "model_state": state, "averaged_from": record}, tmp)
    tmp.replace(out)
    return out


RUN_IDENTITY = ("task", "model", "model_args", "input_size")  # a checkpoint resumes only a run that agrees on these


def check_resumable(ckpt: dict[str, Any], config: dict[str, Any], path: str | Path) -> None:
    """Refuse to resume ``path`` into a run of another network (say, a recipe whose width changed since)."""
    before = ckpt.get("config") or {}
    differ = [k for k in RUN_IDENTITY if k in before and before[k] != config.get(k)]
    if differ:
        was = ", ".join(f"{k}={before[k]!r}" for k in differ)
        now = ", ".join(f"{k}={config.get(k)!r}" for k in differ)
        raise ValueError(f"{path} is the checkpoint of another run ({was}; this config: {now}). Resuming it cannot "
                         "work: pass --no-resume to start over in the same folder, or set out_dir to another one.")


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Read a checkpoint written by :func:`save_checkpoint`."""
    ckpt: dict[str, Any] = torch.load(path, map_location="cpu", weights_only=False)
    return ckpt


def model_from_checkpoint(ckpt: dict[str, Any]) -> torch.nn.Module:
    """Rebuild the network from a checkpoint's ``model_name`` and ``model_args``, in eval mode."""
    model: torch.nn.Module = get_model(ckpt["model_name"], num_classes=len(ckpt["classes"]), num_builds=len(ckpt["builds"]),
                      num_types=len(ckpt["types"]), **ckpt["model_args"])
    model.load_state_dict(ckpt["model_state"])
    return model.eval()


def metadata_from_checkpoint(ckpt: dict[str, Any], version: str, thresholds: Thresholds | None = None,
                             training: dict[str, Any] | None = None) -> ModelMetadata:
    """The metadata an export of this checkpoint carries; thresholds default to 0.5 for every class."""
    classes = list(ckpt["classes"])
    return ModelMetadata(
        name=ckpt["model_name"], version=version, architecture=f"{ckpt['model_name']} {ckpt['model_args']}",
        classes=classes, builds=list(ckpt["builds"]), types=list(ckpt["types"]), flag_rules=FLAG_RULES,
        preprocess=ckpt["preprocess"], stride=int(ckpt["stride"]),
        thresholds=thresholds or Thresholds(alarm=dict.fromkeys(classes, 0.5)), training=training or {})


def torch_detector(model: torch.nn.Module, metadata: ModelMetadata) -> Detector:
    """Wrap a torch model in the inference engine, so it is evaluated exactly like its ONNX export."""
    model.eval()

    def run(batch: np.ndarray) -> dict[str, np.ndarray]:
        with torch.no_grad():
            outs = model(torch.from_numpy(batch))
        return {n: o.numpy() for n, o in zip(OUTPUT_NAMES, outs, strict=True)}

    return Detector(run, metadata)
