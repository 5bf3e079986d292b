from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from pydantic import ValidationError  # noqa: E402

from armscan.models import get_model  # noqa: E402
from armscan.training.checkpoint import load_checkpoint  # noqa: E402
from armscan.training.config import TrainConfig  # noqa: E402
from armscan.training.loss import assign, detection_loss, grid_centres  # noqa: E402


def test_assignment_is_inside_the_box_and_prefers_the_smaller_box():
    c = grid_centres(10, 10, 8, torch.device("cpu"))
    boxes = torch.tensor([[0.0, 0.0, 80.0, 80.0], [30.0, 30.0, 50.0, 50.0]])
    idx = assign(c, boxes, 8)
    inside_small = (c[:, 0] > 30) & (c[:, 0] < 50) & (c[:, 1] > 30) & (c[:, 1] < 50)
    assert (idx[inside_small] == 1).all()
    assert (idx >= 0).sum() > inside_small.sum()


def test_loss_falls_when_fitting_one_batch():
    torch.manual_seed(0)
    model = get_model("armscan_det_small", width=32)
    x = torch.randn(2, 3, 96, 96)
    targets = [{"boxes": torch.tensor([[10.0, 12.0, 60.0, 40.0]]), "labels": torch.tensor([0]),
                "builds": torch.tensor([2]), "types": torch.tensor([0])},
               {"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.long),
                "builds": torch.zeros(0, dtype=torch.long), "types": torch.zeros(0, dtype=torch.long)}]
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(25):
        total = sum(detection_loss(model(x), targets, 8).values())
        opt.zero_grad()
        total.backward()
        opt.step()
        losses.append(float(total.detach()))
    assert losses[-1] < 0.5 * losses[0]


def test_unknown_config_key_is_an_error(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("batch_sise: 8\n")
    with pytest.raises(ValidationError, match="batch_sise"):
        TrainConfig.load(cfg)


def test_loss_weights_weigh_named_terms_and_an_unknown_term_is_an_error():
    from armscan.training.engine import total_loss

    losses = {"family": torch.tensor(1.0), "build": torch.tensor(0.5), "mask": torch.tensor(2.0)}
    assert float(total_loss(losses)) == pytest.approx(3.5)
    cfg = TrainConfig.load(None, {"task": "photo", "loss_weights": {"mask": 3.0}})
    assert float(total_loss(losses, cfg.loss_weights)) == pytest.approx(7.5)
    with pytest.raises(ValidationError, match="unknown loss term"):
        TrainConfig.load(None, {"loss_weights": {"masks": 3.0}})
    with pytest.raises(ValidationError, match=">= 0"):
        TrainConfig.load(None, {"loss_weights": {"mask": -1.0}})


def test_training_data_follows_the_difficulty_weights_and_bad_weights_are_an_error():
    from armscan.inference.preprocess import PreprocessSpec
    from armscan.training.distributed import DistContext
    from armscan.training.train import _synth

    cfg = TrainConfig.load(None, {"epochs": 1, "iters_per_epoch": 1, "batch_size": 2,
                                  "data": {"difficulty_probs": [0.0, 0.0, 1.0]}})
    scene = _synth(cfg, PreprocessSpec(size=96), DistContext()).scene
    assert scene.difficulty_probs == (0.0, 0.0, 1.0)
    with pytest.raises(ValidationError, match="difficulty_probs"):
        TrainConfig.load(None, {"data": {"difficulty_probs": [0.5, 0.5, 0.5]}})


def test_checkpoint_describes_itself_and_training_resumes(tiny_checkpoint, tmp_path):
    import shutil

    ckpt = load_checkpoint(tiny_checkpoint)
    assert ckpt["epoch"] == 2 and ckpt["model_name"] == "armscan_det_small"
    assert ckpt["preprocess"]["size"] == 128 and ckpt["classes"][0] == "firearm"
    assert (tiny_checkpoint.parent / "config.yaml").is_file() and (tiny_checkpoint.parent / "log.csv").is_file()
    from armscan.training.train import train

    run = tmp_path / "run"
    shutil.copytree(tiny_checkpoint.parent, run)
    cfg = TrainConfig.load(run / "config.yaml", {"out_dir": str(run)})
    other = TrainConfig.load(run / "config.yaml", {"out_dir": str(run), "model_args": {"width": 48}})
    with pytest.raises(ValueError, match="checkpoint of another run"):  # a changed recipe does not resume a stale run
        train(other)
    longer = TrainConfig.load(run / "config.yaml", {"epochs": 3, "out_dir": str(run)})
    with pytest.raises(ValueError, match="epochs: 2 -> 3"):  # its schedule was made for 2 epochs: a new run's job
        train(longer)
    train(cfg)  # a finished run: nothing left to train
    again = load_checkpoint(run / "last.pt")
    assert again["epoch"] == 2 and len(again["history"]) == 2


def _tiny(out, **kw):
    base = {"input_size": 64, "batch_size": 2, "epochs": 2, "iters_per_epoch": 2, "warmup_iters": 1, "workers": 0,
            "out_dir": str(out), "val_images": 0, "model_args": {"width": 32}, "data": {"min_side": 128, "max_side": 160}}
    return TrainConfig.load(None, base | kw)


def test_bundled_recipe_loads_with_ema_on():
    cfg = TrainConfig.load(Path(__file__).parents[1] / "training" / "det_small.yaml")
    assert cfg.data.cache_size == 12000 and cfg.ema and 0 < cfg.ema_decay < 1 and cfg.device == "auto"


@pytest.mark.parametrize("recipe", sorted((Path(__file__).parents[1] / "training").glob("*.yaml")), ids=lambda p: p.name)
def test_every_shipped_recipe_loads_and_trains_on_seeds_the_held_out_sets_do_not_use(recipe):
    import re

    cfg = TrainConfig.load(recipe)
    makefile = (Path(__file__).parents[1] / "Makefile").read_text()
    held_out = [int(s) for s in re.findall(r"^\w+_SEED := (\d+)$", makefile, re.M)]
    assert len(held_out) >= 7  # the validation and test sets of make model-card
    if cfg.data.kind in ("synth", "photo"):  # scans train_seed .. train_seed + cache_size - 1
        assert cfg.data.train_seed + cfg.data.cache_size <= min(held_out)


def test_ema_follows_the_weights_with_a_warm_up():
    from armscan.training.distributed import make_ema

    model = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.BatchNorm1d(2))
    ema = make_ema(model, decay=0.9)
    w0 = model[0].weight.detach().clone()
    ema.update_parameters(model)  # the first update copies
    with torch.no_grad():
        model[0].weight.add_(1.0)
    model(torch.randn(4, 2))  # moves the BatchNorm statistics (buffers are averaged too)
    ema.update_parameters(model)  # n = 1: decay min(0.9, 2 / 11)
    d = 2 / 11
    torch.testing.assert_close(ema.module[0].weight, d * w0 + (1 - d) * (w0 + 1))
    torch.testing.assert_close(ema.module[1].running_mean, (1 - d) * model[1].running_mean)
    assert int(ema.module[1].num_batches_tracked) == 1 and int(ema.n_averaged) == 2
    with pytest.raises(ValueError, match="ema_decay"):
        make_ema(model, decay=1.0)


def test_ranks_get_disjoint_shares_of_each_epoch(tmp_path):
    from armscan.datasets.synth.scene import SceneConfig
    from armscan.inference.preprocess import PreprocessSpec
    from armscan.training.data import SynthDetection
    from armscan.training.train import _loader

    cfg = _tiny(tmp_path, iters_per_epoch=3)
    ds = SynthDetection(0, 1000, PreprocessSpec(size=64), 128, 160, SceneConfig())
    shares = [list(_loader(cfg, ds, epoch=1, rank=r, world_size=2).sampler) for r in (0, 1)]
    subset = _loader(cfg, ds, epoch=1, rank=0, world_size=2).dataset
    scans = [[subset.indices[i] for i in s] for s in shares]
    assert [len(s) for s in scans] == [6, 6] and not set(scans[0]) & set(scans[1])
    assert sorted(scans[0] + scans[1]) == list(range(12, 24))  # epoch 1 of 2 ranks x 3 iterations x batch 2
    single = _loader(cfg, ds, epoch=1).dataset.indices
    assert list(single) == list(range(6, 12))  # one process: the same scans as before DDP existed


def test_interrupted_and_resumed_training_equals_an_uninterrupted_run(tmp_path, monkeypatch):
    from armscan.training import train as train_module

    straight = load_checkpoint(train_module.train(_tiny(tmp_path / "a")))
    assert straight["world_size"] == 1 and straight["ema_updates"] == 4
    assert straight["history"][-1]["images"] == 4 and straight["history"][-1]["world_size"] == 1
    # EMA on: the exported weights (model_state) are the average, the raw weights are kept to resume
    assert any(not torch.equal(straight["model_state"][k], straight["train_state"][k]) for k in straight["model_state"])

    real_save = train_module.save_checkpoint

    def crash_after_first_epoch(path, *args):
        real_save(path, *args)
        raise KeyboardInterrupt

    monkeypatch.setattr(train_module, "save_checkpoint", crash_after_first_epoch)
    with pytest.raises(KeyboardInterrupt):
        train_module.train(_tiny(tmp_path / "b"))
    monkeypatch.setattr(train_module, "save_checkpoint", real_save)
    assert load_checkpoint(tmp_path / "b" / "last.pt")["epoch"] == 1
    resumed = load_checkpoint(train_module.train(_tiny(tmp_path / "b")))
    assert resumed["epoch"] == 2 and resumed["ema_updates"] == 4
    for key in ("model_state", "train_state"):
        for name, value in straight[key].items():
            torch.testing.assert_close(resumed[key][name], value, rtol=0, atol=0, msg=f"{key}.{name}")
    log = (tmp_path / "b" / "log.csv").read_text().splitlines()
    assert len(log) == 3 and log[0].startswith("epoch,") and "world_size" in log[0]


def test_average_of_checkpoints_is_the_mean_of_their_weights_and_refuses_other_networks(tiny_checkpoint, tmp_path):
    from armscan.inference.engine import Detector
    from armscan.serve.cli import main
    from armscan.training.checkpoint import average_checkpoints, load_checkpoint, model_from_checkpoint
    from armscan.training.export import export

    a = load_checkpoint(tiny_checkpoint)
    b = {**a, "model_state": {k: v + 1.0 if v.is_floating_point() else v for k, v in a["model_state"].items()}}
    torch.save(b, tmp_path / "b.pt")
    soup = load_checkpoint(average_checkpoints([tiny_checkpoint, tmp_path / "b.pt"], tmp_path / "soup.pt"))
    for k, v in a["model_state"].items():
        assert torch.allclose(soup["model_state"][k], v + 0.5 if v.is_floating_point() else v, atol=1e-6), k
    assert [r["path"] for r in soup["averaged_from"]] == [str(tiny_checkpoint), str(tmp_path / "b.pt")]
    assert all(len(r["sha256"]) == 64 for r in soup["averaged_from"])
    assert "optimizer" not in soup and soup["lineage"] == a.get("lineage")
    model_from_checkpoint(soup)  # loads strictly into the network it names
    export(tmp_path / "soup.pt", tmp_path / "soup.onnx", version="soup")  # the record travels into the metadata
    training = Detector.from_onnx(tmp_path / "soup.onnx").metadata.training
    assert [r["sha256"] for r in training["averaged_from"]] == [r["sha256"] for r in soup["averaged_from"]]

    other = {**a, "model_args": {"width": 32}}
    torch.save(other, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="model_args"):
        average_checkpoints([tiny_checkpoint, tmp_path / "other.pt"], tmp_path / "x.pt")
    assert not (tmp_path / "x.pt").exists()
    pair = [str(tiny_checkpoint), str(tmp_path / "b.pt")]
    assert main(["average", str(tiny_checkpoint), "--out", str(tmp_path / "y.pt")]) == 2  # one is not an average
    assert main(["average", str(tiny_checkpoint), str(tmp_path / "missing.pt"), "--out", str(tmp_path / "y.pt")]) == 2
    assert main(["average", *pair, "--out", str(tiny_checkpoint)]) == 2  # never over an input
    assert main(["average", *pair, "--out", str(tmp_path / "z.pt")]) == 0 and (tmp_path / "z.pt").is_file()
