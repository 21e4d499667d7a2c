"""Machine name validation (docker-machine's rule)."""

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
