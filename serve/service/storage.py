"""Stored scan files under the data folder: the upload as received, and a thumbnail. Writes are atomic."""

from __future__ import annotations

import os
from pathlib import Path

_SUFFIX = {"png": ".png", "jpeg": ".jpg", "tiff": ".tif", "bmp": ".bmp", "dicom": ".dcm"}


class ScanStore:
    """Files of scan ``id`` live in ``DATA_DIR/scans/<id[:2]>/``, as absolute paths (the feedback export hands them
    to ``armscan data import feedback``, which may run from another folder)."""

    def __init__(self, data_dir: Path) -> None:
        self.root = Path(data_dir).resolve() / "scans"

    def _dir(self, scan_id: str) -> Path:
        return self.root / scan_id[:2]

    def original(self, scan_id: str, image_format: str) -> Path:
        """Where the upload is kept."""
        return self._dir(scan_id) / f"{scan_id}{_SUFFIX.get(image_format, '.bin')}"

    def thumbnail(self, scan_id: str) -> Path:
        """Where the thumbnail is kept."""
        return self._dir(scan_id) / f"{scan_id}.thumb.jpg"

    @staticmethod
    def _write(path: Path, data: bytes) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        with tmp.open("wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        tmp.replace(path)

    def save(self, scan_id: str, image_format: str, data: bytes | None, thumb: bytes) -> None:
        """Write the thumbnail, and the upload unless ``data`` is None (retention keeps only the thumbnail)."""
        self._write(self.thumbnail(scan_id), thumb)
        if data is not None:
            self._write(self.original(scan_id, image_format), data)

    def drop_original(self, scan_id: str, image_format: str) -> None:
        """Delete the upload (retention); the thumbnail and the database row stay."""
        self.original(scan_id, image_format).unlink(missing_ok=True)
