"""The append-only audit log, chained by SHA-256: who did what, when, with which model.

Each line's hash covers its own fields and the previous line's hash, so changing, removing or
reordering any line breaks every hash after it. :func:`verify` recomputes the chain.
"""

from __future__ import annotations

import hashlib
import json
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from armscan.serve.service.tables import AuditEntry, AuditHead

GENESIS = "0" * 64
_lock = threading.Lock()  # one appender at a time in this process; the head row's lock covers other processes


def _digest(seq: int, at: str, actor: str, action: str, target: str, model: str, details_json: str, prev: str) -> str:
    body = json.dumps([seq, at, actor, action, target, model, details_json, prev], separators=(",", ":"))
    return hashlib.sha256(body.encode()).hexdigest()


def append(db: Session, actor: str, action: str, target: str = "", model: str = "",
           details: dict[str, Any] | None = None) -> AuditEntry:
    """Add one line in the caller's transaction (committed with it). Hold no other audit line open."""
    if db.get_bind().dialect.name == "sqlite":
        _lock_sqlite_head(db)
    with _lock:
        head = db.execute(select(AuditHead).where(AuditHead.id == 1).with_for_update()).scalar_one()
        seq = head.seq + 1
        at = datetime.now(UTC).isoformat(timespec="microseconds")
        details_json = json.dumps(details or {}, sort_keys=True, separators=(",", ":"))
        h = _digest(seq, at, actor, action, target, model, details_json, head.hash)
        entry = AuditEntry(seq=seq, at=at, actor=actor, action=action, target=target, model=model,
                           details_json=details_json, prev_hash=head.hash, hash=h)
        db.add(entry)
        head.seq, head.hash = seq, h
        db.flush()
        return entry


def _lock_sqlite_head(db: Session) -> None:
    """Take SQLite's write lock before the head is read: SQLite ignores FOR UPDATE, and pysqlite opens a
    transaction only at the first write, so two appenders could read the same head and take the same number.

    A no-op write to the head row waits (up to the busy timeout) for any other writer to commit, and then holds
    the lock until this transaction ends. It comes before ``_lock``, so that a thread that already holds the
    write lock never waits on ``_lock`` for a thread that waits on the write lock.
    """
    db.execute(update(AuditHead).where(AuditHead.id == 1).values(seq=AuditHead.seq)
               .execution_options(synchronize_session=False))


@dataclass
class VerifyReport:
    """The outcome of checking the chain."""

    ok: bool
    entries: int
    problems: list[str]


def verify(db: Session) -> VerifyReport:
    """Recompute every hash in order; report gaps, edits and a head that does not match the last line."""
    problems: list[str] = []
    prev, expected_seq, n = GENESIS, 1, 0
    for e in db.execute(select(AuditEntry).order_by(AuditEntry.seq)).scalars():
        n += 1
        if e.seq != expected_seq:
            problems.append(f"line {expected_seq} is missing (next line is {e.seq})")
        if e.prev_hash != prev:
            problems.append(f"line {e.seq}: does not follow the line before it (prev_hash mismatch)")
        if _digest(e.seq, e.at, e.actor, e.action, e.target, e.model, e.details_json, e.prev_hash) != e.hash:
            problems.append(f"line {e.seq}: contents changed after it was written (hash mismatch)")
        prev, expected_seq = e.hash, e.seq + 1
    head = db.get(AuditHead, 1)
    if head is None or head.hash != prev or head.seq != expected_seq - 1:
        problems.append("the log's head does not match its last line (lines removed from the end?)")
    return VerifyReport(ok=not problems, entries=n, problems=problems)
