"""A small renderer for the Go-template subset docker-machine users put in `--format`/`-f`.

Supported actions (spaces inside the braces are optional, `{{-`/`-}}` trim like in Go):

    {{.}}  {{.Field}}  {{.A.B}}         a value (fields of mappings or objects)
    {{json .X}}  {{prettyjson .X}}      the value as JSON (compact / indented)
    {{upper .X}}  {{lower .X}}          the value's text in upper / lower case

A literal backslash-t or backslash-n in the format becomes a tab or newline. A format starting
with `table ` renders a header line (see `render_rows`) and aligns the columns like Go's
tabwriter. Anything else (`if`, `range`, pipes, other functions) is a UsageError naming it.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from machine.errors import UsageError

TABLE_PREFIX = "table"
FUNCTIONS = ("json", "prettyjson", "upper", "lower")
SUPPORTED = "{{.Field}}, {{.A.B}}, {{json .X}}, {{prettyjson .X}}, {{upper .X}}, {{lower .X}}"

_ACTION = re.compile(r"\{\{(-\s)?(.*?)(\s-)?\}\}", re.S)
_PATH = re.compile(r"^\.(?:[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*)?$")
_HINT = f"Supported: {SUPPORTED}; a leading 'table ' adds a header line."


@dataclass(frozen=True)
class Action:
    """One `{{...}}`: an optional function applied to a field path (() is `.` itself)."""

    func: str | None
    path: tuple[str, ...]
    source: str


Part = str | Action


@dataclass(frozen=True)
class Template:
    parts: tuple[Part, ...]
    table: bool = False

    def fields(self) -> list[str]:
        """Top-level field names the template uses (to check them before any work is done)."""
        return [p.path[0] for p in self.parts if isinstance(p, Action) and p.path]

    def execute(self, data: Any) -> str:
        return "".join(p if isinstance(p, str) else _apply(p, data) for p in self.parts)

    def header(self, headers: Mapping[str, str]) -> str:
        """The header line: each action replaced by its field's title (or the field name in capitals)."""
        out = []
        for p in self.parts:
            if isinstance(p, str):
                out.append(p)
            elif p.path:
                out.append(headers.get(p.path[0], p.path[-1].upper()))
        return "".join(out)


def parse(fmt: str) -> Template:
    """Parse a format; a UsageError says what is wrong or unsupported."""
    table = False
    text = fmt
    rest = text[len(TABLE_PREFIX):]
    if text.startswith(TABLE_PREFIX) and (not rest or rest[0] in " \t" or rest.startswith("{{")):
        table = True
        text = text[len(TABLE_PREFIX):].strip(" ")
    text = text.replace("\\t", "\t").replace("\\n", "\n")
    parts: list[Part] = []
    pos = 0
    for m in _ACTION.finditer(text):
        literal = text[pos:m.start()]
        if m.group(1):
            literal = literal.rstrip()
        _check_literal(literal, fmt)
        if literal:
            parts.append(literal)
        parts.append(_parse_action(m.group(2).strip(), m.group(0), fmt))
        pos = m.end()
        if m.group(3):
            while pos < len(text) and text[pos].isspace():
                pos += 1
    _check_literal(text[pos:], fmt)
    if text[pos:]:
        parts.append(text[pos:])
    return Template(tuple(parts), table)


def render(fmt: str, data: Any) -> str:
    """Render `fmt` once for `data` (as `machine inspect -f` does)."""
    return parse(fmt).execute(data)


def render_rows(template: Template, rows: Iterable[Any], headers: Mapping[str, str] | None = None) -> str:
    """One line per row; for a table template a header line first and the columns aligned."""
    lines = [template.execute(r) for r in rows]
    if not template.table:
        return "".join(line + "\n" for line in lines)
    lines.insert(0, template.header(headers or {}))
    return align_columns("\n".join(lines))


def align_columns(text: str, minwidth: int = 5, padding: int = 3) -> str:
    """Align tab-separated cells as Go's tabwriter (minwidth 5, padding 3) does for docker-machine:
    every tab-terminated cell is padded to its column's width; the last cell of a line is not."""
    rows = [line.split("\t") for line in text.split("\n")]
    widths: dict[int, int] = {}
    for cells in rows:
        for i, cell in enumerate(cells[:-1]):
            widths[i] = max(widths.get(i, minwidth), len(cell) + padding)
    out = []
    for cells in rows:
        padded = [cell.ljust(widths[i]) for i, cell in enumerate(cells[:-1])]
        out.append(("".join(padded) + cells[-1]).rstrip())
    return "".join(line + "\n" for line in out)


# -- internals ----------------------------------------------------------------------------------


def _check_literal(literal: str, fmt: str) -> None:
    if "{{" in literal:
        raise UsageError(f"Unclosed '{{{{' in format {fmt!r}", _HINT)


def _parse_action(body: str, source: str, fmt: str) -> Action:
    words = body.split()
    if len(words) == 1 and _PATH.match(words[0]):
        return Action(None, _split_path(words[0]), source)
    if len(words) == 2 and words[0] in FUNCTIONS and _PATH.match(words[1]):
        return Action(words[0], _split_path(words[1]), source)
    if not words:
        raise UsageError(f"Empty action {source!r} in format {fmt!r}", _HINT)
    if words[0] in FUNCTIONS:
        raise UsageError(f"{words[0]} takes one field, as in {{{{{words[0]} .Name}}}}: got {source!r}", _HINT)
    raise UsageError(f"Unsupported template action {source!r} in format {fmt!r}", _HINT)


def _split_path(path: str) -> tuple[str, ...]:
    return tuple(p for p in path.split(".") if p)


def _apply(action: Action, data: Any) -> str:
    value = _lookup(data, action.path, action.source)
    if action.func == "json":
        return json.dumps(_plain(value), separators=(",", ":"), ensure_ascii=False)
    if action.func == "prettyjson":
        return json.dumps(_plain(value), indent=4, ensure_ascii=False)
    text = go_string(value)
    if action.func == "upper":
        return text.upper()
    if action.func == "lower":
        return text.lower()
    return text


def _lookup(data: Any, path: tuple[str, ...], source: str) -> Any:
    value = data
    for i, name in enumerate(path):
        if isinstance(value, Mapping):
            if name not in value:
                raise _no_field(name, path[:i], value.keys(), source)
            value = value[name]
        elif dataclasses.is_dataclass(value) and not isinstance(value, type):
            names = [f.name for f in dataclasses.fields(value)]
            if name not in names:
                raise _no_field(name, path[:i], names, source)
            value = getattr(value, name)
        else:
            where = "." + ".".join(path[:i]) if i else "."
            raise UsageError(f"Cannot take field {name!r} of {where} (a {type(value).__name__}) in {source!r}",
                             _HINT)
    return value


def _no_field(name: str, parent: tuple[str, ...], known: Iterable[str], source: str) -> UsageError:
    where = "." + ".".join(parent) if parent else "the data"
    listed = ", ".join(sorted(str(k) for k in known)) or "none"
    return UsageError(f"No field {name!r} in {where} (template {source!r})", f"Fields there: {listed}.")


def _plain(value: Any) -> Any:
    """JSON-ready form: dataclasses become dicts, enums and other objects their text."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return str(value)


def go_string(value: Any) -> str:
    """A value as Go's text/template prints it: true/false, [a b], map[k:v], <nil>."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "<nil>"
    if isinstance(value, str):
        return value
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return "{" + " ".join(go_string(getattr(value, f.name)) for f in dataclasses.fields(value)) + "}"
    if isinstance(value, Mapping):
        return "map[" + " ".join(f"{k}:{go_string(value[k])}" for k in sorted(value, key=str)) + "]"
    if isinstance(value, list | tuple):
        return "[" + " ".join(go_string(v) for v in value) + "]"
    return str(value)
