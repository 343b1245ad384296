"""The errors of the index artifacts, in one hierarchy::

    ArtifactError               the artifact directory is missing, unreadable or inconsistent
    ├── ChecksumError           a file's sha256 differs from the manifest
    ├── ManifestMismatchError   the manifest disagrees with the configured models (``.field``)
    └── IndexFileMismatchError  an index file disagrees with its manifest (``.field``)
    IndexInputError             a build, add or remove was given inputs that do not fit
    ├── ItemExistsError         an id to add is already indexed
    └── UnknownItemError        an id to remove or look up is not in the index
    MissingExtraError           an offline command needs an optional extra (``visrag[reports]``)

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


class IndexFileMismatchError(ArtifactError):
    """A vector index file disagrees with the manifest that lists it (type, metric, dim, count).

    The message is one line naming the file, the field and both values; ``field`` names it.
    """

    def __init__(self, file: str, field: str, *, manifest: object, found: object) -> None:
        super().__init__(f"{file}: {field} is {found!r} in the file, {manifest!r} in the manifest")
        self.field = field


class IndexInputError(VisragError):
    """What a build, add or remove was given does not fit: nothing could be embedded, an id is
    already indexed, or an id to remove is not in the index."""


class ItemExistsError(IndexInputError):
    """An id to add is already indexed (``.ids``: every such id)."""

    def __init__(self, message: str, ids: tuple[str, ...]) -> None:
        super().__init__(message)
        self.ids = ids


class UnknownItemError(IndexInputError):
    """An id to remove or look up is not in the index."""


class MissingExtraError(VisragError):
    """An offline command needs an optional dependency; the message names the extra to install."""

    def __init__(self, module: str, *, extra: str, purpose: str) -> None:
        super().__init__(f"{purpose} need {module}: pip install 'visrag[{extra}]'")
        self.extra = extra
