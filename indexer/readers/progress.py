"""An optional rich progress bar over a reader's work items, shown only for large inputs."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TypeVar

T = TypeVar("T")

MIN_ITEMS = 500  # below this a bar flickers more than it informs


def track(items: list[T], description: str, *, enabled: bool) -> Iterator[T]:
    if not enabled or len(items) < MIN_ITEMS:
        yield from items
        return
    from rich.console import Console
    from rich.progress import Progress

    with Progress(console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task(description, total=len(items))
        for item in items:
            yield item
            bar.advance(task)
