"""The seizure-photo model's training, evaluation and export (``task: photo`` in the training config).

It runs on the detector's machinery: the same typed config, cosine schedule, EMA, time budget (wall or
CPU), self-describing checkpoints with resume, CSV log, ONNX export with metadata, and the same
torch-free engine for evaluation (:class:`armscan.inference.photo.PhotoClassifier`), so a checkpoint is
measured exactly as its export will run. A run that ``time_budget_min`` stops inside an epoch resumes inside
it, exactly, and resuming refuses a spent budget or a changed recipe, as the detector's does
(:mod:`armscan.training.train`).

    armscan train --config training/photo_small.yaml
    armscan export --checkpoint runs/photo/last.pt --out models/bundled/armscan-photo.onnx
    armscan eval --model models/bundled/armscan-photo.onnx --data runs/photos-test
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, RandomSampler

from armscan.datasets.photo import PhotoConfig, render_photo
from armscan.datasets.taxonomy import BUILDS, ID1_CARD_MM, PHOTO_CLASSES
from armscan.inference.photo import PHOTO_OUTPUTS, PhotoBands, PhotoClassifier, PhotoMetadata
from armscan.inference.preprocess import PreprocessSpec
from armscan.models import get_model
from armscan.models.photo import MASK_STRIDE, MASKS
from armscan.training.calibration import expected_calibration_error
from armscan.training.config import TrainConfig
from armscan.training.data import MixedDetection
from armscan.training.distributed import make_ema
from armscan.training.engine import MEMORY_FORMAT, freeze_batchnorm, total_loss
from armscan.training.photo_data import PhotoFolder, PhotoRenders, collate_photos, photo_loss

BAND_ACCURACY = {"confident": 0.98, "probable": 0.90}  # accuracy each band must reach on validation renders


def _save(path: Path, model: torch.nn.Module, cfg: TrainConfig, spec: PreprocessSpec, state: dict[str, Any]) -> None:
    ckpt = {"task": "photo", "model_name": cfg.model, "model_args": cfg.model_args, "model_state": model.state_dict(),
            "config": cfg.model_dump(mode="json"), "preprocess": spec.to_dict(), "classes": list(PHOTO_CLASSES),
            "builds": list(BUILDS), "masks": list(MASKS), "mask_stride": MASK_STRIDE, **state}
    tmp = path.with_suffix(".tmp")
    torch.save(ckpt, tmp)
    tmp.replace(path)


def model_from_photo_checkpoint(ckpt: dict[str, Any]) -> torch.nn.Module:
    """Rebuild the photo network from its checkpoint, in eval mode."""
    model: torch.nn.Module = get_model(ckpt["model_name"], num_classes=len(ckpt["classes"]),
                                       num_builds=len(ckpt["builds"]), num_masks=len(ckpt["masks"]),
                                       **ckpt["model_args"])
    model.load_state_dict(ckpt["model_state"])
    return model.eval()


def photo_metadata(ckpt: dict[str, Any], version: str, training: dict[str, Any] | None = None) -> PhotoMetadata:
    """The metadata an export of this checkpoint carries (temperature 1 and default bands until calibrated)."""
    return PhotoMetadata(name=ckpt["model_name"], version=version, architecture=f"{ckpt['model_name']} {ckpt['model_args']}",
                         classes=list(ckpt["classes"]), builds=list(ckpt["builds"]), masks=list(ckpt["masks"]),
                         mask_stride=int(ckpt["mask_stride"]), card_mm=ID1_CARD_MM, preprocess=ckpt["preprocess"],
                         training=training or {})


def torch_classifier(model: torch.nn.Module, metadata: PhotoMetadata) -> PhotoClassifier:
    """Wrap a torch model in the inference engine."""
    model.eval()

    def run(batch: np.ndarray) -> dict[str, np.ndarray]:
        with torch.no_grad():
            outs = model(torch.from_numpy(batch))
        return {n: o.numpy() for n, o in zip(PHOTO_OUTPUTS, outs, strict=True)}

    return PhotoClassifier(run, metadata)


def _schedule(cfg: TrainConfig) -> Any:
    from armscan.training.train import _schedule as detector_schedule

    return detector_schedule(cfg)


def _dataset(cfg: TrainConfig, spec: PreprocessSpec) -> Any:
    """The photos to train on: renders, or photo folders (with ``data.replay``: mixed with that share of renders,
    so that a fine-tune on a few families of real photos does not forget the others)."""
    folders = cfg.coco_folders()

    def renders(size: int) -> PhotoRenders:
        return PhotoRenders(cfg.data.train_seed, size, spec, MASK_STRIDE, PhotoConfig.from_dict(cfg.data.photo),
                            upright_share=cfg.data.upright_share)

    if cfg.data.kind == "coco":
        if not folders:
            raise ValueError("data.kind is 'coco' but neither data.coco_dir nor data.coco_dirs is set")
        real = PhotoFolder(folders, spec, MASK_STRIDE, upright_share=cfg.data.upright_share)
        if cfg.data.replay <= 0:
            return real
        if cfg.data.cache_size <= 0:
            raise ValueError("data.replay needs data.cache_size > 0: the number of renders to replay")
        return MixedDetection(real, renders(cfg.data.cache_size), cfg.data.replay)
    return renders(cfg.data.cache_size or 2000)


def train_photo(cfg: TrainConfig, resume: bool = True, init: dict[str, Any] | None = None) -> Path:
    """Train (or resume) the photo model on one process; returns the checkpoint path. ``init``: the checkpoint
    whose weights it starts from (``init_from``, :func:`armscan.training.train.train` checks it): fine-tuning,
    say on an analyst's own labelled photos.

    An epoch the time budget cuts short is checkpointed as unfinished, with how far it got (``epoch_progress``:
    iterations, their statistics and the RNG state); resuming skips the batches it trained on and goes on in the
    same order with the same augmentation. Resuming refuses what the detector's trainer refuses (a changed recipe,
    a spent budget: :class:`~armscan.training.train.BudgetSpentError`), before ``config.yaml`` is rewritten.
    """
    from tqdm import tqdm

    from armscan.training.train import _check_resume, _continued, _merge, run_lineage

    out = cfg.out_dir
    last = out / "last.pt"
    torch.manual_seed(cfg.seed)
    spec = PreprocessSpec(size=cfg.input_size, pad_value=114)
    model = get_model(cfg.model, num_classes=len(PHOTO_CLASSES), num_builds=len(BUILDS), num_masks=len(MASKS),
                      **cfg.model_args).to(memory_format=MEMORY_FORMAT)
    if init is not None:
        model.load_state_dict(init["model_state"])
    ema = make_ema(model, cfg.ema_decay, warmup=init is None) if cfg.ema else None
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, _schedule(cfg))
    start, elapsed, spent, history = 0, 0.0, 0.0, []
    done, partial, rng = 0, {}, None  # how far an interrupted epoch got
    if resume and last.exists():
        ckpt = torch.load(last, map_location="cpu", weights_only=False)
        _check_resume(cfg, ckpt, last)
        model.load_state_dict(ckpt.get("train_state", ckpt["model_state"]))
        if ema is not None and "ema_updates" in ckpt:
            ema.module.load_state_dict(ckpt["model_state"])
            ema.n_averaged.fill_(int(ckpt["ema_updates"]))
        optimizer.load_state_dict(ckpt["optimizer"])
        scheduler.load_state_dict(ckpt["scheduler"])
        start, elapsed, spent, history = ckpt["epoch"], ckpt["elapsed_s"], ckpt["budget_spent_s"], ckpt["history"]
        progress = ckpt.get("epoch_progress") or {}
        done, partial, rng = int(progress.get("iters", 0)), dict(progress.get("stats", {})), progress.get("rng")
        inside = f", iteration {done} of {cfg.iters_per_epoch}" if done else ""
        print(f"resuming from {last} at epoch {start}{inside}")
    out.mkdir(parents=True, exist_ok=True)  # after the checks: a refused resume leaves the run's config as it was
    cfg.save(out / "config.yaml")
    dataset = _dataset(cfg, spec)
    lineage = run_lineage(cfg)
    clock = time.monotonic if cfg.budget_clock == "wall" else time.process_time
    budget_s, spent_before, started = cfg.time_budget_min * 60, spent, clock()
    deadline = started + budget_s - spent_before

    for epoch in range(start, cfg.epochs):
        skip = done if epoch == start else 0
        torch.manual_seed(cfg.seed * 1000 + epoch)
        n_samples, gen = cfg.iters_per_epoch * cfg.batch_size, torch.Generator().manual_seed(cfg.seed + epoch)
        sampler: Any = dataset.draw(n_samples, gen) if isinstance(dataset, MixedDetection) else \
            RandomSampler(dataset, num_samples=n_samples, generator=gen)  # real photos and replay in their shares
        if skip:  # the same order, from batch ``skip`` on
            sampler = list(sampler)[skip * cfg.batch_size:]
        loader: Any = DataLoader(dataset, batch_size=cfg.batch_size, sampler=sampler, collate_fn=collate_photos,
                                 drop_last=True, num_workers=0)
        if skip and rng is not None:  # the augmentation and dropout go on as the interrupted run left them
            loader = _continued(loader, rng)
        model.train()
        if cfg.freeze_bn:  # fine-tuning: the parent's batch-norm statistics stay
            freeze_batchnorm(model)
        t0, n = time.monotonic(), 0
        sums: dict[str, float] = {}
        for x, target in tqdm(loader, total=cfg.iters_per_epoch - skip, desc=f"epoch {epoch}", mininterval=5.0):
            losses = photo_loss(model(x.contiguous(memory_format=MEMORY_FORMAT)), target)
            loss = total_loss(losses, cfg.loss_weights)
            if not torch.isfinite(loss):
                raise RuntimeError(f"loss is not finite at epoch {epoch}: {({k: float(v) for k, v in losses.items()})}")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()  # type: ignore[no-untyped-call]
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            optimizer.step()
            scheduler.step()
            if ema is not None:
                ema.update_parameters(model)
            n += 1
            for k, v in losses.items():
                sums[k] = sums.get(k, 0.0) + float(v.detach())
            if clock() > deadline:
                break
        stats = {k: v / max(n, 1) for k, v in sums.items()} | {"iters": float(n)}
        if skip:
            stats = _merge(partial, stats)
        iters = int(stats["iters"])
        finished = iters >= cfg.iters_per_epoch  # else the budget cut it short
        elapsed += time.monotonic() - t0
        spent = spent_before + clock() - started
        row = {"epoch": epoch, "elapsed_min": round(elapsed / 60, 2), "budget_min": round(spent / 60, 2),
               "lr": scheduler.get_last_lr()[0], **{k: round(v, 4) for k, v in stats.items() if k not in
                                                    ("iters", "images")}, "iters": iters}
        if skip and history and history[-1]["epoch"] == epoch:  # the rest of an interrupted epoch: one row for it
            history[-1] = row
        else:
            history.append(row)
        print(json.dumps(row))
        _write_log(out / "log.csv", history)
        progress = None if finished else {"iters": iters, "stats": stats, "rng": torch.get_rng_state()}
        state = {"epoch": epoch + 1 if finished else epoch, "epoch_progress": progress, "elapsed_s": elapsed,
                 "budget_spent_s": spent, "history": history, "lineage": lineage, "optimizer": optimizer.state_dict(),
                 "scheduler": scheduler.state_dict()}
        if ema is not None:
            state |= {"train_state": model.state_dict(), "ema_updates": int(ema.n_averaged)}
        _save(last, ema.module if ema is not None else model, cfg, spec, state)
        if not finished or spent >= budget_s:
            where = (f"after epoch {epoch}" if finished else
                     f"in epoch {epoch}, after {iters} of {cfg.iters_per_epoch} iterations (saved as unfinished)")
            more = "; rerun with a larger time_budget_min to go on" if epoch + 1 < cfg.epochs or not finished else ""
            print(f"{cfg.budget_clock} time budget of {cfg.time_budget_min} min reached {where}; stopping{more}")
            break
    return last


def _write_log(path: Path, history: list[dict[str, Any]]) -> None:
    from armscan.training.train import _write_log as write

    write(path, history)


def fit_temperature(logits: np.ndarray, labels: np.ndarray) -> float:
    """The temperature that minimises the negative log-likelihood of ``labels`` (search on a log grid)."""
    def nll(t: float) -> float:
        z = logits / t
        z = z - z.max(axis=1, keepdims=True)
        logp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
        return float(-logp[np.arange(len(labels)), labels].mean())

    grid = np.exp(np.linspace(np.log(0.05), np.log(20.0), 241))
    best = float(grid[int(np.argmin([nll(t) for t in grid]))])
    fine = best * np.exp(np.linspace(-0.03, 0.03, 31))
    return round(float(fine[int(np.argmin([nll(t) for t in fine]))]), 4)


def choose_bands(prob: np.ndarray, correct: np.ndarray, min_n: int = 30, z: float = 1.645) -> PhotoBands:
    """The lowest probability thresholds at which the answers above reach each band's accuracy, judged by
    the one-sided 95% lower (Wilson) bound of that accuracy, so a lucky validation set does not set them."""
    order = np.argsort(-prob)
    p, c = prob[order], correct[order].astype(np.float64)
    k = np.arange(1, len(c) + 1)
    a = np.cumsum(c) / k  # accuracy of the k most confident answers
    acc = (a + z * z / (2 * k) - z * np.sqrt(a * (1 - a) / k + z * z / (4 * k * k))) / (1 + z * z / k)

    def lowest(target: float) -> float:
        ok = np.flatnonzero((acc >= target) & (k >= min_n))
        return float(p[ok.max()]) if len(ok) else 1.0

    confident, probable = lowest(BAND_ACCURACY["confident"]), lowest(BAND_ACCURACY["probable"])
    return PhotoBands(confident=round(max(confident, 0.5), 4), probable=round(min(max(probable, 0.34), max(confident, 0.5)), 4),
                      chosen_on=f"{len(prob)} validation photos: accuracy >= {BAND_ACCURACY}")


def _renders(n: int, seed: int) -> list[Any]:
    return [render_photo(seed + i) for i in range(n)]


def _labelled(samples: list[Any]) -> list[dict[str, Any]]:
    """Renders (PhotoSample) or records on disk (PhotoRecord) as plain dicts."""
    import cv2

    out = []
    for s in samples:
        if hasattr(s, "image") and isinstance(s.image, np.ndarray):
            out.append({"image": s.image, "label": s.label, "build": s.build, "length_mm": s.length_mm,
                        "barrel_mm": s.barrel_mm, "reference": s.reference})
        else:
            out.append({"image": cv2.imread(str(s.image), cv2.IMREAD_COLOR), "label": s.label, "build": s.build,
                        "length_mm": s.length_mm, "barrel_mm": s.barrel_mm, "reference": s.reference})
    return out


def calibrate(classifier: PhotoClassifier, samples: list[Any]) -> tuple[float, float, PhotoBands, dict[str, Any]]:
    """Fit the family and build temperatures and choose the bands on validation photos."""
    md = classifier.metadata
    logs, labels, blogs, bl = [], [], [], []
    saved = md.temperature, md.build_temperature
    md.temperature = md.build_temperature = 1.0
    for s in _labelled(samples):
        fam, build, _, _ = classifier.probabilities(s["image"])
        logs.append(np.log(np.clip(fam, 1e-12, 1.0)))
        labels.append(md.classes.index(s["label"]))
        if s["build"] in md.builds:
            blogs.append(np.log(np.clip(build, 1e-12, 1.0)))
            bl.append(md.builds.index(s["build"]))
    md.temperature, md.build_temperature = saved
    logits, y = np.stack(logs), np.array(labels)
    t = fit_temperature(logits, y)
    tb = fit_temperature(np.stack(blogs), np.array(bl)) if bl else 1.0
    z = logits / t
    prob = np.exp(z - z.max(1, keepdims=True))
    prob /= prob.sum(1, keepdims=True)
    bands = choose_bands(prob.max(1), prob.argmax(1) == y)
    p0 = np.exp(logits - logits.max(1, keepdims=True))
    p0 /= p0.sum(1, keepdims=True)
    stats = {"n": len(y), "ece_before": round(expected_calibration_error(p0.max(1), p0.argmax(1) == y, 15)[0], 4),
             "ece_after": round(expected_calibration_error(prob.max(1), prob.argmax(1) == y, 15)[0], 4),
             "temperature": t, "build_temperature": tb}
    return t, tb, bands, stats
