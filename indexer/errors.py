"""The errors of the index artifacts, in one hierarchy::

    ArtifactError               the artifact directory is missing, unreadable or inconsistent
    ├── ChecksumError           a file's sha256 differs from the manifest
    └── ManifestMismatchError   the manifest disagrees with the configured models (``.field``)
    IndexInputError             a build, add or remove was given inputs that do not fit

All derive from :class:`models.errors.VisragError`.
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


class IndexInputError(VisragError):
    """What a build, add or remove was given does not fit: nothing could be embedded, an id is
    already indexed, or an id to remove is not in the index."""
