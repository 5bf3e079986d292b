"""The torch-free seizure-photo engine: firearm family, build, confidence band and lengths.

``PhotoClassifier.from_onnx(path)`` rebuilds everything from the model's metadata (``task: photo``):
classes, builds, mask names, preprocessing, the temperatures and the confidence bands chosen on
validation renders, and the reference card's size. For each photo it answers:

- the **family** (or ``part_only`` / ``no_firearm``) with its temperature-scaled probability and a
  **band**: ``confident`` or ``probable`` (thresholds stored in the model), else ``uncertain``, in
  which case the answer is ``uncertain`` rather than a guess (the best guesses are still listed);
- the **build** (metal, polymer or printed) of the weapon, when there is one;
- the **lengths** (overall and barrel, in mm, with an uncertainty) measured against an ID-1 card or a
  ruler, or a note saying that no reference is visible (``armscan.inference.measure``).

A model can take a **second look** (``refine`` in its metadata, chosen at export on validation photos):
at the weapon's crop (``crop``), or at its upright view (``upright``: turned so that its long axis is
horizontal and its heavier end and side fall the same way whatever the photo's orientation; see
``armscan.inference.upright``). The two looks' logits are mixed with ``refine_weight`` on the second.

With ``rotations`` (the default of models exported with ``orientation_average``) the photo is classified in
four orientations (eight for a square photo) and the logits are averaged (test-time augmentation, four times
the model's compute): the answer is then the same however the photo is turned or mirrored, by construction
(:func:`orientation_views`). The weapon's and barrel's masks, which the length is measured on, are averaged
over the same views, each turned back onto the photo (:func:`masks_on_photo`), or taken from the photo's own
view alone, whichever measured better on validation renders at export (``mask_views``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import cv2
import numpy as np
from numpy.typing import NDArray
from pydantic import BaseModel, ConfigDict, Field, model_validator

from armscan.inference.engine import ModelLoadError, open_session
from armscan.inference.measure import measure
from armscan.inference.preprocess import PreprocessSpec, preprocess
from armscan.inference.upright import upright_view

PHOTO_OUTPUTS = ("family", "build", "masks")
AVERAGED_MASKS = ("weapon", "barrel")  # with the orientation average, these masks are averaged over the views too
Band = Literal["confident", "probable", "uncertain"]
PhotoRunFn = Callable[[NDArray[np.float32]], dict[str, NDArray[np.float32]]]


class PhotoBands(BaseModel):
    """Probability thresholds on the top class (after temperature scaling), chosen on validation renders."""

    model_config = ConfigDict(extra="forbid")

    confident: float = Field(0.9, gt=0.0, le=1.0)  # at least this: "confident"
    probable: float = Field(0.6, gt=0.0, le=1.0)  # at least this: "probable"; below: "uncertain", no answer
    chosen_on: str = ""

    @model_validator(mode="after")
    def _order(self) -> PhotoBands:
        if self.probable > self.confident:
            raise ValueError("the probable threshold must not exceed the confident one")
        return self


class PhotoMetadata(BaseModel):
    """Everything photo inference needs to know about a model."""

    model_config = ConfigDict(extra="forbid", protected_namespaces=())

    format_version: int = 1
    task: Literal["photo"] = "photo"
    name: str
    version: str
    architecture: str
    classes: list[str]
    builds: list[str]
    masks: list[str]
    mask_stride: int
    no_firearm: str = "no_firearm"
    part_only: str = "part_only"
    card_mm: tuple[float, float] = (85.60, 53.98)  # ISO/IEC 7810 ID-1
    preprocess: dict[str, Any]
    input_name: str = "images"
    temperature: float = Field(1.0, gt=0.0)  # family logits are divided by it
    build_temperature: float = Field(1.0, gt=0.0)
    bands: PhotoBands = Field(default_factory=PhotoBands)
    # A second look, found by the first look's weapon mask: "crop" (the weapon's box: more pixels on a small
    # weapon) or "upright" (the weapon turned upright: the answer no longer depends on the photo's orientation).
    # Its logits weigh refine_weight against the first look's. Chosen at export on validation photos.
    refine: Literal["none", "crop", "upright"] = "none"
    refine_weight: float = Field(0.5, ge=0.0, le=1.0)
    # Average over the photo's orientations by default (``rotations`` in the engine), so that the answer does
    # not depend on how the photo is turned; the temperature and bands are then fitted in that mode.
    orientation_average: bool = False
    # With the orientation average, the weapon's and barrel's masks that the length is measured on: every view's,
    # turned back onto the photo and averaged ("average"), or the photo's own view's ("photo"). Chosen at export
    # on validation renders (the median length error against a card); models exported before: "average".
    mask_views: Literal["average", "photo"] = "average"
    training: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _legacy(cls, data: Any) -> Any:
        """Models exported before ``refine`` stored ``crop_refine: bool``."""
        if isinstance(data, dict) and "crop_refine" in data:
            data = dict(data)
            data.setdefault("refine", "crop" if data.pop("crop_refine") else "none")
        return data

    def to_json(self) -> str:
        """Compact JSON for the ONNX metadata."""
        return self.model_dump_json()


class Guess(BaseModel):
    """One class and its probability."""

    label: str
    probability: float


class LengthMM(BaseModel):
    """A length in millimetres with its uncertainty (about two standard deviations)."""

    mm: float
    plus_minus_mm: float


class PhotoResult(BaseModel):
    """The answer for one seizure photo."""

    source: str = ""
    width: int
    height: int
    answer: str = Field(description="the family, part_only or no_firearm; 'uncertain' when the model abstains")
    label: str = Field(description="the most probable class, even when the model abstains")
    probability: float
    band: Band
    top: list[Guess]
    build: str | None = Field(None, description="metal, polymer or printed; None when there is no weapon")
    build_probability: float | None = None
    reference: Literal["card", "ruler"] | None = None
    overall_length: LengthMM | None = None
    barrel_length: LengthMM | None = None
    mm_per_px: float | None = None
    card_corners: list[tuple[float, float]] | None = None
    length_note: str = ""
    model_name: str
    model_version: str
    latency_ms: float


def dihedral_views(image: NDArray[np.uint8]) -> list[NDArray[np.uint8]]:
    """The eight flips and quarter turns of an image (views, not copies), the image itself first."""
    return [np.rot90(image, k) for k in range(4)] + [np.rot90(image[:, ::-1], k) for k in range(4)]


def orientation_views(image: NDArray[np.uint8]) -> list[NDArray[np.uint8]]:
    """Views of a photo that are the same set for the photo turned by any quarter turn or mirrored.

    A non-square photo is first laid landscape (a portrait one is turned a quarter clockwise); its four
    views are then itself, its two mirror images and its half turn. Any flip or quarter turn of the photo
    lands, once laid landscape, on one of those four, and so has the same four views. A square photo has
    no landscape side: its views are all eight flips and quarter turns.
    """
    h, w = image.shape[:2]
    if h == w:
        return dihedral_views(image)
    base = image if w > h else np.rot90(image, -1)
    return [base, base[:, ::-1], base[::-1], base[::-1, ::-1]]


def view_maps(shape: tuple[int, ...]) -> list[NDArray[np.float64]]:
    """For each of :func:`orientation_views` of an image of ``shape``: the affine map (2 x 3) from the view's
    pixel coordinates to the image's (edges at 0 and the width). A flip or quarter turn takes corners to corners,
    so each map follows from where the views of a small probe array of the same orientation put its corners."""
    h, w = shape[:2]
    ph, pw = (2, 2) if h == w else (2, 3) if w > h else (3, 2)
    probe: NDArray[np.uint8] = np.arange(ph * pw, dtype=np.uint8).reshape(ph, pw)
    maps = []
    for view in orientation_views(probe):
        vh, vw = (h, w) if view.shape == probe.shape else (w, h)
        src = np.array([[0, 0], [vw, 0], [0, vh]], np.float32)  # the view's top-left, top-right and bottom-left corners
        dst = np.array([[w * (c == pw - 1), h * (r == ph - 1)]
                        for r, c in (divmod(int(view[0, 0]), pw), divmod(int(view[0, -1]), pw),
                                     divmod(int(view[-1, 0]), pw))], np.float32)
        maps.append(np.asarray(cv2.getAffineTransform(src, dst), np.float64))
    return maps


def masks_on_photo(view_masks: NDArray[np.float32], maps: list[NDArray[np.float64]], scale: float,
                   stride: int) -> NDArray[np.float32]:
    """The views' mask probabilities (V, M, h, w; each view letterboxed at ``scale``, as every flip or quarter
    turn of the photo is) turned back onto the photo's own mask grid (M, h, w) and averaged. ``maps``:
    :func:`view_maps`."""
    rows, cols = view_masks.shape[-2:]
    k = stride / scale  # photo px per cell
    to_photo = np.array([[k, 0, 0.5 * k], [0, k, 0.5 * k], [0, 0, 1]])  # a cell's centre, in photo px
    to_cell = np.linalg.inv(to_photo)
    out = np.zeros(view_masks.shape[1:], np.float32)
    for masks, m in zip(view_masks, maps, strict=True):
        warp = (to_cell @ np.linalg.inv(np.vstack([m, [0, 0, 1]])) @ to_photo)[:2].astype(np.float32)  # cell -> view cell
        for c in range(masks.shape[0]):
            out[c] += cv2.warpAffine(masks[c], warp, (cols, rows), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                                     borderMode=cv2.BORDER_CONSTANT, borderValue=0.0)
    out /= len(view_masks)
    return out


def _softmax(x: NDArray[np.float32], t: float) -> NDArray[np.float32]:
    z = x / t
    z = z - z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    out: NDArray[np.float32] = (e / e.sum(axis=-1, keepdims=True)).astype(np.float32)
    return out


def _sigmoid(x: NDArray[np.float32]) -> NDArray[np.float32]:
    out: NDArray[np.float32] = (1.0 / (1.0 + np.exp(-np.clip(x, -30, 30)))).astype(np.float32)
    return out


class PhotoClassifier:
    """Classifies and measures seizure photos with one model. Thread-safe on onnxruntime."""

    def __init__(self, run: PhotoRunFn, metadata: PhotoMetadata) -> None:
        self._run = run
        self.metadata = metadata
        self.spec = PreprocessSpec.from_dict(metadata.preprocess)

    @classmethod
    def from_onnx(cls, path: str | Path, threads: int | None = None) -> PhotoClassifier:
        """Load an exported photo model."""
        session, meta = open_session(path, threads)
        if meta.get("task") != "photo":
            raise ModelLoadError(f"{path}: an X-ray detector, not a photo model (for X-ray scans: --kind xray)")
        try:
            metadata = PhotoMetadata.model_validate(meta)
            PreprocessSpec.from_dict(metadata.preprocess)  # checked here: bad preprocessing is a load error too
        except ValueError as exc:
            raise ModelLoadError(f"{path}: invalid armscan photo metadata ({exc})") from exc
        names = [o.name for o in session.get_outputs()]
        missing = set(PHOTO_OUTPUTS) - set(names)
        if missing:
            raise ModelLoadError(f"{path}: outputs {sorted(missing)} are missing")

        def run(batch: NDArray[np.float32]) -> dict[str, NDArray[np.float32]]:
            outs = session.run(names, {metadata.input_name: batch})
            return {n: np.asarray(o) for n, o in zip(names, outs, strict=True)}

        return cls(run, metadata)

    def probabilities(self, image: NDArray[np.uint8], rotations: bool | None = None
                      ) -> tuple[NDArray[np.float32], NDArray[np.float32], NDArray[np.float32], float]:
        """(family probabilities (K,), build probabilities (NB,), mask probabilities (M, h, w), input scale).

        ``rotations`` None follows the model (``orientation_average`` in its metadata).
        With ``rotations`` the logits are averaged over the photo's orientations (:func:`orientation_views`,
        one batch), each letterboxed on its own: a turned or mirrored photo has the same views, so the
        answer cannot change with the photo's orientation. The second look is then left out (it starts from
        one orientation's mask). The weapon's and barrel's masks are then every view's, turned back onto the
        photo and averaged (:func:`masks_on_photo`); the card's and ruler's are the photo's own.
        """
        md = self.metadata
        rotations = md.orientation_average if rotations is None else rotations
        x, lb = preprocess(image, self.spec)
        if rotations:
            views = orientation_views(image)
            as_is = image.shape[0] <= image.shape[1]  # landscape or square: the first view is the photo itself
            out = self._run(np.stack([x if i == 0 and as_is else preprocess(np.ascontiguousarray(v), self.spec)[0]
                                      for i, v in enumerate(views)]))
            fam, build = out["family"].mean(axis=0), out["build"].mean(axis=0)
            masks = _sigmoid((out if as_is else self._run(x[None]))["masks"][0])  # in the photo's own orientation
            if md.mask_views == "average":
                # the weapon's and barrel's: every view's, turned back onto the photo and averaged, steadier outlines
                # to measure (bench/photo_length.py); the card's and ruler's only point the card search at candidates
                some = [i for i, name in enumerate(md.masks) if name in AVERAGED_MASKS]
                masks[some] = masks_on_photo(_sigmoid(out["masks"][:, some]), view_maps(image.shape), lb.scale,
                                             md.mask_stride)
        else:
            out = self._run(x[None])
            fam, build = out["family"][0], out["build"][0]
            masks = _sigmoid(out["masks"][0])
        second = None
        if rotations or md.refine == "none":
            pass
        elif md.refine == "crop":
            second = self._weapon_crop(image, masks, lb.scale)
        else:
            second = upright_view(image, masks[md.masks.index("weapon")], lb.scale, md.mask_stride, self.spec.size,
                                  pad_value=self.spec.pad_value)
        if second is not None:
            xc, _ = preprocess(second, self.spec)
            out_c = self._run(xc[None])
            w = md.refine_weight
            fam = (1 - w) * fam + w * out_c["family"][0]
            build = (1 - w) * build + w * out_c["build"][0]
        return (_softmax(fam, md.temperature), _softmax(build, md.build_temperature), masks, float(lb.scale))

    def _weapon_crop(self, image: NDArray[np.uint8], masks: NDArray[np.float32], scale: float) -> NDArray[np.uint8] | None:
        """The photo cut around the weapon mask (with a margin of a fifth of its size), or None without one."""
        weapon = masks[self.metadata.masks.index("weapon")] > 0.3
        if weapon.sum() < 4:
            return None
        ys, xs = np.nonzero(weapon)
        k = self.metadata.mask_stride / scale  # original pixels per mask cell
        x0, x1, y0, y1 = xs.min() * k, (xs.max() + 1) * k, ys.min() * k, (ys.max() + 1) * k
        mx, my = 0.2 * (x1 - x0) + k, 0.2 * (y1 - y0) + k
        h, w = image.shape[:2]
        x0, y0 = int(max(0, x0 - mx)), int(max(0, y0 - my))
        x1, y1 = int(min(w, x1 + mx)), int(min(h, y1 + my))
        if (x1 - x0) * (y1 - y0) > 0.8 * w * h or x1 - x0 < 8 or y1 - y0 < 8:
            return None  # the weapon already fills the photo: nothing to gain
        return image[y0:y1, x0:x1]

    def classify(self, image: NDArray[np.uint8], source: str = "", rotations: bool | None = None,
                 measure_length: bool = True) -> PhotoResult:
        """Classify one BGR photo, and measure the weapon when a card or ruler is visible. ``rotations``: average
        over the photo's orientations (True), one view (False), or as the model was calibrated (None)."""
        t0 = time.perf_counter()
        md = self.metadata
        fam, build, masks, scale = self.probabilities(image, rotations)
        order = np.argsort(-fam)
        label, p = md.classes[int(order[0])], float(fam[order[0]])
        band: Band = "confident" if p >= md.bands.confident else "probable" if p >= md.bands.probable else "uncertain"
        h, w = image.shape[:2]
        result = PhotoResult(source=source, width=w, height=h, answer=label if band != "uncertain" else "uncertain",
                             label=label, probability=round(p, 4), band=band,
                             top=[Guess(label=md.classes[int(i)], probability=round(float(fam[i]), 4)) for i in order[:3]],
                             model_name=md.name, model_version=md.version, latency_ms=0.0)
        weapon_likely = float(fam[md.classes.index(md.no_firearm)]) < 0.5 if md.no_firearm in md.classes else True
        if weapon_likely:
            b = int(np.argmax(build))
            result.build, result.build_probability = md.builds[b], round(float(build[b]), 4)
        if measure_length and weapon_likely:
            m = measure(masks, image, md.card_mm, float(scale), md.mask_stride, md.masks)
            result.reference, result.mm_per_px, result.card_corners = m.reference, m.mm_per_px, m.card_corners
            result.length_note = m.note
            if m.overall is not None:
                result.overall_length = LengthMM(mm=m.overall.mm, plus_minus_mm=m.overall.plus_minus_mm)
            if m.barrel is not None:
                result.barrel_length = LengthMM(mm=m.barrel.mm, plus_minus_mm=m.barrel.plus_minus_mm)
        elif measure_length:
            result.length_note = "no weapon in the photo: nothing to measure"
        result.latency_ms = round((time.perf_counter() - t0) * 1000, 2)
        return result
