"""``armscan train --config FILE``: train a detector with progress, per-epoch checkpoints, resume, a CSV
log and an end-of-run evaluation on generated validation scans; on the CPU, on a GPU (with mixed
precision), or on several processes with ``torchrun`` (DistributedDataParallel: gloo on the CPU, NCCL
on GPUs; ``batch_size`` is per process).

    armscan train --config training/det_small.yaml          # resumes from OUT/last.pt if present
    torchrun --standalone --nproc_per_node 2 -m armscan.serve.cli train --config training/det_small.yaml

With ``ema`` (the default), the checkpoint's ``model_state`` holds the moving average of the weights:
that is what is evaluated and exported. The raw weights (``train_state``) are kept for resuming.

A run that ``time_budget_min`` stops inside an epoch resumes inside it, with a larger budget (a spent one is an
error). Resuming refuses a config that changed anything but the budget, workers, device, mixed precision,
folder or validation size (``config.RESUME_MAY_CHANGE``): the restored optimizer and schedule would ignore it.
"""

from __future__ import annotations

import csv
import hashlib
import json
import math
import os
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, DistributedSampler, RandomSampler, Subset

from armscan.datasets.coco import ANNOTATIONS, dataset_hash, read_coco
from armscan.datasets.synth import GENERATOR_VERSION
from armscan.datasets.synth.scene import SceneConfig
from armscan.datasets.synth.writer import write_dataset
from armscan.datasets.taxonomy import CLASSES
from armscan.inference.preprocess import PreprocessSpec
from armscan.models import get_model
from armscan.models.detector import STRIDE
from armscan.training.checkpoint import (
    check_resumable,
    load_checkpoint,
    metadata_from_checkpoint,
    model_from_checkpoint,
    save_checkpoint,
)
from armscan.training.config import RESUME_MAY_CHANGE, VAL_SEED, TrainConfig
from armscan.training.data import CachedSynthDetection, CocoDetection, MixedDetection, SynthDetection, collate
from armscan.training.distributed import (
    DistContext,
    any_rank,
    barrier,
    close_distributed,
    init_distributed,
    make_ema,
    reduce_epoch,
)
from armscan.training.engine import MEMORY_FORMAT, evaluate, train_one_epoch


def _schedule(cfg: TrainConfig) -> Callable[[int], float]:
    total = cfg.epochs * cfg.iters_per_epoch

    def factor(it: int) -> float:
        if it < cfg.warmup_iters:
            return (it + 1) / cfg.warmup_iters
        progress = (it - cfg.warmup_iters) / max(1, total - cfg.warmup_iters)
        return 0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))

    return factor


def _epoch_seed(*key: int) -> int:
    return int(np.random.SeedSequence(list(key)).generate_state(1)[0])


def _loader(cfg: TrainConfig, dataset: Any, epoch: int, rank: int = 0, world_size: int = 1,
            skip: int = 0) -> DataLoader[Any]:
    """This rank's ``iters_per_epoch`` batches of epoch ``epoch``, less the first ``skip`` (those an interrupted
    run already trained on); ranks never share a scan within an epoch."""
    n = cfg.iters_per_epoch * cfg.batch_size  # per rank
    workers = cfg.workers
    if isinstance(dataset, CachedSynthDetection):  # each rank holds its own share of the cache
        seed = cfg.seed + epoch if world_size == 1 else _epoch_seed(cfg.seed, epoch, rank)
        sampler: Any = RandomSampler(dataset, num_samples=n, generator=torch.Generator().manual_seed(seed))
        subset: Any = dataset
        workers = 0  # in memory: no copies
    else:
        if isinstance(dataset, SynthDetection):  # fresh scans every epoch, in a reproducible order
            indices: Any = range(epoch * n * world_size, (epoch + 1) * n * world_size)
        else:
            gen = torch.Generator().manual_seed(cfg.seed + epoch)
            indices = list(RandomSampler(dataset, num_samples=n * world_size, generator=gen))
        if isinstance(dataset, MixedDetection):  # real images and synthetic replay, in the configured shares
            indices = dataset.draw(n * world_size, torch.Generator().manual_seed(cfg.seed + epoch))
        subset = Subset(dataset, indices)
        sampler = DistributedSampler(subset, num_replicas=world_size, rank=rank, shuffle=False)  # r, r + W, ...
    if skip:  # the same order, from batch ``skip`` on
        sampler = list(sampler)[skip * cfg.batch_size:]
    return DataLoader(subset, batch_size=cfg.batch_size, sampler=sampler, num_workers=workers, collate_fn=collate,
                      drop_last=True, persistent_workers=False, pin_memory=torch.cuda.is_available())


def _dataset(cfg: TrainConfig, spec: PreprocessSpec, ctx: DistContext) -> Any:
    if cfg.data.kind == "coco":
        folders = cfg.coco_folders()
        if not folders:
            raise ValueError("data.kind is 'coco' but neither data.coco_dir nor data.coco_dirs is set")
        real = CocoDetection(folders, spec, augment=True)
        if cfg.data.replay <= 0:
            return real
        if cfg.data.cache_size <= 0:
            raise ValueError("data.replay needs data.cache_size > 0: the number of synthetic scans to replay")
        return MixedDetection(real, _synth(cfg, spec, ctx), cfg.data.replay)
    return _synth(cfg, spec, ctx)


def _synth(cfg: TrainConfig, spec: PreprocessSpec, ctx: DistContext) -> Any:
    scene = SceneConfig(threat_prob=cfg.data.threat_prob, difficulty_probs=cfg.data.difficulty_probs)
    n_scans = cfg.data.cache_size or cfg.epochs * cfg.iters_per_epoch * cfg.batch_size * ctx.world_size
    dataset = SynthDetection(cfg.data.train_seed, n_scans, spec, cfg.data.min_side, cfg.data.max_side, scene)
    if not cfg.data.cache_size:
        return dataset
    processes = max(1, (os.cpu_count() or 2) // ctx.world_size)
    return CachedSynthDetection(dataset, cfg.data.cache_size, processes,
                                indices=range(ctx.rank, cfg.data.cache_size, ctx.world_size), progress=ctx.is_main)


def init_checkpoint(path: Path, task: str = "detect") -> tuple[Path, dict[str, Any]]:
    """The checkpoint to fine-tune from: ``path`` itself (.pt), or the .pt beside an exported .onnx. It must be
    a ``task`` model (an X-ray detector or a photo model) with this version's classes."""
    ckpt_path = path.with_suffix(".pt") if path.suffix == ".onnx" else path
    if not ckpt_path.is_file():
        hint = f" (an exported model is fine-tuned from its checkpoint {ckpt_path.name}, kept beside it)" \
            if path.suffix == ".onnx" else ""
        raise FileNotFoundError(f"init_from: {ckpt_path} does not exist{hint}")
    ckpt = load_checkpoint(ckpt_path)
    if ckpt.get("task", "detect") != task:
        what = {"detect": "an X-ray detector", "photo": "a seizure-photo model"}
        raise ValueError(f"init_from: {ckpt_path} is {what.get(ckpt.get('task', 'detect'), 'another kind of model')}; "
                         f"this config (task: {task}) trains {what.get(task, task)}")
    if task == "photo":
        from armscan.datasets.taxonomy import BUILDS, PHOTO_CLASSES
        from armscan.models.photo import MASK_STRIDE, MASKS

        for key, want in (("classes", list(PHOTO_CLASSES)), ("builds", list(BUILDS)), ("masks", list(MASKS))):
            if list(ckpt.get(key, [])) != want:
                raise ValueError(f"init_from: {ckpt_path} was trained on {key} {ckpt.get(key)}, not {want}")
        if int(ckpt.get("mask_stride", -1)) != MASK_STRIDE:
            raise ValueError(f"init_from: {ckpt_path} has mask stride {ckpt.get('mask_stride')}, not {MASK_STRIDE}")
    elif list(ckpt.get("classes", [])) != list(CLASSES):
        raise ValueError(f"init_from: {ckpt_path} was trained on classes {ckpt.get('classes')}, not {list(CLASSES)}")
    return ckpt_path, ckpt


def train(cfg: TrainConfig, resume: bool = True) -> Path:
    """Run (or resume) training; returns the path of the final checkpoint. Under torchrun, every rank calls it.

    With ``cfg.init_from``, the network (name, arguments) and its weights come from that checkpoint:
    fine-tuning; so do its input size and the weights of its loss terms (``loss_weights``) unless the config
    sets them: a parent trained with its class loss weighed twice forgets less when fine-tuned with the same
    balance, and the network is fully convolutional, so it can be refreshed at a larger input. The parent's
    path and hash are kept in the saved config for lineage.
    """
    init: dict[str, Any] | None = None
    if cfg.init_from is not None:
        ckpt_path, init = init_checkpoint(cfg.init_from, cfg.task)
        update: dict[str, Any] = {"init_from": ckpt_path, "model": init["model_name"],
                                  "model_args": dict(init["model_args"])}
        if "input_size" not in cfg.model_fields_set:  # the parent's input size, unless the config says
            update["input_size"] = int(init["preprocess"]["size"])
        if "loss_weights" not in cfg.model_fields_set:  # the parent's balance of loss terms, unless the config says
            update["loss_weights"] = dict(init.get("config", {}).get("loss_weights") or {})
        cfg = cfg.model_copy(update=update)
    if cfg.task == "photo":
        from armscan.training.photo import train_photo

        return train_photo(cfg, resume, init)
    ctx = init_distributed(cfg.device)
    try:
        return _train(cfg, resume, ctx, init)
    finally:
        close_distributed()


class BudgetSpentError(ValueError):
    """A run's time budget is spent while epochs remain: nothing can be trained without a larger budget."""


def _check_resume(cfg: TrainConfig, ckpt: dict[str, Any], path: Path) -> None:
    """Refuse to resume ``path`` into another network, with settings it would not honour, or with no budget left.

    The restored optimizer and scheduler keep the run's lr, weight decay and schedule (warm-up, epochs x
    iterations), and its data order follows its seeds and data settings; only the keys of
    :data:`~armscan.training.config.RESUME_MAY_CHANGE` (the time budget, the workers, the device, mixed precision,
    the folder and the end-of-run evaluation's size) may differ from the checkpoint's config. A changed key is a
    ``ValueError`` that lists each with its old and new value. A run whose budget is spent before its last epoch
    is a :class:`BudgetSpentError`: rerunning it could only train one more iteration each time.
    """
    check_resumable(ckpt, cfg.model_dump(mode="json"), path)
    changed = cfg.resume_changes(ckpt.get("config") or {})
    if changed:
        what = "; ".join(f"{k}: {old!r} -> {new!r}" for k, (old, new) in changed.items())
        raise ValueError(f"{path} was trained with other settings than this config ({what}). Resuming would keep the "
                         "checkpoint's optimizer, schedule and data order while recording the new values. Resume with "
                         f"the run's own settings ({path.parent / 'config.yaml'}; only "
                         f"{', '.join(sorted(RESUME_MAY_CHANGE))} may change), start a new run from these weights "
                         f"(init_from: {path}, with another out_dir), or pass --no-resume to start over.")
    spent = float(ckpt.get("budget_spent_s", ckpt.get("elapsed_s", 0.0)))
    if ckpt["epoch"] < cfg.epochs and spent >= cfg.time_budget_min * 60:
        done = int((ckpt.get("epoch_progress") or {}).get("iters", 0))
        inside = f" and {done} of {cfg.iters_per_epoch} iterations of the next" if done else ""
        raise BudgetSpentError(f"{path}: the {cfg.budget_clock} time budget of {cfg.time_budget_min:g} min is spent "
                               f"({spent / 60:.3g} min used) with {ckpt['epoch']} of {cfg.epochs} epochs done{inside}. "
                               f"To continue, rerun with a larger time_budget_min (more than {spent / 60:.3g}; e.g. "
                               "--set time_budget_min=N).")


def _continued(loader: DataLoader[Any], rng: torch.Tensor) -> Iterator[Any]:
    """``loader``'s batches with the global RNG as an interrupted epoch left it, set once the iterator exists
    (creating it draws the workers' base seed): the augmentation then goes on exactly as it would have."""
    batches = iter(loader)
    torch.set_rng_state(rng)
    yield from batches


def _merge(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    """One epoch's statistics from its two parts: loss means weighed by iterations, counts summed."""
    a, b = before.get("iters", 0.0), after.get("iters", 0.0)
    out = {k: (before.get(k, 0.0) * a + after.get(k, 0.0) * b) / max(a + b, 1.0) for k in before | after}
    return out | {"iters": a + b, "images": before.get("images", 0.0) + after.get("images", 0.0)}


def _train(cfg: TrainConfig, resume: bool, ctx: DistContext, init: dict[str, Any] | None = None) -> Path:
    """Train on this rank. An epoch the time budget cuts short is checkpointed as unfinished, with how far it got
    (``epoch_progress``: iterations, their statistics and, on one process, the RNG state); resuming skips the
    batches it trained on and goes on in the same order (on one process with ``workers: 0``, exactly)."""
    out = cfg.out_dir
    last = out / "last.pt"
    torch.manual_seed(cfg.seed)  # the same initial weights on every rank (DDP also broadcasts rank 0's)
    spec = PreprocessSpec(size=cfg.input_size)
    model = get_model(cfg.model, **cfg.model_args).to(ctx.device, memory_format=MEMORY_FORMAT)
    if init is not None:
        model.load_state_dict(init["model_state"])
    ema = make_ema(model, cfg.ema_decay, warmup=cfg.init_from is None) if cfg.ema else None
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, _schedule(cfg))
    start_epoch, elapsed, spent, history = 0, 0.0, 0.0, []
    done, partial, rng = 0, {}, None  # how far an interrupted epoch got
    clock = time.monotonic if cfg.budget_clock == "wall" else time.process_time
    if resume and last.exists():
        ckpt = load_checkpoint(last)
        _check_resume(cfg, ckpt, last)
        model.load_state_dict(ckpt.get("train_state", ckpt["model_state"]))
        if ema is not None and "ema_updates" in ckpt:
            ema.module.load_state_dict(ckpt["model_state"])
            ema.n_averaged.fill_(int(ckpt["ema_updates"]))
        elif ema is not None:  # the run so far had no EMA: start one from the weights as they are
            ema = make_ema(model, cfg.ema_decay, warmup=cfg.init_from is None)
        optimizer.load_state_dict(ckpt["optimizer"])
        scheduler.load_state_dict(ckpt["scheduler"])
        start_epoch, elapsed, history = ckpt["epoch"], ckpt["elapsed_s"], ckpt["history"]
        spent = ckpt.get("budget_spent_s", elapsed)
        progress = ckpt.get("epoch_progress") or {}
        done, partial = int(progress.get("iters", 0)), dict(progress.get("stats", {}))
        if ckpt.get("world_size", 1) == 1 == ctx.world_size:  # one process before and now: its RNG carries over
            rng = progress.get("rng")
        if ctx.is_main:
            inside = f", iteration {done} of {cfg.iters_per_epoch}" if done else ""
            print(f"resuming from {last} at epoch {start_epoch}{inside} ({elapsed / 60:.1f} min already spent; "
                  f"{ckpt.get('world_size', 1)} process(es) before, {ctx.world_size} now)")
    if ctx.is_main:  # after the checks: a refused resume leaves the run's config as it was
        out.mkdir(parents=True, exist_ok=True)
        cfg.save(out / "config.yaml")
    ddp: torch.nn.Module = model
    if ctx.world_size > 1:
        ddp = DistributedDataParallel(model, device_ids=[ctx.device.index] if ctx.device.type == "cuda" else None)
    dataset = _dataset(cfg, spec, ctx)
    config, prep = cfg.model_dump(mode="json"), spec.to_dict()
    lineage = run_lineage(cfg)
    budget_s, spent_before, started = cfg.time_budget_min * 60, spent, clock()
    deadline = started + budget_s - spent_before
    for epoch in range(start_epoch, cfg.epochs):
        skip = done if epoch == start_epoch else 0
        # augmentation: reproducible, also on resume (inside an epoch on several processes: from a seed of its own)
        torch.manual_seed(_epoch_seed(cfg.seed, ctx.rank, epoch, *([skip] if skip and rng is None else [])))
        loader: Any = _loader(cfg, dataset, epoch, ctx.rank, ctx.world_size, skip)
        if skip and rng is not None:
            loader = _continued(loader, rng)
        t0 = time.monotonic()
        stats = train_one_epoch(ddp, loader, optimizer, scheduler,
                                STRIDE, cfg.grad_clip, epoch, cfg.iters_per_epoch - skip, deadline, ema=ema,
                                device=ctx.device, amp=cfg.amp, stop=lambda flag: any_rank(ctx, flag),
                                progress=ctx.is_main, clock=clock, freeze_bn=cfg.freeze_bn,
                                loss_weights=cfg.loss_weights)
        stats = reduce_epoch(ctx, stats)
        if skip:
            stats = _merge(partial, stats)
        finished = int(stats["iters"]) >= cfg.iters_per_epoch  # else the budget cut it short
        elapsed += time.monotonic() - t0
        spent = spent_before + clock() - started
        row = {"epoch": epoch, "elapsed_min": round(elapsed / 60, 2), "budget_min": round(spent / 60, 2),
               "lr": scheduler.get_last_lr()[0], "world_size": ctx.world_size, **{k: round(v, 4) for k, v in stats.items()}}
        if skip and history and history[-1]["epoch"] == epoch:  # the rest of an interrupted epoch: one row for it
            history[-1] = row
        else:
            history.append(row)
        if ctx.is_main:
            _write_log(out / "log.csv", history)
            print(json.dumps(row))
            progress = None if finished else {"iters": int(stats["iters"]), "stats": stats, "rng": torch.get_rng_state()}
            state = {"epoch": epoch + 1 if finished else epoch, "epoch_progress": progress, "elapsed_s": elapsed,
                     "budget_spent_s": spent, "history": history, "world_size": ctx.world_size, "lineage": lineage,
                     "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict()}
            if ema is not None:
                state |= {"train_state": model.state_dict(), "ema_updates": int(ema.n_averaged)}
            save_checkpoint(last, ema.module if ema is not None else model, cfg.model, cfg.model_args, config, prep,
                            state)
        if not finished or any_rank(ctx, spent >= budget_s):
            if ctx.is_main:
                where = (f"after epoch {epoch}" if finished else
                         f"in epoch {epoch}, after {int(stats['iters'])} of {cfg.iters_per_epoch} iterations (saved "
                         "as unfinished)")
                more = "; rerun with a larger time_budget_min to go on" if epoch + 1 < cfg.epochs or not finished else ""
                print(f"{cfg.budget_clock} time budget of {cfg.time_budget_min} min reached {where}; stopping{more}")
            break
    barrier(ctx)
    if ctx.is_main and cfg.val_images > 0:
        _validate(cfg, last)
    return last


#: The end-of-training validation scans: ``val_images`` generated at VAL_SEED, this size, the default scene.
VAL_SIDE = 416


def _validate(cfg: TrainConfig, last: Path) -> None:
    """Evaluate the checkpointed (EMA) weights, exactly what an export would carry, on generated scans. A val set
    left in the folder by an earlier run is used only if it is the one asked for (its size, seeds, scan size and
    generator); another generated one is replaced, and a folder training did not generate is refused."""
    val_dir = cfg.out_dir / "val"
    scene = SceneConfig()
    want = {"seed": VAL_SEED, "n": cfg.val_images, "width": VAL_SIDE, "height": VAL_SIDE, "threat_prob": scene.threat_prob}
    info = _val_info(val_dir)
    if info is not None and ({k: info.get(k) for k in want} != want
                             or f"(generator {GENERATOR_VERSION})" not in str(info.get("description"))):
        if not str(info.get("description", "")).startswith("armscan synthetic"):
            raise ValueError(f"{val_dir} holds a dataset training did not generate ({info.get('description')!r}); the "
                             "end-of-training validation writes its scans there: move it, or set another out_dir")
        print(f"{val_dir} holds another validation set ({ {k: info.get(k) for k in want} }); generating {want}")
        shutil.rmtree(val_dir / "images", ignore_errors=True)
        (val_dir / ANNOTATIONS).unlink()
        info = None
    if info is None:
        write_dataset(val_dir, cfg.val_images, VAL_SEED, VAL_SIDE, VAL_SIDE, scene)
    ckpt = load_checkpoint(last)
    metrics = evaluate(model_from_checkpoint(ckpt), metadata_from_checkpoint(ckpt, version="val"), read_coco(val_dir))
    (cfg.out_dir / "val_metrics.json").write_text(json.dumps(metrics, indent=2))
    print(json.dumps({"val_mAP50": metrics["mAP50"], "val_mAP": metrics["mAP"]}))


def _val_info(val_dir: Path) -> dict[str, Any] | None:
    """The ``info`` of ``val_dir``'s COCO file (``{}`` if it has none or is unreadable); None when there is no file."""
    path = val_dir / ANNOTATIONS
    if not path.is_file():
        return None
    try:
        info = json.loads(path.read_text()).get("info")
    except (ValueError, AttributeError):
        return {}
    return info if isinstance(info, dict) else {}


def run_lineage(cfg: TrainConfig) -> dict[str, Any]:
    """What a checkpoint records of where it came from: the parent it was fine-tuned from (path and SHA-256),
    each data folder's content hash and the share of synthetic replay."""
    return {"parent": str(cfg.init_from) if cfg.init_from else None,
            "parent_sha256": _sha256(cfg.init_from) if cfg.init_from else None,
            "datasets": {str(f): dataset_hash(f) for f in cfg.coco_folders()} if cfg.data.kind == "coco" else {},
            "replay": cfg.data.replay if cfg.data.kind == "coco" else None}


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _write_log(path: Path, history: list[dict[str, Any]]) -> None:
    """Rewrite the CSV log from the checkpoint's history (atomic; columns added later are kept)."""
    fields = list(dict.fromkeys(k for row in history for k in row))
    tmp = path.with_suffix(".tmp")
    with tmp.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=fields, restval="")
        w.writeheader()
        w.writerows(history)
    tmp.replace(path)
