import numpy as np
import pytest

from armscan.inference.decode import decode, grid_centres
from armscan.inference.preprocess import PreprocessSpec, letterbox, preprocess


def test_letterbox_keeps_aspect_and_maps_boxes_back():
    spec = PreprocessSpec(size=320)
    img = np.zeros((240, 640, 3), np.uint8)
    canvas, lb = letterbox(img, spec)
    assert canvas.shape == (320, 320, 3) and lb.scale == pytest.approx(0.5)
    assert (canvas[120:, :] == spec.pad_value).all()
    back = lb.boxes_to_original(np.array([[10, 20, 100, 110]], np.float32))
    np.testing.assert_allclose(back, [[20, 40, 200, 220]])


def test_training_and_inference_preprocessing_agree_pixel_for_pixel():
    pytest.importorskip("torch")
    from armscan.datasets.synth.scene import SceneConfig, generate
    from armscan.training.data import SynthDetection

    spec = PreprocessSpec(size=128)
    ds = SynthDetection(42, 1, spec, 160, 200, SceneConfig())
    x_train, target = ds[0]
    w, h = np.random.default_rng([42, 7]).integers(160, 201, size=2)
    x_inf, lb = preprocess(generate(42, int(w), int(h)).image, spec)
    np.testing.assert_array_equal(x_train.numpy(), x_inf)
    assert target["boxes"].shape[1] == 4


def _raw(c=8, h=10, w=10):
    return {"cls_logits": np.full((1, c, h, w), -10, np.float32), "box_reg": np.zeros((1, 4, h, w), np.float32),
            "centerness": np.full((1, 1, h, w), 10, np.float32), "build_logits": np.zeros((1, 3, h, w), np.float32),
            "type_logits": np.zeros((1, 5, h, w), np.float32)}


def test_decode_recovers_a_box_and_nms_removes_its_duplicate():
    raw = _raw()
    raw["cls_logits"][0, 2, 4, 5] = 5.0  # class 2 at row 4, col 5
    raw["cls_logits"][0, 2, 4, 6] = 4.0  # a neighbour predicting nearly the same box
    raw["box_reg"][0, :, 4, 5] = np.log(2.0)  # 2 strides each side
    raw["box_reg"][0, :, 4, 6] = np.log([3.0, 2.0, 1.0, 2.0])
    raw["build_logits"][0, 1, 4, 5] = 3.0
    (det,) = decode(raw, stride=8, score_threshold=0.1, nms_iou=0.5)
    assert len(det.scores) == 1 and det.labels[0] == 2
    cx, cy = grid_centres(10, 10, 8)[4 * 10 + 5]
    np.testing.assert_allclose(det.boxes[0], [cx - 16, cy - 16, cx + 16, cy + 16], atol=1e-4)
    assert det.build[0].argmax() == 1 and det.build[0].sum() == pytest.approx(1.0)


def test_decode_of_nothing_is_empty():
    (det,) = decode(_raw(), stride=8, score_threshold=0.1, nms_iou=0.5)
    assert det.boxes.shape == (0, 4) and det.build.shape == (0, 3)


def test_class_agnostic_nms_keeps_one_box_per_item():
    raw = _raw()
    raw["cls_logits"][0, 1, 4, 5] = 5.0  # the same location predicts two classes
    raw["cls_logits"][0, 3, 4, 5] = 3.0
    per_class = decode(raw, stride=8, score_threshold=0.1, nms_iou=0.5)[0]
    agnostic = decode(raw, stride=8, score_threshold=0.1, nms_iou=0.5, class_agnostic=True)[0]
    assert sorted(per_class.labels.tolist()) == [1, 3] and agnostic.labels.tolist() == [1]


@pytest.mark.parametrize("spec", [PreprocessSpec(size=64), PreprocessSpec(size=64, channel_order="BGR"),
                                  PreprocessSpec(size=64, mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225))])
def test_normalise_by_table_gives_the_formula_bit_for_bit(spec):
    from armscan.inference.preprocess import _normalise_formula, normalise

    for shape in [(64, 64, 3), (31, 57, 3), (1, 1, 3)]:
        canvas = np.random.default_rng(0).integers(0, 256, shape, dtype=np.uint8)
        x = normalise(canvas, spec)
        assert x.dtype == np.float32 and x.shape == (3, *shape[:2])
        np.testing.assert_array_equal(x, _normalise_formula(canvas, spec))
