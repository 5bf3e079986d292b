"""Helpers shared by the benchmark scripts (``arch_compare.py``, ``int8_study.py``, ``peer_yolo.py``): the
held-out generated sets, the four headline metrics, CPU-budgeted training of our detector and side-by-side
onnxruntime timing. Not a script; the scripts next to it import it (run them from the repository root).
"""

from __future__ import annotations

import json
import math
import os
import platform
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import numpy as np

from armscan.datasets.coco import Record
from armscan.datasets.synth.scene import SceneConfig, generate
from armscan.datasets.synth.writer import write_dataset
from armscan.inference.engine import Detector
from armscan.inference.preprocess import PreprocessSpec, preprocess
from armscan.training.config import TEST_SEED, VAL_SEED
from armscan.training.metrics import Prediction, ScoreTable, coco_map

BENCH = Path("runs/bench")
RECIPE = Path("training/det_small.yaml")  # the bundled model's recipe: every candidate starts from it
FAR = 0.02  # the operating point of the headline Pd
PD_KEY = f"pd@far{FAR:g}"


# --- held-out data ---------------------------------------------------------------------------------------------


def synth_set(out: Path, n: int, seed: int, width: int, height: int, threat_prob: float) -> Path:
    """A generated COCO folder, written once and reused while it holds the same scans."""
    ann = out / "annotations.json"
    want = {"seed": seed, "n": n, "width": width, "height": height, "threat_prob": threat_prob}
    if ann.exists():
        info = json.loads(ann.read_text()).get("info", {})
        if all(info.get(k) == v for k, v in want.items()):
            return out
        shutil.rmtree(out)
    write_dataset(out, n, seed, width, height, SceneConfig(threat_prob=threat_prob))
    return out


def test_set(n: int) -> Path:
    """``n`` held-out TEST-seed scans, as ``make model-card`` measures the bundled model (480 x 416)."""
    return synth_set(BENCH / "data" / f"test_{n}", n, TEST_SEED, 480, 416, 0.6)


def val_set(n: int) -> Path:
    """``n`` VAL-seed scans for export calibration and int8 calibration, as ``make model-card`` (416 x 416)."""
    return synth_set(BENCH / "data" / f"val_{n}", n, VAL_SEED, 416, 416, 0.5)


# --- metrics ----------------------------------------------------------------------------------------------------


def headline(records: list[Record], preds: list[Prediction], classes: list[str]) -> dict[str, float | None]:
    """mAP50, firearm AP50, mAP50 on the hidden-difficulty scans and the parcel alarm's Pd at 2% FAR."""
    ap = coco_map(records, preds, classes)
    hidden = [i for i, r in enumerate(records) if r.meta.get("difficulty") == "hidden"]
    hid = coco_map([records[i] for i in hidden], [preds[i] for i in hidden], classes)["mAP50"] if hidden else None
    pd = ScoreTable.build(records, preds, classes).rows()["any_threat"][PD_KEY]
    return {"mAP50": ap["mAP50"], "firearm_AP50": ap["AP50_per_class"].get("firearm"), "hidden_mAP50": hid, PD_KEY: pd}


def predict_onnx(path: Path, records: list[Record], threads: int = 2) -> tuple[list[Prediction], list[str]]:
    """Run an exported armscan model through the inference engine on ``records``."""
    from armscan.training.evaluate import predict

    det = Detector.from_onnx(path, threads=threads)
    return predict(det, records, progress=False), list(det.metadata.classes)


def evaluate_onnx(path: Path, records: list[Record], threads: int = 2) -> dict[str, float | None]:
    """The headline metrics of an exported armscan model on ``records``."""
    preds, classes = predict_onnx(path, records, threads)
    return headline(records, preds, classes)


def fmt(v: float | None, digits: int = 3) -> str:
    return "—" if v is None else f"{v:.{digits}f}"


# --- CPU-budgeted training ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Candidate:
    """One architecture to train: a registered model, its arguments and the input size."""

    key: str  # folder name under runs/bench
    label: str
    model: str
    size: int
    model_args: dict[str, Any] = field(default_factory=dict)


def step_cpu_seconds(c: Candidate, batch: int = 16, steps: int = 3) -> float:
    """CPU seconds (this process, all threads) of one training step of ``c`` on a batch of generated scans."""
    import torch

    from armscan.models import get_model
    from armscan.models.detector import STRIDE
    from armscan.training.config import TrainConfig
    from armscan.training.data import SynthDetection, collate
    from armscan.training.loss import detection_loss

    torch.manual_seed(0)
    d = TrainConfig.load(RECIPE).data
    scans = SynthDetection(0, batch, PreprocessSpec(size=c.size), d.min_side, d.max_side, SceneConfig(threat_prob=d.threat_prob))
    images, targets = collate([scans[i] for i in range(batch)])
    model = get_model(c.model, **c.model_args).train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)

    def step() -> None:
        loss = torch.stack(list(detection_loss(model(images), targets, STRIDE).values())).sum()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    step()  # warm-up: allocator, kernels
    t = time.process_time()
    for _ in range(steps):
        step()
    return (time.process_time() - t) / steps


# Plan this many more iterations than the probe predicts (the loop adds augmentation, the EMA update and gradient
# clipping to the probed step; the probe varies by +-15% under load): the budget, not a schedule that ran out
# early, ends every run, and the cosine schedule is then cut near its end (at 90% of it, the rate is 4.5% of the peak).
PLAN_MARGIN = 1.1


def train_budgeted(
    c: Candidate, out_dir: Path, budget_min: float, cache_size: int, batch: int = 16, iters_per_epoch: int = 50
) -> dict[str, Any]:
    """Train ``c`` from scratch on the bundled recipe for ``budget_min`` CPU minutes of this process.

    The schedule (epochs x iterations, warm-up, cosine decay) is sized from a short probe of the step's
    CPU time to end just after the budget (``PLAN_MARGIN``), so that the budget stops the loop. Every candidate trains
    on the same ``cache_size`` generated scans (seeds 0, 1, ...; letterboxed to its own input size).
    Returns the checkpoint path and what the run did.
    """
    from armscan.training.checkpoint import load_checkpoint
    from armscan.training.config import TrainConfig
    from armscan.training.train import train

    per_step = step_cpu_seconds(c, batch, steps=5)
    total = max(2 * iters_per_epoch, int(PLAN_MARGIN * budget_min * 60 / per_step))
    base = TrainConfig.load(RECIPE).model_dump()
    base.update(
        model=c.model,
        model_args=dict(c.model_args),
        input_size=c.size,
        batch_size=batch,
        epochs=math.ceil(total / iters_per_epoch),
        iters_per_epoch=iters_per_epoch,
        warmup_iters=min(200, max(10, total // 10)),
        time_budget_min=budget_min,
        budget_clock="cpu",
        out_dir=out_dir,
        val_images=0,
    )
    base["data"].update(cache_size=cache_size, train_seed=0)
    cfg = TrainConfig.model_validate(base)
    t0 = time.monotonic()
    ckpt_path = train(cfg, resume=False)
    wall = time.monotonic() - t0
    history = load_checkpoint(ckpt_path)["history"]
    iters = int(sum(r.get("iters", 0) for r in history))
    return {
        "checkpoint": str(ckpt_path),
        "probe_cpu_s_per_iter": round(per_step, 3),
        "planned_iters": cfg.epochs * cfg.iters_per_epoch,
        "iters": iters,
        "images": iters * batch,
        "cpu_min": history[-1]["budget_min"],
        "train_wall_min": history[-1]["elapsed_min"],
        "wall_min_with_data": round(wall / 60, 2),
        "cache_size": cache_size,
        "batch": batch,
        "cpu_s_per_iter": round(history[-1]["budget_min"] * 60 / max(iters, 1), 3),
    }


def export_candidate(ckpt: Path, out: Path, calib: Path, target_far: float) -> Path:
    """Export with ``training.export.export``, calibrated (NMS mode, temperature, thresholds) on ``calib``."""
    from armscan.training.export import export

    export(ckpt, out, version="bench", calib=calib, target_far=target_far)
    return out


# --- latency ------------------------------------------------------------------------------------------------------


def ort_session(path: Path, threads: int) -> Any:
    """An onnxruntime CPU session set up as ``Detector.from_onnx(path, threads)`` sets it up."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def scan_batch(size: int, n: int = 8) -> np.ndarray:
    """(n, 3, size, size) float32: generated 640 x 480 scans through our preprocessing (the pixel values do
    not change a convolution's cost; every model is timed on the same tensors)."""
    spec = PreprocessSpec(size=size)
    return np.stack([preprocess(generate(900_000_000 + i, 640, 480).image, spec)[0] for i in range(n)])


def time_side_by_side(
    models: dict[str, tuple[Path, int]],
    threads: int = 2,
    batches: tuple[int, ...] = (1, 8),
    rounds: int = 8,
    calls: Callable[[int], int] = lambda b: 12 if b == 1 else 4,
    progress: bool = True,
    cpu_clock: bool = False,
) -> dict[str, dict[int, list[float]]]:
    """Milliseconds per call of every model (``name: (onnx, input size)``) at every batch size, interleaved:
    ``rounds`` rounds, each timing every model in turn (the order rotates), so that load from other jobs on the
    machine hits all alike.

    ``cpu_clock`` (one thread only): the calling thread's CPU time instead of wall time. With one intra-op thread
    onnxruntime computes in the calling thread, so this is the model's compute cost, which other jobs on the
    machine barely change (they stretch wall time, not CPU time).
    """
    if cpu_clock and threads != 1:
        raise ValueError(f"cpu_clock measures one thread; got threads={threads}")
    clock = time.thread_time if cpu_clock else time.perf_counter
    sessions = {name: ort_session(p, threads) for name, (p, _) in models.items()}
    inputs: dict[str, dict[int, np.ndarray]] = {}
    cache: dict[int, np.ndarray] = {}
    for name, (_, size) in models.items():
        if size not in cache:
            cache[size] = scan_batch(size, max(batches))
        inputs[name] = {b: cache[size][:b] for b in batches}
    out: dict[str, dict[int, list[float]]] = {name: {b: [] for b in batches} for name in models}
    names = list(models)
    for r in range(rounds):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            s = sessions[name]
            feed_name = s.get_inputs()[0].name
            for b in batches:
                feed = {feed_name: inputs[name][b]}
                for _ in range(2):  # warm-up: this session's threads wake up
                    s.run(None, feed)
                for _ in range(calls(b)):
                    t = clock()
                    s.run(None, feed)
                    out[name][b].append((clock() - t) * 1000)
        if progress:
            print(f"  timing round {r + 1}/{rounds} done ({'1-thread CPU time' if cpu_clock else 'wall time'})", flush=True)
    return out


def spread(ms: list[float], per: int = 1) -> str:
    """``median (p10–p90)`` of ``ms`` divided by ``per``."""
    q = np.percentile(np.asarray(ms) / per, [10, 50, 90])
    return f"{q[1]:.1f} ({q[0]:.1f}–{q[2]:.1f})"


def median(ms: list[float], per: int = 1) -> float:
    return float(np.median(np.asarray(ms) / per))


def cpu_cost(ms: dict[int, list[float]]) -> str:
    """``batch 1 / batch 8 per scan`` medians of a ``cpu_clock`` timing."""
    return f"{median(ms[1]):.1f} / {median(ms[8], 8):.1f}"


# --- reporting ----------------------------------------------------------------------------------------------------


def machine_notes() -> str:
    """One line on where and under what load the figures were taken."""
    import onnxruntime as ort

    flags = ""
    try:
        cpuinfo = Path("/proc/cpuinfo").read_text()
        model = next((ln.split(":", 1)[1].strip() for ln in cpuinfo.splitlines() if ln.startswith("model name")), "")
        have = set(next((ln.split(":", 1)[1].split() for ln in cpuinfo.splitlines() if ln.startswith("flags")), []))
        flags = ", ".join(f for f in ("avx2", "fma", "avx512f", "avx512_vnni", "avx_vnni") if f in have)
    except OSError:
        model = platform.processor()
    load = ", ".join(f"{v:.2f}" for v in os.getloadavg())
    return (
        f"{date.today().isoformat()}; {model or 'CPU'} ({os.cpu_count()} cores; {flags}); no GPU used; "
        f"onnxruntime {ort.__version__}; load average at the end {load} (the machine is shared)"
    )


def markdown_table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


# --- training jobs in parallel processes -------------------------------------------------------------------------


def run_jobs(
    jobs: list[tuple[str, Callable[..., None], tuple[Any, ...], Path]], parallel: int, threads: int = 1
) -> dict[str, int]:
    """Run ``(name, fn, args, log)`` jobs in fresh (spawned) processes, ``parallel`` at a time; each process uses
    ``threads`` threads (torch, OpenCV) and writes its output to ``log``. Returns each job's exit code.

    One-thread training processes side by side keep both cores busy, and their CPU time is work done: with
    two threads on a shared machine, a thread waiting at a barrier for its descheduled partner spins, and the
    same training step cost 2.67 CPU-s (2 threads), 1.14 (2 threads, OMP_WAIT_POLICY=PASSIVE) and 0.80
    (1 thread) here under load, which would make an equal CPU budget unequal work.
    """
    ctx = get_context("spawn")
    pending, running, codes = list(jobs), {}, {}
    while pending or running:
        while pending and len(running) < parallel:
            name, fn, args, log = pending.pop(0)
            log.parent.mkdir(parents=True, exist_ok=True)
            p = ctx.Process(target=_child, args=(fn, args, str(log), threads), name=name)
            p.start()
            running[name] = p
            print(f"[{time.strftime('%H:%M:%S')}] started {name} (log: {log})", flush=True)
        time.sleep(2)
        for name, p in list(running.items()):
            if not p.is_alive():
                p.join()
                codes[name] = p.exitcode
                del running[name]
                print(f"[{time.strftime('%H:%M:%S')}] {name} finished (exit code {p.exitcode})", flush=True)
    return codes


def _child(fn: Callable[..., None], args: tuple[Any, ...], log: str, threads: int) -> None:
    fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    import cv2
    import torch

    torch.set_num_threads(threads)
    cv2.setNumThreads(threads)
    fn(*args)
