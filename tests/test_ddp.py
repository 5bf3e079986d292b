"""Distributed data-parallel training: two real ``torchrun`` processes (gloo, CPU) train, checkpoint and resume.

About 30 s on 2 cores: three launches of 2 processes, each up to 4 iterations of batch 2 at 64 px; the third
resumes a run that its time budget stopped inside an epoch.
"""

import csv
import os
import shutil
import subprocess
import sys

import pytest

torch = pytest.importorskip("torch")

from armscan.training.checkpoint import load_checkpoint  # noqa: E402

TORCHRUN = shutil.which("torchrun", path=os.path.dirname(sys.executable)) or shutil.which("torchrun")


def _torchrun(config, *overrides: str) -> subprocess.CompletedProcess[str]:
    cmd = [TORCHRUN, "--standalone", "--nproc_per_node", "2", "-m", "armscan.serve.cli", "train", "--config", str(config),
           "--set", *overrides]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=240, env=env)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


@pytest.mark.slow
@pytest.mark.skipif(TORCHRUN is None, reason="torchrun is not installed")
def test_two_torchrun_processes_train_checkpoint_and_resume(tmp_path):
    out = tmp_path / "run"
    config = tmp_path / "tiny.yaml"
    config.write_text(f"""input_size: 64
batch_size: 2
epochs: 1
iters_per_epoch: 2
warmup_iters: 1
workers: 0
val_images: 0
device: cpu
out_dir: {out}
model_args: {{width: 32}}
data: {{min_side: 128, max_side: 160}}
""")
    proc = _torchrun(config)
    assert sorted(p.name for p in out.iterdir()) == ["config.yaml", "last.pt", "log.csv"]  # rank 0 writes, once
    rows = list(csv.DictReader((out / "log.csv").read_text().splitlines()))
    assert len(rows) == 1 and rows[0]["world_size"] == "2"
    # 2 iterations x batch 2 on each of 2 ranks, summed across the ranks by an all-reduce
    assert float(rows[0]["iters"]) == 2 and float(rows[0]["images"]) == 8
    assert proc.stdout.count('"epoch": 0') == 1  # only rank 0 prints the epoch's row
    ckpt = load_checkpoint(out / "last.pt")
    assert ckpt["world_size"] == 2 and ckpt["epoch"] == 1 and ckpt["ema_updates"] == 2
    assert not any(k.startswith("module.") for k in ckpt["model_state"])  # the unwrapped model, ready to export

    # Resume: a run the time budget stopped inside its first epoch (one iteration of two) resumes inside it with
    # a larger budget, on both ranks, and finishes. A changed `epochs` would be refused (it reshapes the schedule).
    cut = tmp_path / "cut"
    proc = _torchrun(config, f'out_dir="{cut}"', "epochs=2", "time_budget_min=1e-9")
    ckpt = load_checkpoint(cut / "last.pt")
    assert ckpt["epoch"] == 0 and ckpt["epoch_progress"]["iters"] == 1 and ckpt["ema_updates"] == 1
    proc = _torchrun(config, f'out_dir="{cut}"', "epochs=2", "time_budget_min=100")
    assert "resuming from" in proc.stdout
    ckpt = load_checkpoint(cut / "last.pt")
    assert ckpt["epoch"] == 2 and len(ckpt["history"]) == 2 and ckpt["ema_updates"] == 4
    rows = list(csv.DictReader((cut / "log.csv").read_text().splitlines()))
    assert [r["epoch"] for r in rows] == ["0", "1"] and [float(r["iters"]) for r in rows] == [2, 2]
