"""The model registry: versioned model files with their hash, card, lineage and status.

A models folder with a ``registry.json`` is a registry. Each entry names an ONNX file in the folder,
its SHA-256, its model card, its lineage (parent model, datasets by hash, training config) and a
status: ``candidate`` (registered, not serving by default), ``champion`` (the default model of the
service; exactly one) or ``retired``. ``promote`` makes a candidate the champion and retires the old
one; ``rollback`` brings back the most recently retired champion. Every change is written atomically
under a file lock, with who did it and when in the entry's history. The service reloads the registry
when it changes and refuses any file whose hash differs from its entry.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import shutil
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field

from armscan.datasets.coco import dataset_hash

REGISTRY = "registry.json"
Status = Literal["candidate", "champion", "retired"]


class RegistryError(ValueError):
    """A registry operation that cannot be done; the message says why."""


class Entry(BaseModel):
    """One registered model file."""

    key: str  # name@version
    name: str
    version: str
    file: str  # relative to the models folder
    sha256: str
    status: Status = "candidate"
    card: str | None = None  # relative path of its Markdown model card
    parent: str | None = None  # key of the model it was fine-tuned from
    datasets: dict[str, str] = Field(default_factory=dict)  # dataset name -> content hash
    config: dict[str, Any] = Field(default_factory=dict)
    created_at: str
    history: list[dict[str, str]] = Field(default_factory=list)  # {at, by, event, reason}


class RegistryFile(BaseModel):
    """The whole ``registry.json``."""

    format: str = "armscan-registry/1"
    models: list[Entry] = Field(default_factory=list)


def sha256_file(path: Path) -> str:
    """Hex SHA-256 of a file, read in blocks."""
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


class Registry:
    """Read and change ``DIR/registry.json``."""

    def __init__(self, models_dir: Path) -> None:
        self.dir = Path(models_dir)
        self.path = self.dir / REGISTRY

    def exists(self) -> bool:
        return self.path.is_file()

    def read(self) -> RegistryFile:
        """The registry as it is on disk (empty if there is none)."""
        if not self.path.is_file():
            return RegistryFile()
        try:
            return RegistryFile.model_validate_json(self.path.read_text())
        except ValueError as exc:
            raise RegistryError(f"{self.path}: not a valid registry ({exc})") from exc

    @contextlib.contextmanager
    def _edit(self) -> Iterator[RegistryFile]:
        self.dir.mkdir(parents=True, exist_ok=True)
        with (self.dir / ".registry.lock").open("w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            reg = self.read()
            yield reg
            tmp = self.path.with_suffix(".json.tmp")
            tmp.write_text(json.dumps(reg.model_dump(), indent=1))
            tmp.replace(self.path)

    def get(self, key: str) -> Entry:
        """The entry ``key`` (name@version, or a unique name)."""
        models = self.read().models
        found = [m for m in models if m.key == key] or [m for m in models if m.name == key]
        if len(found) != 1:
            known = ", ".join(m.key for m in models) or "none"
            raise RegistryError(f"no single model {key!r} in the registry (registered: {known})")
        return found[0]

    def champion(self) -> Entry | None:
        """The current champion, if any."""
        return next((m for m in self.read().models if m.status == "champion"), None)

    def verify(self, entry: Entry) -> Path:
        """The entry's file, after checking that its hash is the registered one."""
        path = self.dir / entry.file
        if not path.is_file():
            raise RegistryError(f"{entry.key}: file {path} is missing")
        actual = sha256_file(path)
        if actual != entry.sha256:
            raise RegistryError(f"{entry.key}: {path.name} has SHA-256 {actual[:16]}…, the registry says "
                                f"{entry.sha256[:16]}…; refusing a file that changed after registration")
        return path

    def register(self, model: Path, by: str, parent: str | None = None, datasets: list[Path] | None = None,
                 config: dict[str, Any] | None = None, card: Path | None = None) -> Entry:
        """Copy ``model`` (and its card) into the folder and add it as a candidate."""
        from armscan.inference.engine import Detector

        md = Detector.from_onnx(model).metadata
        digest = sha256_file(model)
        key = f"{md.name}@{md.version}"
        fname = f"{md.name}-{md.version}-{digest[:8]}.onnx"
        with self._edit() as reg:
            if any(m.key == key for m in reg.models):
                raise RegistryError(f"{key} is already registered; export the new model with another --version")
            if parent is not None and not any(m.key == parent for m in reg.models):
                raise RegistryError(f"parent {parent!r} is not in the registry")
            if (self.dir / fname).resolve() != model.resolve():
                shutil.copyfile(model, self.dir / fname)
                if model.with_suffix(".pt").is_file():  # its weights, for fine-tuning from the registered model
                    shutil.copyfile(model.with_suffix(".pt"), (self.dir / fname).with_suffix(".pt"))
            card_name = None
            if card is not None:
                card_name = f"{md.name}-{md.version}.md"
                shutil.copyfile(card, self.dir / card_name)
            entry = Entry(key=key, name=md.name, version=md.version, file=fname, sha256=digest, card=card_name,
                          parent=parent, datasets={d.name: dataset_hash(d) for d in datasets or []}
                          or {Path(k).name: v for k, v in (md.training.get("lineage") or {}).get("datasets", {}).items()},
                          config=config or md.training.get("config", {}), created_at=_now(),
                          history=[{"at": _now(), "by": by, "event": "registered", "reason": ""}])
            reg.models.append(entry)
        return entry

    def promote(self, key: str, by: str, reason: str = "") -> Entry:
        """Make ``key`` the champion; the previous champion is retired."""
        entry = self.get(key)
        self.verify(entry)
        with self._edit() as reg:
            for m in reg.models:
                if m.status == "champion" and m.key != entry.key:
                    m.status = "retired"
                    m.history.append({"at": _now(), "by": by, "event": "retired", "reason": f"replaced by {entry.key}"})
                if m.key == entry.key:
                    m.status = "champion"
                    m.history.append({"at": _now(), "by": by, "event": "promoted", "reason": reason})
                    entry = m
        return entry

    def rollback(self, by: str, reason: str = "") -> Entry:
        """Bring back the champion retired most recently; the current one is retired."""
        models = self.read().models
        retired = [(m.history[-1]["at"], k, m) for k, m in enumerate(models) if m.status == "retired" and m.history
                   and m.history[-1]["event"] == "retired"]
        if not retired:
            raise RegistryError("nothing to roll back to: no champion has been retired")
        back = max(retired, key=lambda t: (t[0], t[1]))[2]
        return self.promote(back.key, by, reason or "rollback")
