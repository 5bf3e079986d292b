"""The photo generator's config and its output: :class:`PhotoConfig`, :class:`PhotoSample` and the mask bits."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any, Final

import numpy as np

from armscan.datasets.photo.families import FAMILY_BUILDS
from armscan.datasets.taxonomy import BUILDS, PHOTO_FAMILIES

#: Bit flags of :attr:`PhotoSample.masks`.
MASK_WEAPON: Final[int] = 1  # the firearm or the loose part
MASK_BARREL: Final[int] = 2  # the barrel's visible pixels
MASK_CARD: Final[int] = 4
MASK_RULER: Final[int] = 8
RULER_LENGTHS: Final[tuple[int, ...]] = (150, 200, 300)


class PhotoConfigError(ValueError):
    """A photo config value or key that is not allowed."""


@dataclass(frozen=True)
class PhotoConfig:
    """What the photo generator draws, and how often. Probabilities are per photo."""

    p_no_firearm: float = 0.12  # benign objects only
    p_part_only: float = 0.12  # one loose part, no firearm
    p_card: float = 0.55  # an ID-1 card as the reference
    p_ruler: float = 0.20  # a ruler as the reference (otherwise none)
    p_hard_negative: float = 0.6  # a no_firearm photo's main object is gun-shaped or long and dark
    long_side: tuple[int, int] = (480, 800)  # image long side in pixels, inclusive
    p_portrait: float = 0.3
    fill: tuple[float, float] = (0.30, 0.90)  # the main object's length over the image's long side
    tilt_deg: tuple[float, float] = (0.0, 12.0)  # camera tilt off top-down
    p_untilted: float = 0.25  # exactly top-down (no perspective)
    p_flip: float = 0.5  # the object shows its other side
    max_distractors: int = 4
    p_cartridges: float = 0.15  # loose rounds next to a firearm or a part
    p_jpeg: float = 0.35  # JPEG-like compression artefacts
    family_weights: dict[str, float] = field(default_factory=lambda: dict.fromkeys(PHOTO_FAMILIES, 1.0))
    build_weights: dict[str, tuple[float, float, float]] = field(default_factory=lambda: dict(FAMILY_BUILDS))

    def __post_init__(self) -> None:
        for name in (
            "p_no_firearm",
            "p_part_only",
            "p_card",
            "p_ruler",
            "p_hard_negative",
            "p_portrait",
            "p_untilted",
            "p_flip",
            "p_cartridges",
            "p_jpeg",
        ):
            v = getattr(self, name)
            if not 0.0 <= v <= 1.0:
                raise PhotoConfigError(f"{name} must be a probability in [0, 1], not {v!r}")
        if self.p_no_firearm + self.p_part_only > 1.0 or self.p_card + self.p_ruler > 1.0:
            raise PhotoConfigError("p_no_firearm + p_part_only and p_card + p_ruler must each be <= 1")
        lo, hi = self.long_side
        if not 256 <= lo <= hi <= 4096:
            raise PhotoConfigError(f"long_side must be (lo, hi) with 256 <= lo <= hi <= 4096, not {self.long_side!r}")
        if not 0.05 <= self.fill[0] <= self.fill[1] <= 0.95:
            raise PhotoConfigError(f"fill must be (lo, hi) within [0.05, 0.95], not {self.fill!r}")
        if not 0.0 <= self.tilt_deg[0] <= self.tilt_deg[1] <= 30.0:
            raise PhotoConfigError(f"tilt_deg must be (lo, hi) within [0, 30], not {self.tilt_deg!r}")
        if not 0 <= self.max_distractors <= 8:
            raise PhotoConfigError(f"max_distractors must be within 0..8, not {self.max_distractors!r}")
        for what, d in (("family_weights", self.family_weights), ("build_weights", self.build_weights)):
            unknown = set(d) - set(PHOTO_FAMILIES)
            if unknown or (what == "family_weights" and set(d) != set(PHOTO_FAMILIES)):
                raise PhotoConfigError(
                    f"{what} needs exactly the families {', '.join(PHOTO_FAMILIES)}; unknown: {sorted(unknown)}"
                )
        if min(self.family_weights.values()) < 0 or sum(self.family_weights.values()) <= 0:
            raise PhotoConfigError("family_weights must be >= 0 with a positive sum")
        for fam, w in self.build_weights.items():
            if len(w) != len(BUILDS) or min(w) < 0 or sum(w) <= 0:
                raise PhotoConfigError(f"build_weights[{fam!r}] must be {len(BUILDS)} weights >= 0 for {BUILDS}")

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> PhotoConfig:
        """A config from a (YAML or JSON) mapping; unknown keys raise :class:`PhotoConfigError`."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise PhotoConfigError(f"Unknown photo config key(s) {unknown}. Valid keys: {', '.join(sorted(known))}")
        tuples = {"long_side", "fill", "tilt_deg"}
        kwargs: dict[str, Any] = {k: tuple(v) if k in tuples else v for k, v in d.items()}
        return cls(**kwargs)


@dataclass
class PhotoSample:
    """One rendered seizure photo and its labels (pixel quantities in the final image geometry)."""

    image: np.ndarray  # (H, W, 3) uint8 BGR
    label: str  # one of PHOTO_CLASSES
    build: str  # one of BUILDS, or "unknown" for no_firearm
    masks: np.ndarray  # (H, W) uint8 bit flags: MASK_WEAPON | MASK_BARREL | MASK_CARD | MASK_RULER
    length_mm: float | None  # overall length of the firearm or part (None for no_firearm)
    barrel_mm: float | None  # None without a barrel
    reference: str  # "card", "ruler" or "none"
    card_corners_px: np.ndarray | None  # (4, 2) float: the card's outer corners, long side first (0-1)
    ruler_mm: int | None
    mm_per_px: float  # at the image centre
    meta: dict[str, Any] = field(default_factory=dict)
