"""Models loaded from a folder, and a bounded inference pool that answers 'busy' instead of queueing forever."""

from __future__ import annotations

import asyncio
import hashlib
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import cv2
import numpy as np
from numpy.typing import NDArray

from armscan.datasets.readers import decode_scan
from armscan.inference.engine import Detector, ModelLoadError
from armscan.inference.result import ScanResult
from armscan.serve.registry import REGISTRY, Registry, RegistryError

T = TypeVar("T")


class BusyError(RuntimeError):
    """Every inference worker and queue slot is taken; the client should retry later."""


class UnknownModelError(KeyError):
    """No loaded model has that name."""


@dataclass
class LoadedModel:
    """A model ready to screen, with where it came from."""

    key: str
    detector: Detector
    path: Path
    sha256: str


class ModelSet:
    """Every ``*.onnx`` in a folder, loaded once; one of them is the default."""

    def __init__(self, models_dir: Path, default: str | None = None, threads: int = 1) -> None:
        self.models_dir = Path(models_dir)
        self._threads = threads
        self.models: dict[str, LoadedModel] = {}
        self.default = ""
        self.load(default)

    def load(self, default: str | None = None) -> None:
        """(Re)load the folder; raises ModelLoadError if no model loads or ``default`` is not among them.

        With a ``registry.json`` in the folder, the champion (the default) and the candidates are loaded,
        each only if its file's SHA-256 is the registered one; otherwise every ``*.onnx`` is.
        """
        reg = Registry(self.models_dir)
        models: dict[str, LoadedModel] = {}
        if reg.exists():
            try:
                entries = [m for m in reg.read().models if m.status != "retired"]
                champion = next((m.key for m in entries if m.status == "champion"), None)
                for e in entries:
                    path = reg.verify(e)  # RegistryError on a changed file
                    models[e.key] = LoadedModel(e.key, Detector.from_onnx(path, threads=self._threads), path, e.sha256)
            except RegistryError as exc:
                raise ModelLoadError(str(exc)) from exc
            if not models:
                raise ModelLoadError(f"the registry in {self.models_dir} has no champion or candidate")
            default = default or champion
        else:
            files = sorted(self.models_dir.glob("*.onnx"))
            if not files:
                raise ModelLoadError(f"no .onnx models in {self.models_dir}")
            for f in files:
                det = Detector.from_onnx(f, threads=self._threads)
                md = det.metadata
                key = md.name if md.name not in models else f"{md.name}@{md.version}"
                models[key] = LoadedModel(key, det, f, hashlib.sha256(f.read_bytes()).hexdigest())
        chosen = default if default in models else self.default if self.default in models else next(iter(models))
        if default and default not in models:
            raise ModelLoadError(f"default model {default!r} is not among the loaded models {sorted(models)}")
        self.models, self.default = models, chosen

    def signature(self) -> float:
        """Changes when the folder's registry (or, without one, its set of files) changes."""
        reg = self.models_dir / REGISTRY
        if reg.is_file():
            return reg.stat().st_mtime
        return sum(f.stat().st_mtime for f in self.models_dir.glob("*.onnx"))

    def get(self, name: str | None = None) -> LoadedModel:
        """The named model, or the default one."""
        key = name or self.default
        if key not in self.models:
            raise UnknownModelError(f"unknown model {key!r}; loaded models are {', '.join(sorted(self.models))}")
        return self.models[key]


class InferencePool:
    """A fixed number of worker threads plus a bounded number of waiting jobs."""

    def __init__(self, workers: int, queue_per_worker: int) -> None:
        self.workers = workers
        self.capacity = workers * (1 + queue_per_worker)
        self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="armscan-infer")
        self._lock = threading.Lock()
        self.in_flight = 0

    def _release(self, _fut: Future[Any]) -> None:
        with self._lock:
            self.in_flight -= 1

    async def run(self, fn: Callable[[], T], timeout_s: float) -> T:
        """Run ``fn`` on a worker; BusyError if full, TimeoutError after ``timeout_s`` (the slot frees when it ends)."""
        with self._lock:
            if self.in_flight >= self.capacity:
                raise BusyError(f"all {self.capacity} screening slots are busy")
            self.in_flight += 1
        fut = self._executor.submit(fn)
        fut.add_done_callback(self._release)
        return await asyncio.wait_for(asyncio.shield(asyncio.wrap_future(fut)), timeout_s)

    def shutdown(self) -> None:
        """Stop taking work and let running jobs finish."""
        self._executor.shutdown(wait=True, cancel_futures=True)


@dataclass
class Screened:
    """A decoded, screened upload."""

    result: ScanResult
    thumbnail_jpeg: bytes


def thumbnail(image: NDArray[np.uint8], longest: int) -> bytes:
    """A JPEG no larger than ``longest`` pixels on its longest side."""
    h, w = image.shape[:2]
    scale = min(1.0, longest / max(h, w))
    small = cv2.resize(image, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)
    ok, buf = cv2.imencode(".jpg", small, [cv2.IMWRITE_JPEG_QUALITY, 80])
    if not ok:
        raise OSError("could not encode a thumbnail")
    return bytes(buf.tobytes())


def screen_bytes(model: LoadedModel, data: bytes, filename: str, max_pixels: int, thumb_px: int) -> Screened:
    """Decode (ImageReadError on bad input), screen and thumbnail one upload. Runs on an inference worker."""
    scan = decode_scan(data, filename, max_pixels, reduce_to=max(model.detector.spec.size, thumb_px))
    result = model.detector.detect(scan.image, source=filename, original_size=(scan.width, scan.height))
    return Screened(result, thumbnail(scan.image, thumb_px))
