"""The simulated terminal's trade queries: positions_*, orders_* and history_*, what the
terminal reports of the account's trades (deals it has not caught up with left out).

A mixin of SimTerminal (terminal.py), which holds the trade server and the lagging deals.
"""

from __future__ import annotations

import logging
from typing import Any

from live.sim_terminal import arguments, replies
from live.sim_terminal.api_call import api_call
from live.sim_terminal.arguments import INVALID, CallFailed

logger = logging.getLogger(__name__)


class TradeQueries:
    """positions_total/get, orders_total/get, history_orders_total/get, history_deals_total/get."""

    @api_call
    def positions_total(self) -> int:
        return len(self.server.positions)

    @api_call
    def positions_get(self, *args: Any, **kwargs: Any) -> tuple[Any, ...]:
        chosen = arguments.filtered(self.server.positions.values(), args, kwargs)
        moment = self.clock.now()
        return tuple(self._position_struct(p, moment) for p in chosen)

    @api_call
    def orders_total(self) -> int:
        return len(self.server.orders)

    @api_call
    def orders_get(self, *args: Any, **kwargs: Any) -> tuple[Any, ...]:
        chosen = arguments.filtered(self.server.orders.values(), args, kwargs)
        return tuple(replies.order(self.server_clock, o) for o in chosen)

    @api_call
    def history_orders_total(self, date_from: Any, date_to: Any, /) -> int:
        orders = self.server.history_orders
        return len(self._history(orders, (date_from, date_to), {}, "time_setup_msc", "ticket"))

    @api_call
    def history_orders_get(self, *args: Any, **kwargs: Any) -> tuple[Any, ...]:
        found = self._history(self.server.history_orders, args, kwargs, "time_setup_msc", "ticket")
        return tuple(replies.order(self.server_clock, o) for o in found)

    @api_call
    def history_deals_total(self, date_from: Any, date_to: Any, /) -> int:
        deals = self._visible_deals()
        return len(self._history(deals, (date_from, date_to), {}, "time_msc", "order"))

    @api_call
    def history_deals_get(self, *args: Any, **kwargs: Any) -> tuple[Any, ...]:
        """ticket= is the ORDER's ticket (DEAL_ORDER): the deals that order made (docs)."""
        found = self._history(self._visible_deals(), args, kwargs, "time_msc", "order")
        return tuple(replies.deal(self.server_clock, d) for d in found)

    def _history(
        self,
        items: list[Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        time_field: str,
        ticket_field: str,
    ) -> list[Any]:
        """history_*_get's three forms: ticket= (an order's ticket), position=, or the dates
        (server time) with an optional group=; the first present wins, as the binary does."""
        for key, field in (("ticket", ticket_field), ("position", "position_id")):
            if key in kwargs:
                wanted = kwargs[key]
                if not arguments.is_int(wanted):
                    raise CallFailed(-2, INVALID)
                return [i for i in items if getattr(i, field) == wanted]
        if len(args) != 2:
            raise CallFailed(-2, INVALID)
        first, last = (round(moment * 1000) for moment in self._dates(*args))
        group = kwargs.get("group")
        if group is not None:
            group = arguments.group_mask(group)
        return [
            i
            for i in items
            if first <= getattr(i, time_field) <= last
            and (group is None or arguments.group_match(i.symbol, group))
        ]

    def _position_struct(self, p: Any, moment: float) -> Any:
        price = self.server.closing_price(p, moment)
        return replies.position(self.server_clock, p, price, self.server.floating(p, moment))

    def _visible_deals(self) -> list[Any]:
        """The history's deals, without those it has not caught up with yet."""
        if not self._lagging:
            return self.server.deals
        self._lagging = {t: until for t, until in self._lagging.items() if until > self._calls}
        return [d for d in self.server.deals if d.ticket not in self._lagging]
