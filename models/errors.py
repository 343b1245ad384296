"""The root of every expected error in visrag, and the model loaders' own error.

Every error a user can cause or fix (a bad file, a wrong flag, missing weights, a corrupt index)
derives from :class:`VisragError`; the CLI prints those as one line and the service maps them
through one table. Anything else is a bug and keeps its traceback. The tree::

    VisragError
    ├── ModelNotAvailableError          models.errors   weights absent, gated or offline
    ├── ImageDecodeError                models.imaging  not an image / unreadable
    │   └── ImageTooLargeError          models.imaging  over the pixel limit
    ├── TaxonomyError                   models.taxonomy a taxonomy file that does not load
    └── (indexer errors: ArtifactError, QueryError, DatasetError, ... — see indexer.errors)

``VisragError`` subclasses ``ValueError`` so that code catching ``ValueError`` for bad input keeps
working; new code catches ``VisragError``.
"""

from __future__ import annotations


class VisragError(ValueError):
    """An expected error: its message is for the user and no traceback is needed."""


class ModelNotAvailableError(VisragError):
    """Weights cannot be loaded (absent, gated, offline); the message says how to provide them."""
