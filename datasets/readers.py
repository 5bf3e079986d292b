"""Image readers for the CLI, the batch job and the service: one place for decoding, torch-free.

Formats: PNG, JPEG (EXIF orientation applied), TIFF 8/16-bit, BMP; DICOS and DICOM images
(``.dcm``/``.dcs``, or any file with the DICM preamble) through pydicom; and raw dual-energy pairs,
two single-channel 16-bit TIFFs named ``NAME_low.tif(f)`` and ``NAME_high.tif(f)`` (full scale =
unattenuated air), rendered in armscan's pseudo-colour. Any bit depth and channel count becomes
8-bit BGR: 16-bit scans are scaled by their detector's bit depth (see :func:`to_bgr8`), greyscale is
replicated, alpha is dropped. A JPEG cut off before its end-of-image marker is refused, not decoded part-grey.
Every failure is one :class:`ImageReadError` naming the file and the reason.
"""

from __future__ import annotations

import io
import re
import warnings
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np
from numpy.typing import NDArray

from armscan.datasets.xray import render, transmissions_from_raw16

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".dcm", ".dcs"})
_PAIR = re.compile(r"^(?P<stem>.+)_(?P<band>low|high)$", re.IGNORECASE)
MAX_PIXELS = 64_000_000  # larger images are refused (the service will also cap the upload size)


class ImageReadError(ValueError):
    """An image that cannot be read; ``str()`` names the file and the reason."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason

    def __reduce__(self) -> tuple[type[ImageReadError], tuple[str, str]]:  # pickles with its reason (Ray workers)
        return (type(self), (self.path, self.reason))


def to_bgr8(img: NDArray[np.generic], source: str = "<image>") -> NDArray[np.uint8]:
    """Normalise a decoded image of any depth and channel count to (H, W, 3) uint8 BGR.

    16-bit unsigned pixels come from 10-, 12-, 14- or 16-bit detectors, and the file does not say which.
    The bit depth is taken as the smallest of those whose maximum, ``2**bits - 1``, holds the image's
    largest colour value (alpha aside), and that maximum becomes 255: a 12-bit scan (values up to 4095)
    fills the 8-bit range instead of coming out nearly black. A 16-bit scan (any value above 16383) is
    scaled by 65535 as before. Floats are taken as [0, 1]. DICOM does not come here with 16-bit pixels:
    :func:`decode_dicom` honours the file's BitsStored.
    """
    if img.ndim == 2:
        img = img[..., None]
    if img.ndim != 3 or img.shape[2] not in (1, 3, 4):
        raise ImageReadError(source, f"unsupported image shape {img.shape}")
    if img.dtype == np.uint16:
        full = float(2 ** detector_bits(np.asarray(img, np.uint16)) - 1)
        # The level is round(v * 255 / full): for each full above, 255 / full in lowest terms has an odd
        # denominator d <= 5461, so v * 255 / full is never a half and never within 1 / (2 d) of one, and
        # OpenCV's one-pass float32 rounding gives the same bytes as rounding exactly.
        img = np.asarray(cv2.convertScaleAbs(np.asarray(img, np.uint16), alpha=255.0 / full)).reshape(img.shape)
    elif img.dtype in (np.float32, np.float64):
        x = np.clip(img, 0.0, 1.0)
        x *= 255.0
        x += 0.5
        img = x.astype(np.uint8)
    elif img.dtype != np.uint8:
        raise ImageReadError(source, f"unsupported pixel type {img.dtype}")
    if img.shape[2] == 1:
        img = cv2.cvtColor(np.ascontiguousarray(img[..., 0]), cv2.COLOR_GRAY2BGR)
    elif img.shape[2] == 4:
        img = cv2.cvtColor(np.ascontiguousarray(img), cv2.COLOR_BGRA2BGR)
    return np.ascontiguousarray(img, dtype=np.uint8)


_DETECTOR_BITS = (10, 12, 14, 16)


def detector_bits(img: NDArray[np.uint16]) -> int:
    """The smallest detector bit depth in :data:`_DETECTOR_BITS` whose maximum holds the largest colour value."""
    colour = img[..., :3] if img.shape[2] == 4 else img  # (H, W, C): an alpha channel says nothing about the detector
    top = int(colour.max()) if colour.size else 0
    return next(b for b in _DETECTOR_BITS if top <= 2**b - 1)


_RASTER_FORMATS = {"PNG": "png", "JPEG": "jpeg", "MPO": "jpeg", "TIFF": "tiff", "BMP": "bmp"}


@dataclass(frozen=True)
class ImageInfo:
    """What an image file's header says, read without decoding the pixels."""

    format: str  # png, jpeg, tiff, bmp or dicom
    width: int
    height: int


def probe_image(data: bytes, source: str = "<bytes>", max_pixels: int = MAX_PIXELS) -> ImageInfo:
    """Read the format and size from the header only; refuse unsupported formats and decompression bombs."""
    if not data:
        raise ImageReadError(source, "empty file")
    if _is_dicom(data):
        import pydicom

        try:
            ds = pydicom.dcmread(io.BytesIO(data), stop_before_pixels=True)
            w, h, fmt = int(ds.Columns), int(ds.Rows), "dicom"
        except Exception as exc:  # pydicom raises several types on broken headers
            raise ImageReadError(source, f"not a readable DICOS/DICOM file ({exc})") from exc
    else:
        from PIL import Image, UnidentifiedImageError

        try:
            with warnings.catch_warnings():  # Pillow warns on huge images; the limit is checked below
                warnings.simplefilter("ignore")
                Image.MAX_IMAGE_PIXELS = None
                with Image.open(io.BytesIO(data)) as im:
                    fmt_pil, (w, h) = str(im.format), im.size
        except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
            raise ImageReadError(source, "not a decodable image (supported: PNG, JPEG, TIFF, BMP, DICOS/DICOM)") from exc
        if fmt_pil not in _RASTER_FORMATS:
            raise ImageReadError(source, f"{fmt_pil} images are not supported (supported: PNG, JPEG, TIFF, BMP, DICOS/DICOM)")
        fmt = _RASTER_FORMATS[fmt_pil]
    if w < 1 or h < 1:
        raise ImageReadError(source, f"image header gives an empty size {w}x{h}")
    if w * h > max_pixels:
        raise ImageReadError(source, f"{w}x{h} exceeds the {max_pixels} pixel limit")
    return ImageInfo(fmt, w, h)


def _is_dicom(data: bytes) -> bool:
    return len(data) > 132 and data[128:132] == b"DICM"


def decode_dicom(data: bytes, source: str = "<bytes>") -> NDArray[np.uint8]:
    """Decode a DICOS (or DICOM) 2D X-ray image to BGR uint8, honouring MONOCHROME1 and BitsStored."""
    import pydicom
    from pydicom.errors import InvalidDicomError

    try:
        ds = pydicom.dcmread(io.BytesIO(data))
    except (InvalidDicomError, EOFError, ValueError, TypeError) as exc:
        raise ImageReadError(source, f"not a readable DICOS/DICOM file ({exc})") from exc
    uid = ds.get("SOPClassUID")
    kind = (getattr(uid, "name", "") or str(uid or "")) or "a file of unknown SOP class"
    if "PixelData" not in ds:
        raise ImageReadError(source, f"{kind} holds no image (pixel data missing)")
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    if frames > 1:
        raise ImageReadError(source, f"{kind} with {frames} frames: volumes (CT) are not screened by the 2D detector")
    try:
        arr = np.asarray(ds.pixel_array)
    except Exception as exc:  # pydicom raises several types for missing codecs or bad pixel data
        raise ImageReadError(source, f"{kind}: pixel data cannot be decoded ({exc})") from exc
    if arr.dtype.kind not in "ui":
        raise ImageReadError(source, f"{kind}: unsupported pixel type {arr.dtype}")
    bits = int(ds.get("BitsStored", arr.dtype.itemsize * 8))
    inverted = str(ds.get("PhotometricInterpretation", "")) == "MONOCHROME1"
    if arr.dtype.itemsize > 2 or not arr.dtype.isnative:
        return to_bgr8(_dicom_unit(arr, bits, inverted), source)
    unsigned = np.dtype(f"u{arr.dtype.itemsize}")  # 8 and 16 bits: look each pixel's level up in a table
    return to_bgr8(np.take(_dicom_table(arr.dtype.str, bits, inverted), arr.view(unsigned)), source)


def _dicom_unit(arr: NDArray[np.integer], bits: int, inverted: bool) -> NDArray[np.float32]:
    """Stored pixel values -> brightness in [0, 1] (MONOCHROME1 is inverted)."""
    img: NDArray[np.float32] = np.clip(arr.astype(np.float32) / float(2**bits - 1), 0.0, 1.0)
    return 1.0 - img if inverted else img


@lru_cache(maxsize=8)
def _dicom_table(dtype: str, bits: int, inverted: bool) -> NDArray[np.uint8]:
    """The 8-bit level of every value of an 8- or 16-bit pixel type, indexed by its unsigned bit pattern.

    The same arithmetic as converting the image itself (:func:`_dicom_unit` then :func:`to_bgr8`), done
    once on the 256 or 65536 possible values: the same bytes, several times faster on a large scan.
    """
    size = np.dtype(dtype).itemsize
    values = np.arange(2 ** (8 * size), dtype=f"u{size}").view(dtype)[:, None]  # (V, 1): a one-pixel-wide image
    return to_bgr8(_dicom_unit(values, bits, inverted))[:, 0, 0]


@dataclass(frozen=True)
class Decoded:
    """A decoded scan, possibly at reduced resolution, with the size of the full-resolution image."""

    image: NDArray[np.uint8]  # BGR uint8
    width: int  # of the full-resolution scan
    height: int


_STANDALONE = frozenset({0x01, *range(0xD0, 0xD8)})  # TEM and RST0-7: JPEG markers without a length


def jpeg_is_truncated(data: bytes) -> bool:
    """Whether a JPEG lacks its end-of-image marker (FF D9) after the start of its first scan (FF DA).

    OpenCV 4.x only warns on a cut-off JPEG and fills the missing part grey. The walk from SOI skips each
    segment by its 2-byte length, so an EOI inside a segment (an EXIF thumbnail's, in APP1) is not taken for
    the image's; inside the entropy-coded data an FF is always stuffed, so FF D9 there can only be the EOI.
    Bytes after the EOI are allowed. A JPEG without any scan is left to the decoder to refuse.
    """
    n, pos = len(data), 2
    if data[:2] != b"\xff\xd8":
        return False
    while True:
        if pos >= n:
            return True
        if data[pos] != 0xFF:  # stray bytes between segments: the decoder skips to the next marker, as here
            pos = data.find(b"\xff", pos)
            if pos < 0:
                return True
        while pos + 1 < n and data[pos + 1] == 0xFF:  # fill bytes before a marker
            pos += 1
        if pos + 1 >= n:
            return True
        marker = data[pos + 1]
        if marker == 0xD9:  # EOI before any scan: no image at all, which the decoder reports
            return False
        if marker in _STANDALONE:
            pos += 2
            continue
        if pos + 4 > n:
            return True
        end = pos + 2 + int.from_bytes(data[pos + 2 : pos + 4], "big")  # the length counts itself, not the marker
        if marker == 0xDA:  # SOS: the scan data follows its header
            return data.find(b"\xff\xd9", end) < 0
        pos = end


_REDUCED = {2: cv2.IMREAD_REDUCED_COLOR_2, 4: cv2.IMREAD_REDUCED_COLOR_4, 8: cv2.IMREAD_REDUCED_COLOR_8}


def decode_scan(data: bytes, source: str = "<bytes>", max_pixels: int = MAX_PIXELS,
                reduce_to: int | None = None) -> Decoded:
    """Decode image bytes (PNG, JPEG, TIFF 8/16-bit, BMP, DICOS/DICOM) to BGR uint8, honouring EXIF orientation.

    The header is checked first (:func:`probe_image`), so an oversized image is refused before decoding.
    A JPEG cut off before its end-of-image marker is refused too (OpenCV 4.x would decode it part grey).
    With ``reduce_to``, a JPEG is decoded at 1/2, 1/4 or 1/8 scale in the DCT (several times cheaper),
    as long as its longest side stays at least ``reduce_to``: enough for a model whose input is that size.
    Other formats are decoded at full size.
    """
    info = probe_image(data, source, max_pixels)
    if _is_dicom(data):
        img = decode_dicom(data, source)
        return Decoded(img, img.shape[1], img.shape[0])
    if info.format == "jpeg" and jpeg_is_truncated(data):
        raise ImageReadError(source, "the JPEG data is truncated (no end-of-image marker after the scan data)")
    buf = np.frombuffer(data, np.uint8)
    factor = 1
    if reduce_to and info.format == "jpeg":
        factor = max([f for f in _REDUCED if max(info.width, info.height) / f >= reduce_to], default=1)
    if factor > 1:
        small = cv2.imdecode(buf, _REDUCED[factor])
        if small is None:
            raise ImageReadError(source, f"the {info.format.upper()} data is truncated or corrupt")
        w, h = info.width, info.height
        if _turned(small.shape[:2], w, h, factor, data):  # EXIF orientation turned it by 90 degrees
            w, h = h, w
        return Decoded(to_bgr8(small, source), w, h)
    full = cv2.imdecode(buf, cv2.IMREAD_ANYDEPTH | cv2.IMREAD_ANYCOLOR)
    if full is None:
        raise ImageReadError(source, f"the {info.format.upper()} data is truncated or corrupt")
    if full.shape[0] * full.shape[1] > max_pixels:
        raise ImageReadError(source, f"{full.shape[1]}x{full.shape[0]} exceeds the {max_pixels} pixel limit")
    out = to_bgr8(full, source)
    return Decoded(out, out.shape[1], out.shape[0])


def _turned(decoded: tuple[int, ...], width: int, height: int, factor: int, data: bytes) -> bool:
    """Whether a JPEG of header size ``width`` x ``height``, decoded at 1/``factor`` to (rows, cols) ``decoded``,
    was turned by 90 degrees (EXIF orientation 5-8).

    libjpeg's scaled decode gives ceil(side / factor) on each side, so the decoded size tells upright from turned
    unless both sides reduce to the same length (a near-square 3999x4000 at 1/8 is 500x500 either way); then
    the EXIF orientation tag decides.
    """
    upright = (-(-height // factor), -(-width // factor))  # (rows, cols)
    turned = (upright[1], upright[0])
    if upright != turned and tuple(decoded) in (upright, turned):
        return tuple(decoded) == turned
    return _exif_orientation(data) in (5, 6, 7, 8)


def _exif_orientation(data: bytes) -> int:
    """The EXIF orientation tag of an image (1, upright, when it has none or it cannot be read)."""
    from PIL import Image

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Image.open(io.BytesIO(data)) as im:
                value = im.getexif().get(0x0112, 1)
    except Exception:  # a broken EXIF block: OpenCV cannot have applied it either
        return 1
    return value if isinstance(value, int) else 1


def decode_image(data: bytes, source: str = "<bytes>", max_pixels: int = MAX_PIXELS) -> NDArray[np.uint8]:
    """Decode image bytes to BGR uint8 at full resolution (see :func:`decode_scan`)."""
    return decode_scan(data, source, max_pixels).image


def _read_bytes(p: Path) -> bytes:
    try:
        return p.read_bytes()
    except OSError as exc:
        raise ImageReadError(str(p), exc.strerror or str(exc)) from exc


def _partner(p: Path, band: str) -> Path | None:
    """The other channel of a dual-energy pair (``band`` 'low' or 'high'), if ``p`` is one and it exists."""
    m = _PAIR.match(p.stem)
    if m is None or p.suffix.lower() not in (".tif", ".tiff"):
        return None
    for suffix in (p.suffix, ".tif", ".tiff"):
        for b in (band, band.upper()):
            q = p.with_name(f"{m['stem']}_{b}{suffix}")
            if q.exists() and q != p:
                return q
    return None


def read_dual_energy(low: str | Path, high: str | Path, style: str = "pseudo") -> NDArray[np.uint8]:
    """Render a raw dual-energy pair (two single-channel 16-bit images) as a BGR uint8 scan."""
    chans = []
    for p in (Path(low), Path(high)):
        img = cv2.imdecode(np.frombuffer(_read_bytes(p), np.uint8), cv2.IMREAD_UNCHANGED)
        if img is None:
            raise ImageReadError(str(p), "not a decodable image")
        if img.ndim != 2 or img.dtype != np.uint16:
            raise ImageReadError(str(p), f"a dual-energy channel must be single-channel 16-bit, got {img.dtype} {img.shape}")
        chans.append(img)
    try:
        return render(transmissions_from_raw16(chans[0], chans[1]), style)
    except ValueError as exc:
        raise ImageReadError(f"{low} + {high}", str(exc)) from exc


def read_scan(path: str | Path, reduce_to: int | None = None) -> Decoded:
    """Read a scan file; raises :class:`ImageReadError` with the reason. ``reduce_to``: see :func:`decode_scan`.

    ``NAME_low.tif`` with a ``NAME_high.tif`` beside it is read as a dual-energy pair."""
    p = Path(path)
    m = _PAIR.match(p.stem)
    if m is not None and m["band"].lower() == "low" and (high := _partner(p, "high")) is not None:
        img = read_dual_energy(p, high)
        return Decoded(img, img.shape[1], img.shape[0])
    return decode_scan(_read_bytes(p), str(p), reduce_to=reduce_to)


def read_image(path: str | Path) -> NDArray[np.uint8]:
    """Read a scan file to BGR uint8 at full resolution; raises :class:`ImageReadError` with the reason."""
    return read_scan(path).image


def find_images(paths: list[str]) -> list[Path]:
    """Expand files and folders (recursively, sorted) into scans; a missing path is kept so that the
    caller reports it. The ``_high`` half of a dual-energy pair is dropped: its ``_low`` half stands for both."""
    out: list[Path] = []
    for s in paths:
        p = Path(s)
        if p.is_dir():
            out.extend(sorted(f for f in p.rglob("*") if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES))
        else:
            out.append(p)
    return [p for p in out if not (_PAIR.match(p.stem) and p.stem.lower().endswith("_high") and _partner(p, "low"))]
