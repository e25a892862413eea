"""Strict option parsing shared by every configuration dataclass: an unknown key is an error (a typo must
not silently configure something else)."""
from __future__ import annotations

from dataclasses import fields


def checked_options(cls: type, values: dict, what: str) -> dict:
    """``values`` unchanged if every key names a field of the dataclass ``cls``; else a ValueError that
    names the unknown keys and lists the valid ones. ``what`` says where the keys come from."""
    if not isinstance(values, dict):
        raise ValueError(f"{what} must be a mapping, got {type(values).__name__}")
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ValueError(f"unknown {what} key(s) {', '.join(unknown)}; valid: {', '.join(sorted(known))}")
    return values
