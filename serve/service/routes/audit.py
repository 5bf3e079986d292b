"""The audit trail (admin) and the feedback export for retraining (analyst)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import StreamingResponse
from sqlalchemy import select

from armscan.serve.service import audit
from armscan.serve.service.deps import AdminDep, AnalystDep, ContextDep, SessionDep
from armscan.serve.service.schemas import AuditOut, AuditVerifyOut, ScanKind
from armscan.serve.service.tables import AuditEntry, Feedback, Scan

router = APIRouter(prefix="/v1", tags=["audit"])


@router.get("/audit", response_model=list[AuditOut])
def list_audit(_: AdminDep, db: SessionDep, limit: Annotated[int, Query(ge=1, le=1000)] = 100,
               before: Annotated[int | None, Query(ge=1)] = None) -> list[AuditOut]:
    """The newest audit lines (``before``: page back from that sequence number)."""
    q = select(AuditEntry).order_by(AuditEntry.seq.desc()).limit(limit)
    if before:
        q = q.where(AuditEntry.seq < before)
    return [AuditOut(seq=e.seq, at=e.at, actor=e.actor, action=e.action, target=e.target, model=e.model,
                     details=json.loads(e.details_json), hash=e.hash) for e in db.scalars(q)]


@router.get("/audit/verify", response_model=AuditVerifyOut)
def verify_audit(_: AdminDep, db: SessionDep) -> AuditVerifyOut:
    """Recompute the hash chain; ``ok`` is false with the reasons if any line was changed or removed."""
    r = audit.verify(db)
    return AuditVerifyOut(ok=r.ok, entries=r.entries, problems=r.problems)


@router.get("/feedback/export", response_class=StreamingResponse,
            responses={200: {"content": {"application/x-ndjson": {}}}})
def export_feedback(principal: AnalystDep, ctx: ContextDep, db: SessionDep,
                    kind: Annotated[ScanKind, Query(description="xray (default): the input of 'armscan data import "
                                                                "feedback'; photo: seizure-photo verdicts")] = "xray",
                    ) -> StreamingResponse:
    """Every feedback on scans of one kind with the scan's result, one JSON object per line (input for retraining).
    A stored scan's ``image_path`` is absolute, so the importer finds it from any folder.

    X-ray rows carry a ScanResult and verdicts on its boxes; photo rows (``kind=photo``) a PhotoResult and a
    verdict on its family, so the default export never hands a photo to the X-ray importer.
    """
    audit.append(db, principal.username, "feedback.export", details={"kind": kind})
    db.commit()

    def rows() -> Iterator[str]:
        with ctx.sessions() as s:
            q = select(Feedback).join(Scan, Feedback.scan_id == Scan.id).where(Scan.kind == kind).order_by(Feedback.id)
            for f in s.scalars(q).yield_per(200):
                scan = f.scan
                yield json.dumps({"feedback_id": f.id, "created_at": f.created_at.isoformat(), "officer": f.user.username,
                                  "kind": scan.kind,
                                  "scan": {"id": scan.id, "kind": scan.kind, "sha256": scan.sha256, "filename": scan.filename,
                                           "width": scan.width, "height": scan.height, "image_stored": scan.image_stored,
                                           "image_path": str(ctx.store.original(scan.id, scan.image_format))
                                           if scan.image_stored else None},
                                  "result": json.loads(scan.result_json), "feedback": json.loads(f.body_json)}) + "\n"

    return StreamingResponse(rows(), media_type="application/x-ndjson",
                             headers={"Content-Disposition": 'attachment; filename="armscan-feedback.jsonl"'})
