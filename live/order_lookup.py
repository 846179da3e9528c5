"""Finding an order at the broker: does the broker already have it (a position, a pending
order, a deal), and which deal did a fill make?

By the client order id in the comment first. Some brokers cut comments short or replace them
with their own reference, and closing deals of stops carry `[sl ...]`: then by magic number,
symbol, side, volume and a time window, among the broker's orders not already claimed in the
audit log by another client id. When more than one fits, nothing is assumed: the lookup
raises OutcomeUnknown and the order is neither resent nor recorded as filled.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from live.audit_logger import AuditLogger
from live.broker_types import (
    DEAL_ENTRY_IN,
    DEAL_TYPE_BUY,
    DEAL_TYPE_SELL,
    POSITION_TYPE_BUY,
    POSITION_TYPE_SELL,
)
from live.errors import BrokerUnavailable, OutcomeUnknown

logger = logging.getLogger(__name__)

CLIENT_ID_PREFIX = "LT"  # every client order id starts with it (see make_client_order_id)
PENDING_AT_BROKER = "pending order at the broker"
RECONCILE_WINDOW = timedelta(days=7)
UNNAMED_WINDOW = timedelta(minutes=10)  # around the intent, for orders found without a name
MIN_NAME = 8  # a comment cut to fewer characters names nothing for sure


@dataclass(frozen=True)
class Found:
    """An order the broker already has: its fill price, volume, position and tickets."""

    price: float
    volume: float
    position_ticket: int | None
    deal: int | None = None
    detail: str = ""
    order: int | None = None


def names(comment: object, client_order_id: str) -> bool:
    """Whether a comment carries this client id, whole or cut short by the broker."""
    text = str(comment or "")
    return text == client_order_id or (len(text) >= MIN_NAME and client_order_id.startswith(text))


class OrderLookup:
    """Asks one broker about the orders of one trader (its magic), with the audit's claims."""

    def __init__(
        self, broker: Any, audit: AuditLogger, *, magic: int, now: Callable[[], datetime]
    ) -> None:
        self.broker = broker
        self.audit = audit
        self.magic = magic
        self._now = now

    def find(self, intent: Any, since: datetime | None = None) -> Found | None:
        """Does the broker already have this order? Positions, pending orders, then deals;
        None when it does not. OutcomeUnknown when several could be it."""
        since = since or self._now()
        if intent.kind == "modify":
            return self._stops_in_place(intent)
        if intent.kind == "cancel":
            return self._order_gone(intent)
        if intent.kind in ("open", "pending"):  # a pending entry may have filled since
            position = self._position(intent, since)
            if position is not None:
                entry = self.entry_deal(int(position.ticket), intent.client_order_id)
                return Found(
                    float(position.price_open),
                    float(position.volume),
                    int(position.ticket),
                    None if entry is None else int(entry.ticket),
                    detail="open position",
                    order=None if entry is None else int(entry.order),
                )
        for order in self.broker.orders(intent.symbol):
            if names(order.comment, intent.client_order_id):  # accepted, not filled yet
                return Found(
                    float(order.price_open),
                    float(order.volume_current),
                    None,
                    detail=PENDING_AT_BROKER,
                    order=int(order.ticket),
                )
        deal = self._deal(intent, since)
        if deal is not None:
            ticket = intent.position_ticket if intent.kind == "close" else int(deal.position_id)
            return Found(
                float(deal.price),
                float(deal.volume),
                ticket,
                int(deal.ticket),
                detail="deal in history",
                order=int(deal.order),
            )
        closing = intent.kind == "close" and intent.position_ticket is not None
        if closing and not self._still_open(intent):
            return Found(0.0, 0.0, intent.position_ticket, detail="position already gone")
        return None

    def _stops_in_place(self, intent: Any) -> Found | None:
        """A stop change is done when the position's stops are the ones it asked for."""
        wanted = (float(intent.request.get("sl") or 0.0), float(intent.request.get("tp") or 0.0))
        for position in self.broker.positions(intent.symbol):
            if intent.position_ticket in (int(position.ticket), _identifier(position)):
                now = (float(position.sl), float(position.tp))
                if all(abs(a - b) < 1e-9 for a, b in zip(now, wanted, strict=True)):
                    return Found(
                        0.0, float(position.volume), int(position.ticket), detail="stops in place"
                    )
                return None
        return Found(0.0, 0.0, intent.position_ticket, detail="position already gone")

    def _order_gone(self, intent: Any) -> Found | None:
        """A cancel is done once the order is no longer pending (removed, or filled: then the
        position it made is reconciled like any other)."""
        pending = {int(o.ticket) for o in self.broker.orders(intent.symbol)}
        if intent.position_ticket in pending:
            return None
        return Found(0.0, 0.0, intent.position_ticket, detail="order no longer pending")

    def entry_deal(self, position_ticket: int, client_order_id: str) -> Any | None:
        """The deal that opened a position for this order, None while the history lags."""
        try:
            deals = self.broker.deals_for_position(position_ticket)
        except BrokerUnavailable:
            return None
        entries = [d for d in deals if d.entry == DEAL_ENTRY_IN]
        return next((d for d in entries if names(d.comment, client_order_id)), None) or (
            entries[0] if len(entries) == 1 else None
        )

    def deal_of_order(self, order_ticket: int) -> Any | None:
        """The deal an order made, None while the history has not caught up with it."""
        try:
            deals = self.broker.deals_for_order(order_ticket)
        except BrokerUnavailable:
            return None
        return deals[0] if deals else None

    # ------------------------------------------------------------ matching

    def _position(self, intent: Any, since: datetime) -> Any | None:
        positions = [p for p in self.broker.positions(intent.symbol) if int(p.magic) == self.magic]
        named = [p for p in positions if names(p.comment, intent.client_order_id)]
        if named:
            return named[0]
        kind = POSITION_TYPE_BUY if intent.side == "buy" else POSITION_TYPE_SELL
        return self._one(
            intent,
            (
                p
                for p in positions
                if int(p.type) == kind
                and _volume_fits(float(p.volume), intent.volume)
                and _near(float(p.time), since)
                and not self._claimed_position(int(p.ticket), intent.client_order_id)
                and not _other_name(p.comment, intent.client_order_id)
            ),
            "open positions",
        )

    def _deal(self, intent: Any, since: datetime) -> Any | None:
        wanted_entry = intent.kind != "close"
        deals = [
            d
            for d in self.broker.deals_since(since - RECONCILE_WINDOW)
            if (d.entry == DEAL_ENTRY_IN) == wanted_entry
            and (intent.kind != "close" or int(d.position_id) == intent.position_ticket)
        ]
        named = [d for d in deals if names(d.comment, intent.client_order_id)]
        if named:
            return named[0]
        side = DEAL_TYPE_BUY if intent.side == "buy" else DEAL_TYPE_SELL
        return self._one(
            intent,
            (
                d
                for d in deals
                if int(d.magic) == self.magic
                and int(d.type) == side
                and _volume_fits(float(d.volume), intent.volume)
                and _near(float(d.time), since)
                and not self._claimed_order(int(d.order), intent.client_order_id)
                and not _other_name(d.comment, intent.client_order_id)
            ),
            "deals",
        )

    def _one(self, intent: Any, candidates: Iterable[Any], what: str) -> Any | None:
        found = list(candidates)
        if len(found) > 1:
            raise OutcomeUnknown(
                f"order {intent.client_order_id}: {len(found)} {what} of this trader could be it "
                "(the broker keeps no usable comment); refusing to act until it is resolved"
            )
        if found:
            logger.warning(
                "order %s found at the broker without its comment (by magic, symbol, side, "
                "volume and time)",
                intent.client_order_id,
                extra={"client_order_id": intent.client_order_id},
            )
        return found[0] if found else None

    def _claimed_position(self, ticket: int, client_order_id: str) -> bool:
        owner = self.audit.reader.open_order_of_position(ticket)
        return owner is not None and owner != client_order_id

    def _claimed_order(self, ticket: int, client_order_id: str) -> bool:
        owner = self.audit.reader.client_order_id_of(ticket)
        return owner is not None and owner != client_order_id

    def _still_open(self, intent: Any) -> bool:
        return any(
            intent.position_ticket in (int(p.ticket), _identifier(p))
            for p in self.broker.positions(intent.symbol)
        )


def _volume_fits(found: float, wanted: float) -> bool:
    """A fill is at most the volume asked for (a partial fill is less)."""
    return 0 < found <= wanted + 1e-9


def _near(epoch_seconds: float, moment: datetime) -> bool:
    return abs(epoch_seconds - moment.timestamp()) <= UNNAMED_WINDOW.total_seconds()


def _other_name(comment: object, client_order_id: str) -> bool:
    """The comment names another of our client ids (not this one, not a broker's text)."""
    text = str(comment or "")
    return (
        text.startswith(CLIENT_ID_PREFIX)
        and len(text) >= MIN_NAME
        and not names(text, client_order_id)
    )


def _identifier(position: Any) -> int:
    return int(getattr(position, "identifier", 0) or position.ticket)
