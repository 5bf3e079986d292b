"""Upload and screen X-ray scans or classify seizure photos, fetch results and images, and browse the history.

``POST /v1/scans`` takes ``kind``: ``xray`` (the default) or ``photo``. A photo's decision, for the history's
filters, is ``alarm`` for a firearm family or a loose part answered confidently or probably, ``clear`` for no
firearm, and ``uncertain`` when the model abstains (an officer or expert must identify it). ``kind=photo``
while no photo model is loaded answers 409 (a state of the service, not a reason to retry like 503).
"""

from __future__ import annotations

import hashlib
import json
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from functools import partial
from typing import Annotated

import cv2
import numpy as np
from fastapi import APIRouter, File, Form, HTTPException, Query, Response, UploadFile, status
from fastapi.concurrency import run_in_threadpool
from numpy.typing import NDArray
from sqlalchemy import func, select
from sqlalchemy.orm import Session, selectinload

from armscan.datasets.readers import ImageReadError, decode_image, probe_image
from armscan.inference.decode import ModelOutputError
from armscan.inference.engine import UnscreenableImageError
from armscan.inference.overlay import render_overlay, render_photo_overlay
from armscan.inference.photo import PhotoResult
from armscan.inference.result import ScanResult
from armscan.serve.service import audit
from armscan.serve.service.deps import ContextDep, PrincipalDep, ServiceContext, SessionDep
from armscan.serve.service.schemas import (
    DetectionOut,
    FeedbackOut,
    ScanKind,
    ScanOut,
    ScanPage,
    ScanSummary,
)
from armscan.serve.service.screening import (
    BusyError,
    Classified,
    LoadedModel,
    LoadedPhotoModel,
    NoModelError,
    Screened,
    UnknownModelError,
    classify_bytes,
    screen_bytes,
)
from armscan.serve.service.security import role_at_least
from armscan.serve.service.tables import Feedback, Scan, User

_NAIVE_UTC = "ISO 8601; a time without a zone (2024-01-01T00:00:00) is taken as UTC"


def _utc(t: datetime) -> datetime:
    """``t`` with its zone, or as UTC when it has none (the database compares aware times)."""
    return t if t.tzinfo else t.replace(tzinfo=UTC)


router = APIRouter(prefix="/v1/scans", tags=["scans"])
_CHUNK = 1 << 20


def feedback_out(f: Feedback) -> FeedbackOut:
    """The response body of stored feedback."""
    body = json.loads(f.body_json)
    return FeedbackOut(id=f.id, scan_id=f.scan_id, officer=f.user.username, created_at=f.created_at, **body)


def _scan_out(s: Scan) -> ScanOut:
    base = f"/v1/scans/{s.id}"
    photo, decision, flags, dets = None, s.decision, dict[str, bool](), list[DetectionOut]()
    if s.kind == "photo":
        photo = PhotoResult.model_validate_json(s.result_json)
    else:
        r = ScanResult.model_validate_json(s.result_json)
        decision, flags = r.decision, r.flags
        dets = [DetectionOut(index=k, box=d.box, cls=d.cls, score=d.score, build=d.build, build_score=d.build_score,
                             type=d.type, type_score=d.type_score, level=d.level) for k, d in enumerate(r.detections)]
    return ScanOut(id=s.id, kind=s.kind, created_at=s.created_at, officer=s.user.username, filename=s.filename,
                   sha256=s.sha256, width=s.width, height=s.height, decision=decision, flags=flags, detections=dets,
                   photo=photo, model_name=s.model_name, model_version=s.model_version, latency_ms=s.latency_ms,
                   total_ms=s.total_ms, image_stored=s.image_stored, image_url=f"{base}/image",
                   thumbnail_url=f"{base}/thumbnail.jpg", overlay_url=f"{base}/overlay.png",
                   feedback=[feedback_out(f) for f in s.feedback])


def visible_scan(db: Session, scan_id: str, principal: PrincipalDep) -> Scan:
    """The scan, if ``principal`` may see it (officers: their own); 404 otherwise."""
    scan = db.get(Scan, scan_id)
    if scan is None or (not role_at_least(principal.role, "analyst") and scan.user_id != principal.user.id):
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no scan {scan_id!r} that you may see")
    return scan


async def _read_capped(file: UploadFile, limit: int) -> bytes:
    parts, size = [], 0
    while chunk := await file.read(_CHUNK):
        size += len(chunk)
        if size > limit:
            raise HTTPException(status.HTTP_413_CONTENT_TOO_LARGE, f"upload larger than the {limit // (1 << 20)} MiB limit")
        parts.append(chunk)
    return b"".join(parts)


def _store(ctx: ServiceContext, principal: PrincipalDep, filename: str, fmt: str, data: bytes,
           done: Screened | Classified, t0: float) -> ScanOut:
    """Write the files, the row and the audit line (on a thread: disk and database)."""
    scan_id = uuid.uuid4().hex
    keep = ctx.settings.retention == "full"
    ctx.store.save(scan_id, fmt, data if keep else None, done.thumbnail_jpeg)
    r = done.result
    scan = Scan(id=scan_id, user_id=principal.user.id, filename=filename, image_format=fmt,
                sha256=hashlib.sha256(data).hexdigest(), size_bytes=len(data), width=r.width, height=r.height,
                result_json=r.model_dump_json(), model_name=r.model_name, model_version=r.model_version,
                latency_ms=r.latency_ms, total_ms=round((time.perf_counter() - t0) * 1000, 2), image_stored=keep)
    if isinstance(done, Classified):
        p = done.result
        scan.kind, scan.decision, scan.n_detections = "photo", done.decision, 0
        scan.classes = p.answer if done.decision == "alarm" else ""  # the answered family (or part_only)
        details = {"kind": "photo", "sha256": scan.sha256, "decision": done.decision, "answer": p.answer, "band": p.band}
    else:
        x = done.result
        scan.kind, scan.decision, scan.n_detections = "xray", x.decision, len(x.detections)
        scan.classes = ",".join(sorted({d.cls for d in x.detections}))[:255]
        details = {"sha256": scan.sha256, "decision": x.decision, "classes": scan.classes}
    with ctx.sessions() as db:
        db.add(scan)
        audit.append(db, principal.username, "scan.screen", scan_id, f"{r.model_name} {r.model_version}", details)
        db.commit()
        scan.user = db.get(User, principal.user.id)  # type: ignore[assignment]
        return _scan_out(scan)


def _model_for(ctx: ServiceContext, kind: ScanKind, name: str | None) -> LoadedModel | LoadedPhotoModel:
    try:
        return ctx.models.get_photo(name) if kind == "photo" else ctx.models.get(name)
    except NoModelError as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from exc
    except UnknownModelError as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(exc.args[0])) from exc


@router.post("", response_model=ScanOut, status_code=status.HTTP_201_CREATED,
             responses={409: {"description": "no model of that kind is loaded (e.g. kind=photo without a photo model)"},
                        413: {"description": "file or image too large"}, 415: {"description": "not a supported image"},
                        422: {"description": "unknown kind or model, or the image cannot be decoded"},
                        503: {"description": "busy; see Retry-After"}})
async def upload_scan(principal: PrincipalDep, ctx: ContextDep, file: Annotated[UploadFile, File()],
                      model: Annotated[str | None, Form()] = None,
                      kind: Annotated[ScanKind, Form(description="xray: an X-ray scan (default); photo: a seizure "
                                                                 "photo")] = "xray") -> ScanOut:
    """Screen one JPEG, PNG, TIFF (8- or 16-bit), BMP or DICOS X-ray scan, or classify one seizure photo
    (``kind=photo``: family, build and lengths), and store the result."""
    t0 = time.perf_counter()
    m = ctx.metrics
    name = (file.filename or "upload")[-255:]
    data = await _read_capped(file, int(ctx.settings.max_upload_mb * (1 << 20)))
    loaded = _model_for(ctx, kind, model)
    s = ctx.settings
    work: Callable[[], Screened | Classified] = (
        partial(classify_bytes, loaded, data, name, s.max_pixels, s.thumbnail_px) if isinstance(loaded, LoadedPhotoModel)
        else partial(screen_bytes, loaded, data, name, s.max_pixels, s.thumbnail_px))
    try:
        info = probe_image(data, name, ctx.settings.max_pixels)
    except ImageReadError as exc:
        m.rejected.labels("size" if "pixel limit" in exc.reason else "format").inc()
        code = status.HTTP_413_CONTENT_TOO_LARGE if "pixel limit" in exc.reason else status.HTTP_415_UNSUPPORTED_MEDIA_TYPE
        raise HTTPException(code, f"{name}: {exc.reason}") from exc
    try:
        m.in_flight.inc()
        done = await ctx.pool.run(work, ctx.settings.inference_timeout_s)
    except BusyError as exc:
        m.rejected.labels("busy").inc()
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, f"{exc}; retry shortly",
                            headers={"Retry-After": "1"}) from exc
    except TimeoutError as exc:
        m.rejected.labels("timeout").inc()
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, "screening timed out; retry shortly",
                            headers={"Retry-After": "5"}) from exc
    except UnscreenableImageError as exc:  # blank, too small: read, but nothing a decision could rest on
        m.rejected.labels("content").inc()
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, f"{name}: {exc.reason}") from exc
    except ImageReadError as exc:
        m.rejected.labels("decode").inc()
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, f"{name}: {exc.reason}") from exc
    except ModelOutputError as exc:  # a fault of the model, not of the upload: no decision, and say why
        m.rejected.labels("model").inc()
        raise HTTPException(status.HTTP_500_INTERNAL_SERVER_ERROR,
                            f"{name}: not screened, the model failed on it ({exc}); tell an administrator") from exc
    finally:
        m.in_flight.dec()
    m.inference_seconds.labels(done.result.model_name).observe(done.result.latency_ms / 1000)
    if isinstance(done, Classified):
        m.photo_answers.labels(done.result.answer, done.result.band, done.result.model_name).inc()
    else:
        m.decisions.labels(done.result.decision, done.result.model_name).inc()
        for d in done.result.detections:
            m.detections.labels(d.cls, d.level).inc()
    return await run_in_threadpool(_store, ctx, principal, name, info.format, data, done, t0)


@router.get("", response_model=ScanPage)
def list_scans(principal: PrincipalDep, db: SessionDep,
               decision: Annotated[str | None, Query(pattern="^(clear|uncertain|alarm)$")] = None,
               kind: Annotated[ScanKind | None, Query(description="xray or photo; both when absent")] = None,
               officer: Annotated[str | None, Query(max_length=64)] = None,
               since: Annotated[datetime | None, Query(description=f"scans at or after this time ({_NAIVE_UTC})")] = None,
               until: Annotated[datetime | None, Query(description=f"scans before this time ({_NAIVE_UTC})")] = None,
               limit: Annotated[int, Query(ge=1, le=500)] = 50, offset: Annotated[int, Query(ge=0)] = 0) -> ScanPage:
    """History, newest first. Officers see their own scans; analysts and admins see everyone's."""
    q = select(Scan).join(User, Scan.user_id == User.id)
    if not role_at_least(principal.role, "analyst"):
        if officer and officer.lower() != principal.username:
            raise HTTPException(status.HTTP_403_FORBIDDEN, "officers can only list their own scans")
        q = q.where(Scan.user_id == principal.user.id)
    elif officer:
        q = q.where(User.username == officer.lower())
    if decision:
        q = q.where(Scan.decision == decision)
    if kind:
        q = q.where(Scan.kind == kind)
    if since:
        q = q.where(Scan.created_at >= _utc(since))
    if until:
        q = q.where(Scan.created_at < _utc(until))
    total = int(db.scalar(select(func.count()).select_from(q.subquery())) or 0)
    page = q.order_by(Scan.created_at.desc(), Scan.id).limit(limit).offset(offset)
    rows = db.scalars(page.options(selectinload(Scan.user), selectinload(Scan.feedback))).all()
    return ScanPage(items=[_summary(s) for s in rows], total=total, limit=limit, offset=offset)


def _summary(s: Scan) -> ScanSummary:
    photo = json.loads(s.result_json) if s.kind == "photo" else {}
    return ScanSummary(id=s.id, kind=s.kind, created_at=s.created_at,
                       officer=s.user.username, filename=s.filename, decision=s.decision, n_detections=s.n_detections,
                       classes=[c for c in s.classes.split(",") if c], answer=photo.get("answer"), band=photo.get("band"),
                       has_feedback=bool(s.feedback), thumbnail_url=f"/v1/scans/{s.id}/thumbnail.jpg")


@router.get("/{scan_id}", response_model=ScanOut)
def get_scan(scan_id: str, principal: PrincipalDep, db: SessionDep) -> ScanOut:
    """One scan's result and feedback."""
    return _scan_out(visible_scan(db, scan_id, principal))


def _load_display(ctx: ServiceContext, scan: Scan) -> NDArray[np.uint8] | None:
    path = ctx.store.original(scan.id, scan.image_format)
    if not scan.image_stored or not path.is_file():
        return None
    return decode_image(path.read_bytes(), scan.filename, ctx.settings.max_pixels)


def _jpeg(image: NDArray[np.uint8], quality: int = 90) -> bytes:
    ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise OSError("could not encode JPEG")
    return bytes(buf.tobytes())


_PRIVATE = {"Cache-Control": "private, max-age=3600"}


@router.get("/{scan_id}/image", response_class=Response, responses={200: {"content": {"image/jpeg": {}}}})
def get_image(scan_id: str, principal: PrincipalDep, db: SessionDep, ctx: ContextDep) -> Response:
    """The scan as an 8-bit JPEG at full size (410 when retention kept only the thumbnail)."""
    scan = visible_scan(db, scan_id, principal)
    image = _load_display(ctx, scan)
    if image is None:
        raise HTTPException(status.HTTP_410_GONE, "the full scan is no longer kept (retention); the thumbnail is")
    return Response(_jpeg(image), media_type="image/jpeg", headers=_PRIVATE)


@router.get("/{scan_id}/thumbnail.jpg", response_class=Response, responses={200: {"content": {"image/jpeg": {}}}})
def get_thumbnail(scan_id: str, principal: PrincipalDep, db: SessionDep, ctx: ContextDep) -> Response:
    """A small JPEG of the scan, kept for as long as the record."""
    scan = visible_scan(db, scan_id, principal)
    path = ctx.store.thumbnail(scan.id)
    if not path.is_file():
        raise HTTPException(status.HTTP_404_NOT_FOUND, "thumbnail missing from storage")
    return Response(path.read_bytes(), media_type="image/jpeg", headers=_PRIVATE)


@router.get("/{scan_id}/overlay.png", response_class=Response, responses={200: {"content": {"image/png": {}}}})
def get_overlay(scan_id: str, principal: PrincipalDep, db: SessionDep, ctx: ContextDep) -> Response:
    """The scan with its boxes, labels and decision banner, or the photo with its answer, build, lengths and
    reference card (drawn on the thumbnail if the upload is gone)."""
    scan = visible_scan(db, scan_id, principal)
    image = _load_display(ctx, scan)
    if image is None:
        path = ctx.store.thumbnail(scan.id)
        thumb = cv2.imdecode(np.fromfile(path, np.uint8), cv2.IMREAD_COLOR) if path.is_file() else None
        if thumb is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, "neither the scan nor its thumbnail is in storage")
        image = np.asarray(thumb, np.uint8)  # the renderers scale the boxes and the card to it
    drawn = render_photo_overlay(image, PhotoResult.model_validate_json(scan.result_json)) if scan.kind == "photo" \
        else render_overlay(image, ScanResult.model_validate_json(scan.result_json))
    ok, buf = cv2.imencode(".png", drawn)
    if not ok:
        raise HTTPException(status.HTTP_500_INTERNAL_SERVER_ERROR, "could not encode the overlay")
    return Response(buf.tobytes(), media_type="image/png", headers=_PRIVATE)
