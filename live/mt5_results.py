"""The MT5 API's results copied into the project's records (live.mt5_records): structures
become immutable local records, tuples of them tuples of records, and an mt5linux (RPyC)
result is pulled across by value, so nothing the caller keeps is a link to the terminal.

Part of the connector: only live/mt5_connector.py hands it what the API returned (reading a
remote result over RPyC is a call to the terminal too).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from live.broker_types import RECORD_TYPES, STRUCT_FIELDS, record


def to_local(value: Any) -> Any:
    """Copy an API result into plain local records (also pulls RPyC proxies across by value)."""
    if value is None or isinstance(value, (bool, int, float, str, np.ndarray)):
        return value
    if _is_netref(value):
        return _netref_to_local(value)
    name = type(value).__name__
    if name in RECORD_TYPES:
        return _struct_to_record(name, tuple(value))
    if isinstance(value, tuple):
        return tuple(to_local(item) for item in value)
    if hasattr(value, "_asdict"):
        return record(name, {k: to_local(v) for k, v in value._asdict().items()})
    return value


def _struct_to_record(name: str, values: tuple[Any, ...]) -> Any:
    fields = STRUCT_FIELDS[name]
    if len(values) != len(fields):  # a newer package: keep what we know, by position
        values = (values + (None,) * len(fields))[: len(fields)]
    if name in ("OrderSendResult", "OrderCheckResult"):
        values = (*values[:-1], to_local(values[-1]))
    return RECORD_TYPES[name]._make(values)


def _is_netref(value: Any) -> bool:
    try:
        from rpyc.core.netref import BaseNetref
    except ImportError:
        return False
    return isinstance(value, BaseNetref)


def _netref_to_local(value: Any) -> Any:
    """A remote struct or tuple of structs, copied with as few round trips as possible."""
    from rpyc.utils.classic import obtain

    name = value.__class__.__name__
    if name in ("OrderSendResult", "OrderCheckResult"):
        head = obtain(value[:-1])  # a plain tuple of numbers and text travels by value
        return _struct_to_record(name, (*head, _netref_to_local(value[-1])))
    if name in RECORD_TYPES:
        return _struct_to_record(name, tuple(obtain(value[:])))
    if name == "ndarray":
        return obtain(value)
    if name == "tuple":
        return tuple(_netref_to_local(item) if _is_netref(item) else item for item in value)
    return obtain(value)
