"""The model's self-description, stored as JSON in the ONNX file's metadata under ``armscan``.

Classes, attributes, flag rules, preprocessing, the output grid's stride and the operating
thresholds are defined here once per model. The inference engine rebuilds everything from
this, so a model file is all a deployment needs.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from armscan.inference.preprocess import PreprocessSpec

METADATA_KEY = "armscan"

#: A score threshold or rate: a finite number in [0, 1]. Scores lie in [0, 1]; a class that training never
#: lowered from "off" is stored at 1.0 (it alarms only on a saturated score), so 1.0 is the top.
Unit = Annotated[float, Field(ge=0.0, le=1.0, allow_inf_nan=False)]


class Thresholds(BaseModel):
    """Operating thresholds: the alarm and uncertain scores per class, NMS IoU, and the floor for listing boxes.

    A box at or above ``alarm`` raises an alarm. Between ``uncertain`` and ``alarm`` the scan is
    ``uncertain``: the model abstains and an officer looks. Without ``uncertain`` there is no band.
    """

    model_config = ConfigDict(extra="forbid")

    alarm: dict[str, Unit]
    uncertain: dict[str, Unit] | None = None  # lower bound of the abstention band, per class
    uncertain_far: Unit | None = None  # the parcel rate of uncertain-or-alarm on clean scans it was chosen for
    nms_iou: Unit = 0.5
    nms_class_agnostic: bool = False  # True: one box per item, the best class wins
    min_score: Unit = 0.05  # below this nothing is decoded (evaluation uses it for mAP)
    # Temperature scaling of the detection score, fit on calibration scans: score = sigmoid(logit(score) / T).
    # Applied after min_score and NMS, so it changes the scores (alarm and uncertain are on the scaled
    # scores) but not which boxes are found or their ranking. 1.0 (and models without it): no scaling.
    temperature: float = Field(1.0, gt=0.0, allow_inf_nan=False)
    target_far: Unit | None = None  # the parcel false-alarm rate the alarm thresholds were chosen for
    chosen_on: str = ""  # where the thresholds were chosen (dataset and seeds)


class ModelMetadata(BaseModel):
    """Everything inference needs to know about a model."""

    model_config = ConfigDict(extra="forbid", protected_namespaces=())

    format_version: int = 1
    name: str
    version: str
    architecture: str
    classes: list[str]
    builds: list[str]
    types: list[str]
    type_classes: list[str] = Field(default_factory=lambda: ["firearm"])  # classes that carry a type
    flag_rules: dict[str, dict[str, list[str]]]
    preprocess: dict[str, Any]
    stride: int = Field(ge=1)
    input_name: str = "images"
    thresholds: Thresholds
    training: dict[str, Any] = Field(default_factory=dict)  # summary of data and recipe

    @field_validator("classes", "builds", "types")
    @classmethod
    def _names(cls, v: list[str]) -> list[str]:
        if not v:
            raise ValueError("must name at least one (the model's output channels follow this list)")
        if len(set(v)) != len(v):
            raise ValueError(f"names must be unique, got {v}")
        return v

    @field_validator("preprocess")
    @classmethod
    def _preprocess(cls, v: dict[str, Any]) -> dict[str, Any]:
        PreprocessSpec.from_dict(v)  # ValueError naming the key and what is allowed
        return v

    @model_validator(mode="after")
    def _check(self) -> ModelMetadata:
        missing = set(self.classes) - set(self.thresholds.alarm)
        if missing:
            raise ValueError(f"alarm thresholds missing for classes {sorted(missing)}")
        band = self.thresholds.uncertain
        if band is not None:
            if set(band) != set(self.classes):
                raise ValueError(f"uncertain thresholds must name exactly the classes {self.classes}")
            above = [c for c in self.classes if band[c] > self.thresholds.alarm[c]]
            if above:
                raise ValueError(f"uncertain thresholds above the alarm threshold for {above}")
        return self

    def to_json(self) -> str:
        """Compact JSON for the ONNX metadata."""
        return self.model_dump_json()

    @classmethod
    def from_json(cls, text: str) -> ModelMetadata:
        """Parse and validate the stored JSON."""
        return cls.model_validate(json.loads(text))
