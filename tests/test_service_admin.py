"""The service's operator side: settings, the users/audit commands, tamper detection, retention, the pool."""

from __future__ import annotations

import asyncio
import io
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from service_helpers import PASSWORD, Service, database_url, sample, start_service
from sqlalchemy import text

from armscan.serve.cli import main
from armscan.serve.service import commands, security
from armscan.serve.service.app import create_app
from armscan.serve.service.db import make_engine, session_factory
from armscan.serve.service.retention import purge_expired
from armscan.serve.service.screening import BusyError, InferencePool
from armscan.serve.service.settings import Settings, get_settings

pytestmark = pytest.mark.filterwarnings("ignore::ResourceWarning")


@pytest.fixture(params=["sqlite", "postgresql"])
def db_env(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """ARMSCAN_* variables pointing the CLI at a fresh database; yields its URL."""
    url = database_url(request.param, tmp_path)
    monkeypatch.setenv("ARMSCAN_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("ARMSCAN_DATABASE_URL", url)
    get_settings.cache_clear()
    yield url
    get_settings.cache_clear()


def _cli(monkeypatch: pytest.MonkeyPatch, args: list[str], stdin: str = "") -> int:
    monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
    return main(args)


def test_settings_come_from_environment_and_dotenv(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".env").write_text("ARMSCAN_MAX_UPLOAD_MB=5\nARMSCAN_RETENTION=thumbnail\n")
    monkeypatch.setenv("ARMSCAN_DATA_DIR", str(tmp_path / "d"))
    s = Settings()
    assert s.max_upload_mb == 5 and s.retention == "thumbnail" and s.db_url == f"sqlite:///{tmp_path / 'd' / 'armscan.db'}"
    monkeypatch.setenv("ARMSCAN_RETENTION", "forever")
    with pytest.raises(ValueError, match="retention"):
        Settings()
    assert commands.ROLES == security.ROLES


def test_users_commands_and_api_key(db_env: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    assert _cli(monkeypatch, ["users", "create-admin", "--username", "chief", "--password-stdin"], "short\n") == 2
    assert "at least" in capsys.readouterr().err
    assert _cli(monkeypatch, ["users", "create-admin", "--username", "chief", "--password-stdin"], PASSWORD + "\n") == 0
    assert _cli(monkeypatch, ["users", "create", "--username", "olga", "--role", "officer", "--password-stdin"],
                PASSWORD + "\n") == 0
    assert _cli(monkeypatch, ["users", "create", "--username", "olga", "--role", "officer", "--password-stdin"],
                PASSWORD + "\n") == 2
    assert "already exists" in capsys.readouterr().err
    assert _cli(monkeypatch, ["users", "api-key", "olga", "--name", "lane-1"]) == 0
    key = capsys.readouterr().out.strip().splitlines()[-1]
    assert _cli(monkeypatch, ["users", "api-key", "nobody"]) == 2
    assert _cli(monkeypatch, ["users", "list"]) == 0
    assert "olga" in capsys.readouterr().out
    with TestClient(create_app(get_settings())) as c:
        me = c.get("/v1/auth/me", headers={"X-API-Key": key}).json()
        assert me == {"username": "olga", "role": "officer", "csrf_token": None}


def test_audit_verify_detects_tampering(db_env: str, monkeypatch: pytest.MonkeyPatch,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    for name in ("chief", "anna"):
        role = ["create-admin"] if name == "chief" else ["create", "--role", "analyst"]
        assert _cli(monkeypatch, ["users", *role, "--username", name, "--password-stdin"], PASSWORD + "\n") == 0
    assert _cli(monkeypatch, ["audit", "verify"]) == 0
    assert "2 lines, chain intact" in capsys.readouterr().out
    engine = make_engine(db_env)
    with engine.begin() as conn:  # someone with database access removes the guard and edits history
        if engine.dialect.name == "sqlite":
            conn.execute(text("DROP TRIGGER audit_log_no_update"))
        else:
            conn.execute(text("DROP TRIGGER audit_log_append_only ON audit_log"))
        conn.execute(text("UPDATE audit_log SET details_json = '{\"role\":\"officer\"}' WHERE seq = 2"))
    engine.dispose()
    assert _cli(monkeypatch, ["audit", "verify"]) == 1
    out = capsys.readouterr().out
    assert "line 2: contents changed" in out and "CHAIN BROKEN" in out


def test_retention_keeps_hash_and_thumbnail_only(tmp_path: Path) -> None:
    it = start_service("sqlite", tmp_path, retention="thumbnail")
    svc: Service = next(it)
    who = svc.add_user("officer")
    scan = svc.upload(who, sample())
    assert not scan["image_stored"] and len(scan["sha256"]) == 64
    c, h = svc.client, svc.as_(who)
    assert c.get(scan["image_url"], headers=h).status_code == 410
    assert c.get(scan["thumbnail_url"], headers=h).status_code == 200
    assert c.get(scan["overlay_url"], headers=h).headers["content-type"] == "image/png"
    assert not list((tmp_path / "data" / "scans").rglob("*.png"))
    it.close()


def test_retention_days_drops_old_full_scans(tmp_path: Path) -> None:
    it = start_service("sqlite", tmp_path)
    svc: Service = next(it)
    who = svc.add_user("officer")
    old, new = svc.upload(who, sample()), svc.upload(who, sample())
    with svc.ctx.sessions() as db:
        db.execute(text("UPDATE scans SET created_at = :t WHERE id = :i"),
                   {"t": (datetime.now(UTC) - timedelta(days=40)).replace(tzinfo=None), "i": old["id"]})
        db.commit()
    assert purge_expired(svc.ctx.sessions, svc.ctx.store, days=30) == 1
    h = svc.as_(who)
    assert svc.client.get(old["image_url"], headers=h).status_code == 410
    assert svc.client.get(new["image_url"], headers=h).status_code == 200
    assert svc.client.get(f"/v1/scans/{old['id']}", headers=h).json()["sha256"] == old["sha256"]
    actions = [e["action"] for e in svc.client.get("/v1/audit", headers=svc.as_("chief")).json()]
    assert "retention.purge" in actions
    it.close()


def test_inference_pool_refuses_when_full_and_times_out() -> None:
    pool = InferencePool(workers=1, queue_per_worker=1)
    gate = threading.Event()

    async def scenario() -> None:
        first = asyncio.ensure_future(pool.run(gate.wait, timeout_s=5))
        second = asyncio.ensure_future(pool.run(lambda: 7, timeout_s=5))
        await asyncio.sleep(0.05)
        with pytest.raises(BusyError):
            await pool.run(lambda: 0, timeout_s=5)
        gate.set()
        assert await first is True and await second == 7
        with pytest.raises(TimeoutError):
            await pool.run(lambda: time.sleep(0.5), timeout_s=0.05)

    asyncio.run(scenario())
    pool.shutdown()
    assert pool.in_flight == 0


def test_database_sessions_are_timezone_aware(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'a.db'}"
    from armscan.serve.service.db import upgrade

    engine = make_engine(url)
    upgrade(engine)
    upgrade(engine)  # idempotent
    from armscan.serve.service import accounts

    with session_factory(engine)() as db:
        u = accounts.create_user(db, "tz-check", PASSWORD, "officer", "test")
        db.commit()
    with session_factory(engine)() as db:
        assert accounts.get_user(db, "tz-check").created_at.tzinfo is not None
        assert u.username == "tz-check"
    engine.dispose()


def test_concurrent_audit_appends_on_sqlite_take_consecutive_lines(tmp_path: Path) -> None:
    """Threads appending at once (some after only reading, some after writing) each get their own line."""
    from armscan.serve.service import audit
    from armscan.serve.service.db import upgrade
    from armscan.serve.service.tables import AuditEntry

    engine = make_engine(f"sqlite:///{tmp_path / 'a.db'}")
    upgrade(engine)
    sessions = session_factory(engine)
    threads, per_thread = 6, 8
    start, errors = threading.Barrier(threads), list[BaseException]()

    def worker(k: int) -> None:
        start.wait()
        try:
            for i in range(per_thread):
                with sessions() as db:
                    if k % 2:  # a write first: this session holds the write lock before it appends
                        db.execute(text("UPDATE audit_head SET hash = hash WHERE id = 1"))
                    else:  # only a read first, as a request's authentication does
                        db.execute(text("SELECT count(*) FROM audit_log")).scalar_one()
                    audit.append(db, f"t{k}", "test.concurrent", str(i))
                    time.sleep(0.005)  # hold the line uncommitted a moment, as a request does
                    db.commit()
        except BaseException as exc:
            errors.append(exc)

    pool = [threading.Thread(target=worker, args=(k,)) for k in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    assert not errors, errors
    with sessions() as db:
        seqs = [e.seq for e in db.query(AuditEntry).order_by(AuditEntry.seq)]
        report = audit.verify(db)
    assert seqs == list(range(1, threads * per_thread + 1))
    assert report.ok and report.entries == threads * per_thread, report.problems
    engine.dispose()


def test_polling_the_models_folder_keeps_the_admins_default_as_a_manual_reload_does(tmp_path: Path) -> None:
    import shutil

    from armscan.serve.service.settings import BUNDLED_MODELS

    models = tmp_path / "models"
    models.mkdir()
    for name in ("a.onnx", "b.onnx"):
        shutil.copy(BUNDLED_MODELS / "armscan-det.onnx", models / name)
    it = start_service("sqlite", tmp_path, models_dir=models, models_poll_s=0.1)
    svc: Service = next(it)
    try:
        c, h = svc.client, svc.as_("chief")
        listed = c.get("/v1/models", headers=h).json()
        chosen = next(m["name"] for m in listed["models"] if m["name"] != listed["default"])
        assert c.put("/v1/models/default", json={"name": chosen}, headers=h).json()["default"] == chosen
        assert c.post("/v1/models/reload", headers=h).json()["default"] == chosen
        shutil.copy(BUNDLED_MODELS / "armscan-det.onnx", models / "c.onnx")  # a new file: the service notices by itself

        def system_reloads() -> list[dict[str, object]]:
            return [e for e in c.get("/v1/audit", headers=h).json()
                    if (e["actor"], e["action"]) == ("system", "model.reload")]

        deadline = time.monotonic() + 60
        while not system_reloads() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert system_reloads() and system_reloads()[0]["target"] == chosen
        assert c.get("/v1/models", headers=h).json()["default"] == chosen
    finally:
        it.close()
