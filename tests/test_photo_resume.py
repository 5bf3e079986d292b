"""The photo model's trainer keeps a run's record true as the detector's does: a time budget that stops an epoch
half-way leaves it unfinished and the resume goes on inside it, a spent budget is an error, and a resume whose
recipe changed is refused before it rewrites the run's config."""

from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from armscan.training.checkpoint import load_checkpoint  # noqa: E402
from armscan.training.config import TrainConfig  # noqa: E402
from armscan.training.train import BudgetSpentError, train  # noqa: E402

CUT = 0.0001  # minutes (6 ms): the first iteration overruns it, so the run stops after 1 of its 6 iterations


def _tiny(out: Path, **kw: object) -> TrainConfig:
    base = {"task": "photo", "model": "armscan_photo_small", "model_args": {"width": 16, "hidden": 32},
            "input_size": 64, "batch_size": 2, "epochs": 2, "iters_per_epoch": 3, "warmup_iters": 1, "workers": 0,
            "out_dir": str(out), "val_images": 0, "data": {"kind": "photo", "cache_size": 8}}
    return TrainConfig.load(None, base | kw)


def test_a_budget_stop_inside_an_epoch_is_unfinished_and_resumes_exactly(tmp_path):
    straight = load_checkpoint(train(_tiny(tmp_path / "a")))
    cut = load_checkpoint(train(_tiny(tmp_path / "b", time_budget_min=CUT)))
    assert cut["epoch"] == 0 and cut["epoch_progress"]["iters"] == 1 and cut["scheduler"]["last_epoch"] == 1
    resumed = load_checkpoint(train(_tiny(tmp_path / "b", time_budget_min=60)))  # a larger budget: it goes on
    assert resumed["epoch"] == 2 and resumed["epoch_progress"] is None
    assert resumed["scheduler"]["last_epoch"] == 6  # epochs x iterations, as a straight run
    assert resumed["history"][-1]["lr"] == pytest.approx(0.02 * resumed["config"]["lr"])  # the schedule's floor
    assert [h["iters"] for h in resumed["history"]] == [3, 3] and resumed["ema_updates"] == straight["ema_updates"]
    for key in ("model_state", "train_state"):  # the skipped batches, the same order and the same augmentation
        for name, value in straight[key].items():
            torch.testing.assert_close(resumed[key][name], value, rtol=0, atol=0, msg=f"{key}.{name}")
    assert len((tmp_path / "b" / "log.csv").read_text().splitlines()) == 3  # one row per epoch


def test_a_spent_budget_is_an_error_not_one_more_iteration(tmp_path, capsys):
    from armscan.serve.cli import main

    train(_tiny(tmp_path, time_budget_min=CUT))
    with pytest.raises(BudgetSpentError, match="larger time_budget_min"):
        train(_tiny(tmp_path, time_budget_min=CUT))
    assert load_checkpoint(tmp_path / "last.pt")["epoch_progress"]["iters"] == 1  # nothing more was trained
    _tiny(tmp_path, time_budget_min=CUT).save(tmp_path / "run.yaml")
    assert main(["train", "--config", str(tmp_path / "run.yaml")]) == 2
    assert "0 of 2 epochs done and 1 of 3 iterations" in capsys.readouterr().err


def test_resume_refuses_a_changed_lr_and_keeps_the_run_config(tmp_path):
    small = {"epochs": 1, "iters_per_epoch": 1}
    train(_tiny(tmp_path, **small))
    with pytest.raises(ValueError, match=r"lr: 0\.003 -> 0\.0001") as err:
        train(_tiny(tmp_path, **small | {"lr": 1e-4}))
    assert "--no-resume" in str(err.value)
    assert TrainConfig.load(tmp_path / "config.yaml").lr == 3e-3  # a refused resume does not rewrite it
    assert load_checkpoint(tmp_path / "last.pt")["config"]["lr"] == 3e-3
