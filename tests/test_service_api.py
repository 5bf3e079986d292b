"""The service's HTTP API: every route, every role and the bad inputs, on SQLite and on PostgreSQL."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import cv2
import numpy as np
import pytest
from service_helpers import PASSWORD, Service, encode, gif, png_header_only, sample, start_service
from sqlalchemy import text

from armscan.serve.service.ratelimit import RateLimiter

pytestmark = pytest.mark.filterwarnings("ignore::ResourceWarning")


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def svc(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    yield from start_service(request.param, tmp_path_factory.mktemp(request.param), max_upload_mb=2,
                             max_pixels=20_000_000, login_attempts_per_minute=6)


@pytest.fixture
def officer(svc: Service) -> str:
    return svc.add_user("officer")


def test_health_is_open_and_everything_else_needs_authentication(svc: Service) -> None:
    c = svc.client
    assert c.get("/healthz").json() == {"status": "ok"}
    ready = c.get("/readyz").json()
    assert ready["status"] == "ready" and ready["default_model"]
    assert c.get("/").status_code == 200 and c.get("/static/app.js").status_code == 200  # the sign-in page
    doc = c.get("/v1/openapi.json", headers=svc.as_("chief")).json()
    assert {"/v1/scans", "/v1/scans/{scan_id}/feedback", "/v1/models", "/metrics"} <= set(doc["paths"])
    checked = 0
    for path, ops in [*doc["paths"].items(), ("/v1/openapi.json", {"get": {}})]:
        if path in ("/healthz", "/readyz", "/v1/auth/login"):
            continue
        url = path.replace("{scan_id}", "x").replace("{username}", "chief").replace("{key_id}", "1")
        for method in ops:
            r = c.request(method.upper(), url)
            assert r.status_code == 401, (method, path, r.status_code)
            checked += 1
    assert checked >= 20
    assert c.get("/v1/scans", headers={"X-API-Key": "ak_wrong"}).status_code == 401


def test_sign_in_csrf_and_sign_out(svc: Service, officer: str) -> None:
    c = svc.client
    c.cookies.clear()
    assert c.post("/v1/auth/login", json={"username": officer, "password": "wrong-password!"}).status_code == 401
    r = c.post("/v1/auth/login", json={"username": officer.upper(), "password": PASSWORD})
    assert r.status_code == 200 and r.json()["role"] == "officer"
    assert "httponly" in r.headers["set-cookie"].lower() and "samesite=strict" in r.headers["set-cookie"].lower()
    csrf = r.json()["csrf_token"]
    assert c.get("/v1/auth/me").json()["username"] == officer
    upload = {"file": ("a.png", sample(), "image/png")}
    r = c.post("/v1/scans", files=upload)
    assert r.status_code == 403 and "X-CSRF-Token" in r.json()["detail"]
    assert c.post("/v1/scans", files=upload, headers={"X-CSRF-Token": "forged"}).status_code == 403
    assert c.post("/v1/scans", files=upload, headers={"X-CSRF-Token": csrf}).status_code == 201
    assert c.post("/v1/auth/logout", headers={"X-CSRF-Token": csrf}).status_code == 204
    assert c.get("/v1/auth/me").status_code == 401
    c.cookies.clear()


def test_sign_in_attempts_are_rate_limited(svc: Service) -> None:
    name = svc.add_user("officer")
    codes = [svc.client.post("/v1/auth/login", json={"username": name, "password": "not-the-password"}).status_code
             for _ in range(6)]
    assert codes[0] == 401 and codes[-1] == 429
    svc.ctx.login_limiter._buckets.clear()


def test_upload_screens_a_threat_and_serves_its_images(svc: Service, officer: str) -> None:
    scan = svc.upload(officer, sample("threat"), "parcel-17.png")
    assert scan["decision"] == "alarm" and scan["officer"] == officer and scan["filename"] == "parcel-17.png"
    assert (scan["width"], scan["height"]) == (640, 480) and len(scan["sha256"]) == 64
    d = scan["detections"][0]
    assert {"index", "box", "cls", "score", "build", "type", "level"} <= set(d) and d["level"] == "alarm"
    assert scan["model_name"] and scan["model_version"] and 0 < scan["latency_ms"] <= scan["total_ms"]
    assert any(scan["flags"].values())
    c, h = svc.client, svc.as_(officer)
    assert c.get(f"/v1/scans/{scan['id']}", headers=h).json()["detections"] == scan["detections"]
    for url in (scan["image_url"], scan["thumbnail_url"], scan["overlay_url"]):
        r = c.get(url, headers=h)
        assert r.status_code == 200, url
        img = cv2.imdecode(np.frombuffer(r.content, np.uint8), cv2.IMREAD_COLOR)
        assert img is not None and img.shape[1] in (640, 320), (url, img.shape if img is not None else None)
    assert svc.upload(officer, sample("clean"), "clean.png")["decision"] in ("clear", "uncertain")


def test_upload_accepts_jpeg_and_16_bit_tiff(svc: Service, officer: str) -> None:
    image = cv2.imdecode(np.frombuffer(sample(), np.uint8), cv2.IMREAD_COLOR)
    grey16 = (cv2.cvtColor(image, cv2.COLOR_BGR2GRAY).astype(np.uint16) * 257)
    for name, data in (("a.jpg", encode(image, ".jpg", cv2.IMWRITE_JPEG_QUALITY, 90)),
                       ("b.tiff", encode(grey16, ".tiff"))):
        scan = svc.upload(officer, data, name)
        assert (scan["width"], scan["height"]) == (640, 480), name


@pytest.mark.parametrize(("name", "data", "code", "reason"), [
    ("notes.txt", b"this is not an image at all", 415, "not a decodable image"),
    ("empty.png", b"", 415, "empty file"),
    ("cut.png", sample()[:4000], 422, "truncated or corrupt"),
    ("bomb.png", png_header_only(30000, 30000), 413, "pixel limit"),
    ("anim.gif", gif(), 415, "GIF images are not supported"),
    ("black.png", encode(np.zeros((480, 640, 3), np.uint8), ".png"), 422, "no image content: a blank or uniform frame"),
    ("tiny.png", encode(np.full((16, 16, 3), 90, np.uint8), ".png"), 422, "too small to screen"),
])
def test_bad_uploads_get_a_4xx_with_the_reason(svc: Service, officer: str, name: str, data: bytes, code: int,
                                               reason: str) -> None:
    r = svc.client.post("/v1/scans", files={"file": (name, data, "image/png")}, headers=svc.as_(officer))
    assert r.status_code == code and reason in r.json()["detail"], r.text


def test_a_model_fault_is_a_500_that_says_so_not_a_decision(svc: Service, officer: str,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    from armscan.inference.decode import ModelOutputError
    from armscan.inference.engine import Detector

    def broken(self: Detector, *args: object, **kwargs: object) -> None:
        raise ModelOutputError("output 'cls_logits' is not finite")

    monkeypatch.setattr(Detector, "detect", broken)
    r = svc.client.post("/v1/scans", files={"file": ("a.png", sample(), "image/png")}, headers=svc.as_(officer))
    assert r.status_code == 500 and "not screened, the model failed on it" in r.json()["detail"], r.text
    assert "not finite" in r.json()["detail"]


def test_oversized_and_malformed_requests(svc: Service, officer: str) -> None:
    c, h = svc.client, svc.as_(officer)
    big = np.random.default_rng(0).integers(0, 255, (1400, 1400, 3), np.uint8)
    r = c.post("/v1/scans", files={"file": ("big.png", encode(big, ".png"), "image/png")}, headers=h)
    assert r.status_code == 413 and "MiB" in r.json()["detail"]
    assert c.post("/v1/scans", data={"x": "1"}, headers=h).status_code == 422  # no file field
    r = c.post("/v1/scans", files={"file": ("a.png", sample(), "image/png")}, data={"model": "nope"}, headers=h)
    assert r.status_code == 422 and "unknown model" in r.json()["detail"]
    assert c.get("/v1/scans/doesnotexist", headers=h).status_code == 404
    assert c.get("/v1/scans?decision=maybe", headers=h).status_code == 422
    assert c.get("/v1/scans?limit=100000", headers=h).status_code == 422


def test_an_oversized_chunked_upload_gets_413(svc: Service, officer: str) -> None:
    """No Content-Length (Transfer-Encoding: chunked): the cap trips while the form is read, and still answers 413."""
    boundary = "armscan-test-boundary"

    def body() -> Iterator[bytes]:
        yield (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"big.png\"\r\n"
               "Content-Type: image/png\r\n\r\n").encode()
        for _ in range(5 * 4):  # 5 MiB in 256 KiB pieces, over the 2 MiB limit and the 1 MiB room for the form
            yield b"\0" * (1 << 18)
        yield f"\r\n--{boundary}--\r\n".encode()

    headers = {**svc.as_(officer), "Content-Type": f"multipart/form-data; boundary={boundary}"}
    r = svc.client.post("/v1/scans", content=body(), headers=headers)
    assert "content-length" not in r.request.headers and r.request.headers["transfer-encoding"] == "chunked"
    assert r.status_code == 413 and "MiB limit" in r.json()["detail"], r.text
    assert r.headers["x-content-type-options"] == "nosniff"
    metrics = svc.client.get("/metrics", headers=svc.as_(officer)).text
    assert 'armscan_http_requests_total{method="POST",route="/v1/scans",status="413"}' in metrics


def test_feedback_is_validated_stored_and_listed(svc: Service, officer: str) -> None:
    c, h = svc.client, svc.as_(officer)
    scan = svc.upload(officer, sample())
    url = f"/v1/scans/{scan['id']}/feedback"
    bad = [({"detections": [{"index": 99, "verdict": "confirmed"}]}, "does not exist"),
           ({"detections": [{"index": 0, "verdict": "confirmed", "cls": "banana"}]}, "unknown class"),
           ({"missed": [{"box": [0, 0, 5000, 10], "cls": "barrel"}]}, "outside"),
           ({"missed": [{"box": [10, 10, 5, 5], "cls": "barrel"}]}, "x0 < x1"),
           ({}, "empty feedback"),
           ({"detections": [{"index": 0, "verdict": "maybe"}]}, "")]
    for body, reason in bad:
        r = c.post(url, json=body, headers=h)
        assert r.status_code == 422 and reason in r.text, (body, r.text)
    body = {"detections": [{"index": 0, "verdict": "rejected", "cls": None}],
            "missed": [{"box": [10, 20, 60, 90], "cls": "magazine"}], "comment": "hair dryer, and a magazine below it"}
    r = c.post(url, json=body, headers=h)
    assert r.status_code == 201 and r.json()["officer"] == officer
    stored = c.get(f"/v1/scans/{scan['id']}", headers=h).json()["feedback"]
    assert len(stored) == 1 and stored[0]["missed"][0]["cls"] == "magazine" and stored[0]["comment"].startswith("hair")
    items = c.get("/v1/scans?limit=500", headers=h).json()["items"]
    assert next(i for i in items if i["id"] == scan["id"])["has_feedback"]


def test_roles_scope_history_and_administration(svc: Service) -> None:
    c = svc.client
    olga, ivan, ana = svc.add_user("officer"), svc.add_user("officer"), svc.add_user("analyst")
    s_olga = svc.upload(olga, sample())
    assert c.get(f"/v1/scans/{s_olga['id']}", headers=svc.as_(ivan)).status_code == 404
    assert c.get(f"/v1/scans/{s_olga['id']}/image", headers=svc.as_(ivan)).status_code == 404
    assert c.post(f"/v1/scans/{s_olga['id']}/feedback", json={"comment": "x"}, headers=svc.as_(ivan)).status_code == 404
    assert c.get(f"/v1/scans?officer={olga}", headers=svc.as_(ivan)).status_code == 403
    assert all(i["officer"] == ivan for i in c.get("/v1/scans", headers=svc.as_(ivan)).json()["items"])
    seen = c.get(f"/v1/scans?officer={olga}", headers=svc.as_(ana)).json()
    assert seen["total"] == 1 and seen["items"][0]["id"] == s_olga["id"]
    assert c.get(f"/v1/scans/{s_olga['id']}", headers=svc.as_(ana)).status_code == 200
    for who, code in ((ivan, 403), (ana, 200)):
        assert c.get("/v1/feedback/export", headers=svc.as_(who)).status_code == code
    for who in (ivan, ana):
        assert c.get("/v1/users", headers=svc.as_(who)).status_code == 403
        assert c.get("/v1/audit", headers=svc.as_(who)).status_code == 403
        assert c.post("/v1/models/reload", headers=svc.as_(who)).status_code == 403
    admin = svc.as_("chief")
    r = c.post("/v1/users", json={"username": "Nina.K", "password": "short", "role": "officer"}, headers=admin)
    assert r.status_code == 422 and "at least" in r.json()["detail"]
    r = c.post("/v1/users", json={"username": "nina.k", "password": PASSWORD, "role": "officer"}, headers=admin)
    assert r.status_code == 201
    assert c.post("/v1/users", json={"username": "nina.k", "password": PASSWORD, "role": "officer"},
                  headers=admin).status_code == 409
    listed = {u["username"]: u for u in c.get("/v1/users", headers=admin).json()}
    assert listed["nina.k"]["role"] == "officer" and listed["chief"]["role"] == "admin" and "password_hash" not in listed["chief"]
    key = c.post("/v1/users/nina.k/api-keys", json={"name": "lane-3"}, headers=admin).json()
    assert key["key"].startswith("ak_") and c.get("/v1/auth/me", headers={"X-API-Key": key["key"]}).status_code == 200
    assert c.get("/v1/auth/me", headers={"Authorization": f"Bearer {key['key']}"}).status_code == 200
    assert all("key" not in k for k in c.get("/v1/api-keys", headers=admin).json())
    assert c.delete(f"/v1/api-keys/{key['id']}", headers=admin).json()["revoked"]
    assert c.get("/v1/auth/me", headers={"X-API-Key": key["key"]}).status_code == 401
    assert c.patch(f"/v1/users/{ivan}", json={"active": False}, headers=admin).json()["active"] is False
    assert c.get("/v1/auth/me", headers=svc.as_(ivan)).status_code == 401
    r = c.patch("/v1/users/chief", json={"role": "officer"}, headers=admin)
    assert r.status_code == 422 and "last active admin" in r.json()["detail"]
    assert c.patch("/v1/users/nobody", json={"active": False}, headers=admin).status_code == 404


def test_history_filters_and_pages(svc: Service) -> None:
    c, who = svc.client, svc.add_user("officer")
    for data in (sample("threat"), sample("threat"), sample("clean")):
        svc.upload(who, data)
    h = svc.as_(who)
    page = c.get("/v1/scans?limit=2", headers=h).json()
    assert page["total"] == 3 and len(page["items"]) == 2
    rest = c.get("/v1/scans?limit=2&offset=2", headers=h).json()["items"]
    assert len(rest) == 1 and rest[0]["id"] not in {i["id"] for i in page["items"]}
    alarms = c.get("/v1/scans?decision=alarm", headers=h).json()
    assert alarms["total"] == 2 and all(i["decision"] == "alarm" for i in alarms["items"])
    future = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    assert c.get("/v1/scans", params={"since": future}, headers=h).json()["total"] == 0
    assert c.get("/v1/scans", params={"until": future}, headers=h).json()["total"] == 3


def test_models_listing_default_and_reload(svc: Service, officer: str) -> None:
    c, admin = svc.client, svc.as_("chief")
    listed = c.get("/v1/models", headers=svc.as_(officer)).json()
    model = listed["models"][0]
    assert listed["default"] == model["name"] and "firearm" in model["classes"] and len(model["sha256"]) == 64
    assert "alarm" in model["thresholds"]
    assert c.put("/v1/models/default", json={"name": "ghost"}, headers=admin).status_code == 404
    assert c.put("/v1/models/default", json={"name": model["name"]}, headers=admin).json()["default"] == model["name"]
    assert c.post("/v1/models/reload", headers=admin).json()["default"] == model["name"]


def test_metrics_count_requests_decisions_and_model(svc: Service, officer: str) -> None:
    svc.upload(officer, sample())
    body = svc.client.get("/metrics", headers=svc.as_(officer)).text
    assert 'armscan_http_requests_total{method="POST",route="/v1/scans",status="201"}' in body
    assert "armscan_http_request_seconds_bucket" in body and 'armscan_decisions_total{decision="alarm"' in body
    assert "armscan_detections_total" in body and "armscan_model_info{" in body


def test_saturation_answers_503_with_retry_after(svc: Service, officer: str) -> None:
    pool = svc.ctx.pool
    pool.in_flight += pool.capacity  # every slot taken
    try:
        r = svc.client.post("/v1/scans", files={"file": ("a.png", sample(), "image/png")}, headers=svc.as_(officer))
    finally:
        pool.in_flight -= pool.capacity
    assert r.status_code == 503 and r.headers["retry-after"] == "1" and "busy" in r.json()["detail"]


def test_per_user_rate_limit(svc: Service) -> None:
    who, other = svc.add_user("officer"), svc.add_user("officer")
    saved = svc.ctx.limiter
    svc.ctx.limiter = RateLimiter(per_minute=60, burst=2)
    try:
        codes = [svc.client.get("/v1/auth/me", headers=svc.as_(who)).status_code for _ in range(3)]
        other_code = svc.client.get("/v1/auth/me", headers=svc.as_(other)).status_code
    finally:
        svc.ctx.limiter = saved
    assert codes == [200, 200, 429] and other_code == 200


def test_audit_log_is_append_only_and_chained(svc: Service, officer: str) -> None:
    c, admin = svc.client, svc.as_("chief")
    scan = svc.upload(officer, sample())
    lines = c.get("/v1/audit?limit=1000", headers=admin).json()
    mine = [e for e in lines if e["target"] == scan["id"]]
    assert mine and mine[0]["action"] == "scan.screen" and mine[0]["actor"] == officer and mine[0]["model"]
    assert c.get("/v1/audit/verify", headers=admin).json()["ok"]
    with svc.ctx.sessions() as db, pytest.raises(Exception, match="append-only"):
        db.execute(text("UPDATE audit_log SET actor = 'someone-else' WHERE seq = 1"))
        db.commit()


def test_feedback_export_is_jsonl_for_analysts(svc: Service, officer: str) -> None:
    scan = svc.upload(officer, sample())
    svc.client.post(f"/v1/scans/{scan['id']}/feedback", json={"comment": "checked"}, headers=svc.as_(officer))
    r = svc.client.get("/v1/feedback/export", headers=svc.as_("chief"))
    rows = [json.loads(line) for line in r.text.splitlines()]
    row = next(x for x in rows if x["scan"]["id"] == scan["id"])
    assert row["feedback"]["comment"] == "checked" and row["result"]["decision"] == scan["decision"]
    assert Path(row["scan"]["image_path"]).is_file()


def test_history_times_without_a_zone_are_taken_as_utc(svc: Service) -> None:
    c, who = svc.client, svc.add_user("officer")
    svc.upload(who, sample())
    h, now = svc.as_(who), datetime.now(UTC)
    past, future = (now - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%S"), (now + timedelta(hours=1)).strftime(
        "%Y-%m-%dT%H:%M:%S")
    for zone in ("", "Z"):  # naive (was a 500) and explicit UTC
        for params, total in (({"since": past}, 1), ({"since": future}, 0), ({"until": future}, 1),
                              ({"until": past}, 0), ({"since": past, "until": future}, 1)):
            params = {k: v + zone for k, v in params.items()}
            r = c.get("/v1/scans", params=params, headers=h)
            assert r.status_code == 200 and r.json()["total"] == total, (params, r.text)
    doc = c.get("/v1/openapi.json", headers=svc.as_("chief")).json()
    described = {p["name"]: p.get("description", "") for p in doc["paths"]["/v1/scans"]["get"]["parameters"]}
    assert "taken as UTC" in described["since"] and "taken as UTC" in described["until"]
