"""The structures the simulated terminal answers with about ticks, symbols, positions, orders
and deals, shaped as the MetaTrader5 package's, every epoch stamped in server time (the
records keep UTC; server_clock.py converts)."""

from __future__ import annotations

import logging
from typing import Any

from live.sim_terminal import structs
from live.sim_terminal.market import SimSymbol
from live.sim_terminal.server_clock import ServerClock

logger = logging.getLogger(__name__)

TICK_FLAGS = 6  # TICK_FLAG_BID | TICK_FLAG_ASK: forex quotes


def tick(clock: ServerClock, when: float, bid: float, ask: float) -> Any:
    """A Tick at `when` (UTC, fractional): time in whole server seconds, time_msc with the
    milliseconds."""
    stamped = clock.msc(round(when * 1000))
    return structs.Tick(stamped // 1000, bid, ask, 0.0, 0, stamped, TICK_FLAGS, 0.0)


def position(clock: ServerClock, p: Any, price_current: float, profit: float) -> Any:
    opened, updated = clock.msc(p.time_msc), clock.msc(p.time_update_msc)
    return structs.TradePosition(
        p.ticket,
        opened // 1000,
        opened,
        updated // 1000,
        updated,
        p.type,
        p.magic,
        p.identifier or p.ticket,
        p.reason,
        p.volume,
        p.price_open,
        p.sl,
        p.tp,
        price_current,
        0.0,
        profit,
        p.symbol,
        p.comment,
        "",
    )


def order(clock: ServerClock, o: Any) -> Any:
    setup, done = clock.msc(o.time_setup_msc), clock.msc(o.time_done_msc)
    expiration = int(clock.to_server(o.time_expiration)) if o.time_expiration else 0
    return structs.TradeOrder(
        o.ticket,
        setup // 1000,
        setup,
        done // 1000,
        done,
        expiration,
        o.type,
        o.type_time,
        o.type_filling,
        o.state,
        o.magic,
        o.position_id,
        o.position_by_id,
        o.reason,
        o.volume_initial,
        o.volume_current,
        o.price_open,
        o.sl,
        o.tp,
        o.price_current or o.price_open,
        0.0,
        o.symbol,
        o.comment,
        "",
    )


def deal(clock: ServerClock, d: Any) -> Any:
    stamped = clock.msc(d.time_msc)
    return structs.TradeDeal(
        d.ticket,
        d.order,
        stamped // 1000,
        stamped,
        d.type,
        d.entry,
        d.magic,
        d.position_id,
        d.reason,
        d.volume,
        d.price,
        d.commission,
        d.swap,
        d.profit,
        d.fee,
        d.symbol,
        d.comment,
        "",
    )


_TEXT_FIELDS = (
    "basis",
    "category",
    "currency_base",
    "currency_profit",
    "currency_margin",
    "bank",
    "description",
    "exchange",
    "formula",
    "isin",
    "name",
    "page",
    "path",
)


def symbol_fields(
    clock: ServerClock, spec: SimSymbol, selected: bool, when: float, bid: float, ask: float
) -> dict[str, Any]:
    """SymbolInfo's fields; `time` is the last quote's, in server seconds (0 without one)."""
    values: dict[str, Any] = dict.fromkeys(structs.STRUCT_FIELDS["SymbolInfo"], 0)
    values.update(dict.fromkeys(_TEXT_FIELDS, ""))
    point = spec.point
    values.update(
        custom=False,
        select=selected,
        visible=selected,
        time=clock.seconds(when) if when else 0,
        digits=spec.digits,
        spread=round((ask - bid) / point) if bid else 0,
        spread_float=True,
        trade_calc_mode=spec.calc_mode,
        trade_mode=spec.trade_mode,
        trade_stops_level=spec.stops_level,
        trade_freeze_level=spec.freeze_level,
        trade_exemode=spec.exemode,
        filling_mode=spec.filling_flags,
        expiration_mode=spec.expiration_mode,
        order_mode=127,
        order_gtc_mode=0,
        bid=bid,
        bidhigh=bid,
        bidlow=bid,
        ask=ask,
        askhigh=ask,
        asklow=ask,
        point=point,
        trade_tick_size=point,
        trade_contract_size=spec.contract_size,
        volume_min=spec.volume_min,
        volume_max=spec.volume_max,
        volume_step=spec.volume_step,
        volume_limit=0.0,
        currency_base=spec.currency_base,
        currency_profit=spec.currency_profit,
        currency_margin=spec.currency_margin,
        description=spec.description,
        name=spec.name,
        path=f"Forex\\{spec.name}" if spec.calc_mode == 0 else f"Metals\\{spec.name}",
        swap_mode=1,
        swap_rollover3days=3,
        margin_hedged=spec.contract_size / 2,
        margin_hedged_use_leg=False,
        margin_initial=0.0,
        margin_maintenance=0.0,
    )
    return values
