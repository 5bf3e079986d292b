"""Peer benchmark: our detector against Ultralytics YOLO11n, both from scratch on the same generated scans with the
same CPU budget and input size, scored on the same held-out scans by the same code, timed side by side.

    .venv/bin/pip install --no-deps ultralytics==8.4.190 ultralytics-thop ultralytics-platform polars psutil nvidia-ml-py
    .venv/bin/python bench/peer_yolo.py         # 12 CPU-min each, about 30 min on 2 cores
    .venv/bin/python bench/peer_yolo.py --quick # smoke test (about 5 min)

Ultralytics (AGPL-3.0; the ``bench`` extra of pyproject.toml) is never a runtime or training dependency: only this
script imports it, in a child process. ``--no-deps`` keeps its opencv-python out: that wheel and our
opencv-python-headless would share (and overwrite) one ``cv2`` module.
YOLO11n is built from ``yolo11n.yaml`` (random weights, ``pretrained=False``) and nothing is downloaded: the
child sets ``YOLO_OFFLINE=1`` and ``YOLO_AUTOINSTALL=false`` before importing ultralytics, turns its font check
off (no plots are drawn), and an audit hook blocks and records every DNS lookup or internet connection; the
report states how many were attempted (the run fails if any was).

Data: the same ``--cache-size`` scans our recipe trains on (seeds 0, 1, ...; the sides drawn as
``training.data.SynthDetection`` draws them; checked pixel for pixel), written as PNG with YOLO labels under
runs/bench/peer/yolo_data. Both models train at once, each in its own one-thread process, for ``--budget-min``
CPU minutes measured from the start of the training loop (``time.process_time``; YOLO with ``workers=0``, so its
data loading and augmentation are in that time, as ours are). Our side is ``armscan_det_small`` on the bundled
recipe (``arch_compare.candidate_job``). YOLO keeps Ultralytics' recipe (optimizer ``auto``, mosaic, HSV, EMA)
except: ``nbs=16`` (one optimizer step per batch of 16, as ours, instead of accumulating to 64), ``flipud=0.5``
(scans have no "up"; ours flips and turns them too), epochs and warm-up sized from a probe of its iteration cost so
that its schedule ends at the budget, and mosaic closed for the last tenth of the epochs (at least the last one).

Scoring: YOLO's ONNX export (raw ``(B, 4 + C, A)`` output) runs through a small decoder here (its letterbox: long
side to 256, centred, padded with 114), with our decoder's settings (score floor, pre-NMS top-k, NMS IoU, 100
boxes; per-class or class-agnostic NMS chosen on VAL scans by mAP50, as our export chooses), into the same
pycocotools mAP50 and parcel Pd at 2% FAR (best box score per scan) as ours. As a cross-check, Ultralytics' own
validator also scores the YOLO checkpoint on the same test scans (its settings: conf 0.001, IoU 0.7).
"""

from __future__ import annotations

import argparse
import inspect
import json
import math
import os
import sys
import time
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import (  # noqa: E402
    BENCH,
    PD_KEY,
    PLAN_MARGIN,
    RECIPE,
    Candidate,
    cpu_cost,
    fmt,
    headline,
    machine_notes,
    markdown_table,
    ort_session,
    run_jobs,
    spread,
    test_set,
    time_side_by_side,
    val_set,
)
from arch_compare import candidate_job  # noqa: E402

from armscan.datasets.coco import Record, read_coco  # noqa: E402
from armscan.datasets.readers import read_image  # noqa: E402
from armscan.datasets.synth.scene import SceneConfig, generate  # noqa: E402
from armscan.datasets.synth.writer import _yolo_lines as yolo_lines  # noqa: E402  (`armscan synth --yolo` format)
from armscan.datasets.taxonomy import CLASSES  # noqa: E402
from armscan.training.metrics import Prediction, coco_map  # noqa: E402

ROOT = BENCH / "peer"
COCO_FLOOR = 0.001  # the score floor of the table's scores, for both decoders (COCO practice; Ultralytics' val too)
OURS = Candidate("ours_small_w96_256", "armscan_det_small w96 (ours)", "armscan_det_small", 256)


# --- data ---------------------------------------------------------------------------------------------------------


def _train_scan(seed: int, data: Any) -> Any:
    """Scan ``seed`` of our training data (``data``: the recipe's DataConfig), with the sides that
    ``training.data.SynthDetection`` draws for it."""
    w, h = np.random.default_rng([seed, 7]).integers(data.min_side, data.max_side + 1, size=2)
    return generate(seed, int(w), int(h), SceneConfig(threat_prob=data.threat_prob))


def _write_train_scan(args: tuple[int, str, Any]) -> None:
    seed, folder, data = args
    scan = _train_scan(seed, data)
    h, w = scan.image.shape[:2]
    cv2.imwrite(f"{folder}/images/train/scan_{seed:08d}.png", scan.image)
    Path(f"{folder}/labels/train/scan_{seed:08d}.txt").write_text(yolo_lines(scan.boxes, w, h))


def write_yolo_data(out: Path, n: int, val_dir: Path, n_val: int) -> Path:
    """YOLO copies of our training scans 0..n-1 (images/train, labels/train), ``n_val`` VAL scans for
    Ultralytics' end-of-training validation, and ``data.yaml``. Reused when already complete."""
    import yaml

    from armscan.inference.preprocess import PreprocessSpec, preprocess
    from armscan.training.config import TrainConfig
    from armscan.training.data import SynthDetection

    data = TrainConfig.load(RECIPE).data
    # The same scans as our cache: compare with the training dataset itself, pixel for pixel.
    spec = PreprocessSpec(size=256)
    ref = SynthDetection(0, 3, spec, data.min_side, data.max_side, SceneConfig(threat_prob=data.threat_prob))
    for i in range(3):
        if not np.array_equal(preprocess(_train_scan(i, data).image, spec)[0], ref[i][0].numpy()):
            raise RuntimeError(f"scan {i} differs from training.data.SynthDetection's: the side rule has changed")
    done = out / f"complete_{n}"
    if not done.exists():
        for sub in ("images/train", "labels/train"):
            (out / sub).mkdir(parents=True, exist_ok=True)
        cv2.setNumThreads(1)  # OpenCV's pool does not survive fork; the processes are the parallelism
        with get_context("fork").Pool(os.cpu_count() or 2) as pool:
            pool.map(_write_train_scan, [(s, str(out), data) for s in range(n)], chunksize=16)
        done.touch()
    val_list = write_yolo_labels(read_coco(val_dir)[:n_val], val_dir)
    (out / "val.txt").write_text("".join(f"{p.resolve()}\n" for p in val_list))
    spec_yaml = {"path": str(out.resolve()), "train": "images/train", "val": "val.txt", "names": dict(enumerate(CLASSES))}
    (out / "data.yaml").write_text(yaml.safe_dump(spec_yaml, sort_keys=False))
    return out / "data.yaml"


def write_yolo_labels(records: list[Record], folder: Path) -> list[Path]:
    """YOLO labels next to a COCO folder's images (``folder/labels``, as Ultralytics looks for them)."""
    (folder / "labels").mkdir(exist_ok=True)
    files = []
    for r in records:
        (folder / "labels" / f"{Path(r.file).stem}.txt").write_text(yolo_lines(r.boxes, r.width, r.height))
        files.append(Path(r.file))  # read_coco's paths already start with the folder
    return files


# --- YOLO: preprocessing and decoding, for our evaluation ------------------------------------------------------------


def yolo_input(image: np.ndarray, size: int) -> tuple[np.ndarray, tuple[float, float, int, int]]:
    """Ultralytics' validation transform: long side to ``size`` (bilinear), centred on a 114-grey square; RGB, /255.
    Returns (3, size, size) float32 and (x scale, y scale, left pad, top pad)."""
    h0, w0 = image.shape[:2]
    r = size / max(h0, w0)
    w, h = min(math.ceil(w0 * r), size), min(math.ceil(h0 * r), size)
    img = cv2.resize(image, (w, h), interpolation=cv2.INTER_LINEAR) if (w, h) != (w0, h0) else image
    dw, dh = (size - w) / 2, (size - h) / 2
    top, bottom, left, right = round(dh - 0.1), round(dh + 0.1), round(dw - 0.1), round(dw + 0.1)
    img = cv2.copyMakeBorder(img, top, bottom, left, right, cv2.BORDER_CONSTANT, value=(114, 114, 114))
    x = np.ascontiguousarray(img[..., ::-1].transpose(2, 0, 1), dtype=np.float32) / 255.0
    return x, (w / w0, h / h0, left, top)


def yolo_decode(
    out: np.ndarray,
    geometry: tuple[float, float, int, int],
    width: int,
    height: int,
    agnostic: bool,
    floor: float | None = None,
) -> Prediction:
    """One image's ``(4 + C, A)`` output (centre xywh in input pixels, class probabilities) -> detections in
    original pixels, with our decoder's score floor (unless ``floor``), top-k, NMS IoU and box limit."""
    from armscan.inference.decode import decode
    from armscan.inference.metadata import Thresholds

    defaults = inspect.signature(decode).parameters
    top_k, max_det = defaults["pre_nms_top_k"].default, defaults["max_detections"].default
    th = Thresholds(alarm={})
    floor = th.min_score if floor is None else floor
    scores_all = out[4:].T  # (A, C)
    a, lab = np.nonzero(scores_all > floor)
    s = scores_all[a, lab]
    if len(s) > top_k:
        keep = np.argpartition(-s, top_k)[:top_k]
        a, lab, s = a[keep], lab[keep], s[keep]
    cxcywh = out[:4].T[a]
    xywh = np.concatenate([cxcywh[:, :2] - cxcywh[:, 2:] / 2, cxcywh[:, 2:]], axis=1)
    if len(s):
        groups = np.zeros_like(lab) if agnostic else lab
        idx = np.asarray(
            cv2.dnn.NMSBoxesBatched(xywh.tolist(), s.tolist(), groups.tolist(), floor, th.nms_iou), np.int64
        ).reshape(-1)
        idx = idx[np.argsort(-s[idx], kind="stable")][:max_det]
    else:
        idx = np.zeros(0, np.int64)
    sx, sy, left, top = geometry
    boxes = np.concatenate([xywh[idx, :2], xywh[idx, :2] + xywh[idx, 2:]], axis=1) - np.array([left, top, left, top])
    boxes = boxes / np.array([sx, sy, sx, sy])
    boxes[:, 0::2] = np.clip(boxes[:, 0::2], 0, width)
    boxes[:, 1::2] = np.clip(boxes[:, 1::2], 0, height)
    return Prediction(boxes.astype(np.float32), s[idx].astype(np.float32), lab[idx].astype(np.int64))


def yolo_predict(
    onnx: Path, records: list[Record], size: int, agnostic: bool, threads: int = 1, floor: float | None = None
) -> list[Prediction]:
    session = ort_session(onnx, threads)
    name = session.get_inputs()[0].name
    preds = []
    for r in records:
        image = read_image(r.file)
        x, geometry = yolo_input(image, size)
        out = session.run(None, {name: x[None]})[0][0]
        preds.append(yolo_decode(out, geometry, r.width, r.height, agnostic, floor))
    return preds


def score_both(res: dict[str, dict[str, Any]], records: list[Record], size: int, floor: float) -> dict[str, dict[str, Any]]:
    """The headline metrics of both models with a score floor of ``floor`` for both decoders."""
    from armscan.inference.engine import Detector

    det = Detector.from_onnx(res["ours"]["onnx"], threads=2)
    ours = []
    for r in records:
        d = det.raw(read_image(r.file), min_score=floor)
        ours.append(Prediction(d.boxes, d.scores, d.labels))
    yolo = yolo_predict(Path(res["yolo11n"]["onnx"]), records, size, res["yolo11n"]["nms_agnostic"], 2, floor)
    return {k: headline(records, p, list(CLASSES)) for k, p in (("ours", ours), ("yolo11n", yolo))}


# --- YOLO: training in a child process --------------------------------------------------------------------------------


def _guard_network(attempts: list[str]) -> None:
    """Block and record DNS lookups and internet connections from here on (an audit hook cannot be removed)."""
    import socket

    def hook(event: str, args: tuple[Any, ...]) -> None:
        if event in ("socket.getaddrinfo", "socket.gethostbyname", "socket.gethostbyname_ex", "urllib.Request") or (
            event == "socket.connect" and getattr(args[0], "family", None) in (socket.AF_INET, socket.AF_INET6)
        ):
            attempts.append(f"{event} {args[1] if event == 'socket.connect' else args[0]}")
            raise ConnectionRefusedError(f"peer_yolo: network access blocked ({event})")

    sys.addaudithook(hook)


def _train_yolo(
    data_yaml: Path,
    out: Path,
    size: int,
    batch: int,
    epochs: int,
    budget_s: float,
    fraction: int | float = 1.0,
    stop_after: int | None = None,
    warmup_epochs: float = 0.0,
    close_mosaic: int = 0,
) -> dict[str, Any]:
    import torch
    from ultralytics import YOLO

    marks: list[float] = []
    state: dict[str, Any] = {}

    def on_train_start(trainer: Any) -> None:
        torch.set_num_threads(1)  # Ultralytics sets (cores - 1) threads; one, as ours
        state["nb"] = len(trainer.train_loader)
        state["t0"], state["w0"] = time.process_time(), time.monotonic()

    def on_train_batch_end(trainer: Any) -> None:
        marks.append(time.process_time())
        if marks[-1] - state["t0"] > budget_s or (stop_after is not None and len(marks) >= stop_after):
            trainer.stop = True  # ends the epoch after this batch; then validation and last.pt, as at any end

    def on_train_epoch_end(trainer: Any) -> None:
        state["cpu_s"], state["wall_s"], state["epochs_run"] = (
            time.process_time() - state["t0"],
            time.monotonic() - state["w0"],
            trainer.epoch + 1,
        )

    model = YOLO("yolo11n.yaml")  # the packaged architecture file: random weights
    model.add_callback("on_train_start", on_train_start)
    model.add_callback("on_train_batch_end", on_train_batch_end)
    model.add_callback("on_train_epoch_end", on_train_epoch_end)
    model.train(
        data=str(data_yaml.resolve()),
        epochs=epochs,
        imgsz=size,
        batch=batch,
        nbs=batch,
        device="cpu",
        workers=0,
        cache="ram",
        amp=False,
        plots=False,
        val=False,
        pretrained=False,
        fraction=fraction,
        flipud=0.5,
        warmup_epochs=warmup_epochs,
        close_mosaic=close_mosaic,
        seed=0,
        exist_ok=True,
        project=str(out.parent.resolve()),
        name=out.name,
        verbose=True,
    )
    trainer = model.trainer
    return {
        **state,
        "iters": len(marks),
        "marks": marks,
        "last": str(Path(trainer.save_dir) / "weights" / "last.pt"),
        "epochs": trainer.epochs,
    }


def yolo_job(
    data_yaml: Path, out: Path, budget_min: float, size: int, batch: int, n_train: int, val_dir: Path, test_dir: Path
) -> None:
    """Train, export and score YOLO11n (in its own process); writes ``out/result.json``."""
    attempts: list[str] = []
    cfg_dir = (out / "ultralytics_settings").resolve()
    cfg_dir.mkdir(parents=True, exist_ok=True)
    os.environ.update(YOLO_OFFLINE="1", YOLO_AUTOINSTALL="false", YOLO_CONFIG_DIR=str(cfg_dir))
    _guard_network(attempts)
    import ultralytics.data.utils
    from ultralytics import YOLO, settings

    settings.update(
        {
            k: False
            for k in ("sync", "hub", "tensorboard", "wandb", "mlflow", "comet", "clearml", "dvc", "neptune", "raytune")
            if k in settings
        }
    )
    ultralytics.data.utils.check_font = lambda *a, **k: None  # fetches Arial.ttf for plots; no plots are drawn

    budget_s = budget_min * 60
    nb = math.ceil(n_train / batch)
    probe = _train_yolo(
        data_yaml, out.with_name("yolo_probe"), size, batch, 1, budget_s, fraction=min(n_train, 10 * batch), stop_after=8
    )
    m = probe["marks"]
    if len(m) < 4:
        raise RuntimeError(f"the YOLO probe ran {len(m)} iterations; at least 4 are needed")
    per_iter = (m[-1] - m[2]) / (len(m) - 3)  # the first iterations warm up allocator and kernels
    total = max(2, int(PLAN_MARGIN * budget_s / per_iter))
    epochs = max(1, math.ceil(total / nb))
    warmup = min(200, max(10, total // 10))  # as arch_compare sizes ours
    close = max(1, round(epochs / 10)) if epochs >= 3 else 0
    run = _train_yolo(data_yaml, out, size, batch, epochs, budget_s, warmup_epochs=warmup / nb, close_mosaic=close)
    last = Path(run["last"])
    t = time.monotonic()
    onnx = Path(YOLO(str(last)).export(format="onnx", imgsz=size, dynamic=True, simplify=False, opset=18))
    export_s = time.monotonic() - t
    t = time.monotonic()
    val_records, records = read_coco(val_dir), read_coco(test_dir)
    val_map = {
        ag: coco_map(val_records, yolo_predict(onnx, val_records, size, ag), list(CLASSES))["mAP50"] for ag in (False, True)
    }
    agnostic = val_map[True] > val_map[False]
    metrics = headline(records, yolo_predict(onnx, records, size, agnostic), list(CLASSES))
    eval_s = time.monotonic() - t
    test_list = write_yolo_labels(records, test_dir)
    (out / "test.txt").write_text("".join(f"{p.resolve()}\n" for p in test_list))
    import yaml

    (out / "test.yaml").write_text(
        yaml.safe_dump({"path": str(out.resolve()), "train": "test.txt", "val": "test.txt", "names": dict(enumerate(CLASSES))})
    )
    v = YOLO(str(last)).val(
        data=str((out / "test.yaml").resolve()),
        imgsz=size,
        batch=16,
        device="cpu",
        workers=0,
        plots=False,
        conf=0.001,
        iou=0.7,
        project=str(out.resolve()),
        name="val_test",
        exist_ok=True,
    )
    model = YOLO(str(last)).model
    result = {
        "label": "YOLO11n (Ultralytics, from yolo11n.yaml)",
        "onnx": str(onnx),
        "metrics": metrics,
        "params_m": round(sum(p.numel() for p in model.parameters()) / 1e6, 2),
        "nms_agnostic": agnostic,
        "val_mAP50_by_nms": {str(k): v_ for k, v_ in val_map.items()},
        "ultralytics_val_test": {"mAP50": round(float(v.box.map50), 4), "mAP50-95": round(float(v.box.map), 4)},
        "train": {
            "probe_cpu_s_per_iter": round(per_iter, 3),
            "planned_iters": epochs * nb,
            "epochs": epochs,
            "iters_per_epoch": nb,
            "warmup_iters": warmup,
            "close_mosaic": close,
            "iters": run["iters"],
            "images": run["iters"] * batch,
            "cpu_min": round(run["cpu_s"] / 60, 2),
            "train_wall_min": round(run["wall_s"] / 60, 2),
            "cpu_s_per_iter": round(run["cpu_s"] / max(run["iters"], 1), 3),
        },
        "export_s": round(export_s),
        "eval_s": round(eval_s),
        "network_attempts": attempts,
        "ultralytics_version": ultralytics.__version__,
    }
    (out / "result.json").write_text(json.dumps(result, indent=2))
    print(json.dumps(result), flush=True)
    if attempts:
        raise RuntimeError(f"ultralytics tried to reach the network: {attempts}")


# --- main ---------------------------------------------------------------------------------------------------------------


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--budget-min", type=float, default=12.0, help="CPU minutes of training, each")
    ap.add_argument("--cache-size", type=int, default=3000, help="generated training scans (the same for both)")
    ap.add_argument("--size", type=int, default=256, help="input size of both models")
    ap.add_argument("--test-n", type=int, default=500)
    ap.add_argument("--val-n", type=int, default=400)
    ap.add_argument("--threads", type=int, default=2, help="onnxruntime threads for the latency run")
    ap.add_argument("--rounds", type=int, default=8)
    ap.add_argument("--resume", action="store_true", help="keep a side that already has a result.json")
    ap.add_argument("--out", type=Path, default=Path("docs/peer_benchmark.md"))
    ap.add_argument("--quick", action="store_true", help="smoke test: 0.3 CPU-min each, 64 scans, 60 test scans")
    a = ap.parse_args()
    root, iters_per_epoch, target_far = ROOT, 50, 0.01
    if a.quick:
        a.budget_min, a.cache_size, a.test_n, a.val_n, a.rounds = 0.3, 64, 60, 120, 2
        root, iters_per_epoch, target_far = BENCH / "peer_quick", 5, 0.05
        a.out = BENCH / "peer_benchmark_quick.md"
    t_start = time.monotonic()
    val_dir, test_dir = val_set(a.val_n), test_set(a.test_n)
    data_yaml = write_yolo_data(root / "yolo_data", a.cache_size, val_dir, 50 if not a.quick else 8)
    print(f"[{time.strftime('%H:%M:%S')}] data ready ({(time.monotonic() - t_start) / 60:.1f} min)", flush=True)
    ours = Candidate(OURS.key, OURS.label, OURS.model, a.size)
    jobs = [
        (
            "ours",
            candidate_job,
            (ours, root / "ours", a.budget_min, a.cache_size, iters_per_epoch, val_dir, test_dir, target_far),
            root / "ours" / "train.log",
        ),
        (
            "yolo11n",
            yolo_job,
            (data_yaml, root / "yolo11n", a.budget_min, a.size, 16, a.cache_size, val_dir, test_dir),
            root / "yolo11n.log",
        ),
    ]
    jobs = [j for j in jobs if not (a.resume and (root / j[0] / "result.json").exists())]
    a.reused = [k for k in ("ours", "yolo11n") if k not in {j[0] for j in jobs}]
    codes = run_jobs(jobs, parallel=2)
    if any(codes.values()):
        raise SystemExit(f"a side failed: {codes} (see {root}/ours/train.log and {root}/yolo11n.log)")
    res = {k: json.loads((root / k / "result.json").read_text()) for k in ("ours", "yolo11n")}
    models = {k: (Path(r["onnx"]), a.size) for k, r in res.items()}
    timing = time_side_by_side(models, a.threads, (1, 8), a.rounds)
    cpu = time_side_by_side(models, 1, (1, 8), max(2, a.rounds // 3), cpu_clock=True)
    scores = score_both(res, read_coco(test_dir), a.size, COCO_FLOOR)
    rows = []
    for k, r in res.items():
        m, tr = scores[k], r["train"]
        rows.append(
            [
                r["label"],
                f"{r['params_m']:.2f}",
                f"{tr['iters']} ({tr['images']:,} img, {tr['cpu_min']:.1f} CPU-min)",
                fmt(m["mAP50"]),
                fmt(m["firearm_AP50"]),
                fmt(m["hidden_mAP50"]),
                fmt(m[PD_KEY]),
                spread(timing[k][1]),
                spread(timing[k][8], 8),
                cpu_cost(cpu[k]),
            ]
        )
    table = markdown_table(
        [
            "model",
            "params (M)",
            "iterations (images) in budget",
            "mAP50",
            "firearm AP50",
            "hidden mAP50",
            "Pd @ 2% FAR",
            "batch 1 ms, median (p10–p90)",
            "batch 8 ms/scan, median (p10–p90)",
            "1-thread CPU ms: batch 1 / batch 8 per scan",
        ],
        rows,
    )
    print(table)
    wall_min = (time.monotonic() - t_start) / 60
    write_report(a, res, table, " ".join(["python", "bench/peer_yolo.py", *sys.argv[1:]]), wall_min)
    print(f"wrote {a.out} ({wall_min:.1f} min)")


def write_report(a: argparse.Namespace, res: dict[str, dict[str, Any]], table: str, cmd: str, wall_min: float) -> None:
    y, o = res["yolo11n"], res["ours"]
    yt, ot = y["train"], o["train"]
    reused = (
        f" Trained and scored in an earlier run of this command (kept with --resume): {', '.join(a.reused)}; the "
        "latency and the table's scores are from this run."
        if a.reused
        else ""
    )
    nms = "class-agnostic" if y["nms_agnostic"] else "per class"
    text = f"""# Peer benchmark: armscan_det_small against Ultralytics YOLO11n

Command: `{cmd}` (wall time {wall_min:.0f} min; ultralytics installed first, as the `bench` extra's comment in
pyproject.toml says).{reused} Machine: {machine_notes()}.
Ultralytics {y["ultralytics_version"]} (AGPL-3.0; the optional `bench` extra, never a runtime or training dependency).

Both trained from scratch (YOLO11n from `yolo11n.yaml`, random weights, nothing downloaded: network attempts
recorded by the audit hook: {len(y["network_attempts"])}) on the same {a.cache_size:,} generated scans (seeds
0–{a.cache_size - 1:,}, sides 256–480 px, threat prevalence 0.7) at {a.size} px, for **{a.budget_min:g} CPU minutes
each** (`time.process_time()` of its own one-thread process from the first training batch; both ran at the same
time, so load from other jobs hit both alike). Ours: the bundled recipe (`training/det_small.yaml`; batch 16,
AdamW 0.003, cosine, EMA; {ot["planned_iters"]} iterations planned). YOLO11n: Ultralytics' recipe with batch 16,
`nbs=16`, `flipud=0.5`, {yt["epochs"]} epochs of {yt["iters_per_epoch"]} iterations planned (its learning rate steps
once per epoch), {yt["warmup_iters"]} warm-up iterations, mosaic closed for the last {yt["close_mosaic"]} epoch(s).

Scores: {a.test_n} held-out TEST-seed scans (seeds from 200,000,000; 480×416), the same pycocotools mAP50 and parcel
Pd at 2% FAR (best box score per scan; threshold set on the clean scans of the set) for both. Ours: our export
(calibrated on {a.val_n} VAL scans) through our inference engine. YOLO11n: its ONNX through its own letterbox and a
decoder with our decoder's settings (top 1000 before NMS, NMS IoU 0.5, 100 boxes; NMS {nms}, chosen on the VAL scans
as our export chooses: mAP50 {y["val_mAP50_by_nms"]}). Both decoders keep boxes down to a score of {COCO_FLOOR} for the
table (the COCO practice, also Ultralytics'): with our operating floor of 0.05 instead, YOLO11n loses boxes that ours
keeps, because its per-class sigmoid scores run lower than our sqrt(class × centreness) score: mAP50 at 0.05 is
{o["metrics"]["mAP50"]:.3f} for ours and {y["metrics"]["mAP50"]:.3f} for YOLO11n (Pd@2% {o["metrics"][PD_KEY]:.3f} and
{y["metrics"][PD_KEY]:.3f}). Cross-check: Ultralytics' own validator on the same test scans gives YOLO11n mAP50
{y["ultralytics_val_test"]["mAP50"]} (mAP50-95 {y["ultralytics_val_test"]["mAP50-95"]}) with its settings (conf 0.001,
IoU 0.7, rectangular letterbox). Latency: onnxruntime on {a.threads} threads, the model
alone (no pre- or postprocessing), both in one interleaved run ({a.rounds} rounds); batch 8 is per scan. Wall times
vary by ±30% between runs on this shared machine: compare within the table. The last column is the load-proof
measure: the CPU time of one onnxruntime thread (which then computes in the calling thread), interleaved the same
way; other jobs stretch wall time, not it.

{table}

Training cost: ours {ot["cpu_s_per_iter"]:.2f} CPU-s per iteration (probe {ot["probe_cpu_s_per_iter"]:.2f}), YOLO11n
{yt["cpu_s_per_iter"]:.2f} (probe {yt["probe_cpu_s_per_iter"]:.2f}); training took {ot["train_wall_min"]:.0f} and
{yt["train_wall_min"]:.0f} wall minutes on the shared machine; export {o["export_s"]} s / {y["export_s"]} s, scoring
{o["eval_s"]} s / {y["eval_s"]} s.
"""
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(text)


if __name__ == "__main__":
    main()
