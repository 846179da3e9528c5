"""Position care: what happens to a position of the target between its entry and its exit,
as the backtest does it (backtest/managed.py). Each is an order with a write-ahead client id:

- stops: moved where the strategy asks (`moving_stops`), one TRADE_ACTION_SLTP when they
  differ by the minimum step; a level the server would refuse now (the wrong side of the
  price, inside the stops or freeze level) is skipped, as the backtest skips it. Without
  moving stops, the entry's stops are set again where the broker's differ (a server that
  filled the entry without them, a change by hand);
- size: the volume held follows `size` × the entry's full volume, snapped to the step:
  a partial close (a deal naming the position, smaller volume) or a scale-in; what would
  stay below volume_min is closed;
- time exits: a position held `max_bars` bars is closed at the open of the next bar;
- pending entries whose bars have passed are removed (where the symbol allows no expiry).
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Callable
from typing import Any

from live.audit_logger import AuditLogger
from live.backtesting_bridge import Decision
from live.broker_types import ACCOUNT_MARGIN_MODE_RETAIL_HEDGING, POSITION_TYPE_BUY
from live.config import LiveConfig
from live.market_clock import MarketClock
from live.order_executor import ExecutionResult, OrderExecutor, OrderIntent, make_client_order_id
from live.order_requests import (
    build_order_request,
    build_stops_request,
    estimated_margin,
    stop_levels,
    stops_blocker,
)
from live.reconciler import MODIFY, Action, Holding, Stops, stop_changes
from live.state_manager import StateManager
from live.status import SessionSummary

logger = logging.getLogger(__name__)

FULL_VOLUME = re.compile(r"full volume ([0-9.]+) lots")  # written by live/entries.py


class PositionCare:
    """Keeps the held positions of a target as the strategy manages them."""

    def __init__(
        self,
        config: LiveConfig,
        *,
        broker: Any,
        executor: OrderExecutor,
        label: str,
        state: StateManager,
        audit: AuditLogger,
        clock: MarketClock,
        summary: SessionSummary,
        close: Callable[[Any, str, str], ExecutionResult],
        sync: Callable[[], None],
        on_partial: Callable[[int], None],
        open_id: Callable[[Decision], str],
        entry_blocker: Callable[[], str | None],
        rules_refusal: Callable[[dict[str, Any], Any, Any], str | None],
        bar_seconds: int,
    ) -> None:
        self.config = config
        self.broker = broker
        self.executor = executor
        self.label = label
        self.state = state
        self.audit = audit
        self.clock = clock
        self.summary = summary
        self._close = close
        self._sync = sync
        self._on_partial = on_partial
        self._open_id = open_id
        self._entry_blocker = entry_blocker
        self._rules_refusal = rules_refusal
        self._bar_seconds = bar_seconds
        self._stops_of_entry: dict[int, Stops | None] = {}
        self._stops_sent: dict[int, float] = {}  # ticket -> wall time of the last change
        self._seen: set[int] = set()  # positions whose stops were brought to the strategy's
        self._no_full_volume: set[str] = set()  # told once: size not managed
        self._full_volumes: dict[str, float] = {}  # entry client id -> its full volume

    def care(self, decision: Decision, holdings: list[Holding], *, fresh: bool) -> list[Holding]:
        """Time exits, size and stops of the positions held in the target's direction;
        returns those still held."""
        if not holdings:
            return holdings
        held = self._time_exits(decision, holdings)
        if held:
            held = self._resize(decision, held)
        if held:
            self._keep_stops(decision, held, fresh=fresh)
        return held

    # ------------------------------------------------------------ time exits

    def _time_exits(self, decision: Decision, holdings: list[Holding]) -> list[Holding]:
        """The whole trade closes once its first position has been held `max_bars` bars
        (on hedging accounts a scale-in is a position of its own: it goes with the trade)."""
        limit = decision.manage.max_bars
        positions = [self.state.positions.get(h.ticket) for h in holdings]
        if not math.isfinite(limit) or None in positions:
            return holdings
        opened = min(float(p.time) for p in positions)
        # bars, not hours: a weekend does not count, as in the backtest
        if decision.bars_held_since(opened) < limit:
            return holdings
        for position in positions:
            cid = make_client_order_id(
                self.label, decision.symbol, decision.bar_time, f"time_{position.ticket}"
            )
            self._close(position, cid, f"time exit after {int(limit)} bars")
        return []

    # ------------------------------------------------------------ size

    def _resize(self, decision: Decision, holdings: list[Holding]) -> list[Holding]:
        """Bring the volume held to size × the full volume: partial closes (newest position
        first) or a scale-in."""
        manage = decision.manage
        full = self._full_volume(decision, manage.entry_size)
        if full is None:
            return holdings
        first = self.state.positions.get(min(h.ticket for h in holdings))
        _, size = manage.in_force(float(first.time)) if first is not None else (0, manage.size)
        spec = self.broker.symbol_spec(decision.symbol)
        wanted = spec.floor_volume(full * size) if size > 0 else 0.0
        if wanted < spec.volume_min - 1e-12:
            wanted = 0.0
        held = round(sum(h.volume for h in holdings), 8)
        if abs(wanted - held) < spec.volume_step / 2:
            return holdings
        if wanted > held:
            sl = float(first.sl) if first is not None else 0.0
            refusal = self._scale_in_refusal(decision, round(wanted - held, 8), spec, sl)
            if refusal:
                logger.info(
                    "%s scale-in to %s lots not sent: %s",
                    decision.symbol,
                    wanted,
                    refusal,
                    extra={"symbol": decision.symbol},
                )
            else:
                self._scale_in(decision, holdings, round(wanted - held, 8), spec)
            return holdings
        return self._reduce(decision, holdings, round(held - wanted, 8), wanted)

    def _full_volume(self, decision: Decision, entry_size: float) -> float | None:
        """The entry's volume before its size: what the size fraction is of (recorded with
        the entry when its size was a fraction; its volume otherwise)."""
        cid = self._open_id(decision)
        if cid in self._full_volumes:  # fixed once the entry is recorded: read it once
            return self._full_volumes[cid]
        row = self.audit.latest_order(cid)
        if row is None or not row["volume"]:
            if decision.manage.size != decision.manage.entry_size:
                self._tell_no_full_volume(decision)
            return None
        recorded = FULL_VOLUME.search(self.audit.reader.order_reason(cid) or "")
        full = float(recorded.group(1)) if recorded else float(row["volume"]) / (entry_size or 1.0)
        self._full_volumes[cid] = full
        return full

    def _tell_no_full_volume(self, decision: Decision) -> None:
        if decision.symbol in self._no_full_volume:
            return
        self._no_full_volume.add(decision.symbol)
        logger.warning(
            "%s: the position's entry is not in this trader's record, so its size is not "
            "managed (the strategy asks for %s of it)",
            decision.symbol,
            decision.manage.size,
            extra={"symbol": decision.symbol},
        )

    def _reduce(
        self, decision: Decision, holdings: list[Holding], excess: float, wanted: float
    ) -> list[Holding]:
        minimum = float(self.broker.symbol_spec(decision.symbol).volume_min)
        kept = []
        for holding in sorted(holdings, key=lambda h: -h.ticket):  # newest first
            position = self.state.positions.get(holding.ticket)
            if excess <= 1e-9 or position is None:
                kept.append(holding)
                continue
            cut = min(excess, holding.volume)
            # a server takes no deal below volume_min (10014): where the minimum is above
            # the step, the cut grows to it, and what would stay below it goes too
            cut = min(max(cut, minimum), holding.volume)
            if holding.volume - cut < minimum - 1e-9:
                cut = holding.volume
            cid = make_client_order_id(
                self.label, decision.symbol, decision.bar_time, f"size_{holding.ticket}_{wanted}"
            )
            if cut >= holding.volume - 1e-9:
                self._close(position, cid, f"size {decision.manage.size}: closed")
            else:
                self._partial_close(position, cut, cid, decision)
                kept.append(Holding(holding.ticket, holding.direction, holding.volume - cut,
                                    holding.sl, holding.tp))  # fmt: skip
            excess = round(excess - cut, 8)
        return kept

    def _partial_close(self, position: Any, volume: float, cid: str, decision: Decision) -> None:
        """A deal naming the position with a smaller volume (hedging and netting alike)."""
        broker = self.broker
        spec = broker.symbol_spec(position.symbol)
        closing_buy = position.type != POSITION_TYPE_BUY
        tick = broker.tick(position.symbol)
        request = build_order_request(
            symbol=position.symbol,
            side="buy" if closing_buy else "sell",
            volume=volume,
            price=tick.ask if closing_buy else tick.bid,
            spec=spec,
            magic=self.config.magic_number,
            comment=cid,
            deviation=self.config.deviation_points,
            filling=broker.filling_mode(position.symbol),
            position=int(position.ticket),
        )
        result = self.executor.execute_order(
            OrderIntent(
                client_order_id=cid,
                symbol=position.symbol,
                side="buy" if closing_buy else "sell",
                volume=request["volume"],
                kind="close",
                request=request,
                position_ticket=int(position.ticket),
                reason=f"partial exit: size {decision.manage.size}",
            )
        )
        if result.filled and not result.duplicate:
            self.summary.exits += 1
            logger.info(
                "%s%s #%s partly closed: %s lots at %s",
                self.clock.stamp(),
                position.symbol,
                position.ticket,
                result.volume,
                result.price,
                extra={"symbol": position.symbol},
            )
        self._sync()
        if result.filled:
            self._on_partial(int(getattr(position, "identifier", 0) or position.ticket))

    def _scale_in_refusal(
        self, decision: Decision, volume: float, spec: Any, sl: float
    ) -> str | None:
        """A scale-in adds exposure: refused like an entry (kill switch, daily limits, lots
        and margin limits, the account rules with its stop `sl`, the position's)."""
        blocker = self._entry_blocker()
        if blocker:
            return blocker
        account = self.broker.account()
        tick = self.broker.tick(decision.symbol)
        price = float(tick.ask if decision.position > 0 else tick.bid)
        margin = estimated_margin(volume, price, spec, account)
        hedging = int(getattr(account, "margin_mode", 0)) == ACCOUNT_MARGIN_MODE_RETAIL_HEDGING
        refusal = self.state.entry_refusal(
            decision.symbol, volume, margin, account, new_position=hedging
        )
        request = {"type": 0 if decision.position > 0 else 1, "symbol": decision.symbol,
                   "volume": volume, "price": price, "sl": sl}  # fmt: skip
        return refusal or self._rules_refusal(request, account, tick)

    def _scale_in(
        self, decision: Decision, holdings: list[Holding], volume: float, spec: Any
    ) -> None:
        """Add to the position: a market deal in its direction with its stops (on hedging
        accounts a position of its own, on netting the same one grows)."""
        first = self.state.positions.get(min(h.ticket for h in holdings))
        if first is None:
            return
        cid = make_client_order_id(
            self.label, decision.symbol, decision.bar_time, f"scale_{first.ticket}_{volume}"
        )
        tick = self.broker.tick(decision.symbol)
        buying = decision.position > 0
        request = build_order_request(
            symbol=decision.symbol,
            side="buy" if buying else "sell",
            volume=volume,
            price=tick.ask if buying else tick.bid,
            spec=spec,
            magic=self.config.magic_number,
            comment=cid,
            deviation=self.config.deviation_points,
            filling=self.broker.filling_mode(decision.symbol),
            sl=float(first.sl) or None,
            tp=float(first.tp) or None,
        )
        self.executor.execute_order(
            OrderIntent(
                client_order_id=cid,
                symbol=decision.symbol,
                side="buy" if buying else "sell",
                volume=request["volume"],
                kind="open",
                request=request,
                reason=f"scale in: size {decision.manage.size}",
            )
        )
        self._sync()

    # ------------------------------------------------------------ stops

    def _keep_stops(self, decision: Decision, holdings: list[Holding], *, fresh: bool) -> None:
        """Stops where the strategy wants them: moved ones, or those of the entry."""
        spec = self.broker.symbol_spec(decision.symbol)
        wanted = {}
        for holding in holdings:
            stops = self._wanted_stops(decision, holding, spec, fresh=fresh)
            if stops is not None:
                wanted[holding.ticket] = stops
        min_step = self.config.stops_min_step_points * spec.point
        for action in stop_changes(holdings, wanted, min_step=min_step):
            wall, last = self.clock.wall(), self._stops_sent.get(action.ticket, -math.inf)
            if wall - last < self.config.stops_min_seconds and not decision.manage.moving_stops:
                continue
            self._stops_sent[action.ticket] = wall
            self._move_stops(decision, action, spec)

    def _wanted_stops(
        self, decision: Decision, holding: Holding, spec: Any, *, fresh: bool
    ) -> Stops | None:
        manage = decision.manage
        if not manage.moving_stops:
            return self._entry_stops(holding.ticket)
        position = self.state.positions.get(holding.ticket)
        if position is None:
            return None
        first_look = holding.ticket not in self._seen
        self._seen.add(holding.ticket)
        held, _ = manage.in_force(float(position.time))
        if fresh and not first_look:
            asked = manage.stops_asked  # this bar's asks (the bar closed after the fill)
        elif first_look:
            asked = held  # what is in force, for a trader that was away
            if not any(math.isfinite(level) for level in asked):
                return self._entry_stops(holding.ticket)  # nothing moved them yet
        else:
            return None  # between bars nothing moves
        if not any(math.isfinite(level) for level in asked):
            return None
        moved = _asked_levels(decision, asked, spec, self._entry_price(decision, position))
        sl = moved[0] if moved[0] is not None else holding.sl
        tp = moved[1] if moved[1] is not None else holding.tp
        return Stops(sl, tp)

    def _entry_price(self, decision: Decision, position: Any) -> float:
        """The fill of the trade's entry: distances are from it, as in the backtest (a
        netting position's price becomes an average after a scale-in)."""
        row = self.audit.latest_order(self._open_id(decision))
        if row is not None and row["fill_price"] and row["position_ticket"] == position.ticket:
            return float(row["fill_price"])
        return float(position.price_open)

    def _entry_stops(self, ticket: int) -> Stops | None:
        """The stops the position's entry set (None: it set none, or it is not ours)."""
        if ticket not in self._stops_of_entry:
            found = self.audit.reader.entry_stops(ticket)
            self._stops_of_entry[ticket] = Stops(*found) if found and any(found) else None
        return self._stops_of_entry[ticket]

    def _movable(self, position: Any, stops: Stops, spec: Any) -> tuple[Stops, str | None]:
        """The stops a server would take now: a level it would refuse (inside the stops
        level, the wrong side of the price) stays where it is, as the backtest keeps it;
        a reason when nothing can move (or a stop in force is inside the freeze level)."""
        info = self.broker.symbol_info(position.symbol)
        tick = self.broker.tick(position.symbol)
        current = Stops(float(position.sl), float(position.tp))

        def refused(sl: float, tp: float) -> str | None:
            return stops_blocker(
                position, sl, tp, spec=spec, tick=tick, freeze_level=int(info.trade_freeze_level)
            )

        why_sl = refused(stops.sl, current.tp) if stops.sl != current.sl else None
        sl = current.sl if why_sl else stops.sl
        why_tp = refused(sl, stops.tp) if stops.tp != current.tp else None
        moved = Stops(sl, current.tp if why_tp else stops.tp)
        if moved == current:
            return moved, why_sl or why_tp or "nothing to move"
        return moved, None

    def _move_stops(self, decision: Decision, action: Action, spec: Any) -> None:
        position, stops = self.state.positions.get(action.ticket), action.stops
        if stops is None or position is None or action.kind != MODIFY:
            return
        stops, blocker = self._movable(position, stops, spec)
        if blocker:
            logger.info("%s #%s stops not moved now: %s", position.symbol, position.ticket, blocker)
            return
        cid = make_client_order_id(
            "stops", position.symbol, decision.bar_time, f"sltp_{position.ticket}_{stops}"
        )
        moving = decision.manage.moving_stops
        request = build_stops_request(
            position=position,
            sl=stops.sl,
            tp=stops.tp,
            spec=spec,
            magic=self.config.magic_number,
            comment=cid,
        )
        result = self.executor.execute_order(
            OrderIntent(
                client_order_id=cid,
                symbol=position.symbol,
                side="buy" if position.type == POSITION_TYPE_BUY else "sell",
                volume=float(position.volume),
                kind="modify",
                request=request,
                position_ticket=int(position.ticket),
                reason="stops moved by the strategy"
                if moving
                else "stops set again to those of the entry",
            )
        )
        if result.filled and not result.duplicate:
            logger.info(
                "%s%s #%s stops set to SL %s TP %s",
                self.clock.stamp(),
                position.symbol,
                position.ticket,
                stops.sl or "-",
                stops.tp or "-",
                extra={"symbol": position.symbol},
            )
            self.summary.stop_changes += 1
            self._sync()


def _asked_levels(
    decision: Decision, asked: tuple[float, ...], spec: Any, fill_price: float
) -> tuple[float | None, float | None]:
    """(sl, tp) the asks make for a position filled at `fill_price` (None: not asked)."""
    sl, tp, sl_distance, tp_distance = asked
    probe = _Asked(decision.position, sl, tp, sl_distance, tp_distance)
    return stop_levels(probe, spec, fill_price)


class _Asked:
    """What stop_levels reads of a decision."""

    def __init__(self, position: int, sl: float, tp: float, sl_distance: float, tp_distance: float):
        self.position, self.sl, self.tp = position, sl, tp
        self.sl_distance, self.tp_distance = sl_distance, tp_distance
