"""Strict option parsing shared by every configuration dataclass: an unknown key is an error (a typo must
not silently configure something else), and every value is checked against its field's type (a string
where a number belongs, or "no" for a yes/no option, is an error naming the key, the value and what is
expected). Numbers written the usual ways work: :func:`load_yaml` reads 5e-4 as a number (PyYAML's YAML
1.1 reads it as a string), and a whole number is a valid float. Also the ``--slices`` syntax shared by the
commands and scripts (:func:`parse_slices`)."""
from __future__ import annotations

import dataclasses
import math
import numbers
import re
import types
import typing
from dataclasses import fields
from typing import Any, Sequence

import yaml

NONE = type(None)


class OptionTypeError(ValueError):
    """A configuration value of the wrong type."""


class _Loader(yaml.SafeLoader):
    """PyYAML's safe loader with YAML 1.2 floats: 5e-4 and 1E3 are numbers, as in JSON and YAML 1.2."""


_Loader.add_implicit_resolver("tag:yaml.org,2002:float", re.compile(r"^[-+]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)[eE][-+]?[0-9]+$"),
                              list("-+.0123456789"))


def load_yaml(text: str) -> Any:
    """``yaml.safe_load`` reading exponent numbers without a dot (5e-4) as numbers."""
    return yaml.load(text, Loader=_Loader)


def is_whole_number(value: Any, minimum: int = 1) -> bool:
    """True for an int (not a bool) >= ``minimum``: the check behind every "whole number >= 1" option."""
    return isinstance(value, int) and not isinstance(value, bool) and value >= minimum


def _number(value: Any) -> float | None:
    """``value`` as a finite float if it is a real number (not a bool, not a string), else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, numbers.Real) and math.isfinite(value):
        return float(value)
    return None


def _describe(hint: Any) -> str:
    """What a type hint expects, in words."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        named = [_describe(a) for a in args if a is not NONE]
        return " or ".join(dict.fromkeys(named)) + (" (or null)" if NONE in args else "")
    if origin is list:
        return f"a list of {_describe(args[0]).removeprefix('a ').removeprefix('an ')}s" if args else "a list"
    if origin is tuple:
        return "a pair of numbers [low, high]" if len(args) == 2 else "a list"
    if dataclasses.is_dataclass(hint) or hint is dict or origin is dict:
        return "a mapping"
    return {int: "a whole number", float: "a number", bool: "true or false", str: "a string"}.get(hint, str(hint))


def _converted(value: Any, hint: Any) -> Any:
    """``value`` converted to ``hint`` (a field's type), or raise OptionTypeError (message filled in by the caller)."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and NONE in args:
            return None
        for arg in (a for a in args if a is not NONE):
            try:
                return _converted(value, arg)
            except OptionTypeError:
                continue
        raise OptionTypeError
    if hint is bool:
        if isinstance(value, bool):
            return value
    elif hint is int:
        number = _number(value)
        if number is not None and number.is_integer():
            return int(number)
    elif hint is float:
        number = _number(value)
        if number is not None:
            return number
    elif hint is str:
        if isinstance(value, str):
            return value
    elif origin is list:
        if isinstance(value, (list, tuple)):
            return [_converted(v, args[0]) for v in value] if args else list(value)
    elif origin is tuple:
        if isinstance(value, (list, tuple)) and len(value) == len(args):
            return tuple(_converted(v, a) for v, a in zip(value, args))
    elif dataclasses.is_dataclass(hint):
        if isinstance(value, (dict, hint)) or value is None:
            return value
    elif hint is dict or origin is dict:
        if isinstance(value, dict):
            return value
    else:
        return value  # a type this checker does not know: left to the dataclass
    raise OptionTypeError


def checked_options(cls: type, values: dict, what: str, prefix: str | None = None) -> dict:
    """``values`` with each value checked against (and converted to) the type of its field of the dataclass
    ``cls``; a ValueError names unknown keys (listing the valid ones) or a value of the wrong type. ``what``
    says where the keys come from; ``prefix`` (e.g. ``train``) names a key in messages as ``train.lr``."""
    if not isinstance(values, dict):
        raise ValueError(f"{what} must be a mapping, got {type(values).__name__}")
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(values) - known, key=str)
    if unknown:
        raise ValueError(f"unknown {what} key(s) {', '.join(map(str, unknown))}; valid: {', '.join(sorted(known))}")
    hints = typing.get_type_hints(cls)
    checked = {}
    for key, value in values.items():
        try:
            checked[key] = _converted(value, hints[key])
        except OptionTypeError:
            name = f"{prefix}.{key}" if prefix else f"{what} {key!r}"
            raise OptionTypeError(f"{name} must be {_describe(hints[key])}, got {value!r}") from None
    return checked


def check_unique(names: Sequence[str], what: str = "--contrasts") -> list[str]:
    """``names`` as a list, or a ValueError when one appears twice (case ignored)."""
    seen: dict[str, str] = {}
    for name in names:
        if name.casefold() in seen:
            raise ValueError(f"{what} lists {name} twice ({', '.join(names)}); give each once")
        seen[name.casefold()] = name
    return list(names)


def parse_slices(text: str | None) -> slice | list[int] | None:
    """'0:4' -> slice(0, 4); '3' or '1,5,9' -> a list of indices; None -> all."""
    if text is None:
        return None
    try:
        if ":" in text:
            start, _, stop = text.partition(":")
            return slice(int(start) if start else None, int(stop) if stop else None)
        return [int(part) for part in text.split(",")]
    except ValueError:
        raise ValueError(f"--slices takes 'start:stop' or comma-separated indices, got {text!r}") from None
