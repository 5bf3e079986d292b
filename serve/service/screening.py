"""Models loaded from a folder, and a bounded inference pool that answers 'busy' instead of queueing forever.

A folder holds X-ray detectors and, optionally, seizure-photo classifiers; each file is loaded by the
``task`` in its metadata (``photo``, else a detector). Each kind has its own default model.
"""

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
from armscan.inference.engine import Detector, ModelLoadError, open_session
from armscan.inference.measure import MAX_SIDE
from armscan.inference.photo import PhotoClassifier, PhotoResult
from armscan.inference.result import Decision, ScanResult
from armscan.serve.registry import REGISTRY, Registry, RegistryError

T = TypeVar("T")


class BusyError(RuntimeError):
    """Every inference worker and queue slot is taken; the client should retry later."""


class UnknownModelError(KeyError):
    """No loaded model has that name."""


class NoModelError(LookupError):
    """No model of the requested kind (X-ray or photo) is loaded."""


@dataclass
class LoadedModel:
    """An X-ray detector ready to screen, with where it came from."""

    key: str
    detector: Detector
    path: Path
    sha256: str


@dataclass
class LoadedPhotoModel:
    """A seizure-photo classifier ready to classify, with where it came from."""

    key: str
    classifier: PhotoClassifier
    path: Path
    sha256: str


def _open(path: Path, threads: int) -> Detector | PhotoClassifier:
    """The file's detector or photo classifier, by the ``task`` in its metadata (ModelLoadError if neither)."""
    _, meta = open_session(path, threads=1)  # only to read the task; cheap next to loading the model
    if meta.get("task") == "photo":
        return PhotoClassifier.from_onnx(path, threads=threads)
    return Detector.from_onnx(path, threads=threads)


def _put(
    key: str,
    model: Detector | PhotoClassifier,
    path: Path,
    sha256: str,
    models: dict[str, LoadedModel],
    photos: dict[str, LoadedPhotoModel],
) -> None:
    if isinstance(model, PhotoClassifier):
        photos[key] = LoadedPhotoModel(key, model, path, sha256)
    else:
        models[key] = LoadedModel(key, model, path, sha256)


class ModelSet:
    """Every ``*.onnx`` in a folder, loaded once: X-ray detectors in ``models`` (``default`` screens uploads
    that name none) and seizure-photo classifiers in ``photo_models`` (``photo_default``, None when there is none)."""

    def __init__(self, models_dir: Path, default: str | None = None, threads: int = 1, default_photo: str | None = None) -> None:
        self.models_dir = Path(models_dir)
        self._threads = threads
        self.models: dict[str, LoadedModel] = {}
        self.photo_models: dict[str, LoadedPhotoModel] = {}
        self.default = ""
        self.photo_default: str | None = None
        self.load(default, default_photo)

    def load(self, default: str | None = None, default_photo: str | None = None) -> None:
        """(Re)load the folder; raises ModelLoadError if no model loads or a named default is not among them.

        With a ``registry.json`` in the folder, the champion (the default of its kind) and the candidates are
        loaded, each only if its file's SHA-256 is the registered one; otherwise every ``*.onnx`` is. The photo
        default is, unless named, the photo champion or else the last photo model registered (the first file).
        """
        reg = Registry(self.models_dir)
        models: dict[str, LoadedModel] = {}
        photos: dict[str, LoadedPhotoModel] = {}
        if reg.exists():
            try:
                entries = [m for m in reg.read().models if m.status != "retired"]
                champion = next((m.key for m in entries if m.status == "champion"), None)
                for e in entries:
                    path = reg.verify(e)  # RegistryError on a changed file
                    _put(e.key, _open(path, self._threads), path, e.sha256, models, photos)
            except RegistryError as exc:
                raise ModelLoadError(str(exc)) from exc
            if not models and not photos:
                raise ModelLoadError(f"the registry in {self.models_dir} has no champion or candidate")
            default = default or (champion if champion in models else None)
            default_photo = default_photo or (champion if champion in photos else next(reversed(photos), None))
        else:
            files = sorted(self.models_dir.glob("*.onnx"))
            if not files:
                raise ModelLoadError(f"no .onnx models in {self.models_dir}")
            for f in files:
                model = _open(f, self._threads)
                md = model.metadata
                key = md.name if md.name not in models and md.name not in photos else f"{md.name}@{md.version}"
                _put(key, model, f, hashlib.sha256(f.read_bytes()).hexdigest(), models, photos)
        if default and default not in models:
            raise ModelLoadError(f"default model {default!r} is not among the loaded X-ray models {sorted(models)}")
        if default_photo and default_photo not in photos:
            raise ModelLoadError(f"default photo model {default_photo!r} is not among the loaded photo models {sorted(photos)}")
        chosen = default or (self.default if self.default in models else next(iter(models), ""))
        chosen_photo = default_photo or (self.photo_default if self.photo_default in photos else next(iter(photos), None))
        self.models, self.photo_models, self.default, self.photo_default = models, photos, chosen, chosen_photo

    def signature(self) -> float:
        """Changes when the folder's registry (or, without one, its set of files) changes."""
        reg = self.models_dir / REGISTRY
        if reg.is_file():
            return reg.stat().st_mtime
        return sum(f.stat().st_mtime for f in self.models_dir.glob("*.onnx"))

    def get(self, name: str | None = None) -> LoadedModel:
        """The named X-ray model, or the default one."""
        if not name and not self.models:
            raise NoModelError(f"no X-ray model is loaded (the models folder {self.models_dir} holds only photo models)")
        key = name or self.default
        if key in self.photo_models:
            raise UnknownModelError(f"{key!r} is a seizure-photo model; send photos with kind=photo")
        if key not in self.models:
            raise UnknownModelError(f"unknown model {key!r}; loaded X-ray models are {', '.join(sorted(self.models))}")
        return self.models[key]

    def get_photo(self, name: str | None = None) -> LoadedPhotoModel:
        """The named photo model, or the default one."""
        if not name and self.photo_default is None:
            raise NoModelError(
                f"no photo model is loaded, so seizure photos cannot be classified; an operator "
                f"must add one (an exported model with task 'photo') to {self.models_dir}"
            )
        key = name or self.photo_default or ""
        if key in self.models:
            raise UnknownModelError(f"{key!r} is an X-ray model; send X-ray scans with kind=xray")
        if key not in self.photo_models:
            raise UnknownModelError(
                f"unknown photo model {key!r}; loaded photo models are {', '.join(sorted(self.photo_models)) or 'none'}"
            )
        return self.photo_models[key]


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


@dataclass
class Classified:
    """A decoded, classified seizure photo and the decision it maps to (see :func:`photo_decision`)."""

    result: PhotoResult
    decision: Decision
    thumbnail_jpeg: bytes


def photo_decision(result: PhotoResult, no_firearm: str = "no_firearm") -> Decision:
    """The history's decision for a photo: ``uncertain`` when the band is uncertain (the model gives no answer),
    else ``clear`` when the answer is no firearm, else ``alarm`` (a firearm family or a loose part)."""
    if result.band == "uncertain":
        return "uncertain"
    return "clear" if result.answer == no_firearm else "alarm"


def _to_original(result: PhotoResult, width: int, height: int) -> PhotoResult:
    """Express a result found on a reduced decode in the full-resolution photo's pixels."""
    if (result.width, result.height) == (width, height):
        return result
    sx, sy = width / result.width, height / result.height
    corners = [(round(x * sx, 1), round(y * sy, 1)) for x, y in result.card_corners] if result.card_corners else None
    mm_px = round(result.mm_per_px / ((sx + sy) / 2), 5) if result.mm_per_px else result.mm_per_px
    return result.model_copy(update={"width": width, "height": height, "card_corners": corners, "mm_per_px": mm_px})


def classify_bytes(model: LoadedPhotoModel, data: bytes, filename: str, max_pixels: int, thumb_px: int) -> Classified:
    """Decode (ImageReadError on bad input), classify, measure and thumbnail one photo. Runs on an inference worker.

    A large JPEG is decoded reduced, but never below the resolution at which lengths are measured.
    """
    clf = model.classifier
    photo = decode_scan(data, filename, max_pixels, reduce_to=max(clf.spec.size, thumb_px, MAX_SIDE))
    result = _to_original(clf.classify(photo.image, source=filename), photo.width, photo.height)
    return Classified(result, photo_decision(result, clf.metadata.no_firearm), thumbnail(photo.image, thumb_px))
