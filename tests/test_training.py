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


def test_checkpoint_describes_itself_and_training_resumes(tiny_checkpoint, tmp_path):
    import shutil

    ckpt = load_checkpoint(tiny_checkpoint)
    assert ckpt["epoch"] == 2 and ckpt["model_name"] == "armscan_det_small"
    assert ckpt["preprocess"]["size"] == 128 and ckpt["classes"][0] == "firearm"
    assert (tiny_checkpoint.parent / "config.yaml").is_file() and (tiny_checkpoint.parent / "log.csv").is_file()
    from armscan.training.train import train

    run = tmp_path / "run"
    shutil.copytree(tiny_checkpoint.parent, run)
    cfg = TrainConfig.load(run / "config.yaml", {"epochs": 3, "out_dir": str(run)})
    train(cfg)
    again = load_checkpoint(run / "last.pt")
    assert again["epoch"] == 3 and len(again["history"]) == 3
