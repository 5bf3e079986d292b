"""What a batch job screens: folders, zip/tar archives, single files and parcel manifests, expanded
into :class:`ScanInput` items with a stable key (so a rerun knows what is already done).

Manifests (CSV or JSONL) give one parcel a row: ``parcel_id``, ``sender``, ``consignee``,
``timestamp`` and its scans (CSV: ``scans`` column, paths separated by ``;``; JSONL: ``scans``
list). Relative scan paths resolve against the manifest's folder.
"""

from __future__ import annotations

import csv
import json
import tarfile
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from armscan.datasets.readers import IMAGE_SUFFIXES, Decoded, ImageReadError, decode_scan, find_images, read_scan

ARCHIVE_SUFFIXES = (".zip", ".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tar.xz")
MANIFEST_SUFFIXES = (".csv", ".jsonl")
PARCEL_FIELDS = ("parcel_id", "sender", "consignee", "timestamp")


class ManifestError(ValueError):
    """A manifest that cannot be used (missing columns, bad JSON): the whole job stops before it starts."""


@dataclass(frozen=True)
class ScanInput:
    """One scan to screen. ``load(reduce_to)`` decodes it (see ``decode_scan``) or raises ImageReadError."""

    key: str
    load: Callable[[int | None], Decoded] = field(compare=False, repr=False)
    parcel: dict[str, str] = field(default_factory=dict, compare=False)


def _file_input(path: Path, parcel: dict[str, str] | None = None) -> ScanInput:
    def load(reduce_to: int | None = None) -> Decoded:
        return read_scan(path, reduce_to)

    return ScanInput(str(path), load, parcel or {"parcel_id": str(path)})


def _member_loader(archive: Path, member: str) -> Callable[[int | None], Decoded]:
    source = f"{archive}::{member}"

    def load(reduce_to: int | None = None) -> Decoded:
        try:
            if archive.suffix == ".zip":
                with zipfile.ZipFile(archive) as zf:
                    data = zf.read(member)
            else:
                with tarfile.open(archive) as tf:
                    f = tf.extractfile(member)
                    if f is None:
                        raise ImageReadError(source, "not a regular file in the archive")
                    data = f.read()
        except (OSError, KeyError, zipfile.BadZipFile, tarfile.TarError) as exc:
            raise ImageReadError(source, f"cannot read from archive ({exc})") from exc
        return decode_scan(data, source, reduce_to=reduce_to)

    return load


def _archive_inputs(path: Path) -> list[ScanInput]:
    try:
        if path.suffix == ".zip":
            with zipfile.ZipFile(path) as zf:
                names = [i.filename for i in zf.infolist() if not i.is_dir()]
        else:
            with tarfile.open(path) as tf:
                names = [m.name for m in tf.getmembers() if m.isfile()]
    except (OSError, zipfile.BadZipFile, tarfile.TarError) as exc:
        raise ImageReadError(str(path), f"unreadable archive ({exc})") from exc
    names = sorted(n for n in names if Path(n).suffix.lower() in IMAGE_SUFFIXES)
    return [ScanInput(f"{path}::{n}", _member_loader(path, n), {"parcel_id": f"{path.name}::{n}"}) for n in names]


def _manifest_rows(path: Path) -> list[dict[str, object]]:
    try:
        if path.suffix == ".csv":
            with path.open(newline="") as f:
                return [dict(r) for r in csv.DictReader(f)]
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, csv.Error) as exc:
        raise ManifestError(f"{path}: unreadable manifest ({exc})") from exc


def _manifest_inputs(path: Path) -> list[ScanInput]:
    out: list[ScanInput] = []
    for n, row in enumerate(_manifest_rows(path), start=1):
        if not isinstance(row, dict) or not row.get("parcel_id") or not row.get("scans"):
            got = sorted(row) if isinstance(row, dict) else row
            raise ManifestError(f"{path}: row {n} needs 'parcel_id' and 'scans' (got {got})")
        scans = row["scans"]
        if isinstance(scans, str):
            paths = [s.strip() for s in scans.split(";") if s.strip()]
        elif isinstance(scans, list):
            paths = [str(s) for s in scans]
        else:
            raise ManifestError(f"{path}: row {n}: 'scans' must be a list or a ';'-separated string, got {scans!r}")
        parcel = {k: str(row.get(k, "") or "") for k in PARCEL_FIELDS}
        for p in paths:
            full = Path(p) if Path(p).is_absolute() else path.parent / p
            out.append(_file_input(full, parcel))
    return out


def expand_inputs(paths: list[str]) -> list[ScanInput]:
    """Every scan under ``paths``, in a stable order, each key once (the first occurrence wins)."""
    items: list[ScanInput] = []
    for s in paths:
        p = Path(s)
        name = p.name.lower()
        if p.is_file() and name.endswith(MANIFEST_SUFFIXES):
            items.extend(_manifest_inputs(p))
        elif p.is_file() and name.endswith(ARCHIVE_SUFFIXES):
            try:
                items.extend(_archive_inputs(p))
            except ImageReadError as exc:
                items.append(ScanInput(str(p), _raiser(exc), {"parcel_id": str(p)}))
        else:
            items.extend(_file_input(f) for f in find_images([s]))
    seen: set[str] = set()
    unique = []
    for it in items:
        if it.key not in seen:
            seen.add(it.key)
            unique.append(it)
    return unique


def _raiser(exc: ImageReadError) -> Callable[[int | None], Decoded]:
    def load(reduce_to: int | None = None) -> Decoded:
        raise exc

    return load
