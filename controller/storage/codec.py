"""Plain dataclasses to JSON-able values and back, guided by their type hints.

The ACD's shared log and snapshots (storage/acd_log.py) carry engine events and state between
controller processes through Redis. Pickle would carry anything, and would also run anything
that whoever can write to Redis puts there; this codec only builds the dataclasses, enums and
containers the type hints name.

Supported: dataclasses (by field name), ``str``/``int``/``float``/``bool``/``None``,
``datetime`` (ISO 8601), ``StrEnum``/``IntEnum`` (by value), ``X | None`` unions,
``tuple[X, ...]``, ``tuple[X, Y]``, ``list[X]``, ``frozenset[X]``, ``dict[K, V]``.
"""

from __future__ import annotations

import dataclasses
import functools
import types
import typing
from datetime import datetime
from enum import Enum
from typing import Any


class DecodeError(ValueError):
    """The value does not fit the type it is read as."""


def encode(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: encode(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, dict):
        return {str(k): encode(v) for k, v in value.items()}
    if isinstance(value, (tuple, list)):
        return [encode(v) for v in value]
    if isinstance(value, (set, frozenset)):
        return sorted(encode(v) for v in value)
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    raise TypeError(f"cannot encode {type(value).__name__}")


def decode(kind: Any, value: Any) -> Any:
    """Read ``value`` (from :func:`encode`, through JSON) as ``kind``."""
    try:
        return _decode(kind, value)
    except (TypeError, KeyError, AttributeError) as exc:
        raise DecodeError(f"{value!r:.80} is not a {kind}: {exc}") from exc


@functools.cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _decode(kind: Any, value: Any) -> Any:
    if kind is Any:
        return value
    origin = typing.get_origin(kind)
    args = typing.get_args(kind)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        last: Exception | None = None
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _decode(arg, value)
            except (TypeError, ValueError, KeyError, AttributeError) as exc:
                last = exc
        raise DecodeError(f"{value!r:.80} fits none of {kind}: {last}")
    if origin is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_decode(args[0], v) for v in value)
        if len(args) != len(value):
            raise DecodeError(f"{value!r:.80} does not have {len(args)} items")
        return tuple(_decode(a, v) for a, v in zip(args, value, strict=True))
    if origin is list:
        return [_decode(args[0], v) for v in value]
    if origin is frozenset:
        return frozenset(_decode(args[0], v) for v in value)
    if origin is dict:
        return {_decode(args[0], k): _decode(args[1], v) for k, v in value.items()}
    if isinstance(kind, type):
        if dataclasses.is_dataclass(kind):
            hints = _hints(kind)
            fields = {f.name for f in dataclasses.fields(kind) if f.init}
            return kind(**{name: _decode(hints[name], v) for name, v in value.items() if name in fields})
        if issubclass(kind, Enum):
            return kind(value)
        if kind is datetime:
            return datetime.fromisoformat(value)
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            return float(value)
        if kind in (str, int, float, bool):
            if type(value) is not kind:
                raise DecodeError(f"{value!r:.80} is not a {kind.__name__}")
            return value
    if kind is type(None) and value is None:
        return None
    raise DecodeError(f"cannot decode {kind}")
