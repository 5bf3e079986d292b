"""The typed training config: defaults here, an optional YAML overlay, unknown keys are errors."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator

# Seed ranges of the synthetic splits. Training draws from [train_seed, train_seed + iters * batch);
# thresholds are chosen on VAL seeds and the model card is measured on TEST seeds, far from both.
VAL_SEED = 100_000_000
TEST_SEED = 200_000_000


class DataConfig(BaseModel):
    """Where training images come from: generated (on the fly, or once into memory), or COCO folders.

    With ``kind: coco`` and ``replay > 0`` (fine-tuning), that share of every epoch's samples are
    generated scans (``cache_size`` of them, held in memory), so that the classes the real folders
    lack are not forgotten. Images with only image-level labels (``armscan data import imagefolder``)
    train through a weak, multiple-instance loss on the class map (``training.loss``).
    """

    model_config = ConfigDict(extra="forbid")

    kind: Literal["synth", "coco", "photo"] = "synth"  # photo: procedural seizure photos (task: photo)
    coco_dir: Path | None = None
    coco_dirs: list[Path] = Field(default_factory=list)  # more COCO folders (kind: coco), e.g. new seizures
    replay: float = Field(0.0, ge=0.0, lt=1.0)  # share of synthetic replay when training on COCO folders
    train_seed: int = 0
    min_side: int = 256  # generated scans have random sides in [min_side, max_side]
    max_side: int = 480
    threat_prob: float = 0.7
    # generated scans' share of easy, hard and hidden parcels (datasets.synth.scene.SceneConfig, whose default the
    # held-out suites keep); weighing hidden up trains more on threats laid under dense clutter
    difficulty_probs: tuple[float, float, float] = (0.4, 0.4, 0.2)
    cache_size: int = 0  # > 0: generate this many scans once and train on them with dihedral augmentation
    photo: dict[str, Any] = Field(default_factory=dict)  # kind photo: PhotoConfig overrides (unknown keys: error)
    # task photo: the share of samples served as the weapon's upright view (inference.upright) instead of the
    # whole photo, so that the model learns the second look it gets in service
    upright_share: float = Field(0.0, ge=0.0, le=1.0)

    @field_validator("difficulty_probs")
    @classmethod
    def _probs_sum_to_one(cls, v: tuple[float, float, float]) -> tuple[float, float, float]:
        if min(v) < 0 or abs(sum(v) - 1.0) > 1e-6:
            raise ValueError(f"difficulty_probs (easy, hard, hidden) must be >= 0 and sum to 1, not {v}")
        return v


#: The backbones' deepest stride (models.detector and models.photo take inputs "S divisible by 32": their pyramids
#: upsample the stride-32 map by 2 to meet the stride-16 one, so any other size fails at the first forward pass).
INPUT_MULTIPLE = 32

#: The keys a run may change when it resumes from its ``last.pt`` (:meth:`TrainConfig.resume_changes`): they say
#: how long to keep going and on what hardware, or where the end-of-run evaluation is, never what the network
#: learns from or how. Every other key (also any key added later) must keep the checkpoint's value, because the
#: restored optimizer and schedule (lr, weight_decay, warmup_iters, epochs x iters_per_epoch) would silently
#: override it, or because the saved config (and the ONNX metadata and model card made from it) would then
#: describe a run that did not happen.
RESUME_MAY_CHANGE = frozenset({"time_budget_min", "workers", "device", "amp", "out_dir", "val_images"})

#: The loss terms :attr:`TrainConfig.loss_weights` may weigh (training.loss.detection_loss, training.photo_data.photo_loss).
LOSS_TERMS = frozenset({"cls", "box", "ctr", "build", "type", "weak", "family", "mask"})


class TrainConfig(BaseModel):
    """One training run. Saved resolved next to the checkpoints as ``config.yaml``."""

    model_config = ConfigDict(extra="forbid", protected_namespaces=())

    task: Literal["detect", "photo"] = "detect"  # photo: the seizure-photo classifier (training.photo)
    model: str = "armscan_det_small"
    # Fine-tuning: start from this checkpoint's weights (model, model_args and input size come from it).
    # An exported .onnx names its checkpoint by the sibling file with the same stem and the suffix .pt.
    init_from: Path | None = None
    model_args: dict[str, Any] = Field(default_factory=dict)
    input_size: int = 320
    data: DataConfig = Field(default_factory=DataConfig)
    batch_size: int = 16  # per process: under torchrun, each of the world_size processes takes this many
    epochs: int = 12
    iters_per_epoch: int = 250
    lr: float = 3e-3
    weight_decay: float = 0.05
    warmup_iters: int = 200
    grad_clip: float = 10.0
    # Multipliers of named loss terms, e.g. {mask: 2.0} to weigh a photo model's masks more while fine-tuning
    # it for measurement (terms: detect cls, box, ctr, build, type, weak; photo family, build, mask). Others: 1.
    loss_weights: dict[str, float] = Field(default_factory=dict)
    workers: int = 1
    seed: int = 0  # model initialisation; data order and augmentation are seeded per (seed, rank, epoch)
    freeze_bn: bool = False  # keep batch-norm statistics fixed (fine-tuning)
    ema: bool = True  # evaluate, checkpoint and export an exponential moving average of the weights
    ema_decay: float = Field(0.999, gt=0.0, lt=1.0)
    device: Literal["auto", "cpu", "cuda"] = "auto"  # auto: CUDA when torch sees a GPU
    amp: bool = True  # mixed precision (torch.autocast), only ever on CUDA
    time_budget_min: float = 58.0  # stop early (after a checkpoint) rather than overrun
    # "wall": the budget is wall-clock minutes; "cpu": CPU minutes of this process (all its threads), which
    # stays fair when other jobs share the machine (the architecture comparison uses it).
    budget_clock: Literal["wall", "cpu"] = "wall"
    out_dir: Path = Path("runs/train")
    val_images: int = 300  # generated at VAL_SEED for the end-of-training evaluation

    @field_validator("input_size")
    @classmethod
    def _size_fits_the_backbone(cls, v: int) -> int:
        if v < INPUT_MULTIPLE or v % INPUT_MULTIPLE:
            below = v // INPUT_MULTIPLE * INPUT_MULTIPLE
            near = f"{below} or {below + INPUT_MULTIPLE}" if below > 0 else str(INPUT_MULTIPLE)
            raise ValueError(f"input_size must be a positive multiple of {INPUT_MULTIPLE} (the network's deepest "
                             f"stride), not {v}; try {near}")
        return v

    @field_validator("loss_weights")
    @classmethod
    def _weights_are_known(cls, v: dict[str, float]) -> dict[str, float]:
        unknown = sorted(set(v) - LOSS_TERMS)
        if unknown:
            raise ValueError(f"loss_weights: unknown loss term(s) {unknown}; the terms are {sorted(LOSS_TERMS)}")
        if any(not 0.0 <= w < float("inf") for w in v.values()):
            raise ValueError(f"loss_weights must be finite and >= 0, not {v}")
        return v

    @classmethod
    def load(cls, path: str | Path | None, overrides: dict[str, Any] | None = None) -> TrainConfig:
        """Defaults, then the YAML file, then ``overrides``; an unknown key raises a ValidationError."""
        data: dict[str, Any] = {}
        if path is not None:
            loaded = yaml.safe_load(Path(path).read_text()) or {}
            if not isinstance(loaded, dict):
                raise ValueError(f"{path}: a config file must be a YAML mapping")
            data.update(loaded)
        for key, value in (overrides or {}).items():  # nested mappings (data: {...}) merge key by key
            data[key] = {**data[key], **value} if isinstance(value, dict) and isinstance(data.get(key), dict) else value
        return cls.model_validate(data)

    def resume_changes(self, before: dict[str, Any]) -> dict[str, tuple[Any, Any]]:
        """The keys (``data`` ones as ``data.KEY``) whose value here differs from ``before``, a checkpoint's saved
        config, and may not change on resume (all but :data:`RESUME_MAY_CHANGE`): ``{key: (old, new)}``. Keys the
        checkpoint's config lacks (added to the config since) are not compared."""
        now = self.model_dump(mode="json")
        changed: dict[str, tuple[Any, Any]] = {}
        for key, old in before.items():
            if key in RESUME_MAY_CHANGE or key not in now:
                continue
            if key == "data" and isinstance(old, dict):
                changed |= {f"data.{k}": (v, now["data"][k]) for k, v in old.items()
                            if k in now["data"] and v != now["data"][k]}
            elif old != now[key]:
                changed[key] = (old, now[key])
        return changed

    def coco_folders(self) -> list[Path]:
        """The COCO folders to train on (``data.coco_dir`` then ``data.coco_dirs``)."""
        return ([self.data.coco_dir] if self.data.coco_dir else []) + list(self.data.coco_dirs)

    def save(self, path: Path) -> None:
        """Write the resolved config as YAML."""
        path.write_text(yaml.safe_dump(self.model_dump(mode="json"), sort_keys=False))
