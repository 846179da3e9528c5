"""Argument rules of the compiled MetaTrader5 module, for the simulated terminal.

The package raises no Python exceptions for malformed arguments: it answers None (False for
the bool functions) with (-2, text) in last_error(). This module owns those checks: calling
conventions (positional-only, keywords-only, no arguments), numbers, dates, counts, the
request dict's field types, and the ticket/symbol/group filters of the *_get functions.
"""

from __future__ import annotations

import fnmatch
import inspect
from collections.abc import Callable
from datetime import datetime
from typing import Any

from live.sim_terminal import structs

FLOAT_FIELDS = ("volume", "price", "stoplimit", "sl", "tp")
INT_FIELDS = (
    "action",
    "magic",
    "order",
    "deviation",
    "type",
    "type_filling",
    "type_time",
    "expiration",
    "position",
    "position_by",
)
INVALID = "Invalid arguments"
WRONG_COUNT = "Invalid number of arguments"
UNNAMED = "Unnamed arguments not allowed"
MAX_TEXT = 29  # UTF-16 units the module's 32-wchar buffers take (MT5_NOTES §4)
MAX_GROUP = 2000  # the binary rejects group masks of roughly this length


class CallFailed(Exception):
    """End the call with this last_error() code and text (None/False to the caller)."""

    def __init__(self, code: int, text: str) -> None:
        super().__init__(text)
        self.code, self.text = code, text


def invoke(
    function: Callable[..., Any], owner: object, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> Any:
    """Call `function`; a call that does not fit its signature fails with -2, as the module.

    The signature is only consulted after a TypeError, so well-formed calls pay nothing, and
    a TypeError from a bug inside a well-formed call still surfaces.
    """
    try:
        return function(owner, *args, **kwargs)
    except TypeError:
        try:
            inspect.signature(function).bind(owner, *args, **kwargs)
        except TypeError as mismatch:
            message = str(mismatch)
            counted = "missing" in message or "too many" in message
            raise CallFailed(-2, WRONG_COUNT if counted else INVALID) from None
        raise


def count(value: object) -> int:
    if not is_int(value) or value <= 0:
        raise CallFailed(-2, INVALID)
    return value


def is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def check_types(*pairs: tuple[object, type]) -> None:
    """Optional arguments: each None or of its type (bool counts as int, as the module's)."""
    for value, kind in pairs:
        if value is not None and not isinstance(value, kind):
            raise CallFailed(-2, INVALID)


def number(value: object) -> float:
    """A price or volume argument of order_calc_*: int or float (the module's 'd' format)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise CallFailed(-2, INVALID)
    return float(value)


def seconds(moment: object) -> int:
    """A datetime (naive = local time, as the package reads it) or epoch seconds."""
    if isinstance(moment, datetime):
        return int(moment.timestamp())
    if isinstance(moment, (int, float)) and not isinstance(moment, bool):
        return int(moment)
    raise CallFailed(-2, INVALID)


def symbol_name(value: object) -> str:
    if not isinstance(value, str) or _units(value) > MAX_TEXT:
        raise CallFailed(-2, INVALID)
    return value


def group_mask(value: object) -> str:
    if not isinstance(value, str) or len(value) >= MAX_GROUP:
        raise CallFailed(-2, INVALID)
    return value


def request(args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
    """The request dict with defaults and the compiled module's type rules."""
    if args:
        if len(args) != 1 or kwargs or not isinstance(args[0], dict):
            raise CallFailed(-2, INVALID)
        given = args[0]
    else:
        given = kwargs
    checked: dict[str, Any] = {}
    for name in structs.STRUCT_FIELDS["TradeRequest"]:
        value = given.get(name)
        if name in FLOAT_FIELDS:
            value = 0.0 if value is None else value
            valid = isinstance(value, float)
        elif name in INT_FIELDS:
            value = 0 if value is None else value
            valid = isinstance(value, int)
        else:
            value = "" if value is None else value
            valid = isinstance(value, str) and _units(value) <= MAX_TEXT
        if not valid:
            raise CallFailed(-2, f'Invalid "{name}" argument')
        checked[name] = value
    return checked


def filtered(items: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> list[Any]:
    """ticket, then symbol, then group: the first key present wins, as the binary does.

    The binary looks these keys up in the keywords, so other keywords are ignored.
    """
    if args:
        raise CallFailed(-2, UNNAMED)
    items = list(items)
    if "ticket" in kwargs:
        ticket = kwargs["ticket"]
        if not is_int(ticket):
            raise CallFailed(-2, INVALID)
        return [i for i in items if i.ticket == ticket]
    if "symbol" in kwargs:
        symbol = symbol_name(kwargs["symbol"])
        return [i for i in items if i.symbol == symbol]
    if "group" in kwargs:
        group = group_mask(kwargs["group"])
        return [i for i in items if group_match(i.symbol, group)]
    return items


def group_match(name: str, group: str) -> bool:
    """MT5 group masks: comma-separated patterns with *, a leading ! excludes; in order."""
    matched = False
    for pattern in (p.strip() for p in group.split(",")):
        if not pattern:
            continue
        if pattern.startswith("!"):
            if fnmatch.fnmatchcase(name, pattern[1:]):
                matched = False
        elif fnmatch.fnmatchcase(name, pattern):
            matched = True
    return matched


def _units(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2
