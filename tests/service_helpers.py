"""Shared by the service tests: database back-ends, a running app with users, and test images."""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, text

from armscan.serve.service import accounts
from armscan.serve.service.app import create_app
from armscan.serve.service.db import make_engine, session_factory, upgrade
from armscan.serve.service.deps import ServiceContext
from armscan.serve.service.settings import Settings

SAMPLES = Path(__file__).resolve().parent.parent / "datasets" / "samples"
PASSWORD = "Tr1cky-but-long-enough"
_TABLES = "audit_head, audit_log, feedback, scans, web_sessions, api_keys, users, alembic_version"


def database_url(kind: str, tmp: Path) -> str:
    """A fresh, empty database of ``kind`` (sqlite, or postgresql from ARMSCAN_TEST_POSTGRES_URL)."""
    if kind == "sqlite":
        return f"sqlite:///{tmp / 'armscan.db'}"
    url = os.environ.get("ARMSCAN_TEST_POSTGRES_URL")
    if not url:
        if os.environ.get("ARMSCAN_REQUIRE_POSTGRES") == "1":
            pytest.fail("ARMSCAN_REQUIRE_POSTGRES=1 but ARMSCAN_TEST_POSTGRES_URL is not set")
        pytest.skip("no PostgreSQL here (set ARMSCAN_TEST_POSTGRES_URL; .ci/run starts one)")
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text(f"DROP TABLE IF EXISTS {_TABLES} CASCADE"))
        conn.execute(text("DROP FUNCTION IF EXISTS armscan_audit_append_only() CASCADE"))
    engine.dispose()
    return url


@dataclass
class Service:
    """A running app, its settings, and one API key per role."""

    client: TestClient
    settings: Settings
    keys: dict[str, str] = field(default_factory=dict)

    @property
    def ctx(self) -> ServiceContext:
        ctx: ServiceContext = self.client.app.state.ctx  # type: ignore[attr-defined]
        return ctx

    def as_(self, who: str) -> dict[str, str]:
        """Headers that authenticate as user ``who``."""
        return {"X-API-Key": self.keys[who]}

    def add_user(self, role: str, name: str | None = None) -> str:
        """A new user with an API key; returns the user name."""
        name = name or f"{role}-{secrets.token_hex(3)}"
        with self.ctx.sessions() as db:
            accounts.create_user(db, name, PASSWORD, role, "test")
            _, key = accounts.create_api_key(db, name, "test", "test")
            db.commit()
        self.keys[name] = key
        return name

    def upload(self, who: str, data: bytes, name: str = "scan.png") -> dict:  # type: ignore[type-arg]
        r = self.client.post("/v1/scans", files={"file": (name, data, "application/octet-stream")}, headers=self.as_(who))
        assert r.status_code == 201, r.text
        return r.json()  # type: ignore[no-any-return]

    def upload_photo(self, who: str, data: bytes, name: str = "photo.jpg") -> dict:  # type: ignore[type-arg]
        """Send a seizure photo (kind=photo); asserts 201."""
        r = self.client.post(
            "/v1/scans", files={"file": (name, data, "image/jpeg")}, data={"kind": "photo"}, headers=self.as_(who)
        )
        assert r.status_code == 201, r.text
        return r.json()  # type: ignore[no-any-return]


def start_service(db_kind: str, tmp: Path, **overrides: object) -> Iterator[Service]:
    """Migrate a fresh database, add an admin, start the app (lifespan included)."""
    url = database_url(db_kind, tmp)
    settings = Settings(data_dir=tmp / "data", database_url=url, workers=2, **overrides)  # type: ignore[arg-type]
    engine = make_engine(url)
    upgrade(engine)
    with session_factory(engine)() as db:
        accounts.create_user(db, "chief", PASSWORD, "admin", "test")
        db.commit()
    engine.dispose()
    with TestClient(create_app(settings)) as client:
        svc = Service(client, settings)
        with svc.ctx.sessions() as db:
            _, svc.keys["chief"] = accounts.create_api_key(db, "chief", "test", "test")
            db.commit()
        yield svc


def sample(kind: str = "threat") -> bytes:
    """A bundled generated scan, as PNG bytes: the one the bundled model alarms on most clearly (an SMG,
    its trigger group and ammunition), or the first clean one."""
    if kind == "threat":
        return (SAMPLES / "images" / "scan_300000005.png").read_bytes()
    import json

    coco = json.loads((SAMPLES / "annotations.json").read_text())
    boxed = {a["image_id"] for a in coco["annotations"]}
    for im in coco["images"]:
        if (im["id"] in boxed) == (kind == "threat"):
            return (SAMPLES / im["file_name"]).read_bytes()
    raise AssertionError(f"no {kind} sample")


def encode(image: np.ndarray, ext: str, *params: int) -> bytes:
    ok, buf = cv2.imencode(ext, image, list(params))
    assert ok
    return bytes(buf.tobytes())


def png_header_only(width: int, height: int) -> bytes:
    """A PNG whose header claims ``width`` x ``height`` but holds almost no data (a decompression bomb's shape)."""
    import struct
    import zlib

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


def gif() -> bytes:
    """A small valid GIF (a format the service does not take)."""
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (8, 8), (200, 10, 10)).save(buf, format="GIF")
    return buf.getvalue()
