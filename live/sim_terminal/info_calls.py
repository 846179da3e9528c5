"""The simulated terminal's information calls: version, terminal_info, account_info, the
symbols, Market Watch (symbol_select) and the market book (unsupported, as on most brokers).

A mixin of SimTerminal (terminal.py), which holds the state these calls read.
"""

from __future__ import annotations

import logging
from typing import Any

from live.sim_terminal import arguments, replies, structs
from live.sim_terminal.api_call import api_call
from live.sim_terminal.arguments import WRONG_COUNT, CallFailed

logger = logging.getLogger(__name__)

VERSION = (500, 4410, "15 Nov 2024")


class InfoCalls:
    """version, terminal_info, account_info, symbols_*, symbol_*, market_book_*."""

    @api_call
    def version(self) -> tuple[int, int, str]:
        return VERSION

    @api_call
    def terminal_info(self) -> Any:
        values = dict.fromkeys(structs.STRUCT_FIELDS["TerminalInfo"], 0)
        values.update(
            community_account=False,
            community_connection=False,
            connected=self.server_connected,
            dlls_allowed=False,
            trade_allowed=self.trade_allowed,
            tradeapi_disabled=self.tradeapi_disabled,
            email_enabled=False,
            ftp_enabled=False,
            notifications_enabled=False,
            mqid=False,
            build=VERSION[1],
            maxbars=100_000,
            codepage=0,
            ping_last=31_250,
            community_balance=0.0,
            retransmission=0.0,
            company="Simulated Broker Ltd",
            name="MetaTrader 5 (simulated)",
            language="English",
            path="/sim/terminal",
            data_path="/sim/terminal",
            commondata_path="/sim/common",
        )
        return structs.TerminalInfo(**values)

    @api_call
    def account_info(self) -> Any:
        account = self.server.account
        totals = self.server.totals(self.clock.now())
        values = dict.fromkeys(structs.STRUCT_FIELDS["AccountInfo"], 0)
        values.update(
            login=account.login,
            trade_mode=account.trade_mode,
            leverage=account.leverage,
            limit_orders=200,
            margin_so_mode=0,
            trade_allowed=True,
            trade_expert=True,
            margin_mode=account.margin_mode,
            currency_digits=2,
            fifo_close=False,
            credit=0.0,
            margin_so_call=50.0,
            margin_so_so=30.0,
            margin_initial=0.0,
            margin_maintenance=0.0,
            assets=0.0,
            liabilities=0.0,
            commission_blocked=0.0,
            name=account.name,
            server=account.server,
            currency=account.currency,
            company=account.company,
            **totals,
        )
        return structs.AccountInfo(**values)

    # ------------------------------------------------------------ symbols

    @api_call
    def symbols_total(self) -> int:
        return len(self.server.feeds)

    @api_call
    def symbols_get(self, *args: Any, group: str | None = None) -> tuple[Any, ...]:
        if args:
            if len(args) > 1 or group is not None:
                raise CallFailed(-2, WRONG_COUNT)
            group = args[0]
        if group is not None:
            group = arguments.group_mask(group)
        names = [n for n in self.server.feeds if group is None or arguments.group_match(n, group)]
        return tuple(self._symbol_info(n) for n in names)

    @api_call
    def symbol_info(self, symbol: str, /) -> Any:
        self._feed(symbol, selected=False)
        return self._symbol_info(symbol)

    def _symbol_info(self, name: str) -> Any:
        feed = self.server.feeds[name]
        spec = feed.symbol
        moment = self.clock.now()
        quote = feed.quote(moment) if name in self._selected else None
        when, bid, ask = quote if quote else (0, 0.0, 0.0)
        values = replies.symbol_fields(
            self.server_clock, spec, name in self._selected, when, bid, ask
        )
        tick_value = self.server.tick_value(spec, moment)
        values.update(
            trade_tick_value=tick_value,
            trade_tick_value_profit=tick_value,
            trade_tick_value_loss=tick_value,
        )
        return structs.SymbolInfo(**values)

    @api_call
    def symbol_info_tick(self, symbol: str, /) -> Any:
        quote = self._feed(symbol).quote(self.clock.now())
        if quote is None:
            raise CallFailed(-1, "Terminal: Call failed")
        when, bid, ask = quote
        return replies.tick(self.server_clock, when, bid, ask)

    @api_call
    def symbol_select(self, symbol: str, enable: bool = True, /) -> bool:
        self._feed(symbol, selected=False)
        arguments.check_types((enable, int))
        before = set(self._selected)
        if enable:
            self._selected.add(symbol)
        elif any(p.symbol == symbol for p in self.server.positions.values()):
            raise CallFailed(-1, "Terminal: Call failed")  # open positions keep it in Market Watch
        else:
            self._selected.discard(symbol)
        if self._selected != before:  # Market Watch is part of the saved state
            self._changed()
        return True

    @api_call
    def market_book_add(self, symbol: str, /) -> bool:
        self._feed(symbol, selected=False)
        raise CallFailed(-7, "Terminal: Unsupported function")

    @api_call
    def market_book_release(self, symbol: str, /) -> bool:
        self._feed(symbol, selected=False)
        raise CallFailed(-7, "Terminal: Unsupported function")

    @api_call
    def market_book_get(self, symbol: str, /) -> Any:
        self._feed(symbol, selected=False)
        raise CallFailed(-7, "Terminal: Unsupported function")
