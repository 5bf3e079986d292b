"""Officers' feedback on a scan: verdicts on its boxes and missed boxes (X-ray), or a verdict on a photo's family.

A photo's feedback is stored in the same structure as a scan's, with empty ``detections`` and ``missed`` and a
``photo`` verdict whose ``family`` is always filled in, so nothing reads it as X-ray boxes; the feedback export
hands out one kind at a time (X-ray by default, the input of ``armscan data import feedback``).
"""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, status

from armscan.datasets.taxonomy import BUILDS, CLASSES, PHOTO_CLASSES
from armscan.inference.photo import PhotoResult
from armscan.inference.result import ScanResult
from armscan.serve.service import audit
from armscan.serve.service.deps import ContextDep, PrincipalDep, ServiceContext, SessionDep
from armscan.serve.service.routes.scans import feedback_out, visible_scan
from armscan.serve.service.schemas import FeedbackIn, FeedbackOut
from armscan.serve.service.tables import Feedback, Scan

router = APIRouter(prefix="/v1/scans", tags=["feedback"])


@router.post("/{scan_id}/feedback", response_model=FeedbackOut, status_code=status.HTTP_201_CREATED)
def post_feedback(scan_id: str, body: FeedbackIn, principal: PrincipalDep, db: SessionDep, ctx: ContextDep) -> FeedbackOut:
    """Confirm or reject detections and add missed boxes (X-ray), or confirm or correct a photo's family (``photo``);
    every submission is kept and audited."""
    scan = visible_scan(db, scan_id, principal)
    if not body.detections and not body.missed and not body.comment and body.photo is None:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, "empty feedback: give a verdict, a missed box or a comment")
    if scan.kind == "photo":
        body = _checked_photo_feedback(ctx, scan, body)
    else:
        _check_xray_feedback(ctx, scan, body)
    fb = Feedback(scan_id=scan.id, user_id=principal.user.id, body_json=body.model_dump_json())
    db.add(fb)
    db.flush()
    details: dict[str, object] = {"feedback_id": fb.id}
    if body.photo is not None:
        details |= {"photo": body.photo.verdict, "family": body.photo.family}
    else:
        details |= {
            "confirmed": sum(v.verdict == "confirmed" for v in body.detections),
            "rejected": sum(v.verdict == "rejected" for v in body.detections),
            "missed": len(body.missed),
        }
    audit.append(db, principal.username, "scan.feedback", scan.id, f"{scan.model_name} {scan.model_version}", details)
    db.commit()
    db.refresh(fb)
    return feedback_out(fb)


def _check_xray_feedback(ctx: ServiceContext, scan: Scan, body: FeedbackIn) -> None:
    if body.photo is not None:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT,
            "this is an X-ray scan: confirm or reject its detections; 'photo' is for seizure photos",
        )
    result = ScanResult.model_validate_json(scan.result_json)
    classes = _classes_for(ctx, scan)
    for v in body.detections:
        if v.index >= len(result.detections):
            raise HTTPException(
                status.HTTP_422_UNPROCESSABLE_CONTENT,
                f"detection {v.index} does not exist; this scan lists {len(result.detections)}",
            )
        if v.cls is not None and v.cls not in classes:
            raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, f"unknown class {v.cls!r}; use one of {sorted(classes)}")
    for mb in body.missed:
        if mb.cls not in classes:
            raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, f"unknown class {mb.cls!r}; use one of {sorted(classes)}")
        if mb.box[2] > scan.width + 1 or mb.box[3] > scan.height + 1:
            raise HTTPException(
                status.HTTP_422_UNPROCESSABLE_CONTENT, f"box {mb.box} lies outside the {scan.width}x{scan.height} scan"
            )


def _checked_photo_feedback(ctx: ServiceContext, scan: Scan, body: FeedbackIn) -> FeedbackIn:
    """The photo feedback to store, with the family filled in when the answer is confirmed; 422 if it does not fit."""
    if body.detections or body.missed:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT,
            "a seizure photo has no boxes: confirm or correct its answer with photo {verdict, family}, or leave a comment",
        )
    v = body.photo
    if v is None:
        return body
    result = PhotoResult.model_validate_json(scan.result_json)
    if v.verdict == "confirmed":
        if result.answer == "uncertain":
            raise HTTPException(
                status.HTTP_422_UNPROCESSABLE_CONTENT,
                "the model gave no answer for this photo "
                "(uncertain), so there is nothing to confirm; identify it: verdict 'corrected' and its family",
            )
        if v.family not in (None, result.answer):
            raise HTTPException(
                status.HTTP_422_UNPROCESSABLE_CONTENT,
                f"'confirmed' confirms the answer {result.answer!r}; to give another family use verdict 'corrected'",
            )
        family = result.answer
    elif not v.family:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, "verdict 'corrected' needs the right family")
    else:
        family = v.family
    classes, builds = _photo_vocabulary(ctx, scan)
    if family not in classes:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, f"unknown family {family!r}; use one of {classes}")
    if v.build is not None and v.build not in builds:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, f"unknown build {v.build!r}; use one of {builds}")
    return body.model_copy(update={"photo": v.model_copy(update={"family": family})})


def _classes_for(ctx: ServiceContext, scan: Scan) -> set[str]:
    """The classes of the model that screened ``scan`` (the taxonomy's if that model is no longer loaded)."""
    for m in ctx.models.models.values():
        if m.detector.metadata.name == scan.model_name:
            return set(m.detector.metadata.classes)
    return set(CLASSES)


def _photo_vocabulary(ctx: ServiceContext, scan: Scan) -> tuple[list[str], list[str]]:
    """The classes and builds of the photo model that classified ``scan`` (the taxonomy's if it is gone)."""
    for m in ctx.models.photo_models.values():
        if m.classifier.metadata.name == scan.model_name:
            return m.classifier.metadata.classes, m.classifier.metadata.builds
    return list(PHOTO_CLASSES), list(BUILDS)
