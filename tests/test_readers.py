"""Readers: every format the CLI takes, and a clear typed error for everything else."""

from pathlib import Path

import cv2
import numpy as np
import pytest
from pydicom.dataset import FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from armscan.datasets.readers import (
    ImageReadError,
    decode_image,
    decode_scan,
    find_images,
    read_dual_energy,
    read_image,
    to_bgr8,
)

SAMPLES = Path(__file__).resolve().parent.parent / "datasets" / "samples"

DICOS_DX_PRESENTATION = "1.2.840.10008.5.1.4.1.1.501.2.1"  # DICOS Digital X-Ray Image Storage - For Presentation


def _write_dicos(path, pixels: np.ndarray, photometric: str = "MONOCHROME2", frames: int = 1, bits: int = 12) -> None:
    from pydicom.dataset import FileDataset

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = DICOS_DX_PRESENTATION
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = FileDataset(str(path), {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID = DICOS_DX_PRESENTATION
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.Modality = "DX"
    ds.Rows, ds.Columns = pixels.shape[-2:]
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = photometric
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, bits, bits - 1, 0
    if frames > 1:
        ds.NumberOfFrames = frames
    ds.PixelData = pixels.astype(np.uint16).tobytes()
    ds.save_as(str(path), enforce_file_format=True)


def test_dicos_image_written_by_pydicom_is_read(tmp_path):
    px = np.zeros((40, 60), np.uint16)
    px[:, 30:] = 4095  # 12-bit full scale
    _write_dicos(tmp_path / "scan.dcs", px)
    img = read_image(tmp_path / "scan.dcs")
    assert img.shape == (40, 60, 3) and img.dtype == np.uint8
    assert img[0, 0, 0] == 0 and img[0, 59, 0] == 255
    _write_dicos(tmp_path / "inv.dcm", px, photometric="MONOCHROME1")
    assert read_image(tmp_path / "inv.dcm")[0, 0, 0] == 255


def test_dicos_volume_is_refused_with_a_reason(tmp_path):
    _write_dicos(tmp_path / "ct.dcs", np.zeros((3, 8, 8), np.uint16), frames=3)
    with pytest.raises(ImageReadError, match="3 frames"):
        read_image(tmp_path / "ct.dcs")


def test_16_bit_dual_energy_pair_renders_metal_blue(tmp_path):
    low = np.full((50, 50), 60000, np.uint16)
    high = np.full((50, 50), 62000, np.uint16)
    low[10:40, 10:40] = 30  # the low channel is starved behind steel ...
    high[10:40, 10:40] = 3000  # ... while the high one still passes
    assert cv2.imwrite(str(tmp_path / "bag_low.tiff"), low) and cv2.imwrite(str(tmp_path / "bag_high.tiff"), high)
    assert find_images([str(tmp_path)]) == [tmp_path / "bag_low.tiff"]
    img = read_image(tmp_path / "bag_low.tiff")
    b, g, r = img[25, 25].astype(int)
    assert b > r and b > g
    with pytest.raises(ImageReadError, match="single-channel 16-bit"):
        cv2.imwrite(str(tmp_path / "x_low.tif"), np.zeros((5, 5), np.uint8))
        read_dual_energy(tmp_path / "x_low.tif", tmp_path / "bag_high.tiff")


@pytest.mark.parametrize("data, reason", [(b"", "empty file"), (b"GIF89a....", "not a decodable image"),
                                          (b"\0" * 128 + b"DICM" + b"\1" * 20, "not a readable DICOS|pixel data missing")])
def test_bad_bytes_get_a_typed_error(data, reason):
    with pytest.raises(ImageReadError, match=reason):
        decode_image(data, "upload")


def test_missing_file_names_the_file(tmp_path):
    with pytest.raises(ImageReadError, match="nope.png"):
        read_image(tmp_path / "nope.png")


def test_jpeg_is_decoded_at_reduced_scale_with_its_full_size(tmp_path):
    from armscan.datasets.readers import read_scan

    img = np.random.default_rng(1).integers(0, 255, (768, 1024, 3), np.uint8)
    cv2.imwrite(str(tmp_path / "a.jpg"), img)
    cv2.imwrite(str(tmp_path / "a.png"), img)
    small = read_scan(tmp_path / "a.jpg", reduce_to=320)
    assert small.image.shape == (384, 512, 3) and (small.width, small.height) == (1024, 768)
    assert read_scan(tmp_path / "a.jpg", reduce_to=600).image.shape == (768, 1024, 3)  # 1/2 would be < 600
    assert read_scan(tmp_path / "a.png", reduce_to=320).image.shape == (768, 1024, 3)  # only JPEG has DCT scaling


def test_boxes_of_a_reduced_decode_are_in_full_scan_pixels():
    from armscan.inference.engine import Detector
    from armscan.serve.scan import DEFAULT_MODEL

    det = Detector.from_onnx(DEFAULT_MODEL)
    image = cv2.imread(str(SAMPLES / "images" / "scan_300000005.png"))
    full = det.detect(image)
    half = det.detect(cv2.resize(image, (320, 240), interpolation=cv2.INTER_AREA), original_size=(640, 480))
    assert (half.width, half.height) == (640, 480) and half.detections
    best_full = max(full.detections, key=lambda d: d.score).box
    best_half = max(half.detections, key=lambda d: d.score).box
    assert np.abs(np.array(best_full) - np.array(best_half)).max() < 24  # same item, same place (in 640x480 pixels)


def _scan_jpeg(**params: int) -> bytes:
    """A real scan from the samples, JPEG-encoded by OpenCV (``params``: cv2.IMWRITE_* flags)."""
    image = cv2.imread(str(SAMPLES / "images" / "scan_300000005.png"))
    ok, buf = cv2.imencode(".jpg", image, [v for kv in params.items() for v in (getattr(cv2, kv[0]), kv[1])])
    assert ok
    return buf.tobytes()


def _with_exif_thumbnail(jpeg: bytes) -> bytes:
    """``jpeg`` with an APP1 EXIF segment (orientation 1) that carries a whole JPEG thumbnail, EOI included."""
    from PIL import Image

    exif = Image.Exif()
    exif[0x0112] = 1
    ok, thumb = cv2.imencode(".jpg", np.full((16, 16, 3), 128, np.uint8))
    payload = exif.tobytes() + thumb.tobytes()
    assert ok and payload.startswith(b"Exif") and b"\xff\xd9" in payload
    return jpeg[:2] + b"\xff\xe1" + (len(payload) + 2).to_bytes(2, "big") + payload + jpeg[2:]


@pytest.mark.parametrize("cut", [0.5, 0.9, -2])
@pytest.mark.parametrize("exif", [False, True])
def test_truncated_jpeg_is_refused_not_decoded_part_grey(cut, exif, monkeypatch):
    data = _scan_jpeg(IMWRITE_JPEG_QUALITY=92)
    data = _with_exif_thumbnail(data) if exif else data  # the thumbnail's EOI must not count as the image's
    n = len(data) + cut if cut < 0 else int(len(data) * cut)  # -2 drops exactly the EOI marker
    for reduce_to in (None, 100):  # both the full and the DCT-reduced decode
        with pytest.raises(ImageReadError, match="truncated"):
            decode_scan(data[:n], "cut.jpg", reduce_to=reduce_to)
    # OpenCV 4.x only warns and fills the rest grey (5.x gives up): the reader must refuse before decoding.
    monkeypatch.setattr(cv2, "imdecode", lambda buf, flags: np.full((480, 640, 3), 128, np.uint8))
    with pytest.raises(ImageReadError, match="truncated \\(no end-of-image marker"):
        decode_scan(data[:n], "cut.jpg")


@pytest.mark.parametrize("variant", ["baseline", "progressive", "exif", "trailing bytes"])
def test_whole_jpegs_still_load(variant):
    plain = decode_image(_scan_jpeg(IMWRITE_JPEG_QUALITY=92))
    data = {"baseline": lambda: _scan_jpeg(IMWRITE_JPEG_QUALITY=92),
            "progressive": lambda: _scan_jpeg(IMWRITE_JPEG_QUALITY=92, IMWRITE_JPEG_PROGRESSIVE=1),
            "exif": lambda: _with_exif_thumbnail(_scan_jpeg(IMWRITE_JPEG_QUALITY=92)),
            "trailing bytes": lambda: _scan_jpeg(IMWRITE_JPEG_QUALITY=92) + b"\0junk\xff\xd8 after EOI" * 10}[variant]()
    img = decode_image(data, variant)
    assert img.shape == plain.shape == (480, 640, 3)
    assert np.abs(img.astype(int) - plain.astype(int)).mean() < 2  # progressive: same image, other rounding


@pytest.mark.parametrize("bits", [10, 12, 14, 16])
def test_every_16_bit_value_maps_to_its_detector_depth(bits):
    full = 2**bits - 1
    ramp = np.arange(full + 1, dtype=np.uint16).reshape(-1, 2**(bits // 2))  # 0 .. full: the depth is inferred
    expected = np.round(ramp.astype(np.float64) * 255 / full).astype(np.uint8)
    assert np.array_equal(to_bgr8(ramp)[..., 1], expected)
    bgra = np.dstack([ramp, ramp, ramp, np.full_like(ramp, 65535)])  # an opaque alpha does not make it 16-bit
    assert np.array_equal(to_bgr8(bgra)[..., 2], expected)


@pytest.mark.parametrize("suffix", [".png", ".tiff"])
def test_12_bit_scan_in_a_16_bit_file_is_not_black(tmp_path, suffix):
    ramp12 = (np.linspace(0, 4095, 200 * 300) + 0.5).astype(np.uint16).reshape(200, 300)
    assert cv2.imwrite(str(tmp_path / f"r12{suffix}"), ramp12)
    as_8_bit = np.round(ramp12 * (255 / 4095))
    assert np.abs(read_image(tmp_path / f"r12{suffix}")[..., 0] - as_8_bit).max() <= 1
    ramp16 = ramp12 * np.uint16(16) + np.uint16(15)  # reaches 65535: a true 16-bit image reads as before
    assert cv2.imwrite(str(tmp_path / f"r16{suffix}"), ramp16)
    before = cv2.convertScaleAbs(ramp16, alpha=255.0 / 65535.0)
    assert np.array_equal(read_image(tmp_path / f"r16{suffix}")[..., 0], before)


def test_dicom_keeps_its_bits_stored(tmp_path):
    px = np.full((8, 8), 4095, np.uint16)  # 12-bit values, but the file says 16 bits are stored
    _write_dicos(tmp_path / "s16.dcs", px, bits=16)
    assert read_image(tmp_path / "s16.dcs")[0, 0, 0] == round(4095 * 255 / 65535)
