"""The loaded models: list them, reload the folder, choose the default of a kind (admin)."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, status
from fastapi.concurrency import run_in_threadpool

from armscan.inference.engine import ModelLoadError
from armscan.serve.registry import REGISTRY
from armscan.serve.service import audit
from armscan.serve.service.deps import AdminDep, ContextDep, PrincipalDep, ServiceContext, SessionDep
from armscan.serve.service.schemas import DefaultModelIn, ModelOut, ModelsOut, ScanKind
from armscan.serve.service.screening import ModelSet
from armscan.serve.service.settings import Settings

router = APIRouter(prefix="/v1/models", tags=["models"])
NO_PHOTO_MODEL = ("no seizure-photo model is loaded: the service screens X-ray scans only, and photo uploads "
                  "(kind=photo) answer 409 until a photo model is added to the models folder")


def load_models(settings: Settings) -> ModelSet:
    """The models folder loaded with the configured defaults (ModelLoadError if it does not load)."""
    return ModelSet(settings.models_dir, settings.default_model, threads=1, default_photo=settings.default_photo_model)


def install(ctx: ServiceContext, fresh: ModelSet) -> tuple[str, str | None]:
    """Make ``fresh`` the loaded set (requests in flight keep the model they started with) and return the defaults
    before. Without a registry, an admin's choice of defaults (``PUT /v1/models/default``) survives the reload,
    whether an admin asked for it or the service noticed a change in the folder; with one, its champion decides."""
    before, before_photo = ctx.models.default, ctx.models.photo_default
    if not (ctx.models.models_dir / REGISTRY).is_file():
        if before in fresh.models:
            fresh.default = before
        if before_photo in fresh.photo_models:
            fresh.photo_default = before_photo
    ctx.models = fresh
    publish_model_info(ctx)
    return before, before_photo


def model_hashes(models: ModelSet) -> dict[str, str]:
    """Every loaded model's SHA-256, for the audit log."""
    return {k: m.sha256 for k, m in (models.models | models.photo_models).items()}


def photo_details(models: ModelSet, previous: str | None) -> dict[str, object]:
    """The photo default before and after a reload, for the audit log (nothing when neither has one)."""
    return {"photo_default": models.photo_default, "previous_photo_default": previous} \
        if models.photo_default or previous else {}


def kinds(models: ModelSet) -> list[ScanKind]:
    """The kinds of upload the loaded set can take."""
    out: list[ScanKind] = ["xray"] if models.models else []
    return [*out, "photo"] if models.photo_models else out


def models_out(models: ModelSet) -> ModelsOut:
    """The response body for the loaded set."""
    out = []
    for m in models.models.values():
        md = m.detector.metadata
        out.append(ModelOut(name=m.key, task="detect", kind="xray", version=md.version, architecture=md.architecture,
                            classes=md.classes, builds=md.builds, types=md.types, thresholds=md.thresholds.model_dump(),
                            sha256=m.sha256, file=m.path.name))
    for p in models.photo_models.values():
        pm = p.classifier.metadata
        out.append(ModelOut(name=p.key, task="photo", kind="photo", version=pm.version, architecture=pm.architecture,
                            classes=pm.classes, builds=pm.builds, types=[], thresholds=pm.bands.model_dump(),
                            sha256=p.sha256, file=p.path.name))
    notes = [] if models.photo_models else [NO_PHOTO_MODEL]
    if not models.models:
        notes.append("no X-ray model is loaded: X-ray uploads (kind=xray) answer 409")
    return ModelsOut(default=models.default, default_photo=models.photo_default, kinds=kinds(models), notes=notes,
                     models=out)


def publish_model_info(ctx: ServiceContext) -> None:
    """Mirror the loaded set into the ``armscan_model_info`` gauge (1: the default of its kind)."""
    ctx.metrics.model_info.clear()
    for m in ctx.models.models.values():
        ctx.metrics.model_info.labels(m.key, m.detector.metadata.version, m.sha256[:16]).set(
            1 if m.key == ctx.models.default else 0)
    for p in ctx.models.photo_models.values():
        ctx.metrics.model_info.labels(p.key, p.classifier.metadata.version, p.sha256[:16]).set(
            1 if p.key == ctx.models.photo_default else 0)


@router.get("", response_model=ModelsOut)
def list_models(_: PrincipalDep, ctx: ContextDep) -> ModelsOut:
    """Every loaded model with its task, classes and thresholds, and the default of each kind."""
    return models_out(ctx.models)


@router.post("/reload", response_model=ModelsOut)
async def reload_models(principal: AdminDep, ctx: ContextDep, db: SessionDep) -> ModelsOut:
    """Reload the models folder: new files, or the registry's new champion (the service also notices by itself)."""
    try:
        fresh = await run_in_threadpool(load_models, ctx.settings)
    except ModelLoadError as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, f"reload refused, the old models stay loaded: {exc}") from exc
    _, before_photo = install(ctx, fresh)
    audit.append(db, principal.username, "model.reload", ctx.models.default,
                 details={"models": model_hashes(ctx.models), **photo_details(ctx.models, before_photo)})
    db.commit()
    return models_out(ctx.models)


@router.put("/default", response_model=ModelsOut)
def set_default(body: DefaultModelIn, principal: AdminDep, ctx: ContextDep, db: SessionDep) -> ModelsOut:
    """Handle new uploads of the model's kind (X-ray or photo) with another loaded model."""
    models = ctx.models
    if body.name in models.photo_models:
        before: str | None = models.photo_default
        models.photo_default = body.name
        p = models.photo_models[body.name]
        version, sha256 = p.classifier.metadata.version, p.sha256
    elif body.name in models.models:
        before = models.default
        models.default = body.name
        m = models.models[body.name]
        version, sha256 = m.detector.metadata.version, m.sha256
    else:
        loaded = sorted(models.models) + sorted(models.photo_models)
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no loaded model {body.name!r}; loaded: {', '.join(loaded)}")
    publish_model_info(ctx)
    audit.append(db, principal.username, "model.set_default", body.name, f"{body.name} {version}",
                 {"previous": before, "sha256": sha256})
    db.commit()
    return models_out(ctx.models)
