"""The upright view (inference.upright): the same weapon at any orientation gives the same view, its long
axis horizontal and its heavier end to the right; nothing without a weapon. Torch-free, like the runtime."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from armscan.inference.photo import PhotoMetadata
from armscan.inference.preprocess import PreprocessSpec, letterbox
from armscan.inference.upright import upright_view

SPEC = PreprocessSpec(size=256, pad_value=128)
STRIDE = 4


def _photo(angle: float) -> tuple[np.ndarray, np.ndarray]:
    """A 'pistol' (a long bar with a heavy grip at one end) on a textured table, turned by ``angle`` degrees."""
    rng = np.random.default_rng(0)
    h, w = 600, 800
    image = (rng.integers(90, 140, (h, w, 3))).astype(np.uint8)
    mask = np.zeros((h, w), np.uint8)
    shape = np.zeros((h, w), np.uint8)
    cv2.rectangle(shape, (250, 280), (560, 320), 255, -1)  # barrel and slide
    cv2.rectangle(shape, (480, 320), (540, 420), 255, -1)  # the grip: the heavier end and side
    rot = cv2.getRotationMatrix2D((400, 300), angle, 1.0)
    mask = cv2.warpAffine(shape, rot, (w, h), flags=cv2.INTER_NEAREST)
    image[mask > 0] = (30, 40, 200)
    image[::7][mask[::7] > 0] = (20, 20, 120)  # some texture along the weapon
    return image, mask


def _coverage(mask: np.ndarray) -> tuple[np.ndarray, float]:
    """The weapon mask as the model predicts it: coverage of each stride cell of the letterboxed input."""
    canvas, lb = letterbox(np.repeat(mask[..., None], 3, axis=2), PreprocessSpec(size=SPEC.size, pad_value=0))
    g = SPEC.size // STRIDE
    cells = canvas[..., 0].astype(np.float32).reshape(g, STRIDE, g, STRIDE).mean(axis=(1, 3)) / 255.0
    return cells, lb.scale


def _view(image: np.ndarray, mask: np.ndarray) -> np.ndarray:
    cells, scale = _coverage(mask)
    view = upright_view(image, cells, scale, STRIDE, SPEC.size, pad_value=SPEC.pad_value)
    assert view is not None
    return view


@pytest.mark.parametrize("angle", [0.0, 33.0, 121.0])
def test_every_flip_and_quarter_turn_gives_the_same_upright_view(angle):
    image, mask = _photo(angle)
    ref = _view(image, mask)
    assert ref.shape[1] == SPEC.size and ref.shape[1] > 1.5 * ref.shape[0]  # long axis horizontal, longer side = size
    for k in range(4):
        for flip in (False, True):
            img, m = np.rot90(image, k), np.rot90(mask, k)
            if flip:
                img, m = img[:, ::-1], m[:, ::-1]
            view = _view(np.ascontiguousarray(img), np.ascontiguousarray(m))
            assert abs(view.shape[0] - ref.shape[0]) <= 3 and abs(view.shape[1] - ref.shape[1]) <= 3
            same = cv2.resize(view, (ref.shape[1], ref.shape[0])).astype(np.float32)
            weapon = (ref[..., 2] > 150)  # the red weapon pixels of the reference view
            assert np.abs(same - ref)[weapon].mean() < 40, (k, flip)
            assert (same[..., 2] > 150)[weapon].mean() > 0.85, (k, flip)  # the weapon lands on the same pixels


def test_the_grip_goes_right_and_down():
    image, mask = _photo(200.0)
    view = _view(image, mask)
    ys, xs = np.nonzero(view[..., 2] > 150)
    middle = (xs.min() + xs.max()) / 2
    assert np.median(xs) > middle  # the mass bunches to the right
    assert xs[ys == ys.max()].mean() > middle  # the lowest point is the grip's: it hangs down on the right


def test_no_weapon_no_view():
    image, _ = _photo(0.0)
    empty = np.zeros((SPEC.size // STRIDE,) * 2, np.float32)
    assert upright_view(image, empty, 0.32, STRIDE, SPEC.size) is None
    faint = np.full_like(empty, 0.2)  # under the threshold everywhere
    assert upright_view(image, faint, 0.32, STRIDE, SPEC.size) is None


def test_models_exported_with_crop_refine_still_load():
    base = {"name": "m", "version": "1", "architecture": "a", "classes": ["a", "no_firearm"], "builds": ["metal"],
            "masks": ["weapon"], "mask_stride": 4, "preprocess": SPEC.to_dict()}
    assert PhotoMetadata.model_validate({**base, "crop_refine": True}).refine == "crop"
    assert PhotoMetadata.model_validate({**base, "crop_refine": False}).refine == "none"
    assert PhotoMetadata.model_validate({**base, "refine": "upright", "refine_weight": 1.0}).refine == "upright"
    with pytest.raises(ValueError):
        PhotoMetadata.model_validate({**base, "refine": "sideways"})
