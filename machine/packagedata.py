"""Data shipped with machine, found the same way in a checkout and in an installed wheel: the jinja2
templates of templates/ and the image catalogue of isos/. setup.py installs those top-level folders as
machine/templates and machine/isos; in a checkout they sit beside machine/."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from machine.errors import ConfigError

_PACKAGE = Path(__file__).resolve().parent


def folder(name: str) -> Path:
    """`templates` or `isos`: machine/<name> when installed, else <checkout>/<name>."""
    for candidate in (_PACKAGE / name, _PACKAGE.parent / name):
        if candidate.is_dir():
            return candidate
    raise ConfigError(f"machine's {name}/ folder is missing (looked in {_PACKAGE} and {_PACKAGE.parent})",
                      "Reinstall machine.")


def template_dir(kind: str) -> Path:
    """templates/<kind> (engine, libvirt, hyperv)."""
    return folder("templates") / kind


def templates(kind: str, *, autoescape: bool = False, finalize: Callable[[Any], Any] | None = None,
              filters: dict[str, Callable[..., Any]] | None = None) -> Any:
    """A jinja2 Environment over templates/<kind>: undefined values are errors and trailing newlines
    stay. XML templates escape (autoescape), script templates quote every value (finalize)."""
    import jinja2

    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(template_dir(kind))), autoescape=autoescape,
                             undefined=jinja2.StrictUndefined, keep_trailing_newline=True, finalize=finalize)
    env.filters.update(filters or {})
    return env


def isos_text(name: str) -> str:
    """The text of isos/<name> (e.g. images.yaml, the image catalogue)."""
    return (folder("isos") / name).read_text(encoding="utf-8")
