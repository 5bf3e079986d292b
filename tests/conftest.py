"""Shared fixtures: a tiny generated COCO set and a tiny exported model (random weights, 128 px)."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def tiny_coco(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("torch")
    from armscan.datasets.synth.scene import SceneConfig
    from armscan.datasets.synth.writer import write_dataset

    out = tmp_path_factory.mktemp("coco")
    write_dataset(out, 12, seed=5000, width=256, height=192, cfg=SceneConfig(threat_prob=0.5))  # 3 clean scans
    return out


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A checkpoint from 2 short epochs of real training at 128 px (exercises train + resume state)."""
    pytest.importorskip("torch")
    from armscan.training.config import TrainConfig
    from armscan.training.train import train

    out = tmp_path_factory.mktemp("train")
    cfg = TrainConfig.load(None, {"input_size": 128, "batch_size": 4, "epochs": 2, "iters_per_epoch": 2,
                                  "warmup_iters": 2, "workers": 0, "out_dir": str(out), "val_images": 0,
                                  "data": {"min_side": 160, "max_side": 224}})
    return train(cfg)


@pytest.fixture(scope="session")
def tiny_onnx(tmp_path_factory: pytest.TempPathFactory, tiny_checkpoint: Path) -> Path:
    from armscan.training.export import export

    out = tmp_path_factory.mktemp("onnx") / "tiny.onnx"
    export(tiny_checkpoint, out, version="test")
    return out


@pytest.fixture(scope="session")
def tiny_photo_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A photo-model checkpoint from 2 short epochs at 128 px on 24 renders."""
    pytest.importorskip("torch")
    from armscan.training.config import TrainConfig
    from armscan.training.train import train

    out = tmp_path_factory.mktemp("photo_train")
    cfg = TrainConfig.load(None, {"task": "photo", "model": "armscan_photo_small", "input_size": 128, "batch_size": 4,
                                  "epochs": 2, "iters_per_epoch": 2, "warmup_iters": 2, "out_dir": str(out),
                                  "val_images": 0, "data": {"kind": "photo", "cache_size": 24}})
    return train(cfg)


@pytest.fixture(scope="session")
def tiny_photo_onnx(tmp_path_factory: pytest.TempPathFactory, tiny_photo_checkpoint: Path) -> Path:
    """The tiny photo checkpoint exported with metadata, calibrated on 40 renders."""
    from armscan.training.photo_eval import export_photo

    out = tmp_path_factory.mktemp("photo_onnx") / "tiny-photo.onnx"
    export_photo(tiny_photo_checkpoint, out, version="test", calib_n=40)
    return out
