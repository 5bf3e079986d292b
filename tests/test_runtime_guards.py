"""The runtime refuses what it cannot screen instead of deciding on it: bad model metadata at load, non-finite
model outputs, blank or tiny frames, images of a shape or pixel type it cannot take; and the score it prints
never contradicts the level. Models with edited metadata are copies of the bundled detector."""

import io
import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from armscan.datasets.readers import ImageReadError, decode_scan, read_image, to_bgr8
from armscan.inference.engine import (
    MIN_CONTENT_STD,
    MIN_SIDE,
    Detector,
    ModelLoadError,
    ModelOutputError,
    UnscreenableImageError,
    check_content,
    open_session,
)
from armscan.inference.metadata import ModelMetadata
from armscan.inference.preprocess import PreprocessSpec

ROOT = Path(__file__).resolve().parent.parent
BUNDLED = ROOT / "models" / "bundled" / "armscan-det.onnx"
SAMPLES = sorted((ROOT / "datasets" / "samples" / "images").glob("*.png"))


@pytest.fixture(scope="module")
def bundled() -> Detector:
    return Detector.from_onnx(BUNDLED, threads=1)


@pytest.fixture(scope="module")
def metadata() -> dict:  # type: ignore[type-arg]
    return open_session(BUNDLED)[1]


@pytest.fixture(scope="module")
def proto():  # type: ignore[no-untyped-def]
    onnx = pytest.importorskip("onnx")
    return onnx.load(str(BUNDLED))


def _with_metadata(proto, out: Path, mutate) -> Path:  # type: ignore[no-untyped-def]
    """A copy of the bundled detector whose armscan metadata ``mutate`` (a function of the dict) has edited."""
    import onnx

    model = onnx.ModelProto()
    model.CopyFrom(proto)
    for p in model.metadata_props:
        if p.key == "armscan":
            meta = json.loads(p.value)
            mutate(meta)
            p.value = json.dumps(meta)
    onnx.save(model, str(out))
    return out


def _set(section: str | None, **values):  # type: ignore[no-untyped-def]
    def mutate(meta: dict) -> None:  # type: ignore[type-arg]
        (meta[section] if section else meta).update(values)

    return mutate


def _alarm(cls: str, value: float):  # type: ignore[no-untyped-def]
    return lambda meta: meta["thresholds"]["alarm"].update({cls: value})


BAD_METADATA = {
    "alarm NaN": (_alarm("firearm", float("nan")), "finite"),
    "alarm inf": (_alarm("firearm", float("inf")), "finite"),
    "alarm negative": (_alarm("firearm", -1.0), "greater than or equal to 0"),
    "alarm in percent": (_alarm("firearm", 94.02), "less than or equal to 1"),
    "uncertain NaN": (lambda m: m["thresholds"]["uncertain"].update(firearm=float("nan")), "finite"),
    "nms_iou NaN": (_set("thresholds", nms_iou=float("nan")), "finite"),
    "min_score inf": (_set("thresholds", min_score=float("inf")), "finite"),
    "temperature inf": (_set("thresholds", temperature=float("inf")), "finite"),
    "channel order in lower case": (_set("preprocess", channel_order="rgb"), "channel_order 'rgb' is not supported"),
    "channel order unknown": (_set("preprocess", channel_order="GRB"), "use one of RGB, BGR"),
    "one mean": (_set("preprocess", mean=[0.5]), "mean must be 3 finite numbers"),
    "NaN mean": (_set("preprocess", mean=[0.5, float("nan"), 0.5]), "mean must be 3 finite numbers"),
    "zero std": (_set("preprocess", std=[0, 0, 0]), "std must be > 0"),
    "negative std": (_set("preprocess", std=[0.25, -0.25, 0.25]), "std must be > 0"),
    "tiny std": (_set("preprocess", std=[1e-40, 1e-40, 1e-40]), "beyond float32's range"),
    "fractional size": (_set("preprocess", size=447.5), "size must be an integer"),
    "size 320": (_set("preprocess", size=320), "has 448 rows .preprocess size., the metadata implies 320"),
    "stride 16": (_set(None, stride=16), "has 56 rows .preprocess size / stride., the metadata implies 28"),
    "stride 0": (_set(None, stride=0), "stride"),
    "two classes": (lambda m: (m.update(classes=m["classes"][:2]),
                               m["thresholds"].update(uncertain={c: m["thresholds"]["uncertain"][c] for c in m["classes"]})),
                    "'cls_logits' has 8 classes, the metadata implies 2"),
    "one build": (_set(None, builds=["metal"]), "'build_logits' has 3 builds, the metadata implies 1"),
    "six types": (lambda m: m["types"].append("grenade"), "'type_logits' has 5 types, the metadata implies 6"),
    "no classes": (lambda m: (m.update(classes=[]), m["thresholds"].update(alarm={}, uncertain=None)),
                   "must name at least one"),
    "unknown input": (_set(None, input_name="input"), "input_name 'input' is not among the graph's inputs"),
}


@pytest.mark.parametrize("case", list(BAD_METADATA))
def test_bad_metadata_is_refused_at_load(proto, tmp_path, case):
    mutate, message = BAD_METADATA[case]
    path = _with_metadata(proto, tmp_path / "m.onnx", mutate)
    with pytest.raises(ModelLoadError, match=message):
        Detector.from_onnx(path, threads=1)


def test_the_edge_values_still_load(proto, tmp_path, bundled):
    # "off" is stored at 1.0 by training (bolt, in the bundled model); 0.0 alarms on anything; BGR is allowed
    assert bundled.metadata.thresholds.alarm["bolt"] == 1.0
    edge = _with_metadata(proto, tmp_path / "edge.onnx", lambda m: (
        m["thresholds"]["alarm"].update(firearm=1.0), m["thresholds"]["uncertain"].update(firearm=0.0),
        m["preprocess"].update(channel_order="BGR", size=448.0), m.update(task="detect")))
    det = Detector.from_onnx(edge, threads=1)
    assert det.spec.channel_order == "BGR" and det.spec.size == 448 and isinstance(det.spec.size, int)


def test_preprocess_spec_checks_its_fields():
    with pytest.raises(ValueError, match="channel_order 'bgr' is not supported; use one of RGB, BGR"):
        PreprocessSpec(channel_order="bgr")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="pad_value must be an integer in 0..255"):
        PreprocessSpec(pad_value=300)
    with pytest.raises(ValueError, match="size must be a positive integer"):
        PreprocessSpec(size=0)
    assert PreprocessSpec.from_dict({"mean": [0.4, 0.5, 0.6]}).mean == (0.4, 0.5, 0.6)


def _outputs(metadata: ModelMetadata, logit: float = 8.0, at: tuple[int, int] = (20, 20)) -> dict[str, np.ndarray]:
    """Raw outputs on the bundled model's 56x56 grid with one firearm box of class logit ``logit`` at cell ``at``."""
    g = 56
    out = {"cls_logits": np.full((1, len(metadata.classes), g, g), -20, np.float32),
           "box_reg": np.full((1, 4, g, g), 2, np.float32), "centerness": np.full((1, 1, g, g), 20, np.float32),
           "build_logits": np.zeros((1, len(metadata.builds), g, g), np.float32),
           "type_logits": np.zeros((1, len(metadata.types), g, g), np.float32)}
    out["cls_logits"][0, 0, at[0], at[1]] = logit
    return out


@pytest.mark.parametrize("where", ["cls_logits", "box_reg", "centerness", "build_logits", "everywhere"])
@pytest.mark.parametrize("value", [np.nan, np.inf])
def test_non_finite_outputs_are_an_error_not_a_clear(metadata, where, value):
    md = ModelMetadata.model_validate(metadata)

    def run(x: np.ndarray) -> dict[str, np.ndarray]:
        out = _outputs(md)
        for name, o in out.items():
            if where in (name, "everywhere"):
                o[0, :, 20, 20] = value
        return out

    with pytest.raises(ModelOutputError, match="NaN or infinite"):
        Detector(run, md).detect(read_image(SAMPLES[0]))


def test_outputs_that_do_not_match_the_metadata_are_an_error(metadata):
    md = ModelMetadata.model_validate(metadata)
    det = Detector(lambda x: {**_outputs(md), "build_logits": np.zeros((1, 2, 56, 56), np.float32)}, md)
    with pytest.raises(ModelOutputError, match="'build_logits' has shape .1, 2, 56, 56.; the metadata implies .1, 3"):
        det.detect(read_image(SAMPLES[0]))


def test_batch_records_an_error_row_for_a_model_output_or_a_blank_frame(bundled, metadata, tmp_path):
    from armscan.datasets.readers import Decoded
    from armscan.serve.batch import screen_loaded
    from armscan.serve.batch_inputs import ScanInput

    md = ModelMetadata.model_validate(metadata)
    nan = Detector(lambda x: {**_outputs(md), "box_reg": np.full((1, 4, 56, 56), np.nan, np.float32)}, md)
    scan = read_image(SAMPLES[0])
    item = ScanInput("a.png", lambda r: Decoded(scan, 640, 480), {"parcel_id": "p1"})
    row = screen_loaded(nan, tmp_path, (item, Decoded(scan, 640, 480), None))
    assert row["status"] == "error" and "ModelOutputError" in row["error"] and "decision" not in row
    blank = np.zeros((480, 640, 3), np.uint8)
    row = screen_loaded(bundled, tmp_path, (item, Decoded(blank, 640, 480), None))
    assert row["status"] == "error" and "no image content" in row["error"] and "decision" not in row


@pytest.mark.parametrize("frame", ["black", "white", "grey", "grey with noise under one level"])
def test_blank_frames_are_refused(bundled, frame):
    image = {"black": np.zeros((480, 640, 3), np.uint8), "white": np.full((480, 640, 3), 255, np.uint8),
             "grey": np.full((640, 480, 3), 128, np.uint8),
             "grey with noise under one level": np.full((480, 640, 3), 128, np.uint8)}[frame]
    if frame.endswith("level"):
        image[::7, ::5] = 129  # a standard deviation of about 0.17
    with pytest.raises(UnscreenableImageError, match="no image content: a blank or uniform frame") as info:
        bundled.detect(image, source="cam3.png")
    # an ImageReadError: the service answers 422 with the reason, batch and Ray record it as the scan's error
    assert isinstance(info.value, ImageReadError) and info.value.path == "cam3.png"


@pytest.mark.parametrize("shape", [(1, 1, 3), (20, 640, 3), (640, MIN_SIDE - 1, 3)])
def test_too_small_scans_are_refused(bundled, shape):
    image = np.random.default_rng(0).integers(0, 256, shape, dtype=np.uint8)
    with pytest.raises(UnscreenableImageError, match=f"too small to screen .each side must be at least {MIN_SIDE}"):
        bundled.detect(image)


def test_a_reduced_decode_is_judged_by_its_full_size(bundled):
    image = read_image(SAMPLES[5])
    small = cv2.resize(image, (24, 18), interpolation=cv2.INTER_AREA)  # a 640x480 scan decoded at 1/27
    assert bundled.detect(small, original_size=(640, 480)).width == 640
    with pytest.raises(UnscreenableImageError, match="24x18 pixels is too small"):
        bundled.detect(small)


def test_samples_and_generated_scans_have_content(bundled):
    from armscan.datasets.synth.scene import generate

    scans = [read_image(f) for f in SAMPLES] + [generate(seed, 640, 480).image for seed in range(6)]
    scans += [generate(seed, 512, 512).image for seed in range(100, 104)]
    for image in scans:
        check_content(image, (image.shape[1], image.shape[0]))  # raises on a blank frame
        assert cv2.meanStdDev(image)[1].max() > 20 * MIN_CONTENT_STD  # far from the limit
    assert bundled.detect(scans[0]).decision == "alarm"


def test_photo_classifier_still_takes_plain_frames():
    from armscan.inference.photo import PhotoClassifier

    photo = PhotoClassifier.from_onnx(ROOT / "models" / "bundled" / "armscan-photo.onnx", threads=1)
    assert photo.classify(np.full((120, 160, 3), 200, np.uint8), rotations=False).answer  # no content check there


def _one_box(metadata: dict, score: float, threshold: float) -> Detector:  # type: ignore[type-arg]
    """A detector whose only box scores ``score`` (unscaled) against a firearm alarm threshold ``threshold``."""
    meta = json.loads(json.dumps(metadata))
    meta["thresholds"].update(temperature=1.0, uncertain=None)
    meta["thresholds"]["alarm"]["firearm"] = threshold
    md = ModelMetadata.model_validate(meta)
    p = np.float64(score) ** 2  # score = sqrt(sigmoid(class) * sigmoid(centreness)), centreness saturated
    return Detector(lambda x: _outputs(md, float(np.log(p / (1 - p)))), md)


@pytest.mark.parametrize("score", [0.94016, 0.940199, 0.94019, 0.94021, 0.94026, 0.9403])
def test_the_printed_score_agrees_with_the_level(metadata, score):
    det = _one_box(metadata, score, 0.9402)
    result = det.detect(read_image(SAMPLES[2]), include_below_alarm=True)
    box = max((d for d in result.detections if d.cls == "firearm"), key=lambda d: d.score)
    assert abs(box.score - score) < 2e-4
    assert box.alarm == (box.score >= 0.9402) == (box.level == "alarm")
    assert (result.decision == "alarm") == box.alarm


def test_a_score_at_the_threshold_alarms_and_prints_it(metadata):
    det = _one_box(metadata, 0.94025, 0.9402)
    box = det.detect(read_image(SAMPLES[2])).detections[0]
    assert box.cls == "firearm" and box.score == 0.9402 and box.alarm and box.level == "alarm"


@pytest.mark.parametrize("size", [(799, 800), (800, 799)])
@pytest.mark.parametrize("orientation", [None, 6, 8])
def test_a_reduced_near_square_jpeg_keeps_its_width_and_height(size, orientation):
    from PIL import Image

    w, h = size
    pil = Image.fromarray(np.random.default_rng(0).integers(0, 256, (h, w, 3), dtype=np.uint8))
    buf = io.BytesIO()
    if orientation is None:
        pil.save(buf, "JPEG", quality=80)
    else:
        exif = pil.getexif()
        exif[0x0112] = orientation  # turned by 90 degrees: shown h x w
        pil.save(buf, "JPEG", quality=80, exif=exif.tobytes())
        w, h = h, w
    full = decode_scan(buf.getvalue(), "sq.jpg")
    small = decode_scan(buf.getvalue(), "sq.jpg", reduce_to=100)  # 1/8: 100x100 either way round
    assert (full.width, full.height) == (w, h) == (full.image.shape[1], full.image.shape[0])
    assert small.image.shape[:2] == (100, 100) and (small.width, small.height) == (w, h)


def _textured(h: int = 240, w: int = 320) -> np.ndarray:
    return cv2.resize(read_image(SAMPLES[5]), (w, h), interpolation=cv2.INTER_AREA)


@pytest.mark.parametrize("kind", ["2-D grey", "1 channel", "BGRA", "uint16", "float in [0, 1]"])
def test_other_image_layouts_are_converted_like_the_readers_do(bundled, kind):
    bgr = _textured()
    grey = cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY)
    image = {"2-D grey": grey, "1 channel": grey[..., None], "BGRA": cv2.cvtColor(bgr, cv2.COLOR_BGR2BGRA),
             "uint16": bgr.astype(np.uint16) * 257, "float in [0, 1]": bgr.astype(np.float32) / 255}[kind]
    got = bundled.detect(image, include_below_alarm=True)
    want = bundled.detect(to_bgr8(image), include_below_alarm=True)
    assert got.model_dump(exclude={"latency_ms"}) == want.model_dump(exclude={"latency_ms"})
    assert (got.width, got.height) == (320, 240)


@pytest.mark.parametrize("image, message", [
    (np.zeros((64, 64, 2), np.uint8), r"shape \(64, 64, 2\) cannot be screened; expected \(H, W, 3\) BGR"),
    (np.zeros((2, 64, 64, 3), np.uint8), r"shape \(2, 64, 64, 3\) cannot be screened"),
    (np.zeros((0, 64, 3), np.uint8), "empty image"),
    (np.zeros((64, 64, 3), np.int32), "pixel type int32 is not supported; expected uint8"),
    (np.full((64, 64, 3), 200.0, np.float32), "float pixels must lie in .0, 1., got values from 200 to 200"),
    (np.full((64, 64, 3), np.nan, np.float64), "float pixels must lie in .0, 1."),
    ([[0, 1], [2, 3]], "expected a numpy image array, got list"),
])
def test_images_it_cannot_take_are_refused_with_what_is_allowed(bundled, image, message):
    with pytest.raises(UnscreenableImageError, match=message):
        bundled.detect(image)
    with pytest.raises(UnscreenableImageError, match=message):
        bundled.raw(image)
