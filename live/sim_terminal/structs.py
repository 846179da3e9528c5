"""Result structures shaped like the MetaTrader5 package's PyStructSequence types.

Each is a tuple subclass with attribute access and a shallow `_asdict()` (a nested TradeRequest
stays a TradeRequest), and without namedtuple's `_fields`/`_replace`, as the real types. Like a
PyStructSequence type, each class carries n_fields, n_sequence_fields, n_unnamed_fields (0) and
__match_args__ (class attributes: instances, equality and pickling are plain tuples'). They
are module-level classes, so they pickle (state files, RPyC `obtain`).
"""

from __future__ import annotations

import sys
from typing import Any

from live.mt5_records import STRUCT_FIELDS

__all__ = ["STRUCT_FIELDS", "STRUCT_TYPES"]


# The field tables are the trader's records' (one table for both): live/mt5_records.py.
class _Struct(tuple):
    """Base of the structure types: positional tuple plus named, read-only fields."""

    __slots__ = ()
    _FIELDS: tuple[str, ...] = ()

    def __new__(cls, *values: Any, **named: Any) -> _Struct:
        if named:
            values = tuple(named[f] for f in cls._FIELDS)
        if len(values) != len(cls._FIELDS):
            raise TypeError(f"{cls.__name__} takes {len(cls._FIELDS)} values, got {len(values)}")
        return super().__new__(cls, values)

    def _asdict(self) -> dict[str, Any]:
        return dict(zip(self._FIELDS, self, strict=True))

    def __repr__(self) -> str:
        inner = ", ".join(f"{k}={v!r}" for k, v in zip(self._FIELDS, self, strict=True))
        return f"{type(self).__name__}({inner})"

    def __reduce__(self) -> tuple[type, tuple[Any, ...]]:
        return type(self), tuple(self)


def _make(name: str, fields: tuple[str, ...]) -> type:
    namespace: dict[str, Any] = {
        "__slots__": (),
        "_FIELDS": fields,
        "__module__": __name__,
        "n_fields": len(fields),
        "n_sequence_fields": len(fields),
        "n_unnamed_fields": 0,
        "__match_args__": fields,
    }
    for position, field in enumerate(fields):
        namespace[field] = property(lambda self, i=position: self[i])
    return type(name, (_Struct,), namespace)


for _name, _fields in STRUCT_FIELDS.items():
    setattr(sys.modules[__name__], _name, _make(_name, _fields))

STRUCT_TYPES: dict[str, type] = {
    name: getattr(sys.modules[__name__], name) for name in STRUCT_FIELDS
}
