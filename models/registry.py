"""A small model registry: ``@register_model`` entry points, ``get_model`` and ``list_models``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

_REGISTRY: dict[str, Callable[..., Any]] = {}


class UnknownModelError(KeyError):
    """A model name that is not registered."""

    def __str__(self) -> str:
        return str(self.args[0])


def register_model(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Register a model constructor under its function name; a duplicate name is an error."""
    name = fn.__name__
    if name in _REGISTRY:
        raise ValueError(f"Model {name!r} is already registered")
    _REGISTRY[name] = fn
    return fn


def list_models() -> list[str]:
    """Registered model names, sorted."""
    _load_builtin()
    return sorted(_REGISTRY)


def get_model(name: str, **kwargs: Any) -> Any:
    """Build the registered model ``name`` with keyword arguments."""
    _load_builtin()
    if name not in _REGISTRY:
        raise UnknownModelError(f"Unknown model {name!r}. Registered models: {', '.join(sorted(_REGISTRY))}")
    return _REGISTRY[name](**kwargs)


def _load_builtin() -> None:
    # Model files import torch, so they are imported on first use, never with the runtime.
    from armscan.models import detector, photo  # noqa: F401
