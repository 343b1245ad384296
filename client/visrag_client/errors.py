"""What the client raises: every error carries the HTTP status and the service's ``error_type``."""

from __future__ import annotations


class VisragClientError(Exception):
    """Base of the client's errors."""


class VisragConnectionError(VisragClientError):
    """The service could not be reached (connection refused, DNS, timeout) within the budget."""


class VisragAPIError(VisragClientError):
    """The service answered with an error status.

    ``status_code`` is the HTTP status, ``error_type`` the service's machine-readable kind
    (``invalid_image``, ``invalid_parameter``, ``unauthorised``, ``overloaded``, ``not_ready``,
    ...; ``http_error`` when the body was not the service's error JSON), ``retry_after`` the
    seconds the service asked to wait (429/503) or None.
    """

    def __init__(
        self,
        message: str,
        *,
        status_code: int,
        error_type: str,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(f"{status_code} {error_type}: {message}")
        self.message = message
        self.status_code = status_code
        self.error_type = error_type
        self.retry_after = retry_after
