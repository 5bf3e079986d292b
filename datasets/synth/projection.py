"""Threat image projection (TIP): insert generated threats into real bag or parcel scans by multiplying transmissions.

Two kinds of background:

- **Raw dual-energy pairs** ``NAME_low.tif(f)`` / ``NAME_high.tif(f)`` (single-channel 16-bit, full scale =
  unattenuated air). This is the physically right path: Beer-Lambert attenuation multiplies, so the scan of
  bag + threat is the bag's measured transmission times the threat's, at each energy. The product is then
  displayed by the generator's renderer (:func:`armscan.datasets.xray.render`) in the requested style, so Z_eff
  and the hue come out of the combined low/high pair as on a real dual-energy scanner.
- **Ordinary images** (8- or 16-bit, grey or colour, e.g. a screenshot of a scanner display). These hold no
  second energy and no calibrated transmission, so the result is an approximation. Brightness is taken as
  transmission (grey level, or the brightest channel of a colour image: pseudo-colour palettes encode
  transmission in brightness and material in hue), normalised so that full white is air; an 8-bit display
  is assumed to show ``T ** 0.6`` (:data:`_DISPLAY_GAMMA`), a 16-bit grey image ``T`` itself (linear detector
  data). A grey image is multiplied by the threat's high-energy transmission (through the same gamma), so
  it stays grey. A colour image is multiplied, channel by channel, by the threat rendered on its own in a
  pseudo-colour palette (``tint_style``) and divided by that palette's air colour: dark where the threat
  absorbs, tinted by the threat's material. Real palettes are not multiplicative (a metal part over an
  organic bag should turn the overlap blue, not darker orange), so colour overlaps look plausible but
  are not what a scanner would show; prefer raw pairs where the scanner can export them.

Threats come from the generator (:func:`armscan.datasets.synth.threats.random_threat`) and get its random 3D
tilt, flip and rotation (:func:`armscan.datasets.synth.scene.place`). The pixel pitch is unknown for a user's
image: it is set so that the bag's long side (the extent of pixels transmitting less than ``air_threshold``)
measures ``bag_mm`` (or given as ``pitch_mm``). Each threat is centred on a bag pixel and kept only when at
least ``min_on_bag`` of it lies over the bag. Its depth is softened by a detector-like blur (``blur_px``)
and cut to its footprint, so every pixel outside the boxes is left exactly as it was; in the raw path the
quantum noise the threat would add (``photons``) is added inside the footprint. ``occlusion`` is the share
of the footprint where everything else (the background, other inserted threats) attenuates more than the
threat, as in the generator, except that a real background includes the bag's own shell.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from functools import lru_cache
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from armscan.datasets.coco import Record, write_coco
from armscan.datasets.readers import (
    _PAIR,
    ImageReadError,
    _partner,
    decode_dicom,
    detector_bits,
    find_images,
    jpeg_is_truncated,
    probe_image,
)
from armscan.datasets.synth.scene import Placement, occlusion, place
from armscan.datasets.synth.threats import Item, random_threat
from armscan.datasets.xray import STYLES, render, transmissions_from_raw16

__all__ = ["Background", "BackgroundError", "ProjectedScan", "ProjectionConfig", "load_background", "project",
           "write_projected"]

_DISPLAY_GAMMA = 0.6  # an 8-bit display shows T ** gamma (armscan's grey style does; scanners are near it)
_MIN_BAG_PX = 32  # a bag shorter than this (pixels) is too small to hold a threat
_TRIES = 8  # placements tried per threat (each with a new centre, tilt and rotation)


class BackgroundError(ImageReadError):
    """A background that cannot be used for projection; ``str()`` names the file and the reason."""


@dataclass(frozen=True)
class ProjectionConfig:
    """How threats are projected. ``style``: display of raw dual-energy backgrounds (see :data:`STYLES`);
    ``tint_style``: palette that tints threats in colour images; ``pitch_mm``: mm per pixel (None: from the
    bag's size, its long side drawn from ``bag_mm``); ``photons``: high-energy photons per pixel for the
    added quantum noise in the raw path (0: none)."""

    style: str = "pseudo"
    max_threats: int = 2
    max_tilt_deg: float = 90.0
    pitch_mm: float | None = None
    bag_mm: tuple[float, float] = (450.0, 850.0)
    air_threshold: float = 0.9
    min_on_bag: float = 0.75
    blur_px: float = 0.6
    photons: float = 1e4
    tint_style: str = "pseudo"

    def __post_init__(self) -> None:
        for name in ("style", "tint_style"):
            if getattr(self, name) not in STYLES:
                raise ValueError(f"Unknown {name} {getattr(self, name)!r}. Valid styles: {', '.join(STYLES)}")
        if self.max_threats < 1 or self.blur_px < 0 or self.photons < 0 or not 0 < self.air_threshold <= 1:
            raise ValueError("max_threats must be >= 1, blur_px and photons >= 0, air_threshold within (0, 1]")
        if not 0 <= self.min_on_bag <= 1 or (self.pitch_mm is not None and self.pitch_mm <= 0):
            raise ValueError("min_on_bag must be within [0, 1] and pitch_mm > 0")


@dataclass
class Background:
    """A loaded background: its (measured or estimated) transmissions and, for ordinary images, its pixels."""

    source: str
    trans: np.ndarray  # (H, W, 2) float32 low/high; an ordinary image has its estimate in both channels
    pixels: np.ndarray | None = None  # ordinary image as decoded: (H, W) or (H, W, 3), uint8 or uint16
    linear: bool = False  # pixels are proportional to transmission (16-bit grey), not a display
    grey: bool = False  # an ordinary image with one channel, or with all three equal

    @property
    def kind(self) -> str:
        """``dual_energy`` (raw pair) or ``image``."""
        return "dual_energy" if self.pixels is None else "image"


@dataclass
class ProjectedScan:
    """A background with threats projected into it, and their boxes."""

    image: np.ndarray  # raw backgrounds: (H, W, 3) uint8 BGR; images: their own dtype and channels
    boxes: list[dict[str, Any]] = field(default_factory=list)  # {bbox, cls, type, build, occlusion, tilt}
    meta: dict[str, Any] = field(default_factory=dict)
    transmissions: np.ndarray | None = None  # raw backgrounds: (H, W, 2) float32 after projection
    masks: list[np.ndarray] = field(default_factory=list)  # per box: (H, W) bool footprint

    def raw16(self) -> tuple[np.ndarray, np.ndarray]:
        """The low and high channels as 16-bit images (raw backgrounds only)."""
        if self.transmissions is None:
            raise ValueError("only raw dual-energy backgrounds have low/high channels")
        t = np.round(self.transmissions * 65535.0).astype(np.uint16)
        return t[..., 0], t[..., 1]


def _decode(p: Path) -> np.ndarray:
    try:
        data = p.read_bytes()
    except OSError as exc:
        raise BackgroundError(str(p), exc.strerror or str(exc)) from exc
    try:
        info = probe_image(data, str(p))
        if info.format == "dicom":
            return decode_dicom(data, str(p))
    except ImageReadError as exc:
        raise BackgroundError(exc.path, exc.reason) from exc
    if info.format == "jpeg" and jpeg_is_truncated(data):
        raise BackgroundError(str(p), "the JPEG data is truncated (no end-of-image marker after the scan data)")
    img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_ANYDEPTH | cv2.IMREAD_ANYCOLOR)
    if img is None:
        raise BackgroundError(str(p), f"the {info.format.upper()} data is truncated or corrupt")
    if img.dtype not in (np.uint8, np.uint16):
        raise BackgroundError(str(p), f"unsupported pixel type {img.dtype} (8- or 16-bit images only)")
    return np.asarray(img[..., :3] if img.ndim == 3 and img.shape[2] == 4 else img)


def load_background(path: str | Path, air_threshold: float = 0.9) -> Background:
    """Read a raw pair (either half's path) or an ordinary image; raises :class:`BackgroundError` with the reason
    (also when no bag is found: no pixel transmits less than ``air_threshold``)."""
    p = Path(path)
    m = _PAIR.match(p.stem)
    other = None if m is None else _partner(p, "high" if m["band"].lower() == "low" else "low")
    if m is not None and other is not None:
        low, high = (p, other) if m["band"].lower() == "low" else (other, p)
        chans = [_decode(q) for q in (low, high)]
        for q, c in zip((low, high), chans, strict=True):
            if c.ndim != 2 or c.dtype != np.uint16:
                raise BackgroundError(str(q), f"a dual-energy channel must be single-channel 16-bit, got {c.dtype} "
                                              f"{c.shape}")
        if chans[0].shape != chans[1].shape:
            raise BackgroundError(f"{low} + {high}", f"channel sizes differ: {chans[0].shape} and {chans[1].shape}")
        bg = Background(str(low), transmissions_from_raw16(chans[0], chans[1]))
    else:
        img = _decode(p)
        linear = img.dtype == np.uint16 and img.ndim == 2
        grey = img.ndim == 2 or int(np.abs(np.diff(img.astype(np.int32), axis=2)).max()) <= 2
        v = (img if img.ndim == 2 else img.max(axis=2)).astype(np.float32)  # brightness: air is full scale
        # Air is full scale: a 16-bit file's at its detector's depth (12-bit data would read as a dense bag).
        full = 2 ** detector_bits(img.reshape(*img.shape[:2], -1)) - 1 if img.dtype == np.uint16 else 255
        v *= np.float32(1.0 / full)
        t = v if linear else np.power(v, np.float32(1.0 / _DISPLAY_GAMMA))
        t = np.clip(t, np.float32(1.0 / 65535), np.float32(1.0))
        bg = Background(str(p), np.dstack([t, t]), pixels=img, linear=linear, grey=grey)
    _find_bag(bg, air_threshold)
    return bg


def _extent(counts: np.ndarray) -> int:
    """Length of the span holding the central 98% of ``counts`` (robust to stray dark pixels)."""
    c = np.cumsum(counts)
    lo, hi = np.searchsorted(c, 0.01 * c[-1]), np.searchsorted(c, 0.99 * c[-1])
    return int(hi - lo + 1)


def _find_bag(bg: Background, air_threshold: float) -> tuple[np.ndarray, int]:
    """(H, W) bool, True where the smoothed high-energy transmission is below ``air_threshold``, and the
    bag's long side in pixels."""
    h, w = bg.trans.shape[:2]
    if min(h, w) < _MIN_BAG_PX:
        raise BackgroundError(bg.source, f"image is {w}x{h}; projection needs at least {_MIN_BAG_PX} px per side")
    bag = cv2.blur(np.ascontiguousarray(bg.trans[..., 1]), (5, 5)) < air_threshold
    if not bag.any():
        raise BackgroundError(bg.source, f"no bag or parcel found: every pixel transmits more than {air_threshold:.0%} "
                                         "(an empty or overexposed image?)")
    size = max(_extent(bag.sum(axis=0)), _extent(bag.sum(axis=1)))
    if size < _MIN_BAG_PX:
        raise BackgroundError(bg.source, f"the bag spans only {size} px; at least {_MIN_BAG_PX} are needed")
    return bag, size


def _soften(pl: Placement, blur_px: float, pad: int) -> Placement:
    """Blur the placed depth like a detector would, then cut it to its footprint (nothing outside changes)."""
    own = cv2.copyMakeBorder(pl.own, pad, pad, pad, pad, cv2.BORDER_CONSTANT, value=0)
    if blur_px > 0:
        own = cv2.GaussianBlur(own, (0, 0), blur_px)
    out = Placement(pl.x0 - pad, pl.y0 - pad, np.asarray(own), pl.tilt_deg)
    out.own[~out.footprint()] = 0.0
    return out


def _insert(bg: Background, rng: np.random.Generator,
            cfg: ProjectionConfig) -> tuple[np.ndarray, list[tuple[Item, Placement]], float]:
    """Place threats over the bag: (their summed depth (H, W, 2), [(item, placement)], pitch mm)."""
    h, w = bg.trans.shape[:2]
    bag, size = _find_bag(bg, cfg.air_threshold)
    pitch = cfg.pitch_mm or float(rng.uniform(*cfg.bag_mm)) / size
    allow_long = pitch * size > 950  # as in the generator: only long cases hold a rifle or shotgun
    stride = max(1, int(np.sqrt(h * w / 1e6)))  # sample centres from at most ~1M bag pixels
    cand = np.flatnonzero(bag[::stride, ::stride])
    cols = -(-w // stride)
    pad = int(np.ceil(3 * cfg.blur_px)) + 1
    depth = np.zeros((h, w, 2), np.float32)
    scratch = np.zeros_like(depth)  # place() draws into a scene; we keep each object apart first
    placed: list[tuple[Item, Placement]] = []
    for _ in range(int(rng.integers(1, cfg.max_threats + 1))):
        item = random_threat(rng, pitch, allow_long)
        for _try in range(_TRIES):
            k = int(cand[int(rng.integers(len(cand)))])
            centre = (float(k % cols * stride), float(k // cols * stride))
            pl = place(scratch, item, rng, centre, pad + 1, cfg.max_tilt_deg)
            if pl is None:
                continue
            ph, pw = pl.own.shape[:2]
            scratch[pl.y0 : pl.y0 + ph, pl.x0 : pl.x0 + pw] = 0.0
            pl = _soften(pl, cfg.blur_px, pad)
            fp = pl.footprint()
            ph, pw = fp.shape
            if fp.any() and bag[pl.y0 : pl.y0 + ph, pl.x0 : pl.x0 + pw][fp].mean() >= cfg.min_on_bag:
                region = depth[pl.y0 : pl.y0 + ph, pl.x0 : pl.x0 + pw]
                cv2.add(region, pl.own, dst=region)
                placed.append((item, pl))
                break
    return depth, placed, pitch


@lru_cache(maxsize=8)
def _air_colour(style: str) -> np.ndarray:
    """(3,) float32: how ``style`` shows unattenuated air (BGR, 0-255)."""
    air: np.ndarray = render(np.ones((3, 3, 2), np.float32), style)[1, 1].astype(np.float32)
    return air


def _apply(bg: Background, t_threat: np.ndarray, idx: tuple[np.ndarray, ...], rng: np.random.Generator,
           cfg: ProjectionConfig) -> tuple[np.ndarray, np.ndarray | None]:
    """Multiply the threats' transmission ``t_threat`` (H, W, 2) into the background at the pixels ``idx``."""
    tt = t_threat[idx]  # (n, 2)
    if bg.pixels is None:  # raw pair: multiply at both energies, add the threat's share of quantum noise
        out = bg.trans.copy()
        tb = bg.trans[idx]
        t = tb * tt
        if cfg.photons > 0:
            n = np.array([cfg.photons / 2, cfg.photons], np.float32)  # the low channel gets half the photons
            t += np.sqrt(tb * tt * (1.0 - tt) / n) * rng.standard_normal(t.shape, dtype=np.float32)
        out[idx] = np.clip(t, 1.0 / 65535, 1.0)
        return render(out, cfg.style), out
    px = bg.pixels
    if bg.linear:
        factor = tt[:, 1:]  # (n, 1)
    elif bg.grey:
        factor = np.power(tt[:, 1:], np.float32(_DISPLAY_GAMMA))
    else:  # colour: the threat as a pseudo-colour scanner shows it alone, relative to air
        factor = np.minimum(render(t_threat, cfg.tint_style)[idx].astype(np.float32) / _air_colour(cfg.tint_style), 1.0)
    vals = px[idx].astype(np.float32)
    vals = vals * (factor[:, 0] if px.ndim == 2 else factor)
    img = px.copy()
    img[idx] = np.clip(np.round(vals), 0, np.iinfo(px.dtype).max).astype(px.dtype)
    return img, None


def project(background: Background | str | Path, seed: int, cfg: ProjectionConfig = ProjectionConfig()) -> ProjectedScan:
    """Project 1 to ``cfg.max_threats`` generated threats into ``background``; fully determined by ``seed``.

    A threat that finds no place over the bag after a few tries is dropped (rare: a bag smaller than the
    threat), so a scan can come back with fewer boxes, or none."""
    bg = background if isinstance(background, Background) else load_background(background, cfg.air_threshold)
    rng = np.random.default_rng(seed)
    h, w = bg.trans.shape[:2]
    depth, placed, pitch = _insert(bg, rng, cfg)
    idx = np.nonzero(depth[..., 1] > 0)  # union of the footprints: the only pixels that change
    image, trans = _apply(bg, cv2.exp(-depth), idx, rng, cfg)
    everything = -np.log(bg.trans) + depth  # (H, W, 2): background and every inserted threat
    boxes: list[dict[str, Any]] = []
    masks: list[np.ndarray] = []
    for item, pl in placed:
        x, y, bw, bh = pl.box() or (0.0, 0.0, 0.0, 0.0)
        x0, y0 = max(x, 0.0), max(y, 0.0)
        box = [x0, y0, min(x + bw, float(w)) - x0, min(y + bh, float(h)) - y0]  # clipped (place keeps a margin)
        boxes.append({"bbox": box, "cls": item.cls, "type": item.type, "build": item.build,
                      "occlusion": round(occlusion(everything, pl), 3), "tilt": pl.tilt_deg})
        m = np.zeros((h, w), bool)
        fh, fw = pl.own.shape[:2]
        m[pl.y0 : pl.y0 + fh, pl.x0 : pl.x0 + fw] = pl.footprint()
        masks.append(m)
    style = cfg.style if bg.pixels is None else "grey" if bg.grey else "background"
    meta = {"seed": int(seed), "background": bg.source, "background_kind": bg.kind, "style": style, "tip": True,
            "pitch_mm": round(pitch, 4)}
    return ProjectedScan(image, boxes, meta, trans, masks)


def _write(path: Path, image: np.ndarray) -> None:
    if not cv2.imwrite(str(path), image):
        raise OSError(f"could not write {path}")


def write_projected(backgrounds: list[Path], out: Path, n_per_background: int, seed: int, style: str = "pseudo",
                    cfg: ProjectionConfig | None = None, raw: bool = False) -> Path:
    """Project threats ``n_per_background`` times into each background (files or folders, searched as
    ``armscan scan`` does) and write ``out/images/tip_SEED.png`` and COCO ``out/annotations.json``; returns its
    path. Image ``k`` uses ``seed + k``. ``raw``: also write the projected low/high pairs of raw backgrounds
    under ``out/raw/``. A background that cannot be used stops the run with :class:`BackgroundError`."""
    cfg = replace(cfg or ProjectionConfig(), style=style)
    if n_per_background < 1:
        raise ValueError(f"n_per_background must be >= 1, got {n_per_background}")
    files = find_images([str(p) for p in backgrounds])
    if not files:
        raise ValueError(f"no background images found in {', '.join(str(p) for p in backgrounds) or '(nothing)'}")
    (out / "images").mkdir(parents=True, exist_ok=True)
    if raw:
        (out / "raw").mkdir(exist_ok=True)
    records: list[Record] = []
    s = seed
    for f in files:
        bg = load_background(f, cfg.air_threshold)
        for _ in range(n_per_background):
            scan = project(bg, s, cfg)
            name = Path("images") / f"tip_{s:08d}.png"
            _write(out / name, scan.image)
            if raw and scan.transmissions is not None:
                low, high = scan.raw16()
                _write(out / "raw" / f"tip_{s:08d}_low.tiff", low)
                _write(out / "raw" / f"tip_{s:08d}_high.tiff", high)
            h, w = scan.image.shape[:2]
            records.append(Record(name, w, h, scan.boxes, scan.meta, image_id=s))
            s += 1
    info = {"description": "armscan threat image projection (TIP) into user backgrounds", "seed": seed,
            "n_per_background": n_per_background, "backgrounds": len(files), "style": style}
    return write_coco(out, records, info)
