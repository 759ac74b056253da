"""Plain values as the settings accept them, one definition for the manager's options and the
settings: booleans (``true``/``false``, ``1``/``0``, ``yes``/``no``, ``on``/``off``) and integers
(an int, or a string of ASCII digits, as environment variables give them)."""

from __future__ import annotations

import re

__all__ = ["parse_bool", "parse_int"]

_TRUE = frozenset({"true", "1", "yes", "on"})
_FALSE = frozenset({"false", "0", "no", "off"})
_INTEGER = re.compile(r"\s*-?[0-9]+\s*")


def parse_bool(value: object) -> bool:
    """``value`` as a boolean; ValueError when it is none."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        word = value.strip().lower()
        if word in _TRUE:
            return True
        if word in _FALSE:
            return False
    raise ValueError(value)


def parse_int(value: object) -> int:
    """``value`` as an integer (never a bool); ValueError when it is none."""
    if isinstance(value, bool):
        raise ValueError(value)
    if isinstance(value, int):
        return value
    if isinstance(value, str) and _INTEGER.fullmatch(value):
        return int(value)
    raise ValueError(value)
