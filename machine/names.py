"""Machine names: validation (docker-machine's rule) and the order they are listed in."""

from __future__ import annotations

import re

from machine.errors import UsageError

NAME_RE = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9\-\.]*$")
MAX_LEN = 63


def validate_name(name: str) -> str:
    """Return `name` if it is a valid machine name, else raise UsageError naming the problem."""
    if not isinstance(name, str) or not name:
        raise UsageError("Machine name must not be empty", "Give a name such as 'default' or 'dev-1'.")
    shown = name if len(name) <= 80 else name[:77] + "..."
    if len(name) > MAX_LEN or not NAME_RE.fullmatch(name):
        raise UsageError(
            f"Invalid machine name {shown!r}",
            "Names start with a letter or digit and contain only letters, digits, '-' and '.' "
            f"(at most {MAX_LEN} characters).",
        )
    return name


def natural_key(name: str) -> list[tuple[int, int, str]]:
    """Case-insensitive natural order: m2 before m10."""
    return [(0, int(part), "") if part.isdigit() else (1, 0, part) for part in re.split(r"(\d+)", name.lower())]
