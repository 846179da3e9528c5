"""The simulated terminal's trade calls: order_calc_margin, order_calc_profit, order_check and
order_send, with the faults a terminal and server add on the way (timeouts, lost replies,
requotes, rejections, partial fills, rewritten comments, dropped stops, history lag).

A mixin of SimTerminal (terminal.py); the trade server (broker.py) validates and executes.
"""

from __future__ import annotations

import logging
from typing import Any

from live.sim_terminal import arguments, structs
from live.sim_terminal.api_call import IPC_TIMEOUT, api_call
from live.sim_terminal.arguments import INVALID, CallFailed
from live.sim_terminal.broker import TradeRefused
from live.sim_terminal.constants import K

logger = logging.getLogger(__name__)


class TradeCalls:
    """order_calc_margin, order_calc_profit, order_check, order_send."""

    @api_call
    def order_calc_margin(self, action: int, symbol: str, volume: float, price: float, /) -> float:
        spec = self._feed(symbol, selected=False).symbol
        volume, price = arguments.number(volume), arguments.number(price)
        if action not in (K.ORDER_TYPE_BUY, K.ORDER_TYPE_SELL) or volume <= 0:
            raise CallFailed(-2, INVALID)
        return round(self.server.margin_for(spec, volume, price, self.clock.now()), 2)

    @api_call
    def order_calc_profit(
        self, action: int, symbol: str, volume: float, price_open: float, price_close: float, /
    ) -> float:
        spec = self._feed(symbol, selected=False).symbol
        volume = arguments.number(volume)
        opened, closed = arguments.number(price_open), arguments.number(price_close)
        if action not in (K.ORDER_TYPE_BUY, K.ORDER_TYPE_SELL):
            raise CallFailed(-2, INVALID)
        return round(
            self.server.profit_of(spec, action, volume, opened, closed, self.clock.now()), 2
        )

    @api_call
    def order_check(self, *args: Any, **kwargs: Any) -> Any:
        request = arguments.request(args, kwargs)
        moment = self.clock.now()
        trade_request = structs.TradeRequest(**request)  # as sent: server time
        request = self.server_clock.request(request)
        before = self.server.totals(moment)
        try:
            self._check_selected(request)
            self.server.validate(request, moment, trade_allowed=self.trade_allowed)
        except TradeRefused as refused:
            return structs.OrderCheckResult(
                refused.retcode, *_check_numbers(before, 0.0), refused.comment, trade_request
            )
        extra = self._margin_of(request, moment)
        return structs.OrderCheckResult(0, *_check_numbers(before, extra), "Done", trade_request)

    def _margin_of(self, request: dict[str, Any], moment: float) -> float:
        if request["action"] not in (K.TRADE_ACTION_DEAL, K.TRADE_ACTION_PENDING) or request.get(
            "position"
        ):
            return 0.0
        feed = self.server.feeds[request["symbol"]]
        _, bid, ask = feed.quote(moment)
        price = request["price"] or (ask if request["type"] == K.ORDER_TYPE_BUY else bid)
        return self.server.margin_change(request, price, moment)

    @api_call
    def order_send(self, *args: Any, **kwargs: Any) -> Any:
        request = arguments.request(args, kwargs)
        if self.tradeapi_disabled:
            raise CallFailed(-8, "Auto-Trading using Python API disabled in Terminal")
        self._request_id += 1
        moment = self.clock.now()
        if self._roll(self.faults.timeout_rate):
            raise CallFailed(*IPC_TIMEOUT)
        code, comment, fill = self._send(self.server_clock.request(request), moment)
        _, bid, ask = self._quote_or_zero(request.get("symbol"), moment)
        result = structs.OrderSendResult(
            code,
            fill.deal if fill else 0,
            fill.order if fill else 0,
            fill.volume if fill else 0.0,
            fill.price if fill else 0.0,
            bid,
            ask,
            comment,
            self._request_id,
            0,
            structs.TradeRequest(**request),
        )
        if fill is not None:
            self._changed()
            if self._roll(self.faults.reply_lost_rate):
                raise CallFailed(*IPC_TIMEOUT)  # executed, but the reply never arrives
        return result

    def _send(self, request: dict[str, Any], moment: float) -> tuple[int, str, Any]:
        if not self.server_connected:
            return K.TRADE_RETCODE_CONNECTION, "No connection", None
        try:
            self.server.request_rate.admit(moment)  # what is sent to execute counts
            self._check_selected(request)
            self.server.validate(request, moment, trade_allowed=self.trade_allowed)
        except TradeRefused as refused:
            return refused.retcode, refused.comment, None
        if request["action"] == K.TRADE_ACTION_DEAL:
            if self._roll(self.faults.requote_rate):
                return K.TRADE_RETCODE_REQUOTE, "Requote", None
            if self._roll(self.faults.reject_rate):
                return K.TRADE_RETCODE_REJECT, "Request rejected", None
            request = self._as_the_server_keeps(request)
        ratio = 1.0
        partial_allowed = request.get("type_filling") in (
            K.ORDER_FILLING_IOC,
            K.ORDER_FILLING_RETURN,
        )
        if partial_allowed and self._roll(self.faults.partial_fill_rate):
            ratio = self.faults.partial_fill_ratio
        fill = self.server.execute(request, moment, fill_ratio=ratio)
        if fill.deal and self._roll(self.faults.history_lag_rate):
            self._lagging[fill.deal] = self._calls + self.faults.history_lag_calls
            fill = type(fill)(fill.retcode, 0, fill.order, fill.volume, fill.price)
        done = {
            K.TRADE_RETCODE_PLACED: "Request placed",
            K.TRADE_RETCODE_DONE_PARTIAL: "Request executed partially",
        }
        return fill.retcode, done.get(fill.retcode, "Request executed"), fill

    def _as_the_server_keeps(self, request: dict[str, Any]) -> dict[str, Any]:
        """What some servers do to a market order: cut or replace its comment (the client
        order id in it), fill it without its SL/TP."""
        faults, kept = self.faults, dict(request)
        comment = str(request.get("comment") or "")
        if comment and self._roll(faults.comment_rewrite_rate):
            kept["comment"] = f"#{self._request_id}"
        elif comment and self._roll(faults.comment_truncate_rate):
            kept["comment"] = comment[: faults.comment_keep]
        stops = request.get("sl") or request.get("tp")
        if stops and not request.get("position") and self._roll(faults.stops_ignored_rate):
            kept["sl"] = kept["tp"] = 0.0
        return kept

    def _check_selected(self, request: dict[str, Any]) -> None:
        """A known symbol outside Market Watch has no quotes in the terminal: 10021."""
        symbol = request.get("symbol")
        if symbol in self.server.feeds and symbol not in self._selected:
            raise TradeRefused(K.TRADE_RETCODE_PRICE_OFF, "No prices")

    def _quote_or_zero(self, symbol: object, moment: float) -> tuple[int, float, float]:
        feed = self.server.feeds.get(symbol) if isinstance(symbol, str) else None
        quote = feed.quote(moment) if feed is not None else None
        return quote or (0, 0.0, 0.0)


def _check_numbers(before: dict[str, float], extra_margin: float) -> tuple[float, ...]:
    margin = before["margin"] + extra_margin
    equity = before["equity"]
    level = 100.0 * equity / margin if margin else 0.0
    return (
        before["balance"],
        equity,
        before["profit"],
        round(margin, 2),
        round(equity - margin, 2),
        round(level, 2),
    )
