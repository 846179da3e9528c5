"""What an account and its open positions are worth: amounts converted into the account
currency, margin, profit of a move, floating profit and the account's totals (balance, equity,
margin, free margin, margin level). Money is in the account currency (USD).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from live.sim_terminal.constants import K
from live.sim_terminal.market import SimSymbol, SymbolFeed
from live.sim_terminal.records import BUY_SIDE, Account, Position

logger = logging.getLogger(__name__)


@dataclass
class Book:
    """An account, the symbols' feeds and the open positions, valued at any moment."""

    account: Account
    feeds: dict[str, SymbolFeed]
    positions: dict[int, Position] = field(default_factory=dict)

    def symbol(self, name: str) -> SimSymbol:
        return self.feeds[name].symbol

    def to_account(self, amount: float, spec: SimSymbol, price: float, moment: float) -> float:
        """An amount in the symbol's profit currency, in the account currency.

        `price` is the symbol's own price (it converts USDJPY's yen); a cross (EURGBP) goes
        through the account currency's pair of its profit currency at `moment` (GBPUSD).
        """
        currency = self.account.currency
        if spec.currency_profit == currency:
            return amount
        if spec.currency_base == currency and price > 0:
            return amount / price
        rate = self._rate_to_account(spec.currency_profit, moment)
        return amount * rate if rate else amount

    def _rate_to_account(self, currency: str, moment: float) -> float | None:
        """Account currency per unit of `currency` at `moment`, from a feed of the pair."""
        home = self.account.currency
        for name, inverse in ((f"{currency}{home}", False), (f"{home}{currency}", True)):
            feed = self.feeds.get(name)
            quote = feed.quote(moment) if feed is not None else None
            if quote and quote[1] > 0:
                return 1.0 / quote[1] if inverse else float(quote[1])
        return None

    def margin_for(self, spec: SimSymbol, volume: float, price: float, moment: float) -> float:
        """Margin of `volume` lots at `price`, in the account currency."""
        units = volume * spec.contract_size / max(self.account.leverage, 1)
        if spec.currency_base == self.account.currency:
            return units
        return self.to_account(units * price, spec, price, moment)

    def profit_of(
        self,
        spec: SimSymbol,
        order_type: int,
        volume: float,
        price_open: float,
        price_close: float,
        moment: float,
    ) -> float:
        sign = 1.0 if order_type in BUY_SIDE else -1.0
        move = sign * (price_close - price_open) * volume * spec.contract_size
        return self.to_account(move, spec, price_close, moment)

    def tick_value(self, spec: SimSymbol, moment: float) -> float:
        """What one tick's move of one lot is worth in the account currency (SymbolInfo's
        trade_tick_value), by the same conversion as profit_of."""
        feed = self.feeds[spec.name]
        quote = feed.quote(moment)
        price = quote[1] if quote else float(feed.close[0])
        return self.to_account(spec.contract_size * spec.point, spec, price, moment)

    def closing_price(self, position: Position, moment: float) -> float:
        _, bid, ask = self.feeds[position.symbol].quote(moment)
        return float(bid if position.type == K.POSITION_TYPE_BUY else ask)

    def floating(self, position: Position, moment: float) -> float:
        return round(
            float(
                self.profit_of(
                    self.symbol(position.symbol),
                    position.type,
                    position.volume,
                    position.price_open,
                    self.closing_price(position, moment),
                    moment,
                )
            ),
            2,
        )

    def totals(self, moment: float) -> dict[str, float]:
        """balance, profit, equity, margin, margin_free, margin_level at `moment`."""
        profit = sum(self.floating(p, moment) for p in self.positions.values())
        margin = sum(
            self.margin_for(self.symbol(p.symbol), p.volume, p.price_open, moment)
            for p in self.positions.values()
        )
        equity = self.account.balance + profit
        return {
            "balance": round(float(self.account.balance), 2),
            "profit": round(float(profit), 2),
            "equity": round(float(equity), 2),
            "margin": round(float(margin), 2),
            "margin_free": round(float(equity - margin), 2),
            "margin_level": round(float(100.0 * equity / margin), 2) if margin else 0.0,
        }
