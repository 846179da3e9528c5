"""The trade ledger: every exit of a position of this trader becomes one trade row, built
from its deals (the broker's record), also for positions that closed while the trader was
down. A position closed at once is one row; a partial exit is a row of its own naming the
position, so a position's P/L is the sum of its rows (the entry's costs shared by volume).

A position is known by its identifier (a netting reversal may change its ticket, never its
identifier). A trade whose row cannot be written yet (the terminal away, the deals not in the
history yet, the audit database refusing writes) is retried on the next loop, never dropped.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

from live.audit_health import AuditHealth
from live.audit_logger import AuditLogger
from live.audit_schema import iso
from live.broker_types import DEAL_ENTRY_IN, DEAL_REASON_SL, DEAL_REASON_TP, DEAL_TYPE_BUY
from live.errors import AuditWriteError, BrokerError
from live.status import SessionSummary

logger = logging.getLogger(__name__)


class TradeLedger:
    """Writes the trade rows of closed positions from the broker's deals."""

    def __init__(
        self,
        broker: Any,
        audit: AuditLogger,
        *,
        health: AuditHealth,
        alerts: Any,
        stamp: Callable[[], str],
        on_change: Callable[[], None],
        summary: SessionSummary,
    ) -> None:
        self.broker = broker
        self.audit = audit
        self._health = health
        self._alerts = alerts
        self._stamp = stamp
        self._changed = on_change
        self.summary = summary  # trades closed and realized P/L are counted in it
        self._unrecorded: set[int] = set()  # closed positions whose trade row is not written

    def partly_closed(self, identifier: int) -> None:
        """A position that is still open lost part of its volume: its exit rows now."""
        self.closed([identifier])

    def closed(self, identifiers: Iterable[int]) -> None:
        """Positions that disappeared: write their rows now, or on a later loop."""
        self._unrecorded.update(identifiers)
        self.record_pending()

    def record_pending(self) -> None:
        for identifier in sorted(self._unrecorded):
            try:
                done = self._record(identifier)
            except (BrokerError, OSError) as exc:
                logger.warning("trade of position %s not recorded yet: %s", identifier, exc)
                return
            except AuditWriteError as exc:  # kept for later; the loop (and exits) go on
                self._health.failed(exc)
                return
            if done:
                self._unrecorded.discard(identifier)

    def backfill(self) -> None:
        """Positions that closed while the trader was down (or just before it crashed) get
        their trade row, so no round trip is missing from the record."""
        since = self._backfill_since()
        if since is None:
            return
        still_open = {_identifier(p) for p in self.broker.positions()}
        closed = {
            int(d.position_id) for d in self.broker.deals_since(since) if d.entry != DEAL_ENTRY_IN
        } - still_open
        for identifier in sorted(closed):
            self._record(identifier)  # only the exits not recorded yet

    def _backfill_since(self) -> datetime | None:
        """From a day before the last recorded trade's exit (or the first order) onwards."""
        reader, dry_run = self.audit.reader, self.broker.dry_run
        anchor = reader.last_trade_exit(dry_run=dry_run) or reader.first_order_time(dry_run=dry_run)
        return anchor - timedelta(days=1) if anchor else None

    def _record(self, identifier: int) -> bool:
        """Write a trade row for each exit deal of a position not recorded yet. False when its
        deals are not all in the history yet."""
        deals = self.broker.deals_for_position(identifier)
        entries = [d for d in deals if d.entry == DEAL_ENTRY_IN]
        exits = [d for d in deals if d.entry != DEAL_ENTRY_IN]
        if not exits or not entries:
            logger.warning("position %s is gone but its deals are not all there yet", identifier)
            return False
        dry_run = self.broker.dry_run
        recorded = self.audit.reader.recorded_exits(identifier, dry_run)
        entry_volume = sum(float(d.volume) for d in entries)
        entry_costs = sum(_costs(d) for d in entries)
        first = entries[0]
        direction = "long" if int(first.type) == DEAL_TYPE_BUY else "short"
        for deal in exits:
            # to the millisecond: one close filled in several deals in a second is several rows
            exit_time, exit_cid = _deal_time(deal), self._client_id(deal)
            if (iso(exit_time), exit_cid) in recorded:
                continue
            before = [d for d in entries if float(d.time) <= float(deal.time)] or entries
            share = float(deal.volume) / entry_volume if entry_volume else 1.0
            pnl = float(deal.profit) + _costs(deal) + entry_costs * share
            reason = self._exit_reason(deal)
            trade_id = self.audit.record_trade(
                symbol=first.symbol,
                position_ticket=int(identifier),
                dry_run=dry_run,
                direction=direction,
                volume=float(deal.volume),
                entry_time=_utc(first.time),
                entry_price=round(_average_price(before), 10),
                exit_time=exit_time,
                exit_price=float(deal.price),
                pnl=round(pnl, 2),
                commission=float(deal.commission)
                + sum(float(d.commission) for d in entries) * share,
                swap=float(deal.swap) + sum(float(d.swap) for d in entries) * share,
                exit_reason=reason,
                entry_client_order_id=self._client_id(first),
                exit_client_order_id=exit_cid,
            )
            if trade_id is not None:
                self._announce(first.symbol, direction, float(deal.volume), pnl, reason)
        return True

    def _announce(
        self, symbol: str, direction: str, volume: float, pnl: float, reason: str
    ) -> None:
        self._changed()  # the book changed: show it now
        self.summary.trades_closed += 1
        self.summary.realized_pnl += pnl
        logger.info(
            "%s%s closed %s %s lots: P/L %.2f (%s)",
            self._stamp(),
            symbol,
            direction,
            volume,
            pnl,
            reason,
            extra={"symbol": symbol},
        )
        self._alerts.notify(
            "trade_closed",
            f"closed {symbol} {direction} {volume} lots: P/L {pnl:,.2f} ({reason})",
            symbol=symbol,
            pnl=pnl,
        )

    def _client_id(self, deal: Any) -> str:
        """The client order id of the order behind a deal: from the audit by the deal's order
        ticket (brokers may truncate or rewrite comments), else the comment."""
        found = self.audit.reader.client_order_id_of(int(deal.order)) if deal.order else None
        return found or str(deal.comment)

    def _exit_reason(self, deal: Any) -> str:
        """Why a position was closed: the server's stop or take-profit, else the exit order's
        intent; "external" when the exit is not one of this trader's orders (closed by hand,
        by another program)."""
        by_server = {DEAL_REASON_SL: "sl", DEAL_REASON_TP: "tp"}.get(int(deal.reason))
        if by_server:
            return by_server
        why = self.audit.reader.order_reason(self._client_id(deal))
        if why is None:
            return "external"
        if why.startswith("kill switch"):
            return "kill_switch"
        if why.startswith("exit retry"):
            return "exit_retry"
        if why.startswith("partial exit") or why.startswith("size "):
            return "partial"
        if why.startswith("time exit"):
            return "time"
        return "signal"


def _identifier(position: Any) -> int:
    return int(getattr(position, "identifier", 0) or position.ticket)


def _costs(deal: Any) -> float:
    return float(deal.commission) + float(deal.swap) + float(deal.fee)


def _average_price(deals: list[Any]) -> float:
    volume = sum(float(d.volume) for d in deals)
    return sum(float(d.price) * float(d.volume) for d in deals) / volume


def _deal_time(deal: Any) -> datetime:
    msc = int(getattr(deal, "time_msc", 0) or 0)
    return _utc(msc / 1000.0) if msc else _utc(deal.time)


def _utc(epoch_seconds: float) -> datetime:
    return datetime.fromtimestamp(float(epoch_seconds), tz=UTC)
