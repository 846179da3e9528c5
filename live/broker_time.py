"""BrokerClock: what the trader knows of the trade server's clock, and the conversion of MT5
epochs between that clock and UTC.

An MT5 server stamps every epoch crossing the API in its own wall clock read as UTC (bar, tick,
order, position and deal times, and the moments it is sent: history ranges, copy_* dates, an
order's expiration; MT5_NOTES §2). The trader keeps UTC everywhere; MT5Connector converts at the
edge with the zone held here: `results_to_utc` for what comes back, `moment_to_server` and
`request_to_server` for what goes out.

BROKER_TZ names the zone (anything `backtest.broker_clock.parse_zone` reads: Europe/Athens,
UTC+2, NY+7), or is `auto`: a fixed offset read from tick times. The connector shows the clock
the newest last-tick time among the traded symbols ("a look") when it connects, then whenever
`due()` says so (every hour of market time; every RETRY_SECONDS while unsettled):

  * the tick time against UTC now gives a whole number of half hours (`offset_from_tick`) and
    what is left over, the residual;
  * a tick is *live* when it is newer than the previous look's and its residual is at most
    FRESH_SECONDS: a quote seconds old lands that close to a whole half hour off UTC now, one
    from a closed market lands anywhere within +-15 minutes;
  * the first offset is adopted at once but only *provisionally* when its tick is not known to
    be live (a first look cannot tell a live tick from one left over from a closed market);
    a later live tick confirms it or replaces it. No tick with a residual within FRESH_SECONDS
    yet: UTC is assumed (what the trader did before BROKER_TZ), with one warning;
  * a confirmed offset changes only when two live looks in a row agree on a new one, so a
    tick that went quiet half an hour before a look is never taken for a new offset; a change
    away from a daylight-saving switch (`near_dst_switch`) is logged as a warning;
  * offsets beyond +-14 h are ignored.
A weekend start can therefore adopt a wrong provisional offset (about one start in eight: a
stale tick whose residual happens to be small) until the market opens; BROKER_TZ avoids that.

With a named zone the looks only check it: a live tick, or one stamped after UTC now by the
configured zone (no closed market makes one), that disagrees by 30 minutes or more logs a
warning and sets `disagreement` (BROKER_TZ is likely wrong).

Ambiguity: in the hour a fall-back switch repeats on the server's clock (an IANA or NY+N zone),
a position's or deal's server time stands for two instants; the earlier is taken (as
`BrokerZone.to_utc` does), so one made in the second of the two hours reads an hour early. A
fixed offset (`auto`) repeats no hour, but is an hour wrong from a switch until a look sees it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

import numpy as np

from backtest.broker_clock import (
    HALF_HOUR,
    UTC_ZONE,
    BrokerZone,
    BrokerZoneError,
    fixed_zone,
    format_offset,
    near_dst_switch,
    offset_from_tick,
    parse_zone,
)
from live.errors import ConfigError
from live.mt5_records import EPOCH_COLUMNS, EPOCH_FIELDS

logger = logging.getLogger(__name__)

AUTO = "auto"
REFRESH_SECONDS = 3600.0  # a settled clock looks at the ticks again after an hour (market time)
RETRY_SECONDS = 300.0  # an unsettled one (no live tick yet, a change to confirm) sooner
FRESH_SECONDS = 120.0  # how far off a whole half hour a live tick may land
MAX_OFFSET = 14 * 3600  # no zone is further from UTC


@dataclass(frozen=True)
class TickLook:
    """One look: the newest last-tick time (server epoch seconds) of the traded symbols
    against UTC now, and the offset it suggests (seconds east of UTC, whole half hours)."""

    symbol: str
    server: float
    now: float
    moved: bool  # newer than the previous look's newest tick

    @property
    def offset(self) -> int:
        return offset_from_tick(self.server, self.now)

    @property
    def residual(self) -> float:
        """Seconds the tick lands off a whole half hour from UTC now."""
        return self.server - self.now - self.offset

    @property
    def plausible(self) -> bool:
        return abs(self.offset) <= MAX_OFFSET

    def live(self, fresh_seconds: float) -> bool:
        """A quote of a market that is open: it moved since the last look and lands close to a
        whole half hour off UTC now."""
        return self.moved and self.plausible and abs(self.residual) <= fresh_seconds

    def wall_text(self) -> str:
        """The tick's time as the server's clock reads it."""
        return datetime.fromtimestamp(self.server, UTC).strftime("%Y-%m-%d %H:%M")


class BrokerClock:
    """The trade server's time zone for one connector: named by BROKER_TZ, or read from tick
    times (`auto`; the rule is in the module docstring).

    `utc_now` returns UTC epoch seconds as the market knows them: the simulator's clock under
    the simulator, else the wall clock. Raises ConfigError for a zone it cannot read.
    """

    def __init__(
        self,
        setting: str = AUTO,
        *,
        utc_now: Callable[[], float] = time.time,
        fresh_seconds: float = FRESH_SECONDS,
        refresh_seconds: float = REFRESH_SECONDS,
    ) -> None:
        text = str(setting).strip()
        self.setting = text
        self.auto = text.lower() == AUTO
        self._utc_now = utc_now
        self._fresh = fresh_seconds
        self._refresh = refresh_seconds
        self._zone = UTC_ZONE if self.auto else _named_zone(text)
        self._look: TickLook | None = None  # the look the zone was last adopted or checked from
        self._last_server: float | None = None  # the previous look's newest tick
        self._confirmed = not self.auto
        self._pending: int | None = None  # auto: a new offset seen once, to be seen again
        self._live_seen = False
        self._warned_no_tick = False
        self._next_look: float | None = None  # UTC epoch seconds; None = at the first chance
        self.disagreement: str | None = None  # named zone: why the ticks say otherwise

    # ------------------------------------------------------------ what it knows

    @property
    def zone(self) -> BrokerZone:
        """The zone conversions use now (UTC until `auto` has seen a tick)."""
        return self._zone

    @property
    def resolved(self) -> bool:
        """A named zone, or `auto` with an offset read from a tick (perhaps provisional)."""
        return not self.auto or self._look is not None

    @property
    def confirmed(self) -> bool:
        """A named zone, or `auto` with an offset read from a live tick."""
        return self._confirmed

    @property
    def source(self) -> str:
        """Where the zone comes from: 'BROKER_TZ=NY+7', or 'auto: EURUSD tick at
        2024-03-08 14:00 server = UTC+02:00' (with '(provisional)' until a live tick)."""
        if not self.auto:
            return f"BROKER_TZ={self.setting}"
        if self._look is None:
            return "auto: no tick seen yet, UTC assumed"
        look = self._look
        text = f"auto: {look.symbol} tick at {look.wall_text()} server = {self._zone.name}"
        return text if self._confirmed else f"{text} (provisional)"

    def describe(self) -> str:
        """'NY+7 (UTC+02:00 now), from BROKER_TZ', or 'UTC+02:00 (UTC+02:00 now), auto from
        EURUSD tick at 2024-03-08 14:00 server' for --check and the logs."""
        if not self.auto:
            return f"{self._zone.describe(self.now())}, from BROKER_TZ"
        if self._look is None:
            return "UTC assumed: auto has seen no tick yet (market closed?)"
        look = self._look
        text = f"{self._zone.describe(self.now())}, auto from {look.symbol} tick at "
        text += f"{look.wall_text()} server"
        return text if self._confirmed else f"{text} (provisional until a newer tick)"

    def now(self) -> float:
        """UTC now as the market knows it (epoch seconds)."""
        return float(self._utc_now())

    def to_utc(self, server_seconds: Any) -> Any:
        """Server-stamped epoch seconds (scalar or array) to UTC."""
        return self._zone.to_utc(server_seconds)

    def to_server(self, utc_seconds: Any) -> Any:
        """UTC epoch seconds (scalar or array) as the server stamps them."""
        return self._zone.to_server(utc_seconds)

    # ------------------------------------------------------------ looking at ticks

    def due(self) -> bool:
        """Whether a look at the ticks is wanted now (the first, then by the schedule)."""
        return self._next_look is None or self.now() >= self._next_look

    def observe(self, ticks: Mapping[str, float]) -> None:
        """Take a look: `ticks` are the traded symbols' last tick times as the server stamps
        them (epoch seconds; 0 or missing = no quote). Resolves (`auto`) or checks (a named
        zone) the offset as the module docstring says; never raises for what it sees."""
        now = self.now()
        quoted = {s: float(t) for s, t in ticks.items() if t}
        look = None
        if quoted:
            symbol = max(quoted, key=quoted.__getitem__)
            previous = self._last_server
            moved = previous is not None and quoted[symbol] > previous
            look = TickLook(symbol, quoted[symbol], now, moved)
            self._last_server = quoted[symbol]
        if self.auto:
            self._resolve(look)
        else:
            self._check(look)
        settled = self._confirmed and self._pending is None and self._live_seen
        self._next_look = now + (self._refresh if settled else RETRY_SECONDS)

    def _resolve(self, look: TickLook | None) -> None:
        """`auto`: adopt, confirm or change the offset from one look."""
        if look is None or not look.plausible or abs(look.residual) > self._fresh:
            self._no_live_tick(look)
            return
        live = look.live(self._fresh)
        self._live_seen |= live
        if self._look is None:
            self._adopt(look, confirmed=live)
        elif look.offset == self._zone.shift:
            if live and not self._confirmed:
                logger.info("broker clock confirmed: %s", self._described(look))
            if live:  # the newest live tick is the source shown
                self._adopt(look, confirmed=True)
        elif not live:
            return  # a quiet market says nothing new
        elif not self._confirmed:
            self._adopt(look, confirmed=True)  # a live tick beats a provisional guess
        elif self._pending == look.offset:
            self._changed(look)
        else:
            self._pending = look.offset  # to be seen again at the next look

    def _no_live_tick(self, look: TickLook | None) -> None:
        """Nothing to learn from this look; said once while no offset is known at all."""
        if self._look is not None or self._warned_no_tick:
            return
        self._warned_no_tick = True
        seen = "no tick" if look is None else f"no recent tick ({look.symbol} last quoted "
        if look is not None:
            seen += f"{look.wall_text()} server)"
        logger.warning(
            "broker clock: %s from the traded symbols (market closed?); times are taken as "
            "UTC until one arrives. Set BROKER_TZ to the server's zone to be sure.",
            seen,
        )

    def _adopt(self, look: TickLook, *, confirmed: bool) -> None:
        first = self._look is None
        replaced = not first and look.offset != self._zone.shift
        self._zone = fixed_zone(look.offset)
        self._look, self._confirmed, self._pending = look, confirmed, None
        if first:
            logger.info("broker clock: %s", self.source)
        elif replaced:
            logger.info("broker clock: provisional offset replaced: %s", self.source)

    def _changed(self, look: TickLook) -> None:
        before = self._zone.name
        self._adopt(look, confirmed=True)
        if near_dst_switch(look.now):
            logger.info("broker clock: %s -> %s (daylight-saving switch)", before, self.source)
        else:
            logger.warning(
                "broker clock: the server's offset changed from %s to %s away from any "
                "daylight-saving switch (%s); check the server's time, or set BROKER_TZ",
                before,
                self._zone.name,
                self.source,
            )

    def _check(self, look: TickLook | None) -> None:
        """A named zone: warn when a tick says the server runs on another offset."""
        if look is None or not look.plausible:
            return
        live = look.live(self._fresh)
        self._live_seen |= live
        expected = self._zone.offset_at(look.now)
        ahead = look.server - expected - look.now  # > 0: stamped after now by BROKER_TZ
        if abs(look.offset - expected) < HALF_HOUR or not (live or ahead > self._fresh):
            if live:
                self.disagreement = None
            return
        self.disagreement = (
            f"BROKER_TZ={self.setting} says UTC{format_offset(expected)} now, but "
            f"{self._described(look)}: BROKER_TZ is likely wrong"
        )
        logger.warning("broker clock: %s", self.disagreement)

    @staticmethod
    def _described(look: TickLook) -> str:
        return (
            f"the {look.symbol} tick at {look.wall_text()} server says "
            f"UTC{format_offset(look.offset)}"
        )


def _named_zone(text: str) -> BrokerZone:
    try:
        return parse_zone(text, "BROKER_TZ")
    except BrokerZoneError as exc:
        raise ConfigError(str(exc)) from None


# ---------------------------------------------------------------- conversion at the edge


def results_to_utc(value: Any, zone: BrokerZone) -> Any:
    """An API result (a record, a tuple of them, a rates or ticks array) with every moment the
    server stamped (EPOCH_FIELDS, EPOCH_COLUMNS) in UTC; anything else as it was."""
    if zone.fixed and zone.shift == 0:
        return value
    if isinstance(value, np.ndarray):
        return _array_to_utc(value, zone)
    if isinstance(value, tuple) and hasattr(value, "_fields"):
        return _record_to_utc(value, zone)
    if isinstance(value, tuple):
        return tuple(results_to_utc(item, zone) for item in value)
    return value


def epoch_to_utc(value: int, zone: BrokerZone, *, millis: bool = False) -> int:
    """One server epoch (seconds, or milliseconds) in UTC; 0 ("none") stays 0."""
    if not value:
        return value
    seconds = int(value) // 1000 if millis else int(value)
    offset = _offset_of_server_time(zone, seconds // HALF_HOUR)
    return int(value) - offset * (1000 if millis else 1)


@lru_cache(maxsize=4096)
def _offset_of_server_time(zone: BrokerZone, half_hour: int) -> int:
    """The offset of the server times in one half hour of its clock: switches fall on whole
    half hours of the wall clock, so it is the same for all of them (and an IANA zone's
    conversion is costly enough to be worth remembering)."""
    start = half_hour * HALF_HOUR
    return int(start - zone.to_utc(start))


def _record_to_utc(record: Any, zone: BrokerZone) -> Any:
    changes = {
        name: epoch_to_utc(getattr(record, name), zone, millis=name.endswith("_msc"))
        for name in EPOCH_FIELDS.get(type(record).__name__, ())
        if name in record._fields
    }
    for name, item in zip(record._fields, record, strict=True):
        if isinstance(item, tuple) and hasattr(item, "_fields"):  # OrderSendResult.request
            changes[name] = _record_to_utc(item, zone)
    return record._replace(**changes) if changes else record


def _array_to_utc(rows: np.ndarray, zone: BrokerZone) -> np.ndarray:
    names = [n for n in EPOCH_COLUMNS if rows.dtype.names and n in rows.dtype.names]
    if not names or not len(rows):
        return rows
    out = rows.copy()
    for name in names:
        values = rows[name].astype(np.int64)
        scale = 1000 if name.endswith("_msc") else 1
        seconds = values // scale
        utc = np.asarray(zone.to_utc(seconds), dtype=np.int64)
        out[name] = np.where(values == 0, values, values - (seconds - utc) * scale)
    return out


def moment_to_server(moment: datetime | float, zone: BrokerZone) -> datetime | int:
    """A moment sent to the API, which reads it as server time: an aware datetime comes back as
    one (the server's wall clock labelled UTC), epoch seconds as an int."""
    if isinstance(moment, datetime):
        if moment.tzinfo is None:
            raise ValueError("naive datetime passed to the connector; use UTC-aware datetimes")
        if zone.fixed and zone.shift == 0:
            return moment
        return datetime.fromtimestamp(float(zone.to_server(moment.timestamp())), UTC)
    return int(zone.to_server(float(moment)))


def request_to_server(request: Mapping[str, Any], zone: BrokerZone) -> Mapping[str, Any]:
    """A trade request with its `expiration` (UTC epoch seconds; 0 = none) in server time."""
    expiration = request.get("expiration")
    if not expiration:
        return request
    return {**request, "expiration": moment_to_server(expiration, zone)}
