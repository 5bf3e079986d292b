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


def encode_target(boxes: list[dict[str, Any]], lb: Letterbox, image_labels: list[str] | None = None) -> dict[str, torch.Tensor]:
    """Annotation dicts (COCO xywh in original pixels) -> tensors in model-input pixels (xyxy).

    ``weak`` (C,) is -1 everywhere for box-labelled images. An image with image-level labels and no
    boxes gets 1 for its labelled classes and 0 for the others: the weak loss trains on it.
    """
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
        "weak": _weak(image_labels if not boxes else None),
    }


def _weak(image_labels: list[str] | None) -> torch.Tensor:
    if not image_labels:
        return torch.full((len(CLASSES),), float(IGNORE))
    unknown = set(image_labels) - set(CLASSES)
    if unknown:
        raise ValueError(f"image-level labels {sorted(unknown)} are not classes; valid: {', '.join(CLASSES)}")
    return torch.tensor([1.0 if c in image_labels else 0.0 for c in CLASSES])


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
    """COCO folders (``armscan synth`` or ``armscan data import`` output), with dihedral augmentation when
    ``augment``. Image-level labels (``image_labels`` in an image's armscan metadata) feed the weak loss."""

    def __init__(self, folders: Any, spec: PreprocessSpec, augment: bool = False) -> None:
        folders = folders if isinstance(folders, list | tuple) else [folders]
        self.records = [r for f in folders for r in read_coco(f)]
        if not self.records:
            raise ValueError(f"no images in {', '.join(map(str, folders))}")
        self.spec, self.augment = spec, _dihedral() if augment else None

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        rec = self.records[i]
        canvas, lb = letterbox(read_image(rec.file), self.spec)
        target = encode_target(rec.boxes, lb, rec.meta.get("image_labels"))
        if self.augment is None:
            return torch.from_numpy(normalise(canvas, self.spec)), target
        return _augmented(canvas, target, self.spec, self.augment)


class MixedDetection(Dataset[tuple[torch.Tensor, dict[str, torch.Tensor]]]):
    """Real images (``real``) and synthetic replay (``replay``) in one index space: real first."""

    def __init__(self, real: Dataset[Any], replay: Dataset[Any], replay_share: float) -> None:
        self.real, self.replay, self.replay_share = real, replay, replay_share
        self.n_real = len(real)  # type: ignore[arg-type]

    def __len__(self) -> int:
        return self.n_real + len(self.replay)  # type: ignore[arg-type]

    def __getitem__(self, i: int) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        item: tuple[torch.Tensor, dict[str, torch.Tensor]] = self.real[i] if i < self.n_real else self.replay[i - self.n_real]
        return item

    def draw(self, n: int, generator: torch.Generator) -> list[int]:
        """``n`` indices: each a replay scan with probability ``replay_share``, else a real image."""
        is_replay = torch.rand(n, generator=generator) < self.replay_share
        real = torch.randint(0, self.n_real, (n,), generator=generator)
        synth = torch.randint(0, len(self) - self.n_real, (n,), generator=generator) + self.n_real
        return torch.where(is_replay, synth, real).tolist()


def _dihedral() -> Any:
    from torchvision.transforms import v2

    return v2.Compose([v2.RandomHorizontalFlip(), v2.RandomVerticalFlip(),
                       v2.RandomApply([v2.RandomRotation((90.0, 90.0))], p=0.5)])


def _augmented(canvas: np.ndarray, target: dict[str, torch.Tensor], spec: PreprocessSpec,
               augment: Any) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Box-aware flips and 90-degree turns (``torchvision.transforms.v2``) of a letterboxed uint8 canvas."""
    from torchvision import tv_tensors

    s = spec.size
    img = tv_tensors.Image(torch.from_numpy(canvas).permute(2, 0, 1))
    boxes = tv_tensors.BoundingBoxes(target["boxes"], format="XYXY", canvas_size=(s, s))
    img, boxes = augment(img, boxes)
    x = normalise(np.ascontiguousarray(img.permute(1, 2, 0).numpy()), spec)
    return torch.from_numpy(x), {**target, "boxes": boxes.as_subclass(torch.Tensor).float()}


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
        self.augment = _dihedral()

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        return _augmented(self.canvases[i], self.targets[i], self.spec, self.augment)


def _cache_item(args: tuple[SynthDetection, int]) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """One cached scan, as numpy: tensors sent between processes would each hold a file descriptor."""
    source, i = args
    seed = source.first_seed + i
    w, h = np.random.default_rng([seed, 7]).integers(source.min_side, source.max_side + 1, size=2)
    scan = generate(seed, int(w), int(h), source.scene)
    canvas, lb = letterbox(scan.image, source.spec)
    return canvas, {k: v.numpy() for k, v in encode_target(scan.boxes, lb).items()}
