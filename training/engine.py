"""The two plain functions of training: ``train_one_epoch`` and ``evaluate`` (see torchvision's
references/detection/engine.py)."""

from __future__ import annotations

import math
import time
from collections.abc import Iterable
from typing import Any

import torch
from tqdm import tqdm

from armscan.datasets.coco import Record
from armscan.inference.metadata import ModelMetadata
from armscan.training.checkpoint import torch_detector
from armscan.training.evaluate import evaluate_records
from armscan.training.loss import detection_loss


class NonFiniteLossError(RuntimeError):
    """Training diverged: the loss became NaN or infinite."""


def train_one_epoch(model: torch.nn.Module, loader: Iterable[Any], optimizer: torch.optim.Optimizer,
                    scheduler: torch.optim.lr_scheduler.LRScheduler, stride: int, grad_clip: float, epoch: int,
                    total: int, deadline: float | None = None) -> dict[str, float]:
    """One pass over ``loader``; returns the mean of each loss term. Stops early past ``deadline``."""
    model.train()
    sums: dict[str, float] = {}
    n = 0
    bar = tqdm(loader, total=total, desc=f"epoch {epoch}", unit="it", mininterval=5.0)
    for images, targets in bar:
        losses = detection_loss(model(images), targets, stride)
        loss = torch.stack(list(losses.values())).sum()
        if not math.isfinite(float(loss.detach())):
            terms = {k: float(v.detach()) for k, v in losses.items()}
            raise NonFiniteLossError(f"loss is not finite at epoch {epoch}: {terms}")
        optimizer.zero_grad(set_to_none=True)
        loss.backward()  # type: ignore[no-untyped-call]
        torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
        optimizer.step()
        scheduler.step()
        n += 1
        for k, v in losses.items():
            sums[k] = sums.get(k, 0.0) + float(v.detach())
        bar.set_postfix(loss=f"{float(loss.detach()):.3f}", lr=f"{scheduler.get_last_lr()[0]:.2e}")
        if deadline is not None and time.monotonic() > deadline:
            break
    return {k: v / max(n, 1) for k, v in sums.items()} | {"iters": float(n)}


@torch.no_grad()
def evaluate(model: torch.nn.Module, metadata: ModelMetadata, records: list[Record]) -> dict[str, Any]:
    """Evaluate in eval mode through the inference engine (same preprocessing and decoding as ONNX)."""
    model.eval()
    return evaluate_records(torch_detector(model, metadata), records, progress=False)
