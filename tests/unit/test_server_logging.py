"""`visrag serve` logging: faiss's import fallbacks stay out of the log, its warnings do not."""

from __future__ import annotations

import logging

from app.server import configure_logging


def test_faiss_loader_fallback_lines_are_silenced_but_not_its_warnings():
    loader = logging.getLogger("faiss.loader")
    try:
        configure_logging("info")
        assert not loader.isEnabledFor(logging.INFO)  # "Could not load ... ModuleNotFoundError"
        assert loader.isEnabledFor(logging.WARNING) and loader.isEnabledFor(logging.ERROR)
        configure_logging("debug")  # asked for everything: everything
        assert loader.isEnabledFor(logging.INFO)
    finally:
        loader.setLevel(logging.NOTSET)
