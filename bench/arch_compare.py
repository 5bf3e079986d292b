"""Architecture comparison: candidates trained on the same generated scans with the same CPU budget, exported,
scored on the same held-out scans and timed side by side with onnxruntime, in one run.

    .venv/bin/python bench/arch_compare.py                 # 4 candidates x 12 CPU-min: about 35 min on 2 idle cores
    .venv/bin/python bench/arch_compare.py --budget-min 30 --only small_w96_256 small_w64_256 --root runs/bench/arch_30
    .venv/bin/python bench/arch_compare.py --quick         # smoke test (about 5 min): tiny budgets, 60 test scans

Candidates, all on the bundled recipe (``training/det_small.yaml``: batch 16, AdamW, EMA, flips and turns):
the bundled ``armscan_det_small`` (width 96) at 256 px, a narrower one (width 64), the same at 320 px, and
``armscan_det_large`` (width 128) at 256 px. Each trains on the same ``--cache-size`` generated scans (seeds
0, 1, ...; letterboxed to its input size) for ``--budget-min`` CPU minutes of its own process
(``budget_clock: cpu``), its cosine schedule sized from a probe of its step cost to end just after the budget.
Candidates train in one-thread processes, ``--parallel`` at a time (see ``_common.run_jobs`` for why one
thread). Each is exported with ``training.export.export`` (calibrated on 400 VAL-seed scans), scored on the
same ``--test-n`` TEST-seed scans (mAP50, firearm AP50, mAP50 on hidden-difficulty scans, Pd at 2% parcel FAR)
and timed with onnxruntime (2 threads, batch 1 and 8) in one interleaved run, with torchvision's
``ssdlite320_mobilenet_v3_large`` (random weights, backbone + head, no postprocessing) as a latency-only row.
Writes runs/bench/arch/<candidate>/ (``--root``: checkpoint, model.onnx, result.json, train.log) and the report
(``--out``); ``--resume`` keeps the candidates that have a result.json and times them again.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import (  # noqa: E402
    BENCH,
    PD_KEY,
    Candidate,
    cpu_cost,
    evaluate_onnx,
    export_candidate,
    fmt,
    machine_notes,
    markdown_table,
    median,
    run_jobs,
    spread,
    test_set,
    time_side_by_side,
    train_budgeted,
    val_set,
)

from armscan.datasets.coco import read_coco  # noqa: E402

CANDIDATES = (
    Candidate("small_w96_256", "small w96 @256 (bundled)", "armscan_det_small", 256),
    Candidate("small_w64_256", "small w64 @256", "armscan_det_small", 256, {"width": 64}),
    Candidate("small_w96_320", "small w96 @320", "armscan_det_small", 320),
    Candidate("large_w128_256", "large w128 @256", "armscan_det_large", 256),
)
REFERENCE = "small_w96_256"
LATENCY_SLACK = 1.5  # candidates at most this much slower than the bundled one at batch 1 (wall and CPU)
MAP_TIE = 0.01  # mAP50 differences under this are noise here (500 test scans)
PD_TIE = 0.03  # Pd@2% differences under this are noise here (about 290 threat scans, 4 clean scans over threshold)


def candidate_job(
    c: Candidate,
    out_dir: Path,
    budget_min: float,
    cache_size: int,
    iters_per_epoch: int,
    val_dir: Path,
    test_dir: Path,
    target_far: float,
) -> None:
    """Train, export and score one candidate (in its own process); writes ``out_dir/result.json``."""
    import torch

    info = train_budgeted(c, out_dir, budget_min, cache_size, iters_per_epoch=iters_per_epoch)
    t = time.monotonic()
    onnx = export_candidate(Path(info["checkpoint"]), out_dir / "model.onnx", val_dir, target_far)
    export_s = time.monotonic() - t
    t = time.monotonic()
    metrics = evaluate_onnx(onnx, read_coco(test_dir), threads=1)
    from armscan.models import get_model

    params = sum(p.numel() for p in get_model(c.model, **c.model_args).parameters())
    result = {
        "key": c.key,
        "label": c.label,
        "model": c.model,
        "model_args": c.model_args,
        "size": c.size,
        "params_m": round(params / 1e6, 2),
        "train": info,
        "onnx": str(onnx),
        "export_s": round(export_s),
        "eval_s": round(time.monotonic() - t),
        "metrics": metrics,
        "torch_threads": torch.get_num_threads(),
    }
    (out_dir / "result.json").write_text(json.dumps(result, indent=2))
    print(json.dumps(result), flush=True)


def ssdlite_reference(out: Path, size: int) -> tuple[Path, float, float]:
    """torchvision's SSDlite (MobileNetV3-large, random weights, nothing downloaded) as ONNX: backbone and
    head only, like our graphs. Also returns its training speed here (images/s, batch 4 at 320 px, the threads
    of this process) and its parameters (millions)."""
    import torch
    from torchvision.models.detection import ssdlite320_mobilenet_v3_large

    from armscan.datasets.taxonomy import CLASSES

    model = ssdlite320_mobilenet_v3_large(weights=None, weights_backbone=None, num_classes=len(CLASSES) + 1)

    class Raw(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.backbone, self.head = model.backbone, model.head

        def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            h = self.head(list(self.backbone(x).values()))
            return h["bbox_regression"], h["cls_logits"]  # (B, A, 4), (B, A, C + 1)

    if not out.exists():
        out.parent.mkdir(parents=True, exist_ok=True)
        batch = torch.export.Dim("batch", min=1, max=64)
        program = torch.onnx.export(
            Raw().eval(),
            (torch.zeros(2, 3, size, size),),
            dynamo=True,
            input_names=["images"],
            output_names=["boxes", "logits"],
            dynamic_shapes={"x": {0: batch}},
            opset_version=18,
            verbose=False,
        )
        assert program is not None
        program.save(str(out))
    model.train()
    images = [torch.rand(3, 320, 320) for _ in range(4)]
    targets = [{"boxes": torch.tensor([[40.0, 50.0, 160.0, 140.0]]), "labels": torch.tensor([1])} for _ in range(4)]
    opt = torch.optim.SGD(model.parameters(), lr=1e-3)
    rates = []
    for _ in range(3):
        t = time.perf_counter()
        loss = sum(model(images, targets).values())
        opt.zero_grad()
        loss.backward()  # type: ignore[union-attr]
        opt.step()
        rates.append(len(images) / (time.perf_counter() - t))
    return out, float(max(rates[1:])), sum(p.numel() for p in model.parameters()) / 1e6


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--budget-min", type=float, default=12.0, help="CPU minutes of training per candidate")
    ap.add_argument("--cache-size", type=int, default=3000, help="generated training scans (the same for all)")
    ap.add_argument("--parallel", type=int, default=2, help="candidates training at once (one thread each)")
    ap.add_argument("--test-n", type=int, default=500)
    ap.add_argument("--val-n", type=int, default=400)
    ap.add_argument("--threads", type=int, default=2, help="onnxruntime threads for the latency run")
    ap.add_argument("--rounds", type=int, default=8, help="interleaved timing rounds")
    ap.add_argument("--only", nargs="*", default=None, help=f"candidate keys (default: all of {[c.key for c in CANDIDATES]})")
    ap.add_argument("--resume", action="store_true", help="keep candidates that already have a result.json")
    ap.add_argument("--no-ssdlite", action="store_true", help="leave out the SSDlite latency row")
    ap.add_argument("--out", type=Path, default=Path("docs/arch_comparison.md"))
    ap.add_argument("--root", type=Path, default=BENCH / "arch", help="where the candidates' runs go")
    ap.add_argument("--quick", action="store_true", help="smoke test: 0.3 CPU-min each, 64 scans, 60 test scans")
    a = ap.parse_args()
    iters_per_epoch, target_far, root = 50, 0.01, a.root
    if a.quick:
        a.budget_min, a.cache_size, a.test_n, a.val_n, a.rounds = 0.3, 64, 60, 120, 2
        iters_per_epoch, target_far, root = 5, 0.05, BENCH / "arch_quick"
        a.out = BENCH / "arch_comparison_quick.md"
    t_start = time.monotonic()
    cands = [c for c in CANDIDATES if a.only is None or c.key in a.only]
    val_dir, test_dir = val_set(a.val_n), test_set(a.test_n)  # written once, before the workers start
    reused = [c.key for c in cands if a.resume and (root / c.key / "result.json").exists()]
    jobs = [
        (
            c.key,
            candidate_job,
            (c, root / c.key, a.budget_min, a.cache_size, iters_per_epoch, val_dir, test_dir, target_far),
            root / c.key / "train.log",
        )
        for c in cands
        if not (a.resume and (root / c.key / "result.json").exists())
    ]
    codes = run_jobs(jobs, a.parallel)
    results = {
        c.key: json.loads((root / c.key / "result.json").read_text())
        for c in cands
        if (root / c.key / "result.json").exists() and codes.get(c.key, 0) == 0
    }
    failed = [c.key for c in cands if c.key not in results]
    if failed:
        print(f"failed (see their train.log): {failed}", flush=True)
    models = {r["label"]: (Path(r["onnx"]), r["size"]) for r in results.values()}
    ssd_rate, ssd_params = None, 0.0
    if not a.no_ssdlite:
        for size in sorted({c.size for c in cands}):
            path, ssd_rate, ssd_params = ssdlite_reference(root / f"ssdlite_{size}.onnx", size)
            models[f"SSDlite320-MobileNetV3-large @{size} (latency only)"] = (path, size)
    timing = time_side_by_side(models, a.threads, (1, 8), a.rounds)
    cpu = time_side_by_side(models, 1, (1, 8), max(2, a.rounds // 3), cpu_clock=True)
    rows, train_rows = [], []
    for r in results.values():
        m, tr, ms = r["metrics"], r["train"], timing[r["label"]]
        r["b1_median_ms"], r["b1_cpu_ms"] = median(ms[1]), median(cpu[r["label"]][1])
        rows.append(
            [
                r["label"],
                f"{r['params_m']:.2f}",
                f"{tr['iters']} ({tr['images']:,} img)",
                fmt(m["mAP50"]),
                fmt(m["firearm_AP50"]),
                fmt(m["hidden_mAP50"]),
                fmt(m[PD_KEY]),
                spread(ms[1]),
                spread(ms[8], 8),
                cpu_cost(cpu[r["label"]]),
            ]
        )
        train_rows.append(
            [
                r["label"],
                f"{tr['probe_cpu_s_per_iter']:.2f}",
                f"{tr['cpu_s_per_iter']:.2f}",
                str(tr["planned_iters"]),
                str(tr["iters"]),
                f"{tr['cpu_min']:.1f}",
                f"{tr['train_wall_min']:.1f}",
                f"{r['export_s']} / {r['eval_s']}",
            ]
        )
    for name, ms in timing.items():
        if "SSDlite" in name:
            rows.append(
                [name, f"{ssd_params:.2f}", "—", "—", "—", "—", "—", spread(ms[1]), spread(ms[8], 8), cpu_cost(cpu[name])]
            )
    header = [
        "candidate",
        "params (M)",
        "iterations (images) in budget",
        "mAP50",
        "firearm AP50",
        "hidden mAP50",
        "Pd @ 2% FAR",
        "batch 1 ms, median (p10–p90)",
        "batch 8 ms/scan, median (p10–p90)",
        "1-thread CPU ms: batch 1 / batch 8 per scan",
    ]
    table = markdown_table(header, rows)
    train_table = markdown_table(
        [
            "candidate",
            "probe CPU-s/iter",
            "actual CPU-s/iter",
            "planned iters",
            "iters done",
            "CPU min",
            "wall min",
            "export / eval s",
        ],
        train_rows,
    )
    print(table)
    print(train_table)
    wall_min = (time.monotonic() - t_start) / 60
    cmd = " ".join(["python", "bench/arch_compare.py", *sys.argv[1:]])
    write_report(a, results, table, train_table, cmd, wall_min, ssd_rate, failed, reused)
    print(f"wrote {a.out} ({wall_min:.1f} min)")


def choose(results: dict[str, dict[str, Any]], threads: int) -> tuple[str, str]:
    """The chosen candidate and why, by the rule stated in the report: accuracy first, then cost."""
    if REFERENCE not in results:
        return "", "the bundled architecture's run failed, so no choice is made"
    ref = results[REFERENCE]

    def slower(r: dict[str, Any]) -> float:
        return max(r["b1_median_ms"] / ref["b1_median_ms"], r["b1_cpu_ms"] / ref["b1_cpu_ms"])

    def m(r: dict[str, Any], key: str) -> float:
        return float(r["metrics"][key] or 0.0)

    allowed = [r for r in results.values() if slower(r) <= LATENCY_SLACK]
    best = max(allowed, key=lambda r: m(r, "mAP50"))
    tied = [r for r in allowed if m(r, "mAP50") >= m(best, "mAP50") - MAP_TIE and m(r, PD_KEY) >= m(best, PD_KEY) - PD_TIE]
    chosen = min(tied, key=lambda r: r["b1_cpu_ms"])
    why = f"mAP50 {m(chosen, 'mAP50'):.3f} and Pd@2% {m(chosen, PD_KEY):.3f}"
    if chosen is not best:
        why += (
            f", tied within noise with the most accurate, {best['label']} (mAP50 {m(best, 'mAP50'):.3f}, "
            f"Pd@2% {m(best, PD_KEY):.3f}), and cheaper"
        )
    elif len(allowed) > 1:
        why += ", the most accurate of the candidates within the latency limit"
    why += (
        f"; {chosen['b1_median_ms']:.1f} ms at batch 1 on {threads} threads and {chosen['b1_cpu_ms']:.1f} CPU ms on one "
        f"(the bundled architecture: {ref['b1_median_ms']:.1f} ms, {ref['b1_cpu_ms']:.1f} CPU ms)"
    )
    return chosen["key"], why


def write_report(
    a: argparse.Namespace,
    results: dict[str, dict[str, Any]],
    table: str,
    train_table: str,
    cmd: str,
    wall_min: float,
    ssd_rate: float | None,
    failed: list[str],
    reused: list[str],
) -> None:
    key, why = choose(results, a.threads)
    reused_note = (
        f" Trained and scored in an earlier run of this command (kept with --resume; their wall minutes are in the training"
        f" table): {', '.join(reused)}; the latency figures are from this run."
        if reused
        else ""
    )
    pds = [r["metrics"][PD_KEY] or 0.0 for r in results.values()]
    chance = (
        f" At this budget Pd at 2% FAR is close to what a random score gives (0.02) for every candidate (at most "
        f"{max(pds):.3f}): it hardly separates them, and mAP50 and cost decide."
        if pds and max(pds) < 0.1
        else ""
    )
    label = results[key]["label"] if key else "none"
    any_r = next(iter(results.values()), None)
    iters_note = f"{any_r['train']['batch']}" if any_r else "16"
    ssd = (
        f" SSDlite is a latency reference only: with random weights it is not trained here (its training step "
        f"runs at about {ssd_rate:.1f} images/s on this machine, measured in this run)."
        if ssd_rate
        else ""
    )
    text = f"""# Architecture comparison at an equal CPU budget

Command: `{cmd}` (wall time {wall_min:.0f} min). Machine: {machine_notes()}.

Every candidate trained from scratch on the bundled recipe (`training/det_small.yaml`: batch {iters_note}, AdamW at
0.003, EMA, flips and 90° turns) on the same {a.cache_size:,} generated scans (seeds 0–{a.cache_size - 1:,}, sides 256–480 px,
threat prevalence 0.7; generated once per run into memory), for **{a.budget_min:g} CPU minutes each** of its own process
(`budget_clock: cpu`; one training thread per process, {a.parallel} candidates at a time, so that a CPU second is the
same work under any load). Each cosine schedule was sized from a probe of the candidate's step cost to end just after
the budget (10% more iterations than the probe predicts), so that the budget ends every run; the training table shows
where each schedule was cut.{reused_note}

Export: `training.export.export`, calibrated on {a.val_n} VAL-seed scans (NMS mode, temperature,
thresholds). Scores: {a.test_n} held-out TEST-seed scans (480×416; seeds from 200,000,000) through the inference
engine: COCO mAP50 (pycocotools), firearm AP50, mAP50 on the hidden-difficulty scans, and the parcel alarm's Pd at a
2% parcel false-alarm rate. Latency: onnxruntime on {a.threads} threads, the model alone, all models in one
interleaved run ({a.rounds} rounds, the order rotating), so that load from other jobs hits all alike; batch 8 is
per scan. Wall times vary by ±30% between runs on this shared machine: compare within a table. The last column is
the load-proof measure: the CPU time of one onnxruntime thread (which then computes in the calling thread),
interleaved the same way; other jobs stretch wall time, not it.{ssd}

{table}

Training (CPU seconds per iteration of batch 16; the probe is forward + backward + step only):

{train_table}
{f"{chr(10)}Failed (see runs/bench/arch/<key>/train.log): {', '.join(failed)}{chr(10)}" if failed else ""}
## Conclusion

Rule: accuracy first, then cost. Among the candidates at most {LATENCY_SLACK}× slower than the bundled architecture at
batch 1 (in wall time on {a.threads} threads and in one-thread CPU time), take the one with the best mAP50; if a
cheaper one ties with it (mAP50 within {MAP_TIE}, Pd@2% at least that of the best minus {PD_TIE}: differences this
small are noise on this test set), choose the cheapest such one.{chance}

**Chosen: {label}**: {why}.

These are short budgets: every candidate is far from converged (the bundled model had 5,600 iterations), so the
comparison says which architecture learns most per CPU minute early on, not which ends best after an hour.
"""
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(text)


if __name__ == "__main__":
    main()
