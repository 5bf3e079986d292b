"""The loaded models: list them, reload the folder, choose the default (admin)."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, status
from fastapi.concurrency import run_in_threadpool

from armscan.inference.engine import ModelLoadError
from armscan.serve.registry import REGISTRY
from armscan.serve.service import audit
from armscan.serve.service.deps import AdminDep, ContextDep, PrincipalDep, SessionDep
from armscan.serve.service.schemas import DefaultModelIn, ModelOut, ModelsOut
from armscan.serve.service.screening import ModelSet

router = APIRouter(prefix="/v1/models", tags=["models"])


def models_out(models: ModelSet) -> ModelsOut:
    """The response body for the loaded set."""
    out = []
    for m in models.models.values():
        md = m.detector.metadata
        out.append(ModelOut(name=m.key, version=md.version, architecture=md.architecture, classes=md.classes,
                            builds=md.builds, types=md.types, thresholds=md.thresholds.model_dump(), sha256=m.sha256,
                            file=m.path.name))
    return ModelsOut(default=models.default, models=out)


def publish_model_info(ctx: ContextDep) -> None:
    """Mirror the loaded set into the ``armscan_model_info`` gauge."""
    ctx.metrics.model_info.clear()
    for m in ctx.models.models.values():
        ctx.metrics.model_info.labels(m.key, m.detector.metadata.version, m.sha256[:16]).set(
            1 if m.key == ctx.models.default else 0)


@router.get("", response_model=ModelsOut)
def list_models(_: PrincipalDep, ctx: ContextDep) -> ModelsOut:
    """Every loaded model, its classes and thresholds, and the default."""
    return models_out(ctx.models)


@router.post("/reload", response_model=ModelsOut)
async def reload_models(principal: AdminDep, ctx: ContextDep, db: SessionDep) -> ModelsOut:
    """Reload the models folder: new files, or the registry's new champion (the service also notices by itself)."""
    try:
        fresh = await run_in_threadpool(ModelSet, ctx.settings.models_dir, ctx.settings.default_model, 1)
    except ModelLoadError as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, f"reload refused, the old models stay loaded: {exc}") from exc
    if not (ctx.models.models_dir / REGISTRY).is_file() and ctx.models.default in fresh.models:
        fresh.default = ctx.models.default  # without a registry, an admin's choice of default survives a reload
    ctx.models = fresh  # requests in flight keep the model they started with
    publish_model_info(ctx)
    audit.append(db, principal.username, "model.reload", ctx.models.default,
                 details={"models": {k: m.sha256 for k, m in ctx.models.models.items()}})
    db.commit()
    return models_out(ctx.models)


@router.put("/default", response_model=ModelsOut)
def set_default(body: DefaultModelIn, principal: AdminDep, ctx: ContextDep, db: SessionDep) -> ModelsOut:
    """Screen new uploads with another loaded model."""
    if body.name not in ctx.models.models:
        raise HTTPException(status.HTTP_404_NOT_FOUND,
                            f"no loaded model {body.name!r}; loaded: {', '.join(sorted(ctx.models.models))}")
    before = ctx.models.default
    ctx.models.default = body.name
    publish_model_info(ctx)
    m = ctx.models.get()
    audit.append(db, principal.username, "model.set_default", body.name, f"{body.name} {m.detector.metadata.version}",
                 {"previous": before, "sha256": m.sha256})
    db.commit()
    return models_out(ctx.models)
