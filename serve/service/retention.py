"""Retention: after ``retention_days``, full scans are deleted; the record, hash and thumbnail stay."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from armscan.serve.service import audit
from armscan.serve.service.storage import ScanStore
from armscan.serve.service.tables import Scan


def purge_expired(sessions: sessionmaker[Session], store: ScanStore, days: float | None, batch: int = 500) -> int:
    """Drop full scans older than ``days`` (none if ``days`` is None); returns how many were dropped."""
    if days is None:
        return 0
    cutoff = datetime.now(UTC) - timedelta(days=days)
    dropped = 0
    while True:
        with sessions() as db:
            rows = db.scalars(select(Scan).where(Scan.image_stored, Scan.created_at < cutoff).limit(batch)).all()
            if not rows:
                return dropped
            for s in rows:
                store.drop_original(s.id, s.image_format)
                s.image_stored = False
            audit.append(db, "system", "retention.purge", details={"scans": [s.id for s in rows], "days": days})
            db.commit()
            dropped += len(rows)
