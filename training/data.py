"""Training datasets: synthetic scans (on the fly, or cached in memory), or a COCO folder, all preprocessed by
the exact transform that inference uses (``armscan.inference.preprocess``)."""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from armscan.datasets.coco import read_coco
from armscan.datasets.readers import read_image
from armscan.datasets.synth.scene import SceneConfig, generate
from armscan.datasets.taxonomy import BUILDS, CLASSES, FIREARM_TYPES
from armscan.inference.preprocess import Letterbox, PreprocessSpec, letterbox, normalise, preprocess
from armscan.training.loss import IGNORE


def encode_target(boxes: list[dict[str, Any]], lb: Letterbox) -> dict[str, torch.Tensor]:
    """Annotation dicts (COCO xywh in original pixels) -> tensors in model-input pixels (xyxy)."""
    xyxy = np.array([[b["bbox"][0], b["bbox"][1], b["bbox"][0] + b["bbox"][2], b["bbox"][1] + b["bbox"][3]]
                     for b in boxes], np.float32).reshape(-1, 4) * lb.scale
    keep = (xyxy[:, 2] - xyxy[:, 0] >= 1) & (xyxy[:, 3] - xyxy[:, 1] >= 1)
    boxes = [b for b, k in zip(boxes, keep, strict=True) if k]
    return {
        "boxes": torch.from_numpy(xyxy[keep]),
        "labels": torch.tensor([CLASSES.index(b["cls"]) for b in boxes], dtype=torch.long),
        "builds": torch.tensor([BUILDS.index(b["build"]) if b["build"] in BUILDS else IGNORE for b in boxes],
                               dtype=torch.long),
        "types": torch.tensor([FIREARM_TYPES.index(b["type"]) if b["type"] in FIREARM_TYPES else IGNORE
                               for b in boxes], dtype=torch.long),
    }


class SynthDetection(Dataset[tuple[torch.Tensor, dict[str, torch.Tensor]]]):
    """Item ``i`` is the scan of seed ``first_seed + i`` with random sides, generated when asked for."""

    def __init__(self, first_seed: int, length: int, spec: PreprocessSpec, min_side: int, max_side: int,
                 scene: SceneConfig) -> None:
        self.first_seed, self.length, self.spec = first_seed, length, spec
        self.min_side, self.max_side, self.scene = min_side, max_side, scene

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, i: int) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        seed = self.first_seed + i
        w, h = np.random.default_rng([seed, 7]).integers(self.min_side, self.max_side + 1, size=2)
        scan = generate(seed, int(w), int(h), self.scene)
        x, lb = preprocess(scan.image, self.spec)
        return torch.from_numpy(x), encode_target(scan.boxes, lb)


class CocoDetection(Dataset[tuple[torch.Tensor, dict[str, torch.Tensor]]]):
    """A COCO folder (``armscan synth`` output or any COCO set mapped to our taxonomy)."""

    def __init__(self, folder: Any, spec: PreprocessSpec) -> None:
        self.records = read_coco(folder)
        self.spec = spec

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        rec = self.records[i]
        x, lb = preprocess(read_image(rec.file), self.spec)
        return torch.from_numpy(x), encode_target(rec.boxes, lb)


def collate(batch: list[tuple[torch.Tensor, dict[str, torch.Tensor]]]) -> tuple[torch.Tensor, list[dict[str, torch.Tensor]]]:
    """Stack images; keep targets as a list."""
    return torch.stack([b[0] for b in batch]), [b[1] for b in batch]


class CachedSynthDetection(Dataset[tuple[torch.Tensor, dict[str, torch.Tensor]]]):
    """``size`` synthetic scans generated once, in parallel, kept letterboxed in memory (uint8), and served
    with box-aware dihedral augmentation (flips and 90-degree turns, ``torchvision.transforms.v2``).

    On a 2-core CPU this keeps both cores on the network instead of sharing them with the generator.
    Scan ``i`` is :class:`SynthDetection`'s item ``i``, so the cache is reproducible. Under torchrun each
    rank caches only its share (``indices``: scans ``rank, rank + world_size, ...``).
    """

    def __init__(self, source: SynthDetection, size: int, processes: int = 2, indices: range | None = None,
                 progress: bool = True) -> None:
        from multiprocessing import get_context

        from tqdm import tqdm

        self.spec = source.spec
        indices = indices if indices is not None else range(size)
        cv2.setNumThreads(1)  # OpenCV's thread pool does not survive fork; the workers are the parallelism
        with get_context("fork").Pool(processes) as pool:
            items = list(tqdm(pool.imap(_cache_item, [(source, i) for i in indices], chunksize=32), total=len(indices),
                              desc="generating scans", unit="scan", mininterval=10.0, disable=not progress))
        self.canvases = np.stack([c for c, _ in items])  # (N, S, S, 3) uint8
        self.targets = [{k: torch.from_numpy(v) for k, v in t.items()} for _, t in items]
        from torchvision.transforms import v2

        self.augment = v2.Compose([v2.RandomHorizontalFlip(), v2.RandomVerticalFlip(),
                                   v2.RandomApply([v2.RandomRotation((90.0, 90.0))], p=0.5)])

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        from torchvision import tv_tensors

        s = self.spec.size
        img = tv_tensors.Image(torch.from_numpy(self.canvases[i]).permute(2, 0, 1))
        t = self.targets[i]
        boxes = tv_tensors.BoundingBoxes(t["boxes"], format="XYXY", canvas_size=(s, s))
        img, boxes = self.augment(img, boxes)
        x = normalise(np.ascontiguousarray(img.permute(1, 2, 0).numpy()), self.spec)
        return torch.from_numpy(x), {**t, "boxes": boxes.as_subclass(torch.Tensor).float()}


def _cache_item(args: tuple[SynthDetection, int]) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """One cached scan, as numpy: tensors sent between processes would each hold a file descriptor."""
    source, i = args
    seed = source.first_seed + i
    w, h = np.random.default_rng([seed, 7]).integers(source.min_side, source.max_side + 1, size=2)
    scan = generate(seed, int(w), int(h), source.scene)
    canvas, lb = letterbox(scan.image, source.spec)
    return canvas, {k: v.numpy() for k, v in encode_target(scan.boxes, lb).items()}
