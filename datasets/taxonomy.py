"""The armscan threat taxonomy, defined once and used everywhere.

Box classes, per-box attributes (firearm ``type`` and ``build``), the image-level flags
derived from boxes, and the mapping from common external labels (SIXray, PIDray,
GDXray, open-images style names) to our classes.

Why these classes: officers need to know *what* to look for when they open a parcel.
A whole gun and a loose part call for the same action (open the parcel) but a loose
part is the typical postal-trafficking pattern (UN SG report A/79/77, 2024), so parts are
separate classes rather than one "gun" class as in SIXray/PIDray. ``trigger_group`` and
``bolt`` are kept apart because a bolt alone completes a receiver, while trigger groups
appear in legitimate spare-part shipments more often; analysts asked to see them apart.

There is no spring class: ``trigger_group`` covers the fire-control group and also loose fire-control
springs and pins (recoil, firing-pin and hammer springs, trigger and hammer pins, a firing pin), e.g. a
small bag of them shipped on their own or with a disassembled gun. Springs in benign items (pegs, clamps,
pens, tools) are not firearm parts and carry no box.
"""

from __future__ import annotations

from typing import Final

#: Box classes, in the order of the detector's class channel.
CLASSES: Final[tuple[str, ...]] = (
    "firearm",
    "barrel",
    "slide",
    "frame_receiver",
    "bolt",
    "magazine",
    "trigger_group",
    "ammunition",
)

FIREARM_PARTS: Final[frozenset[str]] = frozenset(
    {"barrel", "slide", "frame_receiver", "bolt", "magazine", "trigger_group"}
)

#: ``type`` attribute, only meaningful on ``firearm`` boxes. ``unknown`` is "not labelled"
#: and is never predicted; the detector's type head has one channel per known type.
FIREARM_TYPES: Final[tuple[str, ...]] = ("pistol", "revolver", "rifle", "shotgun", "smg")
UNKNOWN: Final[str] = "unknown"

#: ``build`` attribute on every box. ``unknown`` means "not labelled" (masked in the loss).
BUILDS: Final[tuple[str, ...]] = ("metal", "polymer", "printed")

#: Image-level flags and the rule that raises each: any box of one of ``classes`` or, for
#: ``builds``, any box with one of those builds. Exported into the model metadata, so
#: inference derives the flags without importing this module.
FLAG_RULES: Final[dict[str, dict[str, list[str]]]] = {
    "firearm": {"classes": ["firearm"]},
    "firearm_part": {"classes": sorted(FIREARM_PARTS)},
    "ammunition": {"classes": ["ammunition"]},
    "printed_or_polymer": {"builds": ["printed", "polymer"]},
}

#: Common external labels -> our class. Unmapped labels are ignored by importers (benign).
EXTERNAL_LABELS: Final[dict[str, str]] = {
    "gun": "firearm",
    "guns": "firearm",
    "firearm": "firearm",
    "handgun": "firearm",
    "pistol": "firearm",
    "revolver": "firearm",
    "rifle": "firearm",
    "shotgun": "firearm",
    "smg": "firearm",
    "submachine_gun": "firearm",
    "weapon": "firearm",
    "barrel": "barrel",
    "slide": "slide",
    "frame": "frame_receiver",
    "receiver": "frame_receiver",
    "lower_receiver": "frame_receiver",
    "upper_receiver": "frame_receiver",
    "frame_receiver": "frame_receiver",
    "bolt": "bolt",
    "bolt_carrier": "bolt",
    "magazine": "magazine",
    "mag": "magazine",
    "trigger": "trigger_group",
    "trigger_group": "trigger_group",
    "bullet": "ammunition",
    "bullets": "ammunition",
    "cartridge": "ammunition",
    "cartridges": "ammunition",
    "ammo": "ammunition",
    "ammunition": "ammunition",
}

#: External labels that also tell the firearm type.
EXTERNAL_TYPES: Final[dict[str, str]] = {
    "handgun": "pistol",
    "pistol": "pistol",
    "revolver": "revolver",
    "rifle": "rifle",
    "shotgun": "shotgun",
    "smg": "smg",
    "submachine_gun": "smg",
}


#: Seizure photos (``armscan scan --kind photo``): one answer per photo. The firearm families follow
#: mechanism, because the legal category depends on it (Basegun, the French interior ministry's app,
#: uses 12 mechanism families); two more answers cover photos of a loose part and photos with no firearm.
PHOTO_FAMILIES: Final[tuple[str, ...]] = (
    "semi_auto_pistol",
    "revolver",
    "bolt_action",
    "lever_action",
    "pump_action",
    "break_action",  # break-action and other single-shots
    "semi_auto_rifle_sporting",
    "semi_auto_rifle_military",
    "submachine_gun",
    "old_mechanism",  # muzzle-loaders, flintlock and percussion arms
)
PART_ONLY: Final[str] = "part_only"
NO_FIREARM: Final[str] = "no_firearm"
#: The photo classifier's classes, in the order of its class channel.
PHOTO_CLASSES: Final[tuple[str, ...]] = (*PHOTO_FAMILIES, PART_ONLY, NO_FIREARM)
#: Reference objects of known size that a length can be measured against.
REFERENCES: Final[tuple[str, ...]] = ("card", "ruler")
#: ISO/IEC 7810 ID-1 (bank, identity and driving-licence cards): 85.60 x 53.98 mm.
ID1_CARD_MM: Final[tuple[float, float]] = (85.60, 53.98)

#: Photo family -> the X-ray firearm ``type`` (``unknown`` where X-ray cannot tell the mechanism apart).
PHOTO_TO_XRAY_TYPE: Final[dict[str, str]] = {
    "semi_auto_pistol": "pistol",
    "revolver": "revolver",
    "bolt_action": "rifle",
    "lever_action": "rifle",
    "pump_action": "shotgun",
    "break_action": "shotgun",
    "semi_auto_rifle_sporting": "rifle",
    "semi_auto_rifle_military": "rifle",
    "submachine_gun": "smg",
    "old_mechanism": UNKNOWN,
}


def photo_to_xray(label: str) -> tuple[str, str] | None:
    """Map a photo answer to the X-ray taxonomy: ``(class, type)``, or None for ``no_firearm``.

    A loose part maps to ``("frame_receiver", "unknown")`` only as the most common part; a photo of a
    part does not say which part it is, so importers should ask the user's mapping file when they can.
    """
    if label == NO_FIREARM:
        return None
    if label == PART_ONLY:
        return "frame_receiver", UNKNOWN
    if label not in PHOTO_TO_XRAY_TYPE:
        raise TaxonomyError(f"Unknown photo class {label!r}. Valid: {', '.join(PHOTO_CLASSES)}")
    return "firearm", PHOTO_TO_XRAY_TYPE[label]


def xray_type_to_photo(type_: str) -> tuple[str, ...]:
    """The photo families that an X-ray firearm ``type`` can be (all families for ``unknown``)."""
    if type_ == UNKNOWN:
        return PHOTO_FAMILIES
    if type_ not in FIREARM_TYPES:
        raise TaxonomyError(f"Unknown firearm type {type_!r}. Valid: {', '.join(FIREARM_TYPES)}, unknown")
    return tuple(f for f, t in PHOTO_TO_XRAY_TYPE.items() if t == type_)


class TaxonomyError(ValueError):
    """A label, type or build that the taxonomy does not know."""


def class_index(name: str) -> int:
    """Index of a box class; raises :class:`TaxonomyError` listing the valid names."""
    try:
        return CLASSES.index(name)
    except ValueError:
        raise TaxonomyError(f"Unknown class {name!r}. Valid classes: {', '.join(CLASSES)}") from None


def map_external_label(label: str) -> tuple[str, str] | None:
    """Map an external dataset label to ``(class, type)``; ``None`` when it is not a threat."""
    key = label.strip().lower().replace(" ", "_").replace("-", "_")
    cls = EXTERNAL_LABELS.get(key)
    if cls is None:
        return None
    return cls, EXTERNAL_TYPES.get(key, UNKNOWN)


def validate_attributes(cls: str, type_: str, build: str) -> None:
    """Raise :class:`TaxonomyError` if an annotation's attributes are not in the taxonomy."""
    class_index(cls)
    if type_ != UNKNOWN and type_ not in FIREARM_TYPES:
        raise TaxonomyError(f"Unknown firearm type {type_!r}. Valid: {', '.join(FIREARM_TYPES)}, unknown")
    if type_ != UNKNOWN and cls != "firearm":
        raise TaxonomyError(f"A type ({type_!r}) is only allowed on 'firearm' boxes, not {cls!r}")
    if build != UNKNOWN and build not in BUILDS:
        raise TaxonomyError(f"Unknown build {build!r}. Valid: {', '.join(BUILDS)}, unknown")
