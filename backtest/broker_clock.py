"""The broker's clock: the time zone an MT5 server stamps its bars, ticks and deals in.

MT5 epochs are the server's wall clock read as if it were UTC (at a GMT+2/+3 broker a bar
stamped 00:00 opened at 22:00 or 21:00 UTC). Inside this project every time is UTC; a
`BrokerZone` converts at the edges, and cuts D1/W1 bars at the broker's midnight.

A zone is written as:
  UTC                  the server runs on UTC
  UTC+2, UTC-05:30     a fixed offset
  Europe/Athens        any IANA name (the server follows that zone's daylight saving)
  NY+7                 "New York close" brokers: New York time plus 7 hours, so midnight on
                       the server is 17:00 in New York (UTC+2 in winter, UTC+3 in summer,
                       switching with the US); NY+N for other shifts
`auto` (the live trader's default) is resolved from tick times into a fixed offset; see
`offset_from_tick`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import numpy as np
import pandas as pd

from backtest.errors import BacktestError

HALF_HOUR = 1800
DAY = 86_400
WEEK = 7 * DAY
# 1970-01-01 was a Thursday: weekly bins counted from Sunday 00:00 start 3 days later
_SUNDAY = 3 * DAY
_FIXED = re.compile(r"^(?:UTC|GMT)\s*([+-])\s*(\d{1,2})(?::?(\d{2}))?$", re.IGNORECASE)
_NEW_YORK = re.compile(r"^NY\s*([+-])\s*(\d{1,2})$", re.IGNORECASE)
_FIRST, _LAST = -2_208_988_800, 7_258_118_400  # 1900-01-01, 2200-01-01
# the zones whose daylight-saving switches real brokers follow (US or EU dates)
DST_REFERENCES = ("America/New_York", "Europe/London")


class BrokerZoneError(BacktestError, ValueError):
    """A time zone that cannot be used; the message names the setting and the value."""


@dataclass(frozen=True)
class BrokerZone:
    """A server time zone: an IANA zone (`base`, None for UTC) plus a fixed shift in seconds."""

    name: str
    base: str | None = None
    shift: int = 0

    @property
    def fixed(self) -> bool:
        """True when the offset never changes (no daylight saving)."""
        return self.base is None

    def offsets(self, utc_seconds: np.ndarray | float) -> np.ndarray:
        """Seconds east of UTC at each UTC epoch."""
        seconds = np.atleast_1d(np.asarray(utc_seconds))
        if self.base is None:
            return np.full(seconds.shape, self.shift, dtype=np.int64)
        if seconds.size <= 4:  # a few moments: zoneinfo is far quicker than pandas
            return np.array([self._offset_of(float(t)) for t in seconds.ravel()]).reshape(
                seconds.shape
            )
        if seconds.dtype.kind not in "iu":  # whole seconds: bar times come as integers
            seconds = np.floor(seconds.astype(np.float64))
        floored = seconds.astype(np.int64, copy=False)
        flat = floored.ravel()
        in_order = flat.size > 2_000 and bool(np.all(flat[1:] >= flat[:-1]))  # bar times
        low, high = (flat[0], flat[-1]) if in_order else (flat.min(), flat.max())
        # zone rules are only known within years 1900-2200; far moments (a history query's
        # "until forever") take the offset at the edge
        if low < _FIRST or high > _LAST:
            flat = np.clip(flat, _FIRST, _LAST)
        if in_order:  # the runs between the zone's switches
            return self._offsets_sorted(flat).reshape(seconds.shape)
        if flat.size > 2_000:  # many moments: one look per day, exact only on switch days
            return self._offsets_by_day(flat).reshape(seconds.shape)
        return self._pandas_offsets(flat).reshape(seconds.shape)

    def _offsets_by_day(self, flat: np.ndarray) -> np.ndarray:
        days, where = np.unique(flat // DAY, return_inverse=True)
        first = self._pandas_offsets(days * DAY)
        last = self._pandas_offsets(days * DAY + DAY - 1)
        out = first[where]
        switching = (first != last)[where]
        if switching.any():
            out[switching] = self._pandas_offsets(flat[switching])
        return out

    def _offsets_sorted(self, sorted_seconds: np.ndarray) -> np.ndarray:
        """Sorted moments: the runs between the zone's switches filled with their offsets
        (no per-moment lookup)."""
        first_day, last_day = int(sorted_seconds[0] // DAY), int(sorted_seconds[-1] // DAY)
        switches, values = self._switches(first_day, last_day)
        if not switches.size:
            return np.full(sorted_seconds.shape, values[0], dtype=np.int64)
        bounds = np.searchsorted(sorted_seconds, switches)
        return np.repeat(values, np.diff(bounds, prepend=0, append=len(sorted_seconds)))

    @lru_cache(maxsize=64)  # noqa: B019  (zones are few, frozen and hashable)
    def _switches(self, first_day: int, last_day: int) -> tuple[np.ndarray, np.ndarray]:
        """The exact UTC seconds the offset switches between the two days' midnights, and
        the offset before the first switch and after each."""
        midnights = np.arange(first_day, last_day + 2, dtype=np.int64) * DAY
        at_midnight = self._pandas_offsets(midnights)
        switch_days = np.flatnonzero(at_midnight[1:] != at_midnight[:-1])
        values = np.concatenate((at_midnight[:1], at_midnight[switch_days + 1]))
        switches = switch_days
        if switch_days.size:
            switches = self._switch_seconds(midnights[switch_days], at_midnight[switch_days])
        for shared in (switches, values):  # cached: read-only
            shared.setflags(write=False)
        return switches, values

    def _switch_seconds(self, day_starts: np.ndarray, before: np.ndarray) -> np.ndarray:
        """The first second of each day whose offset differs from `before` (one switch a
        day): narrowed by hours, then minutes, then seconds, one lookup each."""
        start = day_starts.copy()
        for step, count in ((3600, 25), (60, 61), (1, 61)):
            probes = start[:, None] + step * np.arange(count, dtype=np.int64)
            changed = self._pandas_offsets(probes.ravel()).reshape(probes.shape) != before[:, None]
            first = changed.argmax(axis=1)  # the first probe past the switch
            start = start + step * np.maximum(first - 1, 0)
            if step == 1:
                return start + np.where(first > 0, step, 0)
        return start

    def _pandas_offsets(self, floored: np.ndarray) -> np.ndarray:
        index = pd.DatetimeIndex(floored.astype("datetime64[s]"), tz="UTC")
        local = index.tz_convert(self.base).tz_localize(None)
        wall = local.values.astype("datetime64[s]").astype(np.int64)
        return wall - floored + self.shift

    def _offset_of(self, utc_seconds: float) -> int:
        moment = datetime.fromtimestamp(min(max(utc_seconds, _FIRST), _LAST), tz=_zone(self.base))
        return int(moment.utcoffset().total_seconds()) + self.shift

    def offset_at(self, utc_seconds: float) -> int:
        """Seconds east of UTC at one UTC epoch."""
        return int(self.offsets(utc_seconds)[0])

    def to_server(self, utc_seconds: np.ndarray | float) -> np.ndarray | float:
        """UTC epochs as the server stamps them (its wall clock read as UTC)."""
        if np.ndim(utc_seconds) == 0:
            return float(utc_seconds) + self.offset_at(float(utc_seconds))
        values = np.asarray(utc_seconds)
        return values + self.offsets(values).astype(values.dtype)

    def to_utc(self, server_seconds: np.ndarray | float) -> np.ndarray | float:
        """Server-stamped epochs back to UTC. In the hour a fall-back switch repeats, the
        earlier of the two instants is taken (as the server's own D1 cut does)."""
        if self.base is None:
            return server_seconds - self.shift
        scalar = np.ndim(server_seconds) == 0
        wall = np.atleast_1d(np.asarray(server_seconds))
        # at most one switch within a day: the offsets a day either side are the two candidates
        before = wall - self.offsets(wall - DAY)
        after = wall - self.offsets(wall + DAY)
        before_ok = before + self.offsets(before) == wall
        after_ok = after + self.offsets(after) == wall
        result = np.where(
            before_ok & after_ok,
            np.minimum(before, after),
            np.where(before_ok | ~after_ok, before, after),
        )
        result = result.astype(wall.dtype, copy=False)
        return float(result[0]) if scalar else result

    def local_times(self, utc: pd.Series | pd.DatetimeIndex) -> pd.Series:
        """The broker's wall clock (naive datetimes) for tz-aware UTC times."""
        nanos = pd.DatetimeIndex(utc).as_unit("ns").asi8
        if self.fixed:  # one shift for every bar: no array of offsets
            wall = (nanos + self.shift * 1_000_000_000).view("datetime64[ns]")
        else:
            shift = self.offsets(nanos // 1_000_000_000) * 1_000_000_000
            wall = (nanos + shift).view("datetime64[ns]")
        if isinstance(utc, pd.Series):
            return pd.Series(wall, index=utc.index, name=utc.name)
        return pd.Series(wall)

    def bin_opens(self, utc_seconds: np.ndarray, width: int) -> tuple[np.ndarray, np.ndarray]:
        """For each UTC epoch: the key of the `width`-second bar holding it on the server's
        clock (weeks from Sunday 00:00), and that bar's open time in UTC."""
        epochs = np.asarray(utc_seconds, dtype=np.int64)
        wall = epochs + self.offsets(epochs)
        origin = _SUNDAY if width == WEEK else 0
        keys = (wall - origin) // width
        opens_wall = keys * width + origin
        return keys, np.asarray(self.to_utc(opens_wall), dtype=np.int64)

    def bin_closes(self, utc_seconds: np.ndarray, width: int) -> np.ndarray:
        """For each UTC epoch: when the `width`-second bar holding it on the server's clock
        closes (the next bar's open), in UTC."""
        keys, _ = self.bin_opens(utc_seconds, width)
        origin = _SUNDAY if width == WEEK else 0
        return np.asarray(self.to_utc((keys + 1) * width + origin), dtype=np.int64)

    def switches_between(self, start: float, end: float) -> bool:
        """Whether this zone's offset changes between two UTC epochs."""
        return self.offset_at(start) != self.offset_at(end)

    def describe(self, utc_seconds: float) -> str:
        """'NY+7 (UTC+02:00 now)' for logs, --check and the dashboard."""
        return f"{self.name} (UTC{format_offset(self.offset_at(utc_seconds))} now)"


UTC_ZONE = BrokerZone("UTC")


@lru_cache(maxsize=64)
def _zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def format_offset(seconds: int) -> str:
    """+02:00 / -05:30."""
    sign = "-" if seconds < 0 else "+"
    minutes = abs(int(seconds)) // 60
    return f"{sign}{minutes // 60:02d}:{minutes % 60:02d}"


def fixed_zone(offset_seconds: int, name: str | None = None) -> BrokerZone:
    """A zone with a constant offset (what `auto` resolves to)."""
    return BrokerZone(name or f"UTC{format_offset(offset_seconds)}", None, int(offset_seconds))


@lru_cache(maxsize=64)
def parse_zone(text: str, key: str = "BROKER_TZ") -> BrokerZone:
    """A zone from its written form (see the module docstring); `auto` is not resolved here."""
    value = str(text).strip()
    if value.upper() in ("UTC", "GMT", "Z"):
        return UTC_ZONE
    fixed = _FIXED.match(value)
    if fixed:
        sign, hours, minutes = fixed.groups()
        if int(minutes or 0) >= 60:
            raise BrokerZoneError(f"{key}: {value!r} has {minutes} minutes")
        seconds = int(hours) * 3600 + int(minutes or 0) * 60
        if seconds > 14 * 3600:
            raise BrokerZoneError(f"{key}: offset {value!r} is beyond UTC±14:00")
        return fixed_zone(-seconds if sign == "-" else seconds, value)
    new_york = _NEW_YORK.match(value)
    if new_york:
        sign, hours = new_york.groups()
        shift = int(hours) * 3600 * (-1 if sign == "-" else 1)
        if not -9 * 3600 <= shift <= 18 * 3600:  # New York is UTC-5/-4: stay within ±14 h
            raise BrokerZoneError(f"{key}: {value!r} is beyond UTC±14:00")
        return BrokerZone(value, "America/New_York", shift)
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        auto = " or auto" if key == "BROKER_TZ" else ""  # only the trader reads the server's
        raise BrokerZoneError(
            f"{key}: unknown time zone {value!r}; use an IANA name such as Europe/Athens, "
            f"UTC, UTC+2 or NY+7 (New York close brokers){auto}"
        ) from None
    return BrokerZone(value, value, 0)


def offset_from_tick(server_tick_seconds: float, utc_now: float) -> int:
    """The server's offset from a fresh tick's time against UTC now, rounded to 30 minutes."""
    return round((server_tick_seconds - utc_now) / HALF_HOUR) * HALF_HOUR


def near_dst_switch(utc_seconds: float, *, days: float = 8.0) -> bool:
    """Whether a US or EU daylight-saving switch falls within `days` of this moment: an
    offset seen to change then is expected, at any other time it is suspicious."""
    before, after = utc_seconds - days * DAY, utc_seconds + days * DAY
    return any(BrokerZone(zone, zone).switches_between(before, after) for zone in DST_REFERENCES)
