"""Distributed data-parallel plumbing for ``armscan train`` under ``torchrun``, and EMA of the weights.

Launched by ``torchrun`` (which sets ``RANK``, ``LOCAL_RANK`` and ``WORLD_SIZE``), training joins a
process group: NCCL when it runs on CUDA, gloo on the CPU. Launched plainly, it is one process and
nothing here touches ``torch.distributed``.

    torchrun --standalone --nproc_per_node 2 -m armscan.serve.cli train --config training/det_small.yaml
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Literal

import torch
import torch.distributed as dist
from torch.optim.swa_utils import AveragedModel

_Tensors = tuple[torch.Tensor, ...] | list[torch.Tensor]


@dataclass(frozen=True)
class DistContext:
    """Where this process stands: its rank among ``world_size`` processes and the device it trains on."""

    rank: int = 0
    world_size: int = 1
    device: torch.device = torch.device("cpu")

    @property
    def is_main(self) -> bool:
        """Rank 0: the one process that writes checkpoints, logs and prints."""
        return self.rank == 0


def init_distributed(device: Literal["auto", "cpu", "cuda"] = "auto") -> DistContext:
    """Join the ``torchrun`` process group if there is one, and pick this process's device."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank, local_rank = int(os.environ.get("RANK", "0")), int(os.environ.get("LOCAL_RANK", "0"))
    if device == "cuda" and not torch.cuda.is_available():
        raise ValueError("device is 'cuda' but torch sees no CUDA device; use 'auto' or 'cpu'")
    use_cuda = device == "cuda" or (device == "auto" and torch.cuda.is_available())
    dev = torch.device("cuda", local_rank % torch.cuda.device_count()) if use_cuda else torch.device("cpu")
    if use_cuda:
        torch.cuda.set_device(dev)
    if world > 1 and not dist.is_initialized():
        dist.init_process_group(backend="nccl" if use_cuda else "gloo", device_id=dev if use_cuda else None)
    return DistContext(rank=rank, world_size=world, device=dev)


def close_distributed() -> None:
    """Leave the process group (a no-op in a single process)."""
    if dist.is_initialized():
        dist.destroy_process_group()


def barrier(ctx: DistContext) -> None:
    """Wait for every rank."""
    if ctx.world_size > 1:
        dist.barrier()


def any_rank(ctx: DistContext, flag: bool) -> bool:
    """True on every rank if ``flag`` is true on any: ranks must agree on when to stop, or DDP hangs."""
    if ctx.world_size == 1:
        return flag
    t = torch.tensor([int(flag)], device=ctx.device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item())


def reduce_epoch(ctx: DistContext, stats: dict[str, float]) -> dict[str, float]:
    """Combine ``train_one_epoch``'s per-rank results: loss means are averaged, ``images`` are summed."""
    if ctx.world_size == 1:
        return stats
    keys = list(stats)
    t = torch.tensor([stats[k] for k in keys], dtype=torch.float64, device=ctx.device)
    dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return {k: float(v) if k == "images" else float(v) / ctx.world_size for k, v in zip(keys, t.tolist(), strict=True)}


def make_ema(model: torch.nn.Module, decay: float, warmup: bool = True) -> AveragedModel:
    """An exponential moving average of ``model``'s weights and BatchNorm statistics.

    With ``warmup``, the effective decay is ``min(decay, (1 + n) / (10 + n))`` after ``n`` updates, so
    the average follows the fast-moving early weights instead of remembering the random
    initialisation. Fine-tuning turns it off: there the starting weights are worth remembering.
    """
    if not 0.0 < decay < 1.0:
        raise ValueError(f"Invalid ema_decay {decay}. It must lie strictly between 0 and 1.")

    @torch.no_grad()
    def update(ema: _Tensors, current: _Tensors, n: torch.Tensor | int) -> None:
        d = min(decay, (1.0 + float(n)) / (10.0 + float(n))) if warmup else decay
        if ema[0].is_floating_point():
            torch._foreach_lerp_(ema, current, 1.0 - d)
        else:  # BatchNorm's num_batches_tracked: a counter, not an average
            for e, c in zip(ema, current, strict=True):
                e.copy_(c)

    return AveragedModel(model, multi_avg_fn=update, use_buffers=True)
