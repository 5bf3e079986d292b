"""Liveness, readiness (no authentication) and Prometheus metrics (authenticated)."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Response, status
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import text

from armscan.serve.service.deps import ContextDep, PrincipalDep

router = APIRouter(tags=["health"])


@router.get("/healthz")
def healthz() -> dict[str, str]:
    """The process answers."""
    return {"status": "ok"}


@router.get("/readyz")
def readyz(ctx: ContextDep) -> dict[str, object]:
    """Models are loaded and the database answers; 503 otherwise."""
    try:
        with ctx.sessions() as db:
            db.execute(text("SELECT 1"))
    except Exception as exc:  # any driver error means not ready
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, f"database unavailable: {type(exc).__name__}") from exc
    if not ctx.models.models:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, "no model loaded")
    return {"status": "ready", "default_model": ctx.models.default, "in_flight": ctx.pool.in_flight,
            "capacity": ctx.pool.capacity}


@router.get("/metrics", response_class=Response, responses={200: {"content": {CONTENT_TYPE_LATEST: {}}}})
def metrics(_: PrincipalDep, ctx: ContextDep) -> Response:
    """Prometheus text format; scrape with an API key (``Authorization: Bearer ak_...``)."""
    return Response(generate_latest(ctx.metrics.registry), media_type=CONTENT_TYPE_LATEST)
