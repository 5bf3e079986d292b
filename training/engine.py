"""The two plain functions of training: ``train_one_epoch`` and ``evaluate`` (see torchvision's
references/detection/engine.py)."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch.optim.swa_utils import AveragedModel
from tqdm import tqdm

from armscan.datasets.coco import Record
from armscan.inference.metadata import ModelMetadata
from armscan.training.checkpoint import torch_detector
from armscan.training.evaluate import evaluate_records
from armscan.training.loss import detection_loss

#: Memory layout of the weights and batches in training (detector and photo model). Channels-last makes a step of
#: either bundled network about 1.5x faster on this 2-core CPU (`python bench/train_step.py`). A state dict's
#: values do not depend on the layout, so checkpoints and exports are unaffected.
MEMORY_FORMAT = torch.channels_last


class NonFiniteLossError(RuntimeError):
    """Training diverged: the loss became NaN or infinite."""


def freeze_batchnorm(model: torch.nn.Module) -> None:
    """Put every batch-norm layer of ``model`` (in train mode) in eval mode: its running statistics stay fixed."""
    for m in model.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.eval()


def total_loss(losses: dict[str, torch.Tensor], weights: dict[str, float] | None = None) -> torch.Tensor:
    """The sum of the loss terms, each times its weight in ``weights`` (``TrainConfig.loss_weights``; others 1)."""
    w = weights or {}
    return torch.stack([v * w.get(k, 1.0) for k, v in losses.items()]).sum()


def train_one_epoch(model: torch.nn.Module, loader: Iterable[Any], optimizer: torch.optim.Optimizer,
                    scheduler: torch.optim.lr_scheduler.LRScheduler, stride: int, grad_clip: float, epoch: int,
                    total: int, deadline: float | None = None, *, ema: AveragedModel | None = None,
                    device: torch.device | None = None, amp: bool = False,
                    stop: Callable[[bool], bool] = bool, progress: bool = True,
                    clock: Callable[[], float] = time.monotonic, freeze_bn: bool = False,
                    loss_weights: dict[str, float] | None = None) -> dict[str, float]:
    """One pass over ``loader``; returns the mean of each loss term, ``iters`` and ``images``.

    ``model`` may be wrapped in DistributedDataParallel (which averages the gradients across ranks);
    ``ema`` is then updated from the wrapped module after every step. ``amp`` runs the forward pass
    under ``torch.autocast`` (CUDA only; the loss is computed in float32). Past ``deadline`` the
    epoch ends early (``deadline`` is read on ``clock``: wall time, or the process's CPU time);
    ``stop`` turns this rank's wish to stop into the decision of all ranks. ``freeze_bn`` keeps every
    batch-norm layer in eval mode (its running statistics fixed): fine-tuning on a new image domain then
    cannot shift the statistics the old domain relies on. ``loss_weights`` multiply named loss terms
    (:func:`total_loss`); the means returned are of the unweighted terms.
    """
    device = device or torch.device("cpu")
    amp = amp and device.type == "cuda"
    amp_dtype = torch.bfloat16 if amp and torch.cuda.is_bf16_supported() else torch.float16
    scaler = torch.amp.GradScaler("cuda", enabled=amp and amp_dtype is torch.float16)
    model.train()
    if freeze_bn:
        freeze_batchnorm(model)
    sums: dict[str, float] = {}
    n = images_seen = 0
    bar = tqdm(loader, total=total, desc=f"epoch {epoch}", unit="it", mininterval=5.0, disable=not progress)
    for images, targets in bar:
        images = images.to(device, non_blocking=True, memory_format=MEMORY_FORMAT)
        targets = [{k: v.to(device, non_blocking=True) for k, v in t.items()} for t in targets]
        with torch.autocast(device.type, dtype=amp_dtype, enabled=amp):
            outputs = model(images)
        losses = detection_loss(tuple(o.float() for o in outputs), targets, stride)
        loss = total_loss(losses, loss_weights)
        if not math.isfinite(float(loss.detach())):
            terms = {k: float(v.detach()) for k, v in losses.items()}
            raise NonFiniteLossError(f"loss is not finite at epoch {epoch}: {terms}")
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()  # type: ignore[no-untyped-call]
        scaler.unscale_(optimizer)
        torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
        scaler.step(optimizer)
        scaler.update()
        scheduler.step()
        if ema is not None:
            ema.update_parameters(getattr(model, "module", model))
        n += 1
        images_seen += len(images)
        for k, v in losses.items():
            sums[k] = sums.get(k, 0.0) + float(v.detach())
        bar.set_postfix(loss=f"{float(loss.detach()):.3f}", lr=f"{scheduler.get_last_lr()[0]:.2e}")
        if stop(deadline is not None and clock() > deadline):
            break
    return {k: v / max(n, 1) for k, v in sums.items()} | {"iters": float(n), "images": float(images_seen)}


@torch.no_grad()
def evaluate(model: torch.nn.Module, metadata: ModelMetadata, records: list[Record]) -> dict[str, Any]:
    """Evaluate in eval mode through the inference engine (same preprocessing and decoding as ONNX)."""
    model.eval()
    return evaluate_records(torch_detector(model, metadata), records, progress=False)
