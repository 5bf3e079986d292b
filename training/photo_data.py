"""Training data for the seizure-photo model: procedural renders (generated once into memory, in
parallel) and photo folders on disk, letterboxed by the exact transform inference uses.

Each item is ``(x (3, S, S), target)`` with ``label`` (class index), ``build`` (index, or -1 when
not labelled), ``masks`` (4, S/4, S/4): the share of each mask cell covered by the weapon, barrel,
card and ruler (soft targets, so the 0.5 crossing learns the true edge), and ``has_masks``.
Augmentation: the eight flips and quarter turns of the photo (its answer does not change) and mild
photometric jitter.

Each photo with a weapon also keeps its **upright view** (:func:`armscan.inference.upright.upright_view`
drawn from the true weapon mask, as inference draws it from the predicted one). With ``upright_share``,
that share of the samples is the upright view instead of the photo: label and build only (no masks),
mirrored or turned by 180 degrees now and then (a quarter of the time each), since in service the
predicted mask can settle those two the other way.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from armscan.datasets.coco import read_coco
from armscan.datasets.photo import MASK_BARREL, MASK_CARD, MASK_RULER, MASK_WEAPON, PhotoConfig, render_photo
from armscan.datasets.readers import read_image
from armscan.datasets.taxonomy import BUILDS, PHOTO_CLASSES
from armscan.inference.preprocess import PreprocessSpec, letterbox, normalise
from armscan.inference.upright import upright_view

MASK_BITS = (MASK_WEAPON, MASK_BARREL, MASK_CARD, MASK_RULER)
IGNORE = -1
Item = tuple[torch.Tensor, dict[str, torch.Tensor]]


def mask_planes(bits: np.ndarray, spec: PreprocessSpec, stride: int) -> np.ndarray:
    """(H, W) bit flags in the photo -> (4, S/stride, S/stride) float16 coverage of the letterboxed input."""
    h, w = bits.shape
    scale = spec.size / max(h, w)
    nw, nh = max(1, round(w * scale)), max(1, round(h * scale))
    out = np.zeros((len(MASK_BITS), spec.size, spec.size), np.float32)
    for i, bit in enumerate(MASK_BITS):
        plane = ((bits & bit) > 0).astype(np.float32)
        out[i, :nh, :nw] = cv2.resize(plane, (nw, nh), interpolation=cv2.INTER_AREA)
    g = spec.size // stride
    cells: np.ndarray = out.reshape(len(MASK_BITS), g, stride, g, stride).mean(axis=(2, 4)).astype(np.float16)
    return cells


def encode_photo(image: np.ndarray, label: str, build: str, bits: np.ndarray | None, spec: PreprocessSpec,
                 stride: int) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """One photo -> (letterboxed uint8 canvas, numpy target). The target's ``upright`` is the letterboxed
    upright view of the weapon and ``upright_hw`` its size before padding ((0, 0): no weapon mask)."""
    if label not in PHOTO_CLASSES:
        raise ValueError(f"Unknown photo class {label!r}. Valid: {', '.join(PHOTO_CLASSES)}")
    canvas, lb = letterbox(image, spec)
    g = spec.size // stride
    masks = mask_planes(bits, spec, stride) if bits is not None else np.zeros((len(MASK_BITS), g, g), np.float16)
    view = upright_view(image, masks[0].astype(np.float32), lb.scale, stride, spec.size, pad_value=spec.pad_value)
    upright, hw = (letterbox(view, spec)[0], view.shape[:2]) if view is not None else (np.zeros_like(canvas), (0, 0))
    return canvas, {"label": np.array(PHOTO_CLASSES.index(label), np.int64),
                    "build": np.array(BUILDS.index(build) if build in BUILDS else IGNORE, np.int64),
                    "masks": masks, "has_masks": np.array(bits is not None), "upright": upright,
                    "upright_hw": np.array(hw, np.int64)}


def _render_item(args: tuple[int, PhotoConfig, PreprocessSpec, int]) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    seed, cfg, spec, stride = args
    s = render_photo(seed, cfg)
    return encode_photo(s.image, s.label, s.build, s.masks, spec, stride)


def augment(canvas: np.ndarray, masks: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A random flip and quarter turn (applied to the photo and its masks alike) and photometric jitter."""
    k, flip = int(rng.integers(4)), bool(rng.integers(2))
    canvas, masks = np.rot90(canvas, k, axes=(0, 1)), np.rot90(masks, k, axes=(1, 2))
    if flip:
        canvas, masks = canvas[:, ::-1], masks[:, :, ::-1]
    return _photometric(canvas, rng), np.ascontiguousarray(masks)


def augment_upright(canvas: np.ndarray, hw: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """An upright view (letterboxed, its content ``hw`` at the top left), mirrored across its axis and turned
    by 180 degrees each a quarter of the time (the content stays at the top left), and photometric jitter."""
    h, w = int(hw[0]), int(hw[1])
    view = canvas.copy()
    if rng.random() < 0.25:
        view[:h, :w] = view[:h, :w][::-1]
    if rng.random() < 0.25:
        view[:h, :w] = view[:h, :w][::-1, ::-1]
    return _photometric(view, rng)


def _photometric(canvas: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    img = canvas.astype(np.float32) * rng.uniform(0.75, 1.25) + rng.uniform(-20, 20)  # contrast, brightness
    img = img * rng.uniform(0.9, 1.1, size=3)[None, None, :]  # white balance
    return np.clip(img, 0, 255).astype(np.uint8)


class _PhotoItems(Dataset[Item]):
    """Letterboxed canvases and targets held in memory, served with augmentation."""

    spec: PreprocessSpec
    canvases: np.ndarray
    uprights: np.ndarray  # (N, S, S, 3) the weapons' upright views (zeros where a photo has none; empty at share 0)
    targets: list[dict[str, np.ndarray]]
    train: bool = True
    upright_share: float = 0.0

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, i: int) -> Item:
        t = self.targets[i]
        canvas, masks, has_masks = self.canvases[i], t["masks"].astype(np.float32), bool(t["has_masks"])
        if self.train:
            rng = np.random.default_rng(int(torch.randint(0, 2**31, (1,))))
            if self.upright_share > 0 and t["upright_hw"][0] > 0 and rng.random() < self.upright_share:
                canvas, masks, has_masks = augment_upright(self.uprights[i], t["upright_hw"], rng), masks * 0, False
            else:
                canvas, masks = augment(canvas, masks, rng)
        x = torch.from_numpy(normalise(np.ascontiguousarray(canvas), self.spec))
        return x, {"label": torch.tensor(t["label"]), "build": torch.tensor(t["build"]),
                   "masks": torch.from_numpy(masks), "has_masks": torch.tensor(has_masks)}

    def _hold(self, items: list[tuple[np.ndarray, dict[str, np.ndarray]]]) -> None:
        """Keep the canvases and upright views as two arrays, and the rest of each target."""
        self.canvases = np.stack([c for c, _ in items])
        views = [t.pop("upright") for _, t in items]  # held only when served: 0.2 MB a photo at 256 px
        self.uprights = np.stack(views) if self.upright_share > 0 else np.zeros((len(items), 0, 0, 3), np.uint8)
        self.targets = [t for _, t in items]


class PhotoRenders(_PhotoItems):
    """``size`` renders (seeds ``first_seed + i``) generated once with ``processes`` workers."""

    def __init__(self, first_seed: int, size: int, spec: PreprocessSpec, stride: int, cfg: PhotoConfig | None = None,
                 processes: int = 2, train: bool = True, progress: bool = True, upright_share: float = 0.0) -> None:
        from multiprocessing import get_context

        from tqdm import tqdm

        self.spec, self.train, self.upright_share = spec, train, upright_share
        cfg = cfg or PhotoConfig()
        cv2.setNumThreads(1)  # OpenCV's thread pool does not survive fork; the workers are the parallelism
        jobs = [(first_seed + i, cfg, spec, stride) for i in range(size)]
        with get_context("fork").Pool(processes) as pool:
            items = list(tqdm(pool.imap(_render_item, jobs, chunksize=16), total=size, desc="rendering photos",
                              unit="photo", mininterval=10.0, disable=not progress))
        self._hold(items)


class PhotoFolder(_PhotoItems):
    """Photos in COCO folders whose images carry ``armscan: {kind: photo, label, build[, mask]}``: the
    renders of ``armscan photos synth`` or the user's photos from ``armscan data import --photos``."""

    def __init__(self, folders: list[Path], spec: PreprocessSpec, stride: int, train: bool = True,
                 upright_share: float = 0.0) -> None:
        self.spec, self.train, self.upright_share = spec, train, upright_share
        items = []
        for folder in folders:
            for rec in read_coco(folder):
                if rec.meta.get("kind") != "photo" or "label" not in rec.meta:
                    raise ValueError(f"{folder}: {rec.file.name} is not a labelled photo (armscan.kind/label missing)")
                mask = rec.meta.get("mask")
                bits = cv2.imread(str(Path(folder) / mask), cv2.IMREAD_UNCHANGED) if mask else None
                items.append(encode_photo(read_image(rec.file), rec.meta["label"], rec.meta.get("build", "unknown"),
                                          bits, spec, stride))
        if not items:
            raise ValueError(f"no photos in {', '.join(map(str, folders))}")
        self._hold(items)


def collate_photos(batch: list[Item]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Stack images and every target field."""
    return torch.stack([b[0] for b in batch]), {k: torch.stack([b[1][k] for b in batch]) for k in batch[0][1]}


def photo_loss(outputs: tuple[torch.Tensor, ...], target: dict[str, Any]) -> dict[str, torch.Tensor]:
    """Cross-entropy for the family (label smoothing 0.05) and the build (where labelled); per-cell BCE plus
    a soft Dice term for the masks (photos that have them), so the thin barrel and small card count."""
    import torch.nn.functional as F

    family, build, masks = outputs
    zero = sum((o.sum() for o in outputs), family.new_zeros(())) * 0.0
    loss_family = F.cross_entropy(family, target["label"], label_smoothing=0.05)
    known = target["build"] >= 0
    loss_build = F.cross_entropy(build[known], target["build"][known]) if known.any() else zero
    has = target["has_masks"]
    if not has.any():
        return {"family": loss_family, "build": 0.5 * loss_build, "mask": zero}
    logits, t = masks[has], target["masks"][has].float()
    bce = F.binary_cross_entropy_with_logits(logits, t)
    p = torch.sigmoid(logits)
    inter, union = (p * t).sum(dim=(2, 3)), (p + t).sum(dim=(2, 3))
    present = t.sum(dim=(2, 3)) > 0.5  # Dice only where the object is in the photo
    dice = (1 - (2 * inter + 1) / (union + 1))[present].mean() if present.any() else zero
    return {"family": loss_family, "build": 0.5 * loss_build, "mask": 4.0 * bce + dice}
