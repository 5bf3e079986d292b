"""Synthetic dual-energy X-ray scans of parcels with procedural threats."""
