"""Generate the README's configuration table from ``app.settings.Settings``.

    python tools/settings_table.py                 # print the table
    python tools/settings_table.py --write README.md
    python tools/settings_table.py --check README.md   # exit 1 when the README drifted

The table sits between ``<!-- settings-table:start -->`` and ``<!-- settings-table:end -->``.
"""

from __future__ import annotations

import argparse
import difflib
import sys
import types
import typing
from enum import Enum
from pathlib import Path

from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script from anywhere, without an install
    sys.path.insert(0, str(ROOT))

from app.settings import Settings  # noqa: E402

START = "<!-- settings-table:start -->"
END = "<!-- settings-table:end -->"
HEADER = (
    "| Variable | Type | Default | Description |",
    "|---|---|---|---|",
)


class TableMissingError(ValueError):
    """The document has no (or a malformed) pair of table markers."""


def env_name(field: str) -> str:
    """The environment variable that sets ``field``."""
    prefix = Settings.model_config.get("env_prefix", "")
    return f"{prefix}{field}".upper()


def _type_name(annotation: object) -> str:
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is typing.Literal:
        return " / ".join(f"`{a}`" for a in args)
    if origin in (typing.Union, types.UnionType):
        names = [_type_name(a) for a in args if a is not type(None)]
        return " / ".join(names)
    if origin in (list, tuple, set):
        return f"list of {_type_name(args[0])}" if args else "list"
    if isinstance(annotation, type) and issubclass(annotation, Enum):
        return " / ".join(f"`{m.value}`" for m in annotation)
    names = {str: "string", int: "integer", float: "number", bool: "boolean", Path: "path"}
    if isinstance(annotation, type):
        return names.get(annotation, "string")  # SecretStr and other str-likes
    return str(annotation)


def _bounds(field: FieldInfo) -> str:
    parts = []
    for meta in field.metadata:
        for attr, sign in (("ge", "≥"), ("gt", ">"), ("le", "≤"), ("lt", "<")):
            value = getattr(meta, attr, None)
            if value is not None:
                parts.append(f"{sign} {value}")
    return f" ({', '.join(parts)})" if parts else ""


def _default(field: FieldInfo) -> str:
    if field.default_factory is not None:
        value = field.default_factory()  # type: ignore[call-arg]
    elif field.default is PydanticUndefined:
        return "required"
    else:
        value = field.default
    if value is None:
        return "unset"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if isinstance(value, list | tuple | set):
        return "`[]`" if not value else f"`{list(value)}`"
    if isinstance(value, Enum):
        value = value.value
    return f"`{value}`"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ").strip()


def render_table() -> str:
    """The Markdown table, one row per ``Settings`` field, in declaration order."""
    rows = list(HEADER)
    for name, field in Settings.model_fields.items():
        kind = _type_name(field.annotation) + _bounds(field)
        rows.append(
            "| "
            + " | ".join(
                _cell(c)
                for c in (
                    f"`{env_name(name)}`",
                    kind,
                    _default(field),
                    field.description or "",
                )
            )
            + " |"
        )
    return "\n".join(rows) + "\n"


def _split(document: str) -> tuple[str, str, str]:
    start, end = document.find(START), document.find(END)
    if start < 0 or end < start:
        raise TableMissingError(f"markers {START} ... {END} not found in order")
    head = document[: start + len(START)]
    return head, document[start + len(START) : end], document[end:]


def current_table(document: str) -> str:
    """The table text between the markers (without the surrounding blank lines)."""
    return _split(document)[1].strip("\n") + "\n"


def replace_table(document: str) -> str:
    """``document`` with the table between the markers regenerated."""
    head, _, tail = _split(document)
    return f"{head}\n{render_table()}{tail}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--check", type=Path, metavar="FILE", help="fail if FILE's table drifted")
    group.add_argument("--write", type=Path, metavar="FILE", help="regenerate FILE's table")
    args = parser.parse_args(argv)

    if args.check is None and args.write is None:
        sys.stdout.write(render_table())
        return 0
    path: Path = args.check or args.write
    document = path.read_text(encoding="utf-8")
    try:
        if args.write is not None:
            path.write_text(replace_table(document), encoding="utf-8")
            return 0
        have, want = current_table(document), render_table()
    except TableMissingError as exc:
        print(f"{path}: {exc}", file=sys.stderr)
        return 2
    if have == want:
        return 0
    diff = difflib.unified_diff(
        have.splitlines(keepends=True),
        want.splitlines(keepends=True),
        fromfile=f"{path} (current)",
        tofile="generated from app.settings.Settings",
    )
    sys.stderr.writelines(diff)
    print(
        f"{path}: configuration table is stale; run: python tools/settings_table.py --write {path}",
        file=sys.stderr,
    )
    return 1


if __name__ == "__main__":
    sys.exit(main())
