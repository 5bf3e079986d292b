"""Seizure photos in the service: kind=photo uploads, the decision mapping, history by kind, the photo overlay,
the models listing with both tasks, photo feedback and its export, metrics, and the 0002 migration.

The photo model is the tiny untrained one of ``tests/conftest.py`` (it abstains on everything); where a test needs
a confident answer or a length, its classifier is swapped for one that answers from the rendered photo's own labels.
"""

from __future__ import annotations

import contextlib
import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest
from fastapi.testclient import TestClient
from service_helpers import PASSWORD, Service, database_url, encode, sample, start_service
from sqlalchemy import text

from armscan.datasets.photo import MASK_BARREL, MASK_CARD, MASK_RULER, MASK_WEAPON, PhotoSample, render_photo
from armscan.inference.photo import Guess, PhotoClassifier, PhotoResult, orientation_views
from armscan.inference.preprocess import preprocess
from armscan.serve.service import accounts
from armscan.serve.service.app import create_app
from armscan.serve.service.db import MIGRATIONS, make_engine, session_factory, upgrade
from armscan.serve.service.screening import LoadedPhotoModel, classify_bytes, photo_decision
from armscan.serve.service.settings import BUNDLED_MODELS, Settings

pytestmark = pytest.mark.filterwarnings("ignore::ResourceWarning")
DETECTOR = BUNDLED_MODELS / "armscan-det.onnx"
MASK_BITS = {"weapon": MASK_WEAPON, "barrel": MASK_BARREL, "card": MASK_CARD, "ruler": MASK_RULER}


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory: pytest.TempPathFactory, tiny_photo_onnx: Path) -> Path:
    """The bundled detector beside the tiny photo model."""
    out = tmp_path_factory.mktemp("models")
    shutil.copy(DETECTOR, out / DETECTOR.name)
    shutil.copy(tiny_photo_onnx, out / "armscan-photo.onnx")
    return out


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def svc(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, models_dir: Path) -> Iterator[Service]:
    yield from start_service(
        request.param,
        tmp_path_factory.mktemp(request.param),
        models_dir=models_dir,
        max_upload_mb=2,
        max_pixels=20_000_000,
        rate_limit_per_minute=0,
    )


@pytest.fixture
def officer(svc: Service) -> str:
    return svc.add_user("officer")


def _with_card(first_seed: int = 0) -> PhotoSample:
    """The first rendered photo of a handgun lying beside an ID-1 card (the card is large next to it)."""
    for seed in range(first_seed, first_seed + 200):
        s = render_photo(seed)
        if s.reference == "card" and s.label in ("semi_auto_pistol", "revolver"):
            return s
    raise AssertionError("no photo with a card among 200 renders")


def _jpeg(s: PhotoSample) -> bytes:
    return encode(s.image, ".jpg", cv2.IMWRITE_JPEG_QUALITY, 92)


def _oracle(clf: PhotoClassifier, s: PhotoSample, label: str) -> PhotoClassifier:
    """A classifier with ``clf``'s metadata that answers ``label`` surely and outputs the photo's true masks, so the
    service's decision mapping and length measurement can be checked without a trained model. Its input is 512 px,
    so that the masks are fine enough to find the card."""
    md = clf.metadata.model_copy(update={"preprocess": {**clf.metadata.preprocess, "size": 512}})
    spec = PhotoClassifier(lambda b: {}, md).spec
    fam = np.full((1, len(md.classes)), -20.0, np.float32)
    fam[0, md.classes.index(label)] = 20.0
    build = np.zeros((1, len(md.builds)), np.float32)
    build[0, md.builds.index(s.build if s.build in md.builds else md.builds[0])] = 20.0

    def true_masks(labels: np.ndarray, grid: int) -> np.ndarray:
        h, w = labels.shape
        _, lb = preprocess(np.zeros((h, w, 3), np.uint8), spec)
        gw, gh = max(1, round(w * lb.scale / md.mask_stride)), max(1, round(h * lb.scale / md.mask_stride))
        masks = np.full((len(md.masks), grid, grid), -10.0, np.float32)
        for k, name in enumerate(md.masks):
            on = cv2.resize(((labels & MASK_BITS[name]) > 0).astype(np.float32), (gw, gh), interpolation=cv2.INTER_AREA)
            masks[k, :gh, :gw] = np.where(on > 0.5, 10.0, -10.0)
        return masks

    def run(batch: np.ndarray) -> dict[str, np.ndarray]:
        n, _, size, _ = batch.shape
        grid = size // md.mask_stride
        # a batch of the photo's orientation views (in the engine's order) sees each view's masks; one input,
        # the photo's own
        labels = orientation_views(s.masks) if n > 1 else [s.masks]
        masks = np.stack([true_masks(np.ascontiguousarray(v), grid) for v in labels])
        return {"family": np.repeat(fam, n, 0), "build": np.repeat(build, n, 0), "masks": masks}

    return PhotoClassifier(run, md)


@contextlib.contextmanager
def _answering(svc: Service, s: PhotoSample, label: str) -> Iterator[None]:
    """The service's default photo model answers ``label`` (with ``s``'s true masks) inside the block."""
    loaded = svc.ctx.models.photo_models[svc.ctx.models.photo_default or ""]
    real = loaded.classifier
    loaded.classifier = _oracle(real, s, label)
    try:
        yield
    finally:
        loaded.classifier = real


def test_photo_upload_returns_the_photo_result(svc: Service, officer: str) -> None:
    s = _with_card()
    scan = svc.upload_photo(officer, _jpeg(s), "seizure-1.jpg")
    assert scan["kind"] == "photo" and scan["detections"] == [] and scan["officer"] == officer
    p = scan["photo"]
    h, w = s.image.shape[:2]
    assert (p["width"], p["height"]) == (w, h) == (scan["width"], scan["height"])
    assert {
        "answer",
        "label",
        "probability",
        "band",
        "top",
        "build",
        "build_probability",
        "reference",
        "overall_length",
        "barrel_length",
        "mm_per_px",
        "card_corners",
        "length_note",
        "model_name",
        "model_version",
    } <= set(p)
    assert len(p["top"]) == 3 and p["band"] in ("confident", "probable", "uncertain")
    assert scan["decision"] == photo_decision(PhotoResult.model_validate(p))
    assert scan["model_name"] == p["model_name"] == svc.ctx.models.photo_default
    c, hdr = svc.client, svc.as_(officer)
    assert c.get(f"/v1/scans/{scan['id']}", headers=hdr).json()["photo"] == p
    r = c.get(scan["overlay_url"], headers=hdr)
    assert r.status_code == 200 and r.headers["content-type"] == "image/png"
    overlay = cv2.imdecode(np.frombuffer(r.content, np.uint8), cv2.IMREAD_COLOR)
    assert overlay is not None and overlay.shape[1] == w and overlay.shape[0] > h  # the photo under its banner
    for url in (scan["image_url"], scan["thumbnail_url"]):
        assert c.get(url, headers=hdr).status_code == 200, url


def test_decisions_follow_the_answer_and_lengths_come_back(svc: Service, officer: str) -> None:
    s = _with_card()
    with _answering(svc, s, s.label):
        firearm = svc.upload_photo(officer, _jpeg(s))
    with _answering(svc, s, "no_firearm"):
        benign = svc.upload_photo(officer, _jpeg(s))
    with _answering(svc, s, "part_only"):
        part = svc.upload_photo(officer, _jpeg(s))
    p = firearm["photo"]
    assert (firearm["decision"], p["answer"], p["band"]) == ("alarm", s.label, "confident")
    assert (benign["decision"], benign["photo"]["answer"], benign["photo"]["build"]) == ("clear", "no_firearm", None)
    assert part["decision"] == "alarm" and part["photo"]["answer"] == "part_only"
    assert p["reference"] == "card" and p["overall_length"] is not None and s.length_mm
    assert abs(p["overall_length"]["mm"] - s.length_mm) <= 0.08 * s.length_mm, (p["overall_length"], s.length_mm)
    assert p["overall_length"]["plus_minus_mm"] > 0 and len(p["card_corners"]) == 4
    h, w = s.image.shape[:2]
    assert all(-2 <= x <= w + 2 and -2 <= y <= h + 2 for x, y in p["card_corners"])
    items = svc.client.get("/v1/scans?kind=photo&decision=alarm&limit=500", headers=svc.as_(officer)).json()["items"]
    row = next(i for i in items if i["id"] == firearm["id"])
    assert row["kind"] == "photo" and row["answer"] == s.label and row["band"] == "confident" and row["classes"] == [s.label]


def test_photo_decision_mapping() -> None:
    def result(answer: str, band: str) -> PhotoResult:
        return PhotoResult(
            width=8,
            height=8,
            answer=answer,
            label=answer if band != "uncertain" else "revolver",
            probability=0.5,
            band=band,
            top=[Guess(label="revolver", probability=0.5)],  # type: ignore[arg-type]
            model_name="m",
            model_version="1",
            latency_ms=1.0,
        )

    assert photo_decision(result("revolver", "confident")) == "alarm"
    assert photo_decision(result("part_only", "probable")) == "alarm"
    assert photo_decision(result("no_firearm", "confident")) == "clear"
    assert photo_decision(result("uncertain", "uncertain")) == "uncertain"


def test_a_large_jpeg_is_decoded_reduced_but_answered_in_its_own_pixels(svc: Service) -> None:
    s = _with_card()
    big = cv2.resize(s.image, None, fx=4, fy=4, interpolation=cv2.INTER_CUBIC)
    loaded = svc.ctx.models.photo_models[svc.ctx.models.photo_default or ""]
    oracle = LoadedPhotoModel(loaded.key, _oracle(loaded.classifier, s, s.label), loaded.path, loaded.sha256)
    done = classify_bytes(oracle, encode(big, ".jpg", cv2.IMWRITE_JPEG_QUALITY, 90), "big.jpg", 40_000_000, 320)
    h, w = big.shape[:2]
    assert (done.result.width, done.result.height) == (w, h)
    small = classify_bytes(oracle, _jpeg(s), "small.jpg", 40_000_000, 320).result
    assert small.card_corners and done.result.card_corners and small.mm_per_px and done.result.mm_per_px
    assert np.allclose(np.array(done.result.card_corners), 4 * np.array(small.card_corners), atol=12)  # 3 small px
    assert done.result.mm_per_px == pytest.approx(small.mm_per_px / 4, rel=0.05)
    assert done.result.overall_length and small.overall_length
    assert done.result.overall_length.mm == pytest.approx(small.overall_length.mm, rel=0.03)


@pytest.mark.parametrize("shape", [(3, 4000), (4000, 3)])
def test_a_very_long_thin_photo_is_answered(svc: Service, officer: str, shape: tuple[int, int]) -> None:
    """Scaled for the card search, its short side would round to 0 pixels (OpenCV refuses that)."""
    image = np.random.default_rng(0).integers(0, 255, (*shape, 3), np.uint8)
    loaded = svc.ctx.models.photo_models[svc.ctx.models.photo_default or ""]
    done = classify_bytes(loaded, encode(image, ".png"), "thin.png", 40_000_000, 320)
    assert (done.result.height, done.result.width) == shape and done.result.length_note
    scan = svc.upload_photo(officer, encode(image, ".jpg", cv2.IMWRITE_JPEG_QUALITY, 90), "thin.jpg")
    assert (scan["height"], scan["width"]) == shape and scan["kind"] == "photo"


def test_bad_kind_and_wrong_model_are_422(svc: Service, officer: str) -> None:
    c, h = svc.client, svc.as_(officer)
    photo = {"file": ("p.jpg", _jpeg(render_photo(1)), "image/jpeg")}
    r = c.post("/v1/scans", files=photo, data={"kind": "video"}, headers=h)
    assert r.status_code == 422 and "'xray' or 'photo'" in r.text, r.text
    r = c.post("/v1/scans", files=photo, data={"kind": "photo", "model": svc.ctx.models.default}, headers=h)
    assert r.status_code == 422 and "X-ray model" in r.json()["detail"]
    r = c.post("/v1/scans", files=photo, data={"kind": "xray", "model": svc.ctx.models.photo_default}, headers=h)
    assert r.status_code == 422 and "photo model" in r.json()["detail"]
    r = c.post("/v1/scans", files={"file": ("notes.txt", b"not an image", "text/plain")}, data={"kind": "photo"}, headers=h)
    assert r.status_code == 415 and "not a decodable image" in r.json()["detail"]
    assert c.get("/v1/scans?kind=video", headers=h).status_code == 422


def test_xray_uploads_are_unchanged_beside_a_photo_model(svc: Service, officer: str) -> None:
    plain = svc.upload(officer, sample("threat"))
    explicit = svc.client.post(
        "/v1/scans", files={"file": ("a.png", sample("threat"), "image/png")}, data={"kind": "xray"}, headers=svc.as_(officer)
    )
    assert explicit.status_code == 201
    for scan in (plain, explicit.json()):
        assert scan["kind"] == "xray" and scan["photo"] is None and scan["decision"] == "alarm" and scan["detections"]
        assert scan["model_name"] == svc.ctx.models.default


def test_history_filters_by_kind(svc: Service) -> None:
    c, who = svc.client, svc.add_user("officer")
    svc.upload(who, sample("threat"))
    for seed in (2, 3):
        svc.upload_photo(who, _jpeg(render_photo(seed)))
    h = svc.as_(who)
    photos, xrays = c.get("/v1/scans?kind=photo", headers=h).json(), c.get("/v1/scans?kind=xray", headers=h).json()
    assert photos["total"] == 2 and all(i["kind"] == "photo" and i["answer"] and i["band"] for i in photos["items"])
    assert xrays["total"] == 1 and xrays["items"][0]["kind"] == "xray" and xrays["items"][0]["answer"] is None
    assert c.get("/v1/scans", headers=h).json()["total"] == 3


def test_models_list_both_tasks_and_keep_a_default_each(svc: Service, officer: str) -> None:
    c, admin = svc.client, svc.as_("chief")
    listed = c.get("/v1/models", headers=svc.as_(officer)).json()
    tasks = {m["name"]: m["task"] for m in listed["models"]}
    assert tasks[listed["default"]] == "detect" and tasks[listed["default_photo"]] == "photo"
    assert listed["kinds"] == ["xray", "photo"] and listed["notes"] == []
    photo = next(m for m in listed["models"] if m["task"] == "photo")
    assert photo["kind"] == "photo" and "no_firearm" in photo["classes"] and {"confident", "probable"} <= set(photo["thresholds"])
    after = c.put("/v1/models/default", json={"name": photo["name"]}, headers=admin).json()
    assert after["default"] == listed["default"] and after["default_photo"] == photo["name"]
    reloaded = c.post("/v1/models/reload", headers=admin).json()
    assert (reloaded["default"], reloaded["default_photo"]) == (listed["default"], listed["default_photo"])
    ready = c.get("/readyz").json()
    assert ready["kinds"] == ["xray", "photo"] and ready["default_photo_model"] == photo["name"] and "note" not in ready
    body = c.get("/metrics", headers=admin).text
    assert f'armscan_model_info{{name="{photo["name"]}"' in body


def test_photo_feedback_is_checked_stored_and_exported_apart(svc: Service, officer: str) -> None:
    c, h = svc.client, svc.as_(officer)
    s = _with_card()
    unsure = svc.upload_photo(officer, _jpeg(render_photo(4)))
    with _answering(svc, s, s.label):
        sure = svc.upload_photo(officer, _jpeg(s))
    xray = svc.upload(officer, sample())
    bad = [
        (unsure, {"photo": {"verdict": "confirmed"}}, "nothing to confirm"),
        (unsure, {"photo": {"verdict": "corrected"}}, "needs the right family"),
        (unsure, {"photo": {"verdict": "corrected", "family": "banana"}}, "unknown family"),
        (unsure, {"photo": {"verdict": "corrected", "family": "revolver", "build": "wood"}}, "unknown build"),
        (unsure, {"detections": [{"index": 0, "verdict": "confirmed"}]}, "no boxes"),
        (
            sure,
            {"photo": {"verdict": "confirmed", "family": "revolver" if s.label != "revolver" else "bolt_action"}},
            "use verdict 'corrected'",
        ),
        (xray, {"photo": {"verdict": "confirmed"}}, "X-ray scan"),
    ]
    for scan, body, reason in bad:
        r = c.post(f"/v1/scans/{scan['id']}/feedback", json=body, headers=h)
        assert r.status_code == 422 and reason in r.json()["detail"], (body, r.text)
    r = c.post(
        f"/v1/scans/{unsure['id']}/feedback",
        headers=h,
        json={"photo": {"verdict": "corrected", "family": "revolver", "build": "printed"}, "comment": "a 3D print"},
    )
    assert r.status_code == 201 and r.json()["photo"] == {"verdict": "corrected", "family": "revolver", "build": "printed"}
    r = c.post(f"/v1/scans/{sure['id']}/feedback", json={"photo": {"verdict": "confirmed"}}, headers=h)
    assert r.status_code == 201 and r.json()["photo"]["family"] == s.label  # the answer, filled in
    c.post(f"/v1/scans/{xray['id']}/feedback", json={"comment": "x-ray"}, headers=h)
    stored = c.get(f"/v1/scans/{unsure['id']}", headers=h).json()["feedback"]
    assert stored[0]["photo"]["family"] == "revolver" and stored[0]["detections"] == [] and stored[0]["missed"] == []

    def export(query: str) -> list[dict]:  # type: ignore[type-arg]
        r = c.get(f"/v1/feedback/export{query}", headers=svc.as_("chief"))
        return [json.loads(line) for line in r.text.splitlines()]

    default, photos = export(""), export("?kind=photo")
    assert xray["id"] in {x["scan"]["id"] for x in default}
    assert all(x["kind"] == "xray" and "detections" in x["result"] for x in default)  # what the X-ray importer reads
    mine = {x["scan"]["id"]: x for x in photos}
    assert {unsure["id"], sure["id"]} <= set(mine) and all(x["kind"] == "photo" for x in photos)
    assert mine[unsure["id"]]["feedback"]["photo"]["family"] == "revolver" and "answer" in mine[unsure["id"]]["result"]


def test_metrics_count_photos_by_answer_and_band(svc: Service, officer: str) -> None:
    svc.upload_photo(officer, _jpeg(render_photo(5)))
    body = svc.client.get("/metrics", headers=svc.as_(officer)).text
    assert 'armscan_photo_answers_total{answer="uncertain",band="uncertain"' in body  # the tiny model abstains
    assert 'armscan_inference_seconds_count{model="armscan_photo_small"}' in body


@pytest.fixture(scope="module")
def xray_only(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    """A models folder holding only the bundled detector (no photo model)."""
    models = tmp_path_factory.mktemp("xray-only-models")
    shutil.copy(DETECTOR, models / DETECTOR.name)
    yield from start_service("sqlite", tmp_path_factory.mktemp("xray-only"), models_dir=models)


def test_without_a_photo_model_photos_get_409_and_xray_works(xray_only: Service) -> None:
    svc, who = xray_only, xray_only.add_user("officer")
    c, h = svc.client, svc.as_(who)
    r = c.post("/v1/scans", files={"file": ("p.jpg", _jpeg(render_photo(1)), "image/jpeg")}, data={"kind": "photo"}, headers=h)
    assert r.status_code == 409 and "no photo model is loaded" in r.json()["detail"]
    ready = c.get("/readyz").json()
    assert ready["status"] == "ready" and ready["kinds"] == ["xray"] and ready["default_photo_model"] is None
    assert "X-ray scans only" in ready["note"]
    listed = c.get("/v1/models", headers=h).json()
    assert listed["default_photo"] is None and listed["kinds"] == ["xray"] and "409" in listed["notes"][0]
    assert all(m["task"] == "detect" for m in listed["models"])
    assert svc.upload(who, sample())["kind"] == "xray"


def _migrate(engine: object, revision: str, down: bool = False) -> None:
    from alembic import command
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as conn:  # type: ignore[attr-defined]
        cfg.attributes["connection"] = conn
        (command.downgrade if down else command.upgrade)(cfg, revision)


@pytest.mark.parametrize("db_kind", ["sqlite", "postgresql"])
def test_migration_0002_upgrades_a_0001_database(db_kind: str, tmp_path: Path, models_dir: Path) -> None:
    url = database_url(db_kind, tmp_path)
    engine = make_engine(url)
    _migrate(engine, "0001")
    with session_factory(engine)() as db:
        accounts.create_user(db, "olga", PASSWORD, "officer", "test")
        _, key = accounts.create_api_key(db, "olga", "test", "test")
        db.commit()
        uid = accounts.get_user(db, "olga").id
    result = {
        "source": "old.png",
        "width": 64,
        "height": 48,
        "detections": [],
        "flags": {},
        "decision": "clear",
        "model_name": "old",
        "model_version": "0",
        "latency_ms": 1.0,
    }
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO scans (id, created_at, user_id, filename, image_format, sha256, size_bytes, width, "
                "height, decision, classes, n_detections, result_json, model_name, model_version, latency_ms, "
                "total_ms, image_stored) VALUES ('old1', CURRENT_TIMESTAMP, :u, 'old.png', 'png', :h, 1, 64, 48, "
                "'clear', '', 0, :r, 'old', '0', 1.0, 2.0, :f)"
            ),
            {"u": uid, "h": "0" * 64, "r": json.dumps(result), "f": False},
        )
    engine.dispose()
    settings = Settings(data_dir=tmp_path / "data", database_url=url, models_dir=models_dir, workers=1)
    with TestClient(create_app(settings)) as c:  # migrates to the newest revision at start
        h = {"X-API-Key": key}
        old = c.get("/v1/scans/old1", headers=h).json()
        assert old["kind"] == "xray" and old["decision"] == "clear" and old["photo"] is None
        assert c.get("/v1/scans?kind=xray", headers=h).json()["total"] == 1
        assert c.get("/v1/scans?kind=photo", headers=h).json()["total"] == 0
        new = c.post(
            "/v1/scans", files={"file": ("p.jpg", _jpeg(render_photo(1)), "image/jpeg")}, data={"kind": "photo"}, headers=h
        )
        assert new.status_code == 201 and new.json()["kind"] == "photo"
    engine = make_engine(url)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT version_num FROM alembic_version")).scalar_one() == "0002"
    with session_factory(engine)() as db, pytest.raises(Exception, match="append-only"):  # the triggers still hold
        db.execute(text("UPDATE audit_log SET actor = 'someone-else' WHERE seq = 1"))
        db.commit()
    if db_kind == "sqlite":  # down (refused while photos are kept, as 0001 would misread them) and up again
        with pytest.raises(Exception, match="seizure photos"):
            _migrate(engine, "0001", down=True)
        with engine.begin() as conn:
            conn.execute(text("DELETE FROM scans WHERE kind = 'photo'"))
        _migrate(engine, "0001", down=True)
        upgrade(engine)
        with engine.connect() as conn:
            assert conn.execute(text("SELECT kind FROM scans WHERE id = 'old1'")).scalar_one() == "xray"
    engine.dispose()
