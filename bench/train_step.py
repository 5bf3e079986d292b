"""Training step cost on this CPU, side by side in one run: the memory layout of weights and batches
(contiguous NCHW against channels-last, which both trainers use: ``armscan.training.engine.MEMORY_FORMAT``).

    python bench/train_step.py --steps 8 --rounds 3

For the bundled detector (batch 16 at 256 px, its real loss on generated scans) and the bundled photo model's
network (batch 32 at 192 px, its real loss on renders): forward, loss, backward and an AdamW step. The layouts
alternate round by round, so that load from other jobs hits both alike. Prints the median wall and CPU seconds
per step and the speed-up. No assertions: timings vary by +-30% between runs here.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from typing import Any

import torch

from armscan.datasets.photo.config import PhotoConfig
from armscan.datasets.synth.scene import SceneConfig
from armscan.datasets.taxonomy import BUILDS, PHOTO_CLASSES
from armscan.inference.preprocess import PreprocessSpec
from armscan.models.detector import STRIDE
from armscan.models.photo import MASK_STRIDE, MASKS
from armscan.models.registry import get_model
from armscan.training.data import SynthDetection, collate
from armscan.training.loss import detection_loss
from armscan.training.photo_data import PhotoRenders, collate_photos, photo_loss

Step = Callable[[], None]


def _detector_step(layout: torch.memory_format, batch: int, size: int) -> Step:
    torch.manual_seed(0)
    model = get_model("armscan_det_small").to(memory_format=layout).train()
    data = SynthDetection(0, batch, PreprocessSpec(size=size), 256, 480, SceneConfig())
    images, targets = collate([data[i] for i in range(batch)])
    images = images.contiguous(memory_format=layout)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)

    def step() -> None:
        loss = torch.stack(list(detection_loss(model(images), targets, STRIDE).values())).sum()
        opt.zero_grad(set_to_none=True)
        loss.backward()  # type: ignore[no-untyped-call]
        opt.step()

    return step


def _photo_step(layout: torch.memory_format, batch: int, size: int) -> Step:
    torch.manual_seed(0)
    model = get_model("armscan_photo_small", num_classes=len(PHOTO_CLASSES), num_builds=len(BUILDS),
                      num_masks=len(MASKS)).to(memory_format=layout).train()
    renders = PhotoRenders(0, batch, PreprocessSpec(size=size, pad_value=114), MASK_STRIDE, PhotoConfig(), progress=False)
    x, target = collate_photos([renders[i] for i in range(batch)])
    x = x.contiguous(memory_format=layout)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)

    def step() -> None:
        loss = torch.stack(list(photo_loss(model(x), target).values())).sum()
        opt.zero_grad(set_to_none=True)
        loss.backward()  # type: ignore[no-untyped-call]
        opt.step()

    return step


def _time(step: Step, n: int) -> tuple[float, float]:
    """Mean (wall, CPU) seconds per step over ``n`` steps."""
    w0, c0 = time.perf_counter(), time.process_time()
    for _ in range(n):
        step()
    return (time.perf_counter() - w0) / n, (time.process_time() - c0) / n


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--steps", type=int, default=8, help="timed steps per round")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    layouts = {"contiguous": torch.contiguous_format, "channels-last": torch.channels_last}
    cases: dict[str, Any] = {"detector, batch 16 @ 256 px": lambda lay: _detector_step(lay, 16, 256),
                             "photo model, batch 32 @ 192 px": lambda lay: _photo_step(lay, 32, 192)}
    print(f"torch {torch.__version__}, {args.threads} threads; {args.rounds} rounds of {args.steps} steps, "
          "layouts alternating")
    print(f"{'network':32s} {'layout':14s} {'wall s/step':>12s} {'CPU s/step':>11s}")
    for name, make in cases.items():
        steps = {lay: make(fmt) for lay, fmt in layouts.items()}
        for s in steps.values():  # warm-up: allocator, oneDNN primitive cache
            _time(s, 2)
        runs: dict[str, list[tuple[float, float]]] = {lay: [] for lay in layouts}
        for r in range(args.rounds):
            for lay in (list(layouts) if r % 2 == 0 else list(layouts)[::-1]):
                runs[lay].append(_time(steps[lay], args.steps))
        wall = {lay: statistics.median(w for w, _ in v) for lay, v in runs.items()}
        for lay, v in runs.items():
            print(f"{name:32s} {lay:14s} {wall[lay]:12.3f} {statistics.median(c for _, c in v):11.3f}")
        print(f"{name:32s} {'speed-up':14s} {wall['contiguous'] / wall['channels-last']:11.2f}x")


if __name__ == "__main__":
    main()
