"""The app factory. Models, the database and the inference pool are set up in ``lifespan``, not at import.

    uvicorn --factory armscan.serve.service.app:create_app     # or: armscan serve
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles

from armscan.serve.service import audit as audit_log
from armscan.serve.service.accounts import count_admins
from armscan.serve.service.db import make_engine, session_factory, upgrade
from armscan.serve.service.deps import PrincipalDep, ServiceContext
from armscan.serve.service.metrics import Metrics
from armscan.serve.service.middleware import ServiceMiddleware
from armscan.serve.service.ratelimit import RateLimiter
from armscan.serve.service.retention import purge_expired
from armscan.serve.service.routes import audit, auth, feedback, health, models, scans, users
from armscan.serve.service.screening import InferencePool
from armscan.serve.service.settings import Settings, get_settings
from armscan.serve.service.storage import ScanStore

STATIC = Path(__file__).resolve().parent / "static"
log = logging.getLogger("armscan.service")


def build_context(settings: Settings, metrics: Metrics) -> ServiceContext:
    """Open the database (migrating it), load the models and start the pool."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    engine = make_engine(settings.db_url)
    if settings.auto_migrate:
        upgrade(engine)
    return ServiceContext(
        settings=settings, engine=engine, sessions=session_factory(engine),
        models=models.load_models(settings),
        pool=InferencePool(settings.workers, settings.queue_per_worker), store=ScanStore(settings.data_dir),
        limiter=RateLimiter(settings.rate_limit_per_minute, settings.rate_limit_burst),
        login_limiter=RateLimiter(settings.login_attempts_per_minute, max(3, settings.login_attempts_per_minute // 2)),
        metrics=metrics)


async def _retention_loop(ctx: ServiceContext) -> None:
    while True:
        try:
            n = await run_in_threadpool(purge_expired, ctx.sessions, ctx.store, ctx.settings.retention_days)
            if n:
                log.info("retention: dropped %d full scans", n)
        except Exception:  # keep the loop alive; the next round retries
            log.exception("retention purge failed")
        await asyncio.sleep(3600)


async def _models_loop(ctx: ServiceContext) -> None:
    """Swap in the models folder's new state when it changes (a promotion): requests in flight keep the
    model they started with, new ones get the new default. A folder that does not load is refused."""
    seen = ctx.models.signature()
    while ctx.settings.models_poll_s > 0:
        await asyncio.sleep(ctx.settings.models_poll_s)
        try:
            now = ctx.models.signature()
            if now == seen:
                continue
            seen = now
            fresh = await run_in_threadpool(models.load_models, ctx.settings)
        except Exception as exc:  # a bad file or registry must not take the service down
            log.error("models folder changed but was refused, the old models stay: %s", exc)
            continue
        before, before_photo = models.install(ctx, fresh)  # keeps an admin's chosen defaults, as a manual reload does
        with ctx.sessions() as db:
            audit_log.append(db, "system", "model.reload", fresh.default,
                             details={"previous_default": before, "models": models.model_hashes(fresh),
                                      **models.photo_details(fresh, before_photo)})
            db.commit()
        log.info("models reloaded: default %s (was %s), photo default %s (was %s)", fresh.default, before,
                 fresh.photo_default, before_photo)


def create_app(settings: Settings | None = None) -> FastAPI:
    """A new app; ``settings`` default to the environment (``ARMSCAN_*``)."""
    metrics = Metrics()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        s = app.dependency_overrides.get(get_settings, get_settings)()
        ctx = await run_in_threadpool(build_context, s, metrics)
        app.state.ctx = ctx
        models.publish_model_info(ctx)
        with ctx.sessions() as db:
            if count_admins(db) == 0:
                log.warning("no admin account yet: create one with 'armscan users create-admin --username NAME'")
        tasks = [asyncio.create_task(_retention_loop(ctx)), asyncio.create_task(_models_loop(ctx))]
        log.info("armscan service ready: models %s (default %s), photo models %s (default %s), %d workers",
                 sorted(ctx.models.models), ctx.models.default, sorted(ctx.models.photo_models) or "none: X-ray only",
                 ctx.models.photo_default, s.workers)
        try:
            yield
        finally:
            for t in tasks:
                t.cancel()
            ctx.pool.shutdown()
            ctx.engine.dispose()

    app = FastAPI(title="armscan", version="1", lifespan=lifespan, openapi_url=None, docs_url=None, redoc_url=None,
                  description="Screen X-ray scans of parcels and baggage for firearms, firearm parts, ammunition and "
                              "printed or polymer weapon parts, and classify seizure photos (firearm family, build, "
                              "length) when a photo model is loaded. Every route except /healthz and /readyz needs a "
                              "session (web page) or an API key (`X-API-Key` or `Authorization: Bearer`).")
    if settings is not None:
        app.dependency_overrides[get_settings] = lambda: settings
    max_body = int((settings or get_settings()).max_upload_mb * (1 << 20)) + (1 << 20)  # + room for the form
    app.add_middleware(ServiceMiddleware, metrics=metrics, max_body=max_body)
    for r in (health.router, auth.router, scans.router, feedback.router, models.router, users.router, audit.router):
        app.include_router(r)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.get("/v1/openapi.json", include_in_schema=False)
    def openapi(_: PrincipalDep) -> JSONResponse:
        """The OpenAPI document (authenticated, like every route but health)."""
        return JSONResponse(app.openapi())

    @app.api_route("/", methods=["GET", "HEAD"], include_in_schema=False)
    def index() -> FileResponse:
        return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-cache"})

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected error on %s %s", request.method, request.url.path)
        return JSONResponse({"detail": "internal error; it has been logged"}, status_code=500)

    return app
