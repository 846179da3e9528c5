"""The simulated server's clock at the API edge: UTC inside, server-stamped epochs outside.

A real MT5 server stamps every epoch that crosses the API in its own wall clock read as if it
were UTC (MT5_NOTES §2): at a GMT+2/+3 broker bar, tick and deal times run 2-3 hours ahead of
real UTC, and the dates a client passes (history ranges, copy ranges, an order's expiration)
are read as server time too. The simulator keeps its clock, feeds and records in real UTC;
this module converts what leaves (rates, ticks, record times) and what comes in (dates,
expirations) with the server's `BrokerZone`.
"""

from __future__ import annotations

import logging
import math
from functools import lru_cache
from typing import Any

import numpy as np

from backtest.broker_clock import UTC_ZONE, BrokerZone
from live.sim_terminal import arguments

logger = logging.getLogger(__name__)

# every real zone changes its offset on a whole half hour of UTC: one offset per bucket
_BUCKET = 1800
# dates a zone with daylight saving can convert (pandas stops at year 9999): a client's range
# bound beyond them (history_deals_get(0, 2**40) for "everything") means the same clamped
_EARLIEST, _LATEST = -2_208_988_800, 7_258_118_400  # 1900-01-01, 2200-01-01


class ServerClock:
    """Conversions between UTC epochs (inside) and server-stamped epochs (the API)."""

    def __init__(self, zone: BrokerZone = UTC_ZONE) -> None:
        self.zone = zone
        # a fixed zone is one addition; a zone with daylight saving asks pandas once per
        # half hour of UTC (cached), not once per call
        self._bucket_offset = lru_cache(maxsize=8192)(self._offset_of_bucket)

    @property
    def is_utc(self) -> bool:
        """Whether the server stamps real UTC (nothing to convert)."""
        return self.zone.fixed and self.zone.shift == 0

    # ------------------------------------------------------------ single moments

    def offset(self, utc_seconds: float) -> int:
        """Seconds the server's clock runs ahead of UTC at this UTC moment."""
        if self.zone.fixed:
            return self.zone.shift
        return self._bucket_offset(math.floor(utc_seconds) // _BUCKET)

    def to_server(self, utc_seconds: float) -> float:
        """A UTC moment as the server stamps it."""
        return utc_seconds + self.offset(utc_seconds)

    def to_utc(self, server_seconds: float) -> float:
        """A server-stamped moment back in UTC (the earlier instant in a repeated hour)."""
        if self.zone.fixed:
            return server_seconds - self.zone.shift
        clamped = min(max(float(server_seconds), _EARLIEST), _LATEST)
        return float(self.zone.to_utc(clamped))

    def msc(self, utc_msc: int) -> int:
        """Epoch milliseconds of a record (UTC) as the server stamps them."""
        if not utc_msc:
            return 0
        return int(utc_msc) + 1000 * self.offset(utc_msc / 1000)

    def seconds(self, utc_seconds: float) -> int:
        """Whole server-stamped seconds of a UTC moment (the `time` beside a `time_msc`)."""
        return self.msc(round(utc_seconds * 1000)) // 1000

    def date_argument(self, moment: object) -> float:
        """A date the client passed (datetime or epoch seconds, read as server time) in UTC;
        malformed ones fail as the module does (-2)."""
        return self.to_utc(arguments.seconds(moment))

    # ------------------------------------------------------------ arrays and requests

    def rates(self, rates: np.ndarray) -> np.ndarray:
        """A rates array (a copy the caller owns) with its bar times server-stamped."""
        if not self.is_utc and len(rates):
            rates["time"] = rates["time"] + self._offsets(rates["time"])
        return rates

    def ticks(self, ticks: np.ndarray) -> np.ndarray:
        """A ticks array (a copy the caller owns) with time and time_msc server-stamped."""
        if not self.is_utc and len(ticks):
            shift = self._offsets(ticks["time"])
            ticks["time_msc"] = ticks["time_msc"] + 1000 * shift
            ticks["time"] = ticks["time_msc"] // 1000
        return ticks

    def request(self, request: dict[str, Any]) -> dict[str, Any]:
        """A checked trade request with its `expiration` (server time) in UTC."""
        expiration = request.get("expiration", 0)
        if self.is_utc or not expiration:
            return request
        return {**request, "expiration": int(self.to_utc(expiration))}

    def _offsets(self, utc_seconds: np.ndarray) -> np.ndarray:
        if self.zone.fixed:
            return np.full(len(utc_seconds), self.zone.shift, dtype=np.int64)
        return self.zone.offsets(np.asarray(utc_seconds, dtype=np.int64)).astype(np.int64)

    def _offset_of_bucket(self, bucket: int) -> int:
        return self.zone.offset_at(bucket * _BUCKET)
