"""Printing results: YAML (the default, as in MMCloud), JSON, or an aligned table; and raw bytes
for logs. Models are dumped with mode="json" and their MMCloud aliases (`from` in history)."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import yaml
from pydantic import BaseModel

FORMATS = ("yaml", "json", "table")
DEFAULT_FORMAT = "yaml"


def emit(fmt: str | None, value: Any, table: Callable[[Any], str]) -> None:
    """Print `value` as yaml or json, or as `table(value)` draws it (yaml when no -F)."""
    fmt = fmt or DEFAULT_FORMAT
    if fmt == "table":
        text = table(value)
    elif fmt == "json":
        text = json.dumps(plain(value), indent=2)
    else:
        text = yaml.safe_dump(plain(value), sort_keys=False)
    line(text.rstrip("\n"))


def line(text: str) -> None:
    try:
        sys.stdout.write(text + "\n")
    except UnicodeEncodeError:  # a terminal that cannot show `→` or a name's accents
        encoding = sys.stdout.encoding or "ascii"
        sys.stdout.write((text + "\n").encode(encoding, "replace").decode(encoding))


def raw(data: bytes) -> None:
    """Bytes to stdout exactly as received (a log is not re-encoded or given a final newline)."""
    buffer = getattr(sys.stdout, "buffer", None)
    if buffer is None:
        sys.stdout.write(data.decode(errors="replace"))
        return
    sys.stdout.flush()
    buffer.write(data)
    buffer.flush()


def plain(value: Any) -> Any:
    """Models, lists and dicts of them as JSON-ready data."""
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json", by_alias=True)
    if isinstance(value, (list, tuple)):
        return [plain(item) for item in value]
    if isinstance(value, dict):
        return {key: plain(item) for key, item in value.items()}
    return value


def table(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """Columns aligned on the widest cell, two spaces apart; a missing value shows as `-`."""
    cells = [list(headers)] + [[cell(value) for value in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    return "\n".join(
        "  ".join(text.ljust(width) for text, width in zip(row, widths, strict=True)).rstrip()
        for row in cells
    )


def fields(pairs: Iterable[tuple[str, Any]]) -> str:
    """`KEY:  value` lines for one object, values aligned."""
    pairs = list(pairs)
    width = max(len(key) for key, _ in pairs) + 1
    return "\n".join(f"{key + ':':<{width}}  {cell(value)}".rstrip() for key, value in pairs)


def cell(value: Any) -> str:
    """One table cell: `-` for nothing, and no control characters (names and reasons come from
    other users, and a terminal escape in them must not reach the terminal)."""
    if value is None or value == "":
        return "-"
    return "".join(ch if ch.isprintable() else " " for ch in str(value))
