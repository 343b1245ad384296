"""visrag_client: a light client of the visrag retrieval service (httpx + pydantic only)."""

from visrag_client.client import AsyncVisragClient, VisragClient
from visrag_client.core import RetryPolicy
from visrag_client.errors import VisragAPIError, VisragClientError, VisragConnectionError

__all__ = [
    "AsyncVisragClient",
    "RetryPolicy",
    "VisragAPIError",
    "VisragClient",
    "VisragClientError",
    "VisragConnectionError",
]
