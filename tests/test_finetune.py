"""Fine-tuning: the weak image-level loss, starting from a parent checkpoint with synthetic replay, lineage,
and the errors an analyst gets for a wrong parent or data folder."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from armscan.datasets.coco import dataset_hash, read_coco, write_coco  # noqa: E402
from armscan.datasets.taxonomy import CLASSES  # noqa: E402
from armscan.models import get_model  # noqa: E402
from armscan.serve.cli import main  # noqa: E402
from armscan.training.checkpoint import load_checkpoint  # noqa: E402
from armscan.training.config import TrainConfig  # noqa: E402
from armscan.training.loss import IGNORE, detection_loss  # noqa: E402
from armscan.training.train import train  # noqa: E402


def _targets(weak: list[str] | None) -> dict[str, torch.Tensor]:
    w = torch.full((len(CLASSES),), float(IGNORE)) if weak is None else \
        torch.tensor([1.0 if c in weak else 0.0 for c in CLASSES])
    return {"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.long),
            "builds": torch.zeros(0, dtype=torch.long), "types": torch.zeros(0, dtype=torch.long), "weak": w}


def test_weak_labels_train_the_class_peak_and_leave_the_dense_loss_out():
    torch.manual_seed(0)
    model = get_model("armscan_det_small", num_classes=len(CLASSES)).eval()
    with torch.no_grad():
        outputs = model(torch.rand(2, 3, 128, 128))
    clean = detection_loss(outputs, [_targets(None), _targets(None)], 8)
    weak = detection_loss(outputs, [_targets(None), _targets(["firearm"])], 8)
    assert float(clean["weak"]) == 0.0 and float(weak["weak"]) > 0.5  # the firearm peak is far from "present"
    assert float(weak["cls"]) == pytest.approx(float(clean["cls"]) / 2, rel=1e-4)  # only the box-labelled image
    # the weak term pushes the firearm peak up: one gradient step raises the max firearm logit
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    x = torch.rand(1, 3, 128, 128)
    with torch.no_grad():
        before = float(model(x)[0][0, 0].max())
    for _ in range(3):
        loss = detection_loss(model(x), [_targets(["firearm"])], 8)["weak"]
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        assert float(model(x)[0][0, 0].max()) > before


def test_finetuning_starts_from_the_parent_replays_synthetic_scans_and_records_lineage(tiny_onnx, tiny_coco, tmp_path):
    parent = load_checkpoint(tiny_onnx.with_suffix(".pt"))  # export keeps the weights beside the ONNX
    assert "optimizer" not in parent and parent["model_state"]
    # an image-level-only photo, to mix the weak loss in
    records = read_coco(tiny_coco)
    weak = records[0]
    weak.boxes, weak.meta = [], {**weak.meta, "image_labels": ["firearm"]}
    real = tmp_path / "real"
    (real / "images").mkdir(parents=True)
    for r in records:
        (real / "images" / r.file.name).write_bytes(r.file.read_bytes())
        r.file = Path("images") / r.file.name
    write_coco(real, records, {"description": "test"})
    cfg = TrainConfig.load(None, {"init_from": str(tiny_onnx), "batch_size": 4, "epochs": 1, "iters_per_epoch": 3,
                                  "warmup_iters": 1, "lr": 0.0, "out_dir": str(tmp_path / "ft"), "val_images": 0,
                                  "freeze_bn": True, "data": {"kind": "coco", "coco_dirs": [str(real)], "replay": 0.5,
                                                              "cache_size": 8, "min_side": 160, "max_side": 224}})
    ckpt = load_checkpoint(train(cfg))
    assert ckpt["config"]["input_size"] == parent["preprocess"]["size"] and ckpt["model_name"] == parent["model_name"]
    for k, v in parent["model_state"].items():  # lr 0 and frozen batch norm: the weights are the parent's
        assert torch.equal(ckpt["model_state"][k], v), k
    lineage = ckpt["lineage"]
    assert lineage["parent"].endswith(".pt") and len(lineage["parent_sha256"]) == 64
    assert lineage["datasets"] == {str(real): dataset_hash(real)} and lineage["replay"] == 0.5
    assert "weak" in ckpt["history"][0]


def test_a_refresh_can_take_a_larger_input_than_its_parent(tiny_onnx, tmp_path):
    parent = load_checkpoint(tiny_onnx.with_suffix(".pt"))
    size = int(parent["preprocess"]["size"]) + 32  # the network is fully convolutional: the weights carry over
    cfg = TrainConfig.load(None, {"init_from": str(tiny_onnx), "input_size": size, "batch_size": 2, "epochs": 1,
                                  "iters_per_epoch": 2, "warmup_iters": 1, "lr": 0.0, "out_dir": str(tmp_path / "r"),
                                  "val_images": 0, "freeze_bn": True, "workers": 0,
                                  "data": {"kind": "synth", "cache_size": 4, "min_side": 160, "max_side": 224}})
    ckpt = load_checkpoint(train(cfg))
    assert ckpt["preprocess"]["size"] == ckpt["config"]["input_size"] == size
    assert ckpt["model_name"] == parent["model_name"] and ckpt["model_args"] == parent["model_args"]
    for k, v in parent["model_state"].items():
        assert torch.equal(ckpt["model_state"][k], v), k


def test_finetuning_errors_name_what_is_wrong(tiny_onnx, tmp_path, capsys):
    lone = tmp_path / "lone.onnx"
    lone.write_bytes(tiny_onnx.read_bytes())  # an export whose checkpoint was not kept
    data = tmp_path / "data"
    data.mkdir()
    assert main(["train", "--init-from", str(lone), "--data", str(data)]) == 2
    assert "annotations.json" in capsys.readouterr().err
    (data / "annotations.json").write_text(json.dumps({"images": [], "annotations": [], "categories": []}))
    assert main(["train", "--init-from", str(lone), "--data", str(data), "--set", f"out_dir={tmp_path / 'o'}"]) == 2
    assert "checkpoint lone.pt" in capsys.readouterr().err
    bad = load_checkpoint(tiny_onnx.with_suffix(".pt"))
    bad["classes"] = ["gun"]
    torch.save(bad, tmp_path / "other.pt")
    assert main(["train", "--init-from", str(tmp_path / "other.pt"), "--data", str(data),
                 "--set", f"out_dir={tmp_path / 'o'}"]) == 2
    assert "trained on classes ['gun']" in capsys.readouterr().err


def test_every_set_flag_counts_and_a_bad_one_is_named(capsys):
    from armscan.serve.cli import _parser

    args = _parser().parse_args(["train", "--set", "epochs=1", "--set", "lr=0.1", "out_dir=\"o\""])
    assert args.set == ["epochs=1", "lr=0.1", 'out_dir="o"']  # a second --set used to replace the first
    assert main(["train", "--set", "epochs=1", "--set", "epochs"]) == 2
    assert "KEY=VALUE" in capsys.readouterr().err
    assert main(["train", "--set", "epochs=1", "--set", "no_such_key=1"]) == 2
    assert "no_such_key" in capsys.readouterr().err
