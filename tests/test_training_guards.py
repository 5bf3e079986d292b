"""What training refuses or redoes so that a run's record stays true: a time budget that stops an epoch half-way,
a resume whose config changed, an input size the network cannot take, a stale validation set."""

from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from pydantic import ValidationError  # noqa: E402

from armscan.training.checkpoint import load_checkpoint  # noqa: E402
from armscan.training.config import TrainConfig  # noqa: E402


def _tiny(out: Path, **kw: object) -> TrainConfig:
    base = {"input_size": 64, "batch_size": 2, "epochs": 2, "iters_per_epoch": 3, "warmup_iters": 1, "workers": 0,
            "out_dir": str(out), "val_images": 0, "model_args": {"width": 32},
            "data": {"min_side": 128, "max_side": 160, "cache_size": 8}}  # cached: flips and turns draw on the RNG
    return TrainConfig.load(None, base | kw)


def test_a_budget_stop_inside_an_epoch_is_unfinished_and_resumes_exactly(tmp_path, capsys):
    from armscan.serve.cli import main
    from armscan.training.train import train

    straight = load_checkpoint(train(_tiny(tmp_path / "a")))
    # a budget of 6 ms: the first iteration overruns it, so the run stops after 1 of its 6 iterations
    cut = load_checkpoint(train(_tiny(tmp_path / "b", time_budget_min=0.0001)))
    assert cut["epoch"] == 0 and cut["epoch_progress"]["iters"] == 1 and cut["scheduler"]["last_epoch"] == 1
    assert [h["iters"] for h in cut["history"]] == [1]
    from armscan.training.train import BudgetSpentError

    with pytest.raises(BudgetSpentError, match="larger time_budget_min"):  # the same budget: nothing can be trained
        train(_tiny(tmp_path / "b", time_budget_min=0.0001))
    _tiny(tmp_path / "b", time_budget_min=0.0001).save(tmp_path / "b.yaml")
    assert main(["train", "--config", str(tmp_path / "b.yaml")]) == 2
    err = capsys.readouterr().err
    assert "armscan: error:" in err and "0 of 2 epochs done and 1 of 3 iterations" in err
    resumed = load_checkpoint(train(_tiny(tmp_path / "b", time_budget_min=60)))  # a larger budget: it goes on
    assert resumed["epoch"] == 2 and resumed["epoch_progress"] is None and resumed["scheduler"]["last_epoch"] == 6
    assert [h["iters"] for h in resumed["history"]] == [3, 3] and resumed["ema_updates"] == straight["ema_updates"]
    for key in ("model_state", "train_state"):  # the skipped batches, the same order and the same flips
        for name, value in straight[key].items():
            torch.testing.assert_close(resumed[key][name], value, rtol=0, atol=0, msg=f"{key}.{name}")
    rows = (tmp_path / "b" / "log.csv").read_text().splitlines()
    assert len(rows) == 3  # one row per epoch, the interrupted one merged


def test_the_epoch_statistics_of_two_parts_are_weighed_by_iterations():
    from armscan.training.train import _merge

    merged = _merge({"cls": 1.0, "iters": 1.0, "images": 2.0}, {"cls": 4.0, "iters": 2.0, "images": 4.0})
    assert merged == {"cls": 3.0, "iters": 3.0, "images": 6.0}


def test_resume_refuses_a_changed_recipe_and_keeps_the_run_config(tmp_path):
    from armscan.training.train import train

    run = tmp_path / "run"
    small = {"epochs": 1, "iters_per_epoch": 1, "data": {"min_side": 128, "max_side": 160}}
    train(_tiny(run, **small))
    with pytest.raises(ValueError, match=r"lr: 0\.003 -> 0\.0001; weight_decay: 0\.05 -> 0\.0") as err:
        train(_tiny(run, **small | {"lr": 1e-4, "weight_decay": 0.0}))
    assert "init_from" in str(err.value) and "--no-resume" in str(err.value)
    with pytest.raises(ValueError, match="epochs: 1 -> 2"):  # the cosine schedule was made for one epoch
        train(_tiny(run, **small | {"epochs": 2}))
    with pytest.raises(ValueError, match="data.cache_size: 0 -> 8"):
        train(_tiny(run, **small | {"data": {"min_side": 128, "max_side": 160, "cache_size": 8}}))
    assert TrainConfig.load(run / "config.yaml").lr == 3e-3  # a refused resume does not rewrite the run's config
    done = load_checkpoint(train(_tiny(run, **small | {"time_budget_min": 5.0, "val_images": 0})))  # may change
    assert done["epoch"] == 1 and done["config"]["lr"] == 3e-3

    # starting a new run from those weights is another thing: it takes its own lr
    tuned = load_checkpoint(train(_tiny(tmp_path / "ft", **small | {"init_from": str(run / "last.pt"), "lr": 1e-4})))
    assert tuned["config"]["lr"] == 1e-4 and tuned["optimizer"]["param_groups"][0]["initial_lr"] == 1e-4


def test_resume_changes_lists_the_keys_that_may_not_change():
    before = TrainConfig.load(None, {}).model_dump(mode="json")
    now = TrainConfig.load(None, {"lr": 1e-4, "warmup_iters": 5, "time_budget_min": 1.0, "workers": 3,
                                  "out_dir": "elsewhere", "data": {"threat_prob": 0.5}})
    assert now.resume_changes(before) == {"lr": (3e-3, 1e-4), "warmup_iters": (200, 5), "data.threat_prob": (0.7, 0.5)}
    del before["loss_weights"]  # a key an older checkpoint's config does not have is not compared
    assert TrainConfig.load(None, {"loss_weights": {"cls": 2.0}}).resume_changes(before) == {}


def test_input_size_must_be_a_multiple_of_the_backbone_stride():
    from armscan.models import get_model

    for size, hint in ((100, "try 96 or 128"), (16, "try 32"), (0, "try 32")):
        with pytest.raises(ValidationError, match=f"multiple of 32.*not {size}; {hint}"):
            TrainConfig.load(None, {"input_size": size})
    assert TrainConfig.load(None, {"input_size": 96}).input_size == 96
    model = get_model("armscan_det_small", width=32).eval()  # what the rule is for
    with torch.no_grad():
        assert model(torch.zeros(1, 3, 96, 96))[0].shape[-1] == 12
        with pytest.raises(RuntimeError):
            model(torch.zeros(1, 3, 80, 80))


def test_the_end_of_training_val_set_follows_the_config(tiny_checkpoint, tmp_path):
    import json

    from armscan.training.train import _validate

    def n_images(out: Path) -> int:
        return len(json.loads((out / "val" / "annotations.json").read_text())["images"])

    _validate(_tiny(tmp_path, val_images=2), tiny_checkpoint)
    assert n_images(tmp_path) == 2 and (tmp_path / "val_metrics.json").is_file()
    _validate(_tiny(tmp_path, val_images=3), tiny_checkpoint)  # a changed val_images is not the old set again
    assert n_images(tmp_path) == 3
    assert len(list((tmp_path / "val" / "images").iterdir())) == 3

    foreign = tmp_path / "foreign"
    (foreign / "val").mkdir(parents=True)
    (foreign / "val" / "annotations.json").write_text(json.dumps({"info": {"description": "test split"},
                                                                 "images": [], "annotations": [], "categories": []}))
    with pytest.raises(ValueError, match="training did not generate"):  # the user's own data is never deleted
        _validate(_tiny(foreign, val_images=2), tiny_checkpoint)
    assert (foreign / "val" / "annotations.json").is_file()
