"""The minimum trade duration (a prop firm's rule, or the trader's own): a position is not
left sooner than so many seconds after its entry.

A transform of a strategy's signals, applied by the backtest and by the live trader to the
same bars (`backtest.trading_windows.restrict_to_windows`), so both act alike:

- a decision that would close, reverse, re-enter or reduce a position sooner than that
  after the entry keeps the position as it is instead;
- the first decision acting late enough acts as the strategy then wants (a reversal then
  enters the other way at that bar's open, an exit exits there);
- time runs from the moment the entry's decision acts (the next bar's open; a pending
  entry's placement, its fill comes later) to the moment the exit's decision would act.

Stops and targets are the broker's and are not held, nor is the trading windows' flattening
(applied after this): a firm's weekend or news rule outweighs a duration rule.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from backtest.signals import Signals


def hold_minimum(
    signals: Signals, acting: np.ndarray, seconds: float, *, held_at_start: bool = False
) -> Signals:
    """`signals` with each position kept at least `seconds` after its entry. `acting[i]` is
    when bar i's decision acts (UTC epoch seconds); `held_at_start`: the first bar's position
    is held from before the bars (entered long enough ago)."""
    if seconds <= 0 or not len(signals):
        return signals
    position, entry = signals.position.copy(), signals.entry.copy()
    size = signals.size.copy()
    actions = np.flatnonzero(signals.actions())
    held, since = (int(position[0]), -np.inf) if held_at_start else (0, -np.inf)
    if held_at_start:
        actions = actions[actions > 0]
    n = len(position)
    look, release = 0, n  # the next action, and the bar a hold ends (n: none)
    while True:
        bar = min(int(actions[look]) if look < len(actions) else n, release)
        if bar >= n:
            break
        if bar == release:
            release = n
        look = int(np.searchsorted(actions, bar, side="right"))
        wanted, again = int(position[bar]), bool(entry[bar]) and position[bar] != 0
        if held and (wanted != held or again) and acting[bar] < since + seconds:
            release = int(np.searchsorted(acting, since + seconds))
            position[bar:release], entry[bar:release] = held, False
            continue
        if wanted and (wanted != held or again):
            since = float(acting[bar])
            # no reduction (a partial exit) while held: the entry's size stays in force
            size[bar + 1 : int(np.searchsorted(acting, since + seconds))] = size[bar]
        held = wanted
    return replace(signals, position=position, entry=entry, size=size)
