"""How `visrag --help` reads: commands in pipeline order, plain metavars.

Typer's defaults list commands as they were registered (the service commands last, the `index`
group after them) and label flags ``<bool>``, repeatable options ``<list[str]>`` and required
arguments ``{dataset}``. :class:`PipelineGroup` orders the commands as a user runs them;
:class:`PlainCommand` leaves the type of a flag out, labels a repeatable option by its element
type, and writes arguments the usual way (``DATASET``, ``[OUT]``).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import typer
from typer.core import TyperArgument, TyperCommand, TyperGroup, TyperOption

from models.errors import VisragError

PIPELINE_ORDER = (
    # the pipeline, then the tools around it
    "analyze",
    "split",
    "index",
    "evaluate",
    "serve",
    "demo",
    "generate",
    "model",
    "query",
    # `visrag index ...`
    "build",
    "import",
    "add",
    "remove",
    "ls",
    "verify",
    # `visrag model ...`
    "tiny",
)


def _plain_metavars(params: Any, ctx: Any) -> Any:
    """Flags show no type; a repeatable option shows ``<str>...`` rather than ``<list[str]>``."""
    for param in params:  # includes --help, made on demand
        if isinstance(param, TyperArgument) and param.nargs != 1:
            label = _element(param.display_type(ctx))  # typer shows an argument's type, not metavar
            param.display_type_rich = lambda ctx=None, label=label: label  # type: ignore[method-assign,misc]
        if param.metavar is not None or not isinstance(param, TyperOption):
            continue
        if param.is_flag:
            param.metavar = ""  # a flag takes no value: no type to show
        elif param.multiple:
            param.metavar = _element(param.display_type(ctx))
    return params


def _element(label: str) -> str:
    """``<list[str]>`` -> ``<str>...``."""
    return re.sub(r"^<list\[(.*)\]>$", r"<\1>...", label)


class PipelineGroup(TyperGroup):
    """A command group that lists its commands in :data:`PIPELINE_ORDER` (others after them)."""

    def get_params(self, ctx: Any) -> Any:
        return _plain_metavars(super().get_params(ctx), ctx)

    def list_commands(self, ctx: Any) -> list[str]:
        names = super().list_commands(ctx)
        rank = {name: i for i, name in enumerate(PIPELINE_ORDER)}
        return sorted(names, key=lambda name: (rank.get(name, len(rank)), names.index(name)))


class PlainCommand(TyperCommand):
    """A command whose help shows no ``<bool>``, ``<list[str]>`` or ``{argument}`` labels."""

    def get_params(self, ctx: Any) -> Any:
        return _plain_metavars(super().get_params(ctx), ctx)

    def collect_usage_pieces(self, ctx: Any) -> list[str]:
        pieces = [self.options_metavar] if self.options_metavar else []
        for param in self.get_params(ctx):
            if isinstance(param, TyperArgument):
                name = param.metavar or (param.name or "").upper()
                name = name if param.required else f"[{name}]"
                pieces.append(name + ("..." if param.nargs != 1 else ""))
            else:
                pieces.extend(param.get_usage_pieces(ctx))
        return pieces


def command_group(name: str, help: str) -> typer.Typer:
    """A command group that lists its commands in pipeline order and shows help when bare."""
    return typer.Typer(
        name=name, help=help, no_args_is_help=True, add_completion=False, cls=PipelineGroup
    )


@contextmanager
def user_errors() -> Iterator[None]:
    """Expected errors -> one red line and exit 1 (no traceback for a user's mistake)."""
    try:
        yield
    except (VisragError, FileNotFoundError) as exc:
        typer.secho(f"error: {exc}", fg="red", err=True)
        raise typer.Exit(1) from exc
