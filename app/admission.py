"""Admission control: a full service answers 429 at the start of a request, before any work.

Every query request takes a token when it arrives (after the API key and readiness checks, before
a byte of its body is read) and gives it back when it finishes, however it finishes. With
``capacity`` requests already in progress (receiving, decoding, queued or encoding), the next one
is refused at once with :class:`~app.errors.OverloadedError` (429 + Retry-After) instead of being
read, decoded and preprocessed only to be refused at the inference queue.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

from app.errors import OverloadedError


class Admission:
    """A non-blocking counter of requests in progress, bounded by ``capacity``."""

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError("admission capacity must be at least 1")
        self.capacity = capacity
        self.in_progress = 0
        self.refused = 0

    @contextlib.contextmanager
    def enter(self, retry_after: Callable[[], float] = lambda: 1.0) -> Iterator[None]:
        """Hold a token for the ``with`` block; raise OverloadedError if none is free.

        Runs on the event loop only (no lock needed: nothing awaits between test and take).
        """
        if self.in_progress >= self.capacity:
            self.refused += 1
            raise OverloadedError(
                f"the service is full ({self.capacity} requests in progress); retry later",
                retry_after=retry_after(),
            )
        self.in_progress += 1
        try:
            yield
        finally:
            self.in_progress -= 1
