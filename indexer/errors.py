"""The errors of the index artifacts, in one hierarchy::

    ArtifactError               the artifact directory is missing, unreadable or inconsistent
    ├── ChecksumError           a file's sha256 differs from the manifest
    └── ManifestMismatchError   the manifest disagrees with the configured models (``.field``)

All three are importable from :mod:`indexer.artifacts` too.
"""

from __future__ import annotations

from models.errors import VisragError


class ArtifactError(VisragError):
    """The artifact directory is missing, unreadable or inconsistent."""


class ChecksumError(ArtifactError):
    """A file's sha256 differs from the one recorded in the manifest."""


class ManifestMismatchError(ArtifactError):
    """The manifest disagrees with the configured models or taxonomy; ``field`` names where."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
