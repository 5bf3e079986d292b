"""Liveness, readiness (no authentication) and Prometheus metrics (authenticated)."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Response, status
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import text

from armscan.serve.service.deps import ContextDep, PrincipalDep
from armscan.serve.service.routes.models import NO_PHOTO_MODEL, kinds

router = APIRouter(tags=["health"])


@router.get("/healthz")
def healthz() -> dict[str, str]:
    """The process answers."""
    return {"status": "ok"}


@router.get("/readyz")
def readyz(ctx: ContextDep) -> dict[str, object]:
    """Models are loaded and the database answers; 503 otherwise. Without a photo model the service is ready
    for X-ray scans only (``kinds``), and ``note`` says so."""
    try:
        with ctx.sessions() as db:
            db.execute(text("SELECT 1"))
    except Exception as exc:  # any driver error means not ready
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, f"database unavailable: {type(exc).__name__}") from exc
    models = ctx.models
    if not models.models and not models.photo_models:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, "no model loaded")
    out: dict[str, object] = {"status": "ready", "default_model": models.default,
                              "default_photo_model": models.photo_default, "kinds": kinds(models),
                              "in_flight": ctx.pool.in_flight, "capacity": ctx.pool.capacity}
    if not models.photo_models:
        out["note"] = NO_PHOTO_MODEL
    return out


@router.get("/metrics", response_class=Response, responses={200: {"content": {CONTENT_TYPE_LATEST: {}}}})
def metrics(_: PrincipalDep, ctx: ContextDep) -> Response:
    """Prometheus text format; scrape with an API key (``Authorization: Bearer ak_...``)."""
    return Response(generate_latest(ctx.metrics.registry), media_type=CONTENT_TYPE_LATEST)
