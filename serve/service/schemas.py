"""Request and response bodies of the HTTP API (separate classes, as the OpenAPI document shows them)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from armscan.inference.photo import Band, PhotoResult
from armscan.inference.result import Decision

Role = Literal["officer", "analyst", "admin"]
Box = tuple[float, float, float, float]
ScanKind = Literal["xray", "photo"]  # an X-ray scan of a parcel, or a photo of a seized item


class LoginIn(BaseModel):
    """Sign-in form."""

    model_config = ConfigDict(extra="forbid")
    username: str = Field(max_length=64)
    password: str = Field(max_length=256)


class MeOut(BaseModel):
    """The signed-in user; ``csrf_token`` goes in ``X-CSRF-Token`` on every unsafe request made with the cookie."""

    username: str
    role: Role
    csrf_token: str | None = None


class DetectionOut(BaseModel):
    """One boxed item."""

    index: int
    box: Box = Field(description="x0, y0, x1, y1 in the scan's pixels")
    cls: str
    score: float
    build: str
    build_score: float
    type: str | None
    type_score: float | None
    level: Literal["alarm", "uncertain", "below"]


class MissedBox(BaseModel):
    """An item the model did not box, drawn by the officer."""

    model_config = ConfigDict(extra="forbid")
    box: Box
    cls: str
    build: str | None = None

    @field_validator("box")
    @classmethod
    def _ordered(cls, v: Box) -> Box:
        if not (v[2] > v[0] and v[3] > v[1]) or min(v) < 0:
            raise ValueError("box must be x0 < x1, y0 < y1, all >= 0")
        return v


class DetectionVerdict(BaseModel):
    """Confirm or reject one listed detection, optionally correcting its class."""

    model_config = ConfigDict(extra="forbid")
    index: int = Field(ge=0)
    verdict: Literal["confirmed", "rejected"]
    cls: str | None = None


class PhotoVerdict(BaseModel):
    """Confirm a seizure photo's answer, or correct its family (the model's classes, ``part_only`` and
    ``no_firearm`` included) and, if known, its build. Stored with ``family`` always filled in."""

    model_config = ConfigDict(extra="forbid")
    verdict: Literal["confirmed", "corrected"]
    family: str | None = Field(None, max_length=64, description="required when corrected; the answer when confirmed")
    build: str | None = Field(None, max_length=32, description="metal, polymer or printed, if the officer knows")


class FeedbackIn(BaseModel):
    """An officer's feedback on one scan: verdicts and missed boxes (X-ray), or a verdict on the answer (photo)."""

    model_config = ConfigDict(extra="forbid")
    detections: list[DetectionVerdict] = Field(default_factory=list, max_length=200)
    missed: list[MissedBox] = Field(default_factory=list, max_length=200)
    photo: PhotoVerdict | None = Field(None, description="seizure photos only")
    comment: str | None = Field(None, max_length=2000)


class FeedbackOut(BaseModel):
    """Stored feedback."""

    id: int
    scan_id: str
    officer: str
    created_at: datetime
    detections: list[DetectionVerdict]
    missed: list[MissedBox]
    photo: PhotoVerdict | None = None
    comment: str | None


class ScanOut(BaseModel):
    """A screened scan or classified photo: the result, where to fetch its images, and its feedback."""

    id: str
    kind: ScanKind = Field(description="xray: an X-ray scan (detections); photo: a seizure photo (photo)")
    created_at: datetime
    officer: str
    filename: str
    sha256: str
    width: int
    height: int
    decision: Decision = Field(
        description="for a photo: uncertain when its band is uncertain, else clear for "
        "no_firearm and alarm for a firearm family or a loose part"
    )
    flags: dict[str, bool]
    detections: list[DetectionOut] = Field(description="empty for a photo")
    photo: PhotoResult | None = Field(None, description="the seizure photo's answer, build and lengths (photos only)")
    model_name: str
    model_version: str
    latency_ms: float = Field(description="decode-free screening time: preprocess + model + decode")
    total_ms: float = Field(description="from receiving the upload to storing the result")
    image_stored: bool
    image_url: str
    thumbnail_url: str
    overlay_url: str
    feedback: list[FeedbackOut]


class ScanSummary(BaseModel):
    """One row of the history."""

    id: str
    kind: ScanKind
    created_at: datetime
    officer: str
    filename: str
    decision: Decision
    n_detections: int
    classes: list[str]
    answer: str | None = Field(None, description="a photo's answer (a family, part_only, no_firearm or uncertain)")
    band: Band | None = Field(None, description="a photo's confidence band")
    has_feedback: bool
    thumbnail_url: str


class ScanPage(BaseModel):
    """A page of history."""

    items: list[ScanSummary]
    total: int
    limit: int
    offset: int


class ModelOut(BaseModel):
    """A loaded model: an X-ray detector (task detect) or a seizure-photo classifier (task photo)."""

    model_config = ConfigDict(protected_namespaces=())
    name: str
    task: Literal["detect", "photo"]
    kind: ScanKind = Field(description="the uploads it serves (the kind field of POST /v1/scans)")
    version: str
    architecture: str
    classes: list[str]
    builds: list[str]
    types: list[str]
    thresholds: dict[str, object] = Field(description="a detector's thresholds, or a photo model's confidence bands")
    sha256: str
    file: str


class ModelsOut(BaseModel):
    """Every loaded model and, for each kind, which one handles uploads that name none."""

    default: str = Field(description="the default X-ray model ('' when none is loaded)")
    default_photo: str | None = Field(None, description="the default photo model; None: photos are refused (409)")
    kinds: list[ScanKind] = Field(description="the kinds of upload the service takes now")
    notes: list[str] = Field(default_factory=list, description="e.g. why seizure photos are not taken")
    models: list[ModelOut]


class DefaultModelIn(BaseModel):
    """Choose the default model of its kind (an X-ray or a photo model)."""

    model_config = ConfigDict(extra="forbid")
    name: str


class UserIn(BaseModel):
    """A new account."""

    model_config = ConfigDict(extra="forbid")
    username: str = Field(max_length=64)
    password: str = Field(max_length=256)
    role: Role


class UserPatch(BaseModel):
    """Changes to an account."""

    model_config = ConfigDict(extra="forbid")
    role: Role | None = None
    active: bool | None = None
    password: str | None = Field(None, max_length=256)


class UserOut(BaseModel):
    """An account."""

    username: str
    role: Role
    active: bool
    created_at: datetime


class ApiKeyIn(BaseModel):
    """A new API key's label."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field("default", max_length=64)


class ApiKeyOut(BaseModel):
    """A key as listed (never the key itself)."""

    id: int
    username: str
    name: str
    prefix: str
    revoked: bool
    created_at: datetime
    last_used_at: datetime | None


class NewApiKeyOut(ApiKeyOut):
    """A key just created: ``key`` is shown this once."""

    key: str


class AuditOut(BaseModel):
    """One audit line."""

    seq: int
    at: str
    actor: str
    action: str
    target: str
    model: str
    details: dict[str, object]
    hash: str


class AuditVerifyOut(BaseModel):
    """The result of checking the chain."""

    ok: bool
    entries: int
    problems: list[str]
