"""The one intrabar fill rule, shared by the backtest engine and the paper broker (the
simulator's server follows the same path in its own code; a test runs all three).

Inside a bar the price moves on a path: the open, then the extreme nearer to the open (the
low on a tie), then the other extreme, then the close, in straight lines. Along it:
- At the open, levels the open has already passed fill at the open: a stop-loss or take-profit
  in force since the previous bar, a limit or stop entry (a gap fills at the open, not at the
  level). Then the orders decided on the previous bar go out at the open.
- Then levels fill at the level, in the order the path reaches them. A position that opens
  during the bar (a limit or stop entry) has its stops watched from that point on.
Bars are bid prices; buys (and a short's stops) see the ask, a spread above.

Positions on the path: 0 is the open, 1 and 2 the two extremes, 3 the close (`tau`).
"""

from __future__ import annotations

import numpy as np

NEVER = np.inf


def low_first(open_, high, low):
    """Whether the path goes to the low first: the low is no farther from the open than the
    high (a tie, within float noise, goes to the low)."""
    return 2.0 * open_ - low - high <= 1e-9 * np.abs(open_)


def path_points(
    open_: np.ndarray, high: np.ndarray, low: np.ndarray, close: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The path's four points: open, the nearer extreme (low on a tie), the other, close."""
    down = low_first(open_, high, low)
    first = np.where(down, low, high)
    second = np.where(down, high, low)
    return open_, first, second, close


def first_touch(
    level: np.ndarray,
    falling: np.ndarray | bool,
    points: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray],
    start: np.ndarray | float = 0.0,
) -> np.ndarray:
    """Where on the path the price first reaches `level` moving down (`falling`) or up, at
    or after `start`; NEVER when it does not (or the level is NaN). A level the open has
    already passed is reached at 0 (when `start` is 0)."""
    level = np.asarray(level, dtype=float)
    falling = np.broadcast_to(np.asarray(falling, dtype=bool), level.shape)
    start = np.broadcast_to(np.asarray(start, dtype=float), level.shape)
    tau = np.full(level.shape, NEVER)
    with np.errstate(invalid="ignore"):
        # only where the bar's range reaches the level at all: most bars do not
        low = np.minimum(points[1], points[2])
        high = np.maximum(points[1], points[2])
        reach = np.flatnonzero(np.where(falling, low <= level, high >= level))
    if len(reach):
        tau[reach] = _touch(
            level[reach], falling[reach], tuple(p[reach] for p in points), start[reach]
        )
    return tau


def _touch(level, falling, points, start) -> np.ndarray:
    tau = np.full(level.shape, NEVER)
    with np.errstate(invalid="ignore", divide="ignore"):
        at_open = (start == 0) & np.where(falling, points[0] <= level, points[0] >= level)
        tau[at_open] = 0.0
        for leg in range(3):
            a, b = points[leg], points[leg + 1]
            begin = np.clip(start - leg, 0.0, 1.0)
            here = a + (b - a) * begin  # the price where the search starts on this leg
            crosses = np.where(
                falling, (here > level) & (b <= level), (here < level) & (b >= level)
            )
            crosses &= start < leg + 1
            span = np.where(b != here, b - here, 1.0)
            fraction = begin + (1.0 - begin) * (level - here) / span
            tau = np.where(crosses & (tau == NEVER), leg + fraction, tau)
    return tau


def fill_price(level: np.ndarray, tau: np.ndarray, open_: np.ndarray) -> np.ndarray:
    """A level reached at the open (a gap) fills at the open; elsewhere at the level."""
    return np.where(tau == 0.0, open_, level)
