"""Errors shared by the model loaders (image and text)."""

from __future__ import annotations


class ModelNotAvailableError(RuntimeError):
    """Weights cannot be loaded (absent, gated, offline); the message says how to provide them."""
