"""Typed screening results: what the CLI prints, the JSON lines hold and the service returns."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

Decision = Literal["clear", "uncertain", "alarm"]
Level = Literal["alarm", "uncertain", "below"]


class Detection(BaseModel):
    """One boxed item on the scan, in original image pixels."""

    box: tuple[float, float, float, float] = Field(description="x0, y0, x1, y1 in image pixels")
    cls: str
    score: float
    build: str
    build_score: float
    type: str | None = None  # firearm type, only on classes that carry one
    type_score: float | None = None
    alarm: bool = Field(description="score reaches this class's alarm threshold")
    level: Level = Field("alarm", description="alarm, uncertain (between the uncertain and alarm thresholds) or below")


class ScanResult(BaseModel):
    """The answer for one scan."""

    source: str = ""
    width: int
    height: int
    detections: list[Detection]
    flags: dict[str, bool]
    decision: Decision = Field(description="alarm: open the parcel; uncertain: an officer should look; clear")
    model_name: str
    model_version: str
    latency_ms: float = Field(description="preprocess + model + decode, in milliseconds")
