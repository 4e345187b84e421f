"""Argument checks shared by gmlib's modules, so every one words its errors alike."""

from __future__ import annotations


def positive_int(value, name: str) -> int:
    """``value`` if it is an int >= 1 (not a bool); else a ValueError naming
    ``name``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be an int >= 1, got {value!r}")
    return value
