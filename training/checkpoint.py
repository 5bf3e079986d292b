"""Self-describing checkpoints (model name, args, config, preprocessing, taxonomy) and the model metadata
built from them."""

from __future__ import annotations

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
         "masks", "mask_stride", "epoch", "elapsed_s", "budget_spent_s", "history", "world_size", "ema_updates", "lineage")


def save_weights_checkpoint(src: str | Path, dst: Path) -> Path:
    """Write ``src`` without its optimizer, scheduler and raw training weights: a quarter of the size,
    enough to evaluate, export or fine-tune from (not to resume the run)."""
    ckpt = load_checkpoint(src)
    tmp = dst.with_suffix(".tmp")
    torch.save({k: ckpt[k] for k in _KEEP if k in ckpt}, tmp)
    tmp.replace(dst)
    return dst


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
