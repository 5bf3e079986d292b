"""Service settings from ``ARMSCAN_*`` environment variables and an optional ``.env`` file.

Read through the cached :func:`get_settings` dependency, never at import time, so tests can
override it (``app.dependency_overrides[get_settings]``) or pass a ``Settings`` to ``create_app``.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

BUNDLED_MODELS = Path(__file__).resolve().parent.parent.parent / "models" / "bundled"


class Settings(BaseSettings):
    """Everything an operator can set; each field is ``ARMSCAN_<NAME>`` in the environment."""

    model_config = SettingsConfigDict(env_prefix="ARMSCAN_", env_file=".env", extra="ignore")

    data_dir: Path = Field(Path("runs/service"), description="stored scans, thumbnails and the SQLite file (a relative "
                           "path is taken from the folder the service starts in)")
    database_url: str | None = Field(None, description="SQLAlchemy URL; default sqlite:///DATA_DIR/armscan.db")
    models_dir: Path = Field(BUNDLED_MODELS, description="folder of exported .onnx models (X-ray detectors and seizure-"
                             "photo classifiers, told apart by their metadata), loaded at start")
    default_model: str | None = Field(None, description="X-ray model used when an upload names none")
    default_photo_model: str | None = Field(None, description="photo model used when a photo upload names none")
    auto_migrate: bool = Field(True, description="apply database migrations at start")
    models_poll_s: float = Field(5.0, ge=0, description="check the models folder (registry) for changes this often; 0: never")

    max_upload_mb: float = Field(32.0, gt=0, description="largest accepted upload")
    max_pixels: int = Field(40_000_000, gt=0, description="largest accepted image (width x height), read from the header")
    workers: int = Field(default_factory=lambda: os.cpu_count() or 1, ge=1, description="inference threads")
    queue_per_worker: int = Field(4, ge=0, description="scans waiting per worker before answering 503")
    inference_timeout_s: float = Field(10.0, gt=0, description="a scan not screened in this time gets 503")

    rate_limit_per_minute: int = Field(600, ge=0, description="requests per user and minute (0: no limit)")
    rate_limit_burst: int = Field(60, ge=1, description="requests a user may send at once")
    login_attempts_per_minute: int = Field(10, ge=1, description="sign-in attempts per user name and per client")

    session_hours: float = Field(12.0, gt=0, description="web sessions expire after this")
    cookie_secure: bool = Field(False, description="mark the session cookie Secure (set behind HTTPS)")

    retention: Literal["full", "thumbnail"] = Field(
        "full", description="full: keep uploaded scans; thumbnail: keep only their hash and a thumbnail")
    retention_days: float | None = Field(None, gt=0, description="drop full scans older than this (hash and thumbnail stay)")
    thumbnail_px: int = Field(320, ge=32, description="longest side of stored thumbnails")

    @property
    def db_url(self) -> str:
        """The database URL, defaulting to a SQLite file in the data folder."""
        return self.database_url or f"sqlite:///{self.data_dir / 'armscan.db'}"


@lru_cache
def get_settings() -> Settings:
    """The process's settings, read once."""
    return Settings()
