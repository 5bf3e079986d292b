"""``armscan train --config FILE``: train a detector on the CPU, with progress,
per-epoch checkpoints, resume, a CSV log and an end-of-run evaluation on generated validation scans.

    armscan train --config training/det_small.yaml          # resumes from OUT/last.pt if present
"""

from __future__ import annotations

import csv
import json
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader, RandomSampler, Subset

from armscan.datasets.coco import read_coco
from armscan.datasets.synth.scene import SceneConfig
from armscan.datasets.synth.writer import write_dataset
from armscan.inference.preprocess import PreprocessSpec
from armscan.models import get_model
from armscan.models.detector import STRIDE
from armscan.training.checkpoint import load_checkpoint, metadata_from_checkpoint, save_checkpoint
from armscan.training.config import VAL_SEED, TrainConfig
from armscan.training.data import CachedSynthDetection, CocoDetection, SynthDetection, collate
from armscan.training.engine import evaluate, train_one_epoch


def _schedule(cfg: TrainConfig) -> Callable[[int], float]:
    total = cfg.epochs * cfg.iters_per_epoch

    def factor(it: int) -> float:
        if it < cfg.warmup_iters:
            return (it + 1) / cfg.warmup_iters
        progress = (it - cfg.warmup_iters) / max(1, total - cfg.warmup_iters)
        return 0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))

    return factor


def _loader(cfg: TrainConfig, dataset: Any, epoch: int) -> DataLoader[Any]:
    n = cfg.iters_per_epoch * cfg.batch_size
    if isinstance(dataset, SynthDetection):  # fresh scans every epoch, in a reproducible order
        subset: Any = Subset(dataset, range(epoch * n, (epoch + 1) * n))
        sampler = None
    else:
        subset = dataset
        sampler = RandomSampler(dataset, num_samples=n, generator=torch.Generator().manual_seed(cfg.seed + epoch))
    workers = 0 if isinstance(dataset, CachedSynthDetection) else cfg.workers  # in-memory: no copies
    return DataLoader(subset, batch_size=cfg.batch_size, sampler=sampler, num_workers=workers,
                      collate_fn=collate, drop_last=True, persistent_workers=False)


def train(cfg: TrainConfig, resume: bool = True) -> Path:
    """Run (or resume) training; returns the path of the final checkpoint."""
    out = cfg.out_dir
    out.mkdir(parents=True, exist_ok=True)
    cfg.save(out / "config.yaml")
    torch.manual_seed(cfg.seed)
    spec = PreprocessSpec(size=cfg.input_size)
    model = get_model(cfg.model, **cfg.model_args)
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, _schedule(cfg))
    start_epoch, elapsed, history = 0, 0.0, []
    last = out / "last.pt"
    if resume and last.exists():
        ckpt = load_checkpoint(last)
        model.load_state_dict(ckpt["model_state"])
        optimizer.load_state_dict(ckpt["optimizer"])
        scheduler.load_state_dict(ckpt["scheduler"])
        start_epoch, elapsed, history = ckpt["epoch"], ckpt["elapsed_s"], ckpt["history"]
        print(f"resuming from {last} at epoch {start_epoch} ({elapsed / 60:.1f} min already spent)")
    if cfg.data.kind == "synth":
        scene = SceneConfig(threat_prob=cfg.data.threat_prob)
        n_scans = cfg.data.cache_size or cfg.epochs * cfg.iters_per_epoch * cfg.batch_size
        dataset: Any = SynthDetection(cfg.data.train_seed, n_scans, spec, cfg.data.min_side, cfg.data.max_side, scene)
        if cfg.data.cache_size:
            dataset = CachedSynthDetection(dataset, cfg.data.cache_size)
    else:
        if cfg.data.coco_dir is None:
            raise ValueError("data.kind is 'coco' but data.coco_dir is not set")
        dataset = CocoDetection(cfg.data.coco_dir, spec)
    config, prep = cfg.model_dump(mode="json"), spec.to_dict()
    deadline = time.monotonic() + cfg.time_budget_min * 60 - elapsed
    for epoch in range(start_epoch, cfg.epochs):
        t0 = time.monotonic()
        losses = train_one_epoch(model, _loader(cfg, dataset, epoch), optimizer, scheduler, STRIDE, cfg.grad_clip,
                                 epoch, cfg.iters_per_epoch, deadline)
        elapsed += time.monotonic() - t0
        row = {"epoch": epoch, "elapsed_min": round(elapsed / 60, 2), "lr": scheduler.get_last_lr()[0],
               **{k: round(v, 4) for k, v in losses.items()}}
        history.append(row)
        _append_csv(out / "log.csv", row)
        print(json.dumps(row))
        save_checkpoint(last, model, cfg.model, cfg.model_args, config, prep,
                        {"epoch": epoch + 1, "elapsed_s": elapsed, "history": history,
                         "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict()})
        if time.monotonic() > deadline:
            print(f"time budget of {cfg.time_budget_min} min reached after epoch {epoch}; stopping")
            break
    if cfg.val_images > 0:
        val_dir = out / "val"
        if not (val_dir / "annotations.json").exists():
            write_dataset(val_dir, cfg.val_images, VAL_SEED, 416, 416, SceneConfig())
        ckpt = load_checkpoint(last)
        metrics = evaluate(model, metadata_from_checkpoint(ckpt, version="val"), read_coco(val_dir))
        (out / "val_metrics.json").write_text(json.dumps(metrics, indent=2))
        print(json.dumps({"val_mAP50": metrics["mAP50"], "val_mAP": metrics["mAP"]}))
    return last


def _append_csv(path: Path, row: dict[str, Any]) -> None:
    new = not path.exists()
    with path.open("a", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(row))
        if new:
            w.writeheader()
        w.writerow(row)
