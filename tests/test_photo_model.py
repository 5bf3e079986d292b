"""The seizure-photo model: network, loss, export parity, metadata, the engine's answers and bands, the length
measurement with and without a reference, rotation agreement, and the photo route of the CLI."""

from __future__ import annotations

import json
import subprocess
import sys

import cv2
import numpy as np
import pytest

torch = pytest.importorskip("torch")

from armscan.datasets.taxonomy import BUILDS, ID1_CARD_MM, PHOTO_CLASSES  # noqa: E402
from armscan.inference.engine import Detector, ModelLoadError  # noqa: E402
from armscan.inference.measure import measure  # noqa: E402
from armscan.inference.photo import PhotoBands, PhotoClassifier, PhotoMetadata  # noqa: E402
from armscan.inference.preprocess import PreprocessSpec  # noqa: E402
from armscan.models import get_model  # noqa: E402
from armscan.models.photo import MASKS  # noqa: E402
from armscan.training.photo import choose_bands, fit_temperature  # noqa: E402
from armscan.training.photo_data import PhotoRenders, augment, augment_upright, encode_photo, photo_loss  # noqa: E402
from armscan.training.photo_eval import evaluate_photo  # noqa: E402


def test_photo_models_build_and_give_finite_outputs():
    for name, mask_pool in (("armscan_photo_small", False), ("armscan_photo_small", True), ("armscan_photo_large", False)):
        model = get_model(name, num_classes=len(PHOTO_CLASSES), mask_pool=mask_pool).eval()
        with torch.no_grad():
            fam, build, masks = model(torch.rand(2, 3, 128, 128))
        assert fam.shape == (2, len(PHOTO_CLASSES)) and build.shape == (2, len(BUILDS))
        assert masks.shape == (2, len(MASKS), 32, 32)
        assert all(torch.isfinite(t).all() for t in (fam, build, masks))


def _batch(n: int = 4) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    g = torch.Generator().manual_seed(0)
    masks = torch.zeros(n, 4, 32, 32)
    masks[:, 0, 10:20, 5:28] = 1.0
    return torch.rand(n, 3, 128, 128, generator=g), {
        "label": torch.arange(n) % len(PHOTO_CLASSES), "build": torch.tensor([0, 1, 2, -1])[:n],
        "masks": masks, "has_masks": torch.tensor([True, True, False, True])[:n]}


def test_photo_loss_falls_when_fitting_one_batch():
    torch.manual_seed(0)
    model = get_model("armscan_photo_small", num_classes=len(PHOTO_CLASSES))
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    x, t = _batch()
    first = None
    for _ in range(25):
        loss = sum(photo_loss(model(x), t).values())
        first = float(loss.detach()) if first is None else first
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert float(loss.detach()) < 0.6 * first


def test_mask_targets_and_augmentation_stay_aligned():
    spec = PreprocessSpec(size=128, pad_value=0)
    image = np.zeros((96, 128, 3), np.uint8)
    bits = np.zeros((96, 128), np.uint8)
    bits[8:24, 16:48] = 1  # weapon bit, a 32 x 16 px block = 8 x 4 cells
    image[8:24, 16:48] = 255
    canvas, target = encode_photo(image, "revolver", "metal", bits, spec, stride=4)
    assert target["label"] == PHOTO_CLASSES.index("revolver") and target["build"] == BUILDS.index("metal")
    assert target["masks"][0].sum() == pytest.approx(32, abs=0.5)  # covered cells
    for seed in range(8):
        c, m = augment(canvas, target["masks"].astype(np.float32), np.random.default_rng(seed))
        bright = cv2.resize((c.mean(axis=2) > 128).astype(np.float32), (32, 32), interpolation=cv2.INTER_AREA)
        assert np.abs(bright - m[0]).max() < 0.51  # the mask moved with the photo
    with pytest.raises(ValueError, match="Unknown photo class"):
        encode_photo(image, "cat", "metal", bits, spec, stride=4)


def test_upright_views_are_kept_and_served_at_their_share():
    spec = PreprocessSpec(size=96, pad_value=0)
    image = np.zeros((96, 128, 3), np.uint8)
    bits = np.zeros((96, 128), np.uint8)
    bits[40:52, 10:110] = 1  # a long, thin weapon across the photo
    image[40:52, 10:110] = 200
    _, target = encode_photo(image, "bolt_action", "metal", bits, spec, stride=4)
    h, w = target["upright_hw"]
    assert w == 96 and 8 <= h < 40  # the long side fills the input
    view = target["upright"]
    assert view[h // 2, w // 4:3 * w // 4].min() > 150 and view[h:].max() == 0  # the weapon along the middle; padding
    flipped = [augment_upright(target["upright"], target["upright_hw"], np.random.default_rng(s)) for s in range(8)]
    assert all((f[h:] == f[h, 0]).all() and f[h // 2, w // 2].min() > 0 for f in flipped)  # content stays top left
    _, none = encode_photo(image, "no_firearm", "unknown", np.zeros_like(bits), spec, stride=4)
    assert tuple(none["upright_hw"]) == (0, 0)

    renders = PhotoRenders(0, 10, PreprocessSpec(size=96), 4, processes=1, progress=False, upright_share=1.0)
    for i in range(len(renders)):
        x, t = renders[i]
        has_view = renders.targets[i]["upright_hw"][0] > 0
        assert bool(t["has_masks"]) is not bool(has_view)  # a served upright view trains the family and build only
        assert int(t["label"]) == int(renders.targets[i]["label"])
    assert any(renders.targets[i]["upright_hw"][0] > 0 for i in range(len(renders)))


def test_exported_photo_model_matches_torch_and_carries_metadata(tiny_photo_checkpoint, tiny_photo_onnx, tiny_onnx):
    from armscan.training.photo import model_from_photo_checkpoint

    classifier = PhotoClassifier.from_onnx(tiny_photo_onnx)
    md = classifier.metadata
    assert md.classes == list(PHOTO_CLASSES) and md.masks == list(MASKS) and md.card_mm == ID1_CARD_MM
    assert md.temperature > 0 and md.bands.probable <= md.bands.confident
    model = model_from_photo_checkpoint(torch.load(tiny_photo_checkpoint, weights_only=False))
    x = np.random.default_rng(0).normal(size=(3, 3, 128, 128)).astype(np.float32)
    with torch.no_grad():
        ref = model(torch.from_numpy(x))
    out = classifier._run(x)
    for name, r in zip(("family", "build", "masks"), ref, strict=True):
        np.testing.assert_allclose(out[name], r.numpy(), rtol=1e-3, atol=1e-4)
    with pytest.raises(ModelLoadError, match="photo model, not an X-ray detector"):
        Detector.from_onnx(tiny_photo_onnx)
    with pytest.raises(ModelLoadError, match="not a photo model"):
        PhotoClassifier.from_onnx(tiny_onnx)


def _stub(fam_logits: np.ndarray, masks: np.ndarray | None = None, bands: PhotoBands | None = None) -> PhotoClassifier:
    md = PhotoMetadata(name="stub", version="0", architecture="stub", classes=list(PHOTO_CLASSES), builds=list(BUILDS),
                       masks=list(MASKS), mask_stride=4, preprocess={"size": 128}, bands=bands or PhotoBands())

    def run(batch: np.ndarray) -> dict[str, np.ndarray]:
        m = masks if masks is not None else np.full((len(MASKS), 32, 32), -10.0, np.float32)
        return {"family": np.repeat(fam_logits[None], len(batch), 0).astype(np.float32),
                "build": np.repeat(np.array([[0.0, 3.0, 0.0]], np.float32), len(batch), 0),
                "masks": np.repeat(m[None], len(batch), 0).astype(np.float32)}

    return PhotoClassifier(run, md)


def test_answers_bands_and_no_firearm():
    image = np.full((96, 128, 3), 128, np.uint8)
    sure = np.full(len(PHOTO_CLASSES), -5.0)
    sure[PHOTO_CLASSES.index("revolver")] = 5.0
    r = _stub(sure).classify(image)
    assert (r.answer, r.band, r.build) == ("revolver", "confident", "polymer")
    assert r.reference is None and "no card or ruler" in r.length_note and r.overall_length is None
    flat = np.zeros(len(PHOTO_CLASSES))
    flat[PHOTO_CLASSES.index("pump_action")] = 0.5
    r = _stub(flat).classify(image)
    assert r.answer == "uncertain" and r.label == "pump_action" and r.band == "uncertain" and len(r.top) == 3
    none = np.full(len(PHOTO_CLASSES), -5.0)
    none[PHOTO_CLASSES.index("no_firearm")] = 5.0
    r = _stub(none).classify(image)
    assert r.answer == "no_firearm" and r.build is None and "nothing to measure" in r.length_note


def _scene(tilt: float) -> tuple[np.ndarray, np.ndarray, float, float]:
    """Masks of a card and a weapon (300 x 40 mm, barrel 120 mm) on a table seen through a homography."""
    mm_to_px = np.array([[2.0, 0.3 * tilt, 60], [-0.2 * tilt, 2.0, 80], [tilt * 1e-4, tilt * 2e-4, 1]])
    size = 1000

    def draw(poly_mm: list[tuple[float, float]]) -> np.ndarray:
        pts = cv2.perspectiveTransform(np.array(poly_mm, np.float64).reshape(-1, 1, 2), mm_to_px).reshape(-1, 2)
        m = np.zeros((size, size), np.uint8)
        cv2.fillPoly(m, [np.round(pts * 16).astype(np.int32)], 1, cv2.LINE_AA, shift=4)
        return m

    cw, ch = ID1_CARD_MM
    card = draw([(10, 10), (10 + cw, 10), (10 + cw, 10 + ch), (10, 10 + ch)])
    weapon = draw([(20, 150), (320, 150), (320, 190), (20, 190)])
    barrel = draw([(200, 160), (320, 160), (320, 172), (200, 172)])
    # the model's view: the letterboxed input is 512 px (scale 0.512), masks at stride 4 -> 128 x 128
    planes = [cv2.resize(m.astype(np.float32), (128, 128), interpolation=cv2.INTER_AREA) for m in
              (weapon, barrel, card, np.zeros_like(card))]
    return np.stack(planes), np.full((size, size, 3), 200, np.uint8), 300.0, 120.0


@pytest.mark.parametrize("tilt", [0.0, 0.5])
def test_length_against_a_card_is_within_two_percent(tilt):
    masks, image, overall, barrel = _scene(tilt)
    m = measure(masks, image, ID1_CARD_MM, input_scale=0.512, mask_stride=4, mask_names=list(MASKS))
    assert m.reference == "card" and m.card_corners is not None and len(m.card_corners) == 4
    assert m.overall is not None and abs(m.overall.mm - overall) / overall < 0.02
    assert m.overall.plus_minus_mm > 0
    assert m.barrel is not None and abs(m.barrel.mm - barrel) / barrel < 0.08  # read at 0.3: a thin part stays


def test_no_reference_says_so_and_gives_no_length():
    masks, image, _, _ = _scene(0.0)
    masks[2] = 0.0  # no card
    m = measure(masks, image, ID1_CARD_MM, input_scale=0.512, mask_stride=4, mask_names=list(MASKS))
    assert m.reference is None and m.overall is None and "no card or ruler" in m.note


def test_length_against_a_ruler_reads_its_graduations():
    mm = 2.5  # px per mm
    image = np.full((700, 1000, 3), 90, np.uint8)
    x0, y0 = 100, 500
    cv2.rectangle(image, (x0 - 10, y0), (x0 + int(300 * mm) + 10, y0 + 75), (230, 230, 230), -1)
    for k in range(301):  # mm ticks, longer every 5 and 10 mm
        x = x0 + k * mm
        length = 30 if k % 10 == 0 else 20 if k % 5 == 0 else 12
        cv2.line(image, (int(round(x * 16)), y0 * 16), (int(round(x * 16)), (y0 + length) * 16), (20, 20, 20), 1,
                 cv2.LINE_AA, shift=4)
    masks = np.zeros((4, 128, 128), np.float32)
    scale = 512 / 1000
    ruler = np.zeros((700, 1000), np.float32)
    ruler[y0 : y0 + 76, x0 - 10 : x0 + int(300 * mm) + 11] = 1
    weapon = np.zeros((700, 1000), np.float32)
    weapon[200:260, 150 : 150 + int(250 * mm)] = 1  # 250 mm long
    for i, plane in ((0, weapon), (3, ruler)):
        small = cv2.resize(plane, (round(1000 * scale / 4), round(700 * scale / 4)), interpolation=cv2.INTER_AREA)
        masks[i, : small.shape[0], : small.shape[1]] = small
    m = measure(masks, image, ID1_CARD_MM, input_scale=scale, mask_stride=4, mask_names=list(MASKS))
    assert m.reference == "ruler", m.note
    assert m.overall is not None and abs(m.overall.mm - 250) / 250 < 0.04


def test_temperature_and_bands_are_chosen_from_validation_answers():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 5, 3000)
    logits = rng.normal(size=(3000, 5)) * 0.5
    logits[np.arange(3000), labels] += 2.0
    t1, t3 = fit_temperature(logits, labels), fit_temperature(logits * 3.0, labels)
    assert t3 / t1 == pytest.approx(3.0, rel=0.05)  # logits three times too sharp: a temperature three times higher
    prob = np.linspace(0.2, 1.0, 1000)
    correct = rng.random(1000) < prob  # accuracy equals probability: calibrated
    bands = choose_bands(prob, correct)
    assert 0.75 <= bands.probable <= bands.confident and bands.confident >= 0.9
    assert correct[prob >= bands.confident].mean() >= 0.98 and correct[prob >= bands.probable].mean() >= 0.9


def test_rotation_agreement_is_measured_on_flips_and_quarter_turns():
    from armscan.datasets.photo import render_photo

    samples = [render_photo(s) for s in range(3)]
    sure = np.full(len(PHOTO_CLASSES), -5.0)
    sure[0] = 5.0
    invariant = evaluate_photo(_stub(sure), samples, progress=False)
    assert invariant["rotation_agreement"] == 1.0 and invariant["photos"] == 3

    def by_orientation(batch: np.ndarray) -> dict[str, np.ndarray]:
        logits = np.full((len(batch), len(PHOTO_CLASSES)), -5.0, np.float32)
        for i, x in enumerate(batch):  # the answer depends on which half of the input holds the image
            logits[i, int(x[:, :64].std() > x[:, 64:].std())] = 5.0
        return {"family": logits, "build": np.zeros((len(batch), 3), np.float32),
                "masks": np.full((len(batch), 4, 32, 32), -10.0, np.float32)}

    fickle = PhotoClassifier(by_orientation, _stub(sure).metadata)
    one_view = evaluate_photo(fickle, samples, progress=False)
    assert one_view["rotation_agreement"] < 1.0 and one_view["mode"] == "one view"
    fickle.metadata.orientation_average = True  # the same fickle network, averaged over the photo's orientations
    averaged = evaluate_photo(fickle, samples, progress=False)
    assert averaged["rotation_agreement"] == 1.0 and averaged["mode"] == "orientation average"
    assert averaged["other_mode"]["mode"] == "one view" and averaged["other_mode"]["rotation_agreement"] < 1.0


@pytest.mark.parametrize("shape", [(60, 90), (90, 60), (64, 64)])
def test_every_orientation_of_a_photo_has_the_same_views(shape):
    from armscan.inference.photo import dihedral_views, orientation_views

    image = np.random.default_rng(0).integers(0, 255, (*shape, 3), dtype=np.uint8)
    def key(views: list[np.ndarray]) -> list[bytes]:
        return sorted(np.ascontiguousarray(v).tobytes() + bytes(str(v.shape), "ascii") for v in views)

    ref = key(orientation_views(image))
    assert len(ref) == (8 if shape[0] == shape[1] else 4)
    for turned in dihedral_views(image):
        assert key(orientation_views(np.ascontiguousarray(turned))) == ref


def test_scan_kind_photo_on_the_cli(tiny_photo_onnx, tiny_onnx, tmp_path):
    from armscan.datasets.photo import render_photo

    for seed in range(2):
        cv2.imwrite(str(tmp_path / f"p{seed}.jpg"), render_photo(seed).image)
    cli = [sys.executable, "-m", "armscan.serve.cli", "scan", "--kind", "photo"]
    ok = subprocess.run([*cli, str(tmp_path), "--model", str(tiny_photo_onnx), "--overlay", str(tmp_path / "ov")],
                        capture_output=True, text=True, timeout=120)
    assert ok.returncode == 0, ok.stderr
    assert "2 classified" in ok.stdout and len(list((tmp_path / "ov").glob("*.png"))) == 2
    wrong = subprocess.run([*cli, str(tmp_path), "--model", str(tiny_onnx)], capture_output=True, text=True, timeout=120)
    assert wrong.returncode == 2 and "not a photo model" in wrong.stderr


def test_users_photos_import_as_an_imagefolder_and_evaluate(tmp_path):
    from armscan.datasets.photo import read_photo_dataset, render_photo
    from armscan.serve.cli import main

    for folder, seed in (("revolver", 1), ("Revolver", 2), ("cats", 3), ("kitchen", 4)):
        (tmp_path / "src" / folder).mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(tmp_path / "src" / folder / f"{seed}.jpg"), render_photo(seed).image)
    (tmp_path / "map.yaml").write_text("cats: {photo: no_firearm}\nrevolver: {photo: revolver, build: metal}\n")
    assert main(["data", "import", "imagefolder", str(tmp_path / "src"), "--out", str(tmp_path / "photos"),
                 "--photos", "--mapping", str(tmp_path / "map.yaml")]) == 0
    records = read_photo_dataset(tmp_path / "photos")
    assert sorted(r.label for r in records) == ["no_firearm", "revolver", "revolver"]  # "kitchen" is unknown
    assert all(r.mask is None and r.length_mm is None for r in records)
    sure = np.full(len(PHOTO_CLASSES), -5.0)
    sure[PHOTO_CLASSES.index("revolver")] = 5.0
    metrics = evaluate_photo(_stub(sure), records, rotations=False, progress=False)
    assert metrics["photos"] == 3 and metrics["top1"] == pytest.approx(2 / 3, abs=1e-3)
    assert metrics["per_class"]["revolver"]["top1"] == 1.0 and metrics["per_class"]["no_firearm"]["top1"] == 0.0
    assert main(["data", "import", "voc", str(tmp_path / "src"), "--out", str(tmp_path / "x"), "--photos"]) == 2


@pytest.mark.parametrize("shape", [(96, 160), (160, 96), (128, 128)])
def test_every_views_masks_land_back_on_the_photo(shape):
    """The engine averages the masks of the photo's orientation views: each view's mask is turned back onto the
    photo first, so an off-centre, lopsided object keeps its place and shape (a wrong turn would smear it)."""
    def seeing(batch: np.ndarray) -> dict[str, np.ndarray]:  # masks: each cell's share of dark pixels
        grey = batch.mean(axis=1)  # a black object on a white table (and white letterbox padding)
        share = (grey < grey.min() + 0.1 * np.ptp(grey)).reshape(len(batch), 32, 4, 32, 4).mean(axis=(2, 4))
        logits = np.log(np.clip(share, 1e-4, 1 - 1e-4) / np.clip(1 - share, 1e-4, 1 - 1e-4))
        masks = np.repeat(logits[:, None], len(MASKS), axis=1).astype(np.float32)
        return {"family": np.zeros((len(batch), len(PHOTO_CLASSES)), np.float32),
                "build": np.zeros((len(batch), 3), np.float32), "masks": masks}

    photo = np.full((*shape, 3), 255, np.uint8)
    cv2.rectangle(photo, (10, 12), (70, 30), (0, 0, 0), -1)  # an L in the top-left quarter
    cv2.rectangle(photo, (10, 12), (26, 80), (0, 0, 0), -1)
    clf = PhotoClassifier(seeing, _stub(np.zeros(len(PHOTO_CLASSES))).metadata)
    _, _, averaged, scale = clf.probabilities(photo, rotations=True)
    _, _, own, _ = clf.probabilities(photo, rotations=False)
    rows, cols = (int(np.ceil(n * scale / 4)) for n in shape)  # the cells that cover the photo
    a, b = averaged[0, :rows, :cols], own[0, :rows, :cols]
    yx = np.mgrid[:rows, :cols].reshape(2, -1)
    assert b.sum() >= 40 and abs(a.sum() / b.sum() - 1) < 0.05  # the same area...
    assert np.abs(yx @ a.ravel() / a.sum() - yx @ b.ravel() / b.sum()).max() < 0.25  # ...in the same place (cells)
    assert a[b > 0.99].min() > 0.8  # the object's inside is the object's in every view


def test_a_photo_model_fine_tunes_from_its_export_and_keeps_its_lineage(tiny_photo_onnx, tiny_onnx, tmp_path):
    """An analyst fine-tunes the bundled photo model on their own photos: ``init_from`` the exported .onnx starts
    from the weights kept beside it (.pt), and the new checkpoint names its parent. A detector is refused."""
    from armscan.training.checkpoint import load_checkpoint
    from armscan.training.config import TrainConfig
    from armscan.training.train import train

    parent = load_checkpoint(tiny_photo_onnx.with_suffix(".pt"))
    assert parent["task"] == "photo" and parent["masks"] == list(MASKS)
    base = {"task": "photo", "batch_size": 4, "epochs": 1, "iters_per_epoch": 1, "warmup_iters": 1, "lr": 1e-9,
            "val_images": 0, "data": {"kind": "photo", "cache_size": 8, "train_seed": 500}}
    last = train(TrainConfig.load(None, {**base, "init_from": str(tiny_photo_onnx), "out_dir": str(tmp_path / "ft")}))
    child = load_checkpoint(last)
    assert child["lineage"]["parent"] == str(tiny_photo_onnx.with_suffix(".pt"))
    assert child["preprocess"]["size"] == parent["preprocess"]["size"]  # the network comes from the parent
    for key in ("family_out.weight", "mask_tower.1.weight"):  # a near-zero step from the parent's weights
        assert torch.allclose(child["model_state"][key], parent["model_state"][key], atol=1e-5)
    with pytest.raises(ValueError, match="X-ray detector"):
        train(TrainConfig.load(None, {**base, "init_from": str(tiny_onnx), "out_dir": str(tmp_path / "bad")}))


def test_the_cli_fine_tunes_a_photo_model_on_a_photo_folder_with_replay(tiny_photo_onnx, tmp_path):
    """``armscan train --init-from PHOTO.onnx --data FOLDER`` picks the photo fine-tuning recipe: the new photos
    mixed with replayed renders in the recipe's shares, the parent's batch-norm statistics kept."""
    from armscan.training.checkpoint import load_checkpoint
    from armscan.training.config import TrainConfig
    from armscan.training.data import MixedDetection
    from armscan.training.photo import _dataset

    folder = tmp_path / "mine"
    made = subprocess.run([sys.executable, "-m", "armscan.serve.cli", "photos", "synth", "--n", "6", "--seed", "7",
                           "--out", str(folder)], capture_output=True, text=True, timeout=120)
    assert made.returncode == 0, made.stderr
    out = tmp_path / "ft"
    run = subprocess.run([sys.executable, "-m", "armscan.serve.cli", "train", "--init-from", str(tiny_photo_onnx),
                          "--data", str(folder), "--set", f"out_dir={json.dumps(str(out))}", "epochs=1",
                          "iters_per_epoch=2", "batch_size=4", 'data={"cache_size": 6}'],
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    child = load_checkpoint(out / "last.pt")
    cfg = child["config"]
    assert cfg["task"] == "photo" and cfg["freeze_bn"] and cfg["data"]["replay"] == 0.5
    assert child["lineage"]["parent"] == str(tiny_photo_onnx.with_suffix(".pt")) and child["lineage"]["datasets"]
    parent = load_checkpoint(tiny_photo_onnx.with_suffix(".pt"))
    bn = next(k for k in parent["model_state"] if k.endswith("running_mean"))
    assert torch.equal(child["model_state"][bn], parent["model_state"][bn])  # frozen: the parent's statistics
    data = _dataset(TrainConfig.model_validate(cfg), PreprocessSpec(size=int(cfg["input_size"]), pad_value=114))
    assert isinstance(data, MixedDetection) and data.n_real == 6 and len(data) == 12
    drawn = data.draw(400, torch.Generator().manual_seed(0))
    assert 0.4 < np.mean([i >= data.n_real for i in drawn]) < 0.6  # about half replay


def test_the_photo_card_says_what_the_model_was_trained_on():
    from armscan.training.photo_eval import _recipe, _trained_on, _weights_note

    renders = _trained_on({"config": {"data": {"kind": "photo", "cache_size": 6000, "train_seed": 0}}})
    assert renders.startswith("**Procedural renders only**") and "6000 photos" in renders
    tuned = _trained_on({"config": {"data": {"kind": "coco", "replay": 0.5, "cache_size": 1200}},
                         "lineage": {"parent": "models/bundled/armscan-photo.pt", "parent_sha256": "ab" * 32,
                                     "datasets": {"runs/mine": "1234abcd"}}})
    assert "**Labelled photo folders**: `runs/mine` (content hash 1234abcd)" in tuned
    assert "fine-tuned from `models/bundled/armscan-photo.pt`" in tuned and "0.5 of each epoch replayed 1200" in tuned
    refreshed = {"config": {"data": {"kind": "photo", "cache_size": 3000, "train_seed": 6000}, "loss_weights": {"mask": 3.0}},
                 "lineage": {"parent": "models/bundled/armscan-photo.pt", "parent_sha256": "cd" * 32}}
    text = _trained_on(refreshed)
    assert text.startswith("**Procedural renders only**") and "refreshed from `models/bundled/armscan-photo.pt`" in text
    assert "3000 photos, seeds from 6000" in text
    assert (_recipe(refreshed), _recipe({"config": {"data": {"kind": "photo"}}})) == ("photo_masks", "photo_small")
    assert _weights_note(refreshed["config"]) == "; loss weights mask x3"


def test_the_models_mask_views_decide_which_masks_the_length_is_measured_on():
    """With the orientation average, ``mask_views: average`` measures on every view's masks turned back onto the
    photo and averaged, ``photo`` on the photo's own view's alone (chosen per model at export)."""
    spot = np.full((len(MASKS), 32, 32), -10.0, np.float32)
    spot[0, 4:8, 2:12] = 10.0  # a weapon near the top-left corner of every view: the views disagree on the photo

    clf = _stub(np.zeros(len(PHOTO_CLASSES), np.float32), masks=spot)
    photo = np.full((96, 128, 3), 128, np.uint8)  # landscape: the first view is the photo itself
    clf.metadata.mask_views = "photo"
    own = clf.probabilities(photo, rotations=True)[2][0]
    clf.metadata.mask_views = "average"
    averaged = clf.probabilities(photo, rotations=True)[2][0]
    assert own[4:8, 2:12].min() > 0.99 and own[20:, 20:].max() < 0.01  # the photo's own view: one spot, sharp
    assert averaged[4:8, 2:12].max() < 0.5 and averaged.max() < 0.5  # four views' spots, each a quarter strong
    legacy = clf.metadata.model_dump()
    legacy.pop("mask_views")
    assert PhotoMetadata.model_validate(legacy).mask_views == "average"  # models exported before it: the average
