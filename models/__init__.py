"""armscan.models: the networks, behind a small registry.

``armscan.models.registry`` is torch-free; the model files (``detector``) import torch and
are loaded on first use of :func:`get_model` or :func:`list_models`.
"""

from armscan.models.registry import UnknownModelError, get_model, list_models, register_model

__all__ = ["UnknownModelError", "get_model", "list_models", "register_model"]
