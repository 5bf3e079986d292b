"""Synthetic dual-energy X-ray scans of parcels with procedural threats."""

#: Bumped whenever the same seed renders a different scan, so that a model card names the data it was trained on.
#: v3: disassembled firearms, broken-down long guns, opened break actions, backpacks, spring-pin kits.
GENERATOR_VERSION = "v3"
