"""Account protection live: the floors of a preset held against equity every loop (resets in
a named zone, trailing marks, pause against fail, memory across restarts), the worst-case
check before an entry, and a breach inside one bar of the simulator closing everything."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from backtest.broker_clock import UTC_ZONE
from backtest.data import save_csv
from backtest.prop_rules import load_preset
from backtest.strategy import Strategy
from backtest.synthetic import generate_bars
from live.account_guard import DAILY, MAX_LOSS, AccountGuard
from live.audit_logger import AuditLogger
from live.audit_reader import AuditReader
from tests.live.conftest import RecordingAlerts

CASH = 100_000.0


def write_preset(folder: Path, body: str, name: str = "rules") -> Path:
    path = folder / f"{name}.toml"
    path.write_text(body)
    return path


DAILY_5 = """
buffer_pct = 0.5
[daily_floor]
limit_pct = 5.0
of = "initial"
day_base = "{base}"
reset = "00:00 Europe/Prague"
effect = "{effect}"
"""


class Clock:
    def __init__(self, moment: str) -> None:
        self.moment = datetime.fromisoformat(moment).replace(tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.moment

    def set(self, moment: str) -> None:
        self.moment = datetime.fromisoformat(moment).replace(tzinfo=UTC)


def guard_on(tmp_path: Path, body: str, clock: Clock, **kwargs: object) -> AccountGuard:
    """A guard over a real audit database in tmp_path (a second call restores from it)."""
    audit = AuditLogger(tmp_path / "audit.db")
    return AccountGuard(
        load_preset(write_preset(tmp_path, body)),
        audit.reader,
        record=audit.record_event,
        zone=lambda: UTC_ZONE,
        now=clock,
        account_size=kwargs.get("account_size", CASH),
    )


def events(tmp_path: Path, kind: str) -> list[dict]:
    rows = AuditReader(tmp_path / "audit.db").recent_events(limit=100, kind=kind)
    return [json.loads(row["data"] or "{}") for row in reversed(rows)]


# ---------------------------------------------------------------- resets


def test_the_day_resets_at_pragues_midnight_across_the_spring_switch(tmp_path):
    """Prague's midnight is 23:00 UTC in winter and 22:00 UTC from March 31, 2024: the day
    base is taken then, not at UTC midnight."""
    clock = Clock("2024-03-30 12:00")
    guard = guard_on(tmp_path, DAILY_5.format(base="balance", effect="fail"), clock)
    guard.check(CASH, CASH)
    assert guard.floors[0].next_reset == datetime(2024, 3, 30, 23, tzinfo=UTC)
    clock.set("2024-03-30 23:30")  # Sunday 00:30 in Prague: a new day, base 101,000
    guard.check(101_000.0, 101_000.0)
    assert guard.floors[0].level == pytest.approx(96_000.0)
    assert guard.floors[0].next_reset == datetime(2024, 3, 31, 22, tzinfo=UTC)  # summer time
    clock.set("2024-03-31 21:59")
    guard.check(102_000.0, 102_000.0)
    assert guard.floors[0].level == pytest.approx(96_000.0)  # still Sunday in Prague
    clock.set("2024-03-31 22:00")
    guard.check(102_000.0, 102_000.0)
    assert guard.floors[0].level == pytest.approx(97_000.0)  # Monday: the new base
    assert [e["base"] for e in events(tmp_path, "account_day")] == [CASH, 101_000.0, 102_000.0]


def test_a_floating_loss_held_across_the_reset_breaches_where_the_base_is_the_balance(
    tmp_path,
):
    """The reset trap: a position 4,000 down at midnight. With the balance as the day base
    the next 1,100 of loss breaches (5,100 below the balance); with the equity as the base
    the day starts at 96,000 and the same loss is far from its floor."""
    outcomes = {}
    for base in ("balance", "equity"):
        folder = tmp_path / base
        folder.mkdir()
        clock = Clock("2024-01-10 20:00")
        guard = guard_on(folder, DAILY_5.format(base=base, effect="fail"), clock)
        assert guard.check(CASH, 96_000.0) is None  # 4,000 down, 500 above the stop
        clock.set("2024-01-10 23:00")  # midnight in Prague
        assert guard.check(CASH, 96_000.0) is None
        clock.set("2024-01-10 23:05")
        outcomes[base] = guard.check(CASH, 94_900.0)
    assert outcomes["balance"] is not None and outcomes["balance"].rule == DAILY
    assert outcomes["balance"].stop_at == pytest.approx(95_500.0)
    assert outcomes["equity"] is None


# ---------------------------------------------------------------- trailing floors

TRAILING = """
[max_loss]
limit_pct = 10.0
mode = "trailing"
high_water = "{mark}"
lock_at_initial = {lock}
"""


def test_an_intraday_trailing_floor_only_rises_and_locks_at_the_initial_balance(tmp_path):
    clock = Clock("2024-01-10 10:00")
    free = guard_on(tmp_path / "a", TRAILING.format(mark="intraday_equity", lock="false"), clock)
    locked = guard_on(tmp_path / "b", TRAILING.format(mark="intraday_equity", lock="true"), clock)
    levels = {"free": [], "locked": []}
    for equity in (CASH, 104_000.0, 101_000.0, 115_000.0, 108_000.0):
        for name, guard in (("free", free), ("locked", locked)):
            guard.check(CASH, equity)
            levels[name].append(guard.floors[0].level)
    assert levels["free"] == [90_000.0, 94_000.0, 94_000.0, 105_000.0, 105_000.0]
    assert levels["locked"] == [90_000.0, 94_000.0, 94_000.0, CASH, CASH]


def test_an_end_of_day_trailing_floor_moves_at_the_reset_with_the_closed_balance(tmp_path):
    clock = Clock("2024-01-10 10:00")
    guard = guard_on(tmp_path, TRAILING.format(mark="eod_balance", lock="false"), clock)
    guard.check(CASH, 106_000.0)  # a floating gain does not move it
    assert guard.floors[0].level == 90_000.0
    guard.check(103_000.0, 103_000.0)  # nor a closed one, until the day ends
    assert guard.floors[0].level == 90_000.0
    clock.set("2024-01-11 00:00")  # no daily floor: days follow the broker's midnight
    guard.check(103_000.0, 103_000.0)
    assert guard.floors[0].level == 93_000.0
    clock.set("2024-01-12 00:00")
    guard.check(99_000.0, 99_000.0)  # a losing day never lowers it
    assert guard.floors[0].level == 93_000.0


# ---------------------------------------------------------------- pause against fail


@pytest.mark.parametrize("effect", ["fail", "pause"])
def test_pause_blocks_entries_until_the_reset_and_fail_also_flattens(tmp_path, effect):
    clock = Clock("2024-01-10 12:00")
    guard = guard_on(tmp_path, DAILY_5.format(base="balance", effect=effect), clock)
    breach = guard.check(CASH, 95_400.0)
    assert breach is not None and breach.effect == effect
    assert guard.flattening is (effect == "fail")
    assert guard.blocker() and ("halted" if effect == "fail" else "paused") in guard.blocker()
    assert guard.check(CASH, 95_000.0) is None  # told once
    clock.set("2024-01-10 23:00")  # the next day in Prague: lifted
    assert guard.check(95_000.0, 95_000.0) is None
    assert guard.blocker() is None and not guard.flattening
    assert len(events(tmp_path, "account_resume")) == 1


def test_a_maximum_loss_halts_for_good_across_resets_and_restarts(tmp_path):
    body = DAILY_5.format(base="balance", effect="pause") + TRAILING.format(
        mark="intraday_equity", lock="false"
    ).replace("trailing", "static")
    clock = Clock("2024-01-10 12:00")
    guard = guard_on(tmp_path, body, clock)
    breach = guard.check(CASH, 89_900.0)
    assert breach.rule == MAX_LOSS and breach.until is None and guard.flattening
    guard.record_breach(breach)
    clock.set("2024-01-12 12:00")
    again = guard_on(tmp_path, body, clock)  # a restart, days later
    assert again.check(89_900.0, 89_900.0) is None
    assert again.flattening and "for good" in again.blocker()


def test_a_restart_keeps_the_day_base_the_mark_and_a_daily_halt(tmp_path):
    body = DAILY_5.format(base="equity", effect="fail") + TRAILING.format(
        mark="intraday_equity", lock="false"
    )
    clock = Clock("2024-01-10 12:00")
    first = guard_on(tmp_path, body, clock)
    first.check(CASH, CASH)  # the day's base: 100,000
    first.check(CASH, 103_000.0)  # the peak
    breach = first.check(CASH, 95_400.0)
    first.record_breach(breach)
    clock.set("2024-01-10 15:00")
    second = guard_on(tmp_path, body, clock)  # a SIGKILL and a start: same day, lower equity
    second.check(CASH, 96_000.0)
    floors = {floor.rule: floor for floor in second.floors}
    assert floors[DAILY].level == 95_000.0  # not 96,000 - 5,000
    assert floors[MAX_LOSS].level == 93_000.0  # the peak survived
    assert second.flattening and "until 2024-01-10 23:00" in second.blocker()


def test_the_first_balance_is_the_initial_one_when_no_account_size_is_set(tmp_path):
    clock = Clock("2024-01-10 12:00")
    guard = guard_on(tmp_path, DAILY_5.format(base="balance", effect="fail"), clock, account_size=0)
    guard.check(50_000.0, 50_000.0)
    assert guard.initial == 50_000.0 and guard.floors[0].level == 47_500.0
    again = guard_on(tmp_path, DAILY_5.format(base="balance", effect="fail"), clock, account_size=0)
    assert again.initial == 50_000.0  # remembered, not the balance of the next start


# ---------------------------------------------------------------- before an entry


def test_an_entry_is_refused_when_every_stop_hit_would_breach(tmp_path):
    body = DAILY_5.format(base="balance", effect="fail") + (
        "[exposure]\nmax_lots_per_order = 2.0\nmax_risk_pct = 1.0\nrequire_stop = true\n"
    )
    guard = guard_on(tmp_path, body, Clock("2024-01-10 12:00"))
    guard.check(CASH, 98_000.0)  # the stop is at 95,500: 2,500 of room

    def refusal(new_risk, open_risk=0.0, lots=1.0):
        return guard.entry_refusal(
            new_risk=new_risk, open_risk=open_risk, equity=98_000.0, lots=lots, open_lots=0.0
        )

    assert refusal(900.0) is None
    assert "if every stop were hit" in refusal(900.0, open_risk=1_700.0)
    assert "max_risk_pct" in refusal(1_100.0)
    assert "require_stop" in refusal(None)
    assert "max_lots_per_order" in refusal(500.0, lots=2.5)


# ---------------------------------------------------------------- in the simulator


class LongFrom(Strategy):
    """Flat, then long from the bar opening at `start` on."""

    def __init__(self, start: pd.Timestamp) -> None:
        super().__init__()
        self.start = start

    @property
    def warmup(self) -> int:
        return 1

    def signals(self, bars: pd.DataFrame) -> pd.DataFrame:
        return pd.DataFrame({"position": (bars["time"] >= self.start).astype(int).to_numpy()})


def dipping_bars(tmp_path: Path, dip_row: int) -> tuple[Path, pd.DataFrame]:
    """Quiet H1 bars; bar `dip_row` falls 300 pips after its first third and closes where it
    opened (its high comes first: it is nearer the open)."""
    bars = generate_bars("EURUSD", "H1", 320, start="2024-01-08", seed=3)
    bars[["open", "high", "low", "close"]] = 1.1
    bars["high"] += 0.0002
    bars["low"] -= 0.0002
    bars.loc[dip_row, ["high", "low"]] = (1.1001, 1.07)
    bars["spread"] = 5
    path = tmp_path / "EURUSD_H1.csv"
    save_csv(bars, path)
    return path, bars


DIP = 230  # the bar of dipping_bars that dips
DAILY_2 = (
    'buffer_pct = {buffer}\n[daily_floor]\nlimit_pct = 2.0\nreset = "00:00 UTC"\n'
    'effect = "{effect}"\n'
)


def long_before_the_dip(tmp_path, live_config, make_sim, make_trader, *, effect="fail",
                        buffer=0.5, **trader_options):  # fmt: skip
    """A trader under a daily floor 2% below 100,000 (stop at 98,500 with the buffer), one
    lot long from three bars before the dip, stepped to the dipping bar's open:
    (config, terminal, trader)."""
    data, bars = dipping_bars(tmp_path, DIP)
    preset = write_preset(tmp_path, DAILY_2.format(buffer=buffer, effect=effect))
    config = live_config(
        dry_run=False, lot_size=1.0, account_rules=str(preset), max_daily_loss_pct=0.0
    )
    terminal = make_sim(data=str(data), history_bars=225, balance=CASH)
    strategy = LongFrom(bars["time"].iloc[DIP - 3])
    trader = make_trader(config, terminal, strategy=strategy, **trader_options)
    trader.start()
    while terminal.sim_time() < bars["time"].iloc[DIP].timestamp():
        trader.iterate()
        terminal.sim_step_bar()
    assert len(terminal.positions_get()) == 1
    return config, terminal, trader


@pytest.mark.parametrize("effect", ["fail", "pause"])
def test_a_dip_through_the_floor_inside_one_bar_closes_everything_in_the_simulator(
    tmp_path, live_config, make_sim, make_trader, effect
):
    """One lot long at 100,000; a bar dips 3,000 and recovers by its close. Checked on every
    loop, the dip is seen: a fail-type rule closes, halts, alerts and records; a pause-type
    one only pauses entries. At the bar's close the equity is back above the floor, so a
    check on closed bars alone would have missed it."""
    alerts = RecordingAlerts()
    config, terminal, trader = long_before_the_dip(
        tmp_path, live_config, make_sim, make_trader, effect=effect, alerts=alerts
    )
    for _ in range(12):  # five-minute loops through the dipping bar
        trader.iterate()
        terminal.sim_advance(300)
    breaches = events(config.audit_db.parent, "account_breach")
    assert len(breaches) == 1 and breaches[0]["effect"] == effect
    assert breaches[0]["equity"] <= breaches[0]["stop_at"] == 98_500.0
    assert [kind for kind, *_ in alerts.sent].count("account_rules") == 1
    held = terminal.positions_get()
    assert len(held) == (0 if effect == "fail" else 1)
    if effect == "fail":  # closed during the dip: the loss is taken, below the floor
        assert terminal.account_info().balance <= 98_500.0
    else:  # held through: the bar recovered, and the equity with it
        assert terminal.account_info().equity > 98_500.0
    for _ in range(3):  # the next bars: nothing opens while the rule holds
        terminal.sim_step_bar()
        trader.iterate()
    assert len(terminal.positions_get()) == len(held)
    status = trader.last_status["account_rules"]
    assert status["breach"]["rule"] == DAILY and status["floors"][0]["stop_at"] == 98_500.0
    trader.shutdown()


def test_a_restart_during_a_breach_keeps_the_halt(tmp_path, live_config, make_sim, make_trader):
    config, terminal, trader = long_before_the_dip(
        tmp_path, live_config, make_sim, make_trader, buffer=0.0
    )
    for _ in range(5):  # ten-minute loops into the dip
        trader.iterate()
        terminal.sim_advance(600)
    assert not terminal.positions_get()
    trader.audit.close()  # as a SIGKILL leaves it: no shutdown
    again = make_trader(config, terminal, strategy=trader.strategy)
    again.start()
    for _ in range(3):
        terminal.sim_step_bar()
        again.iterate()
    assert not terminal.positions_get()
    assert "account rules" in (again.risk.entry_blocker() or "")
    again.shutdown()


def test_the_floor_is_where_the_day_started_across_a_sunday_gap(tmp_path):
    """Between two checks a whole day passed (the trader was down): the base is taken at
    the first check of the new day."""
    clock = Clock("2024-01-05 21:00")
    guard = guard_on(tmp_path, DAILY_5.format(base="balance", effect="fail"), clock)
    guard.check(CASH, CASH)
    clock.moment += timedelta(days=2)
    guard.check(101_000.0, 101_000.0)
    assert guard.floors[0].level == 96_000.0


class LongWithStop(LongFrom):
    """LongFrom with a stop `distance` below the entry."""

    def __init__(self, start: pd.Timestamp, distance: float) -> None:
        super().__init__(start)
        self.distance = distance

    def signals(self, bars: pd.DataFrame) -> pd.DataFrame:
        frame = super().signals(bars)
        frame["sl_distance"] = self.distance
        return frame


@pytest.mark.parametrize(("distance", "opened"), [(0.01, True), (0.02, False)])
def test_an_entry_whose_stop_could_breach_the_floor_is_refused_in_the_simulator(
    tmp_path, live_config, make_sim, make_trader, distance, opened
):
    """1,500 of room above the stop at 98,500: one lot with a 100-pip stop (1,000 at risk,
    as the terminal's order_calc_profit says) opens; with a 200-pip stop (2,000) it is
    refused, and the signal row says why."""
    data, bars = dipping_bars(tmp_path, 300)
    preset = write_preset(
        tmp_path,
        'buffer_pct = 0.5\n[daily_floor]\nlimit_pct = 2.0\nreset = "00:00 UTC"\n',
    )
    config = live_config(
        dry_run=False, lot_size=1.0, account_rules=str(preset), max_daily_loss_pct=0.0
    )
    terminal = make_sim(data=str(data), history_bars=225, balance=CASH)
    strategy = LongWithStop(bars["time"].iloc[227], distance)
    trader = make_trader(config, terminal, strategy=strategy)
    trader.start()
    for _ in range(4):
        trader.iterate()
        terminal.sim_step_bar()
    assert bool(terminal.positions_get()) is opened
    outcomes = [row["outcome"] for row in AuditReader(config.audit_db).query(
        "SELECT outcome FROM signals WHERE action = 'open_buy'", ())]  # fmt: skip
    if not opened:
        assert outcomes and "if every stop were hit" in outcomes[0]
    trader.shutdown()


def test_a_presets_windows_tighten_the_traders_settings(tmp_path, live_config):
    """ACCOUNT_RULES with [windows] and a minimum trade duration: the trader's news, weekend
    and duration settings become at least as strict (its own longer ones kept); a bad
    preset is a config error naming it."""
    from live.errors import ConfigError

    preset = write_preset(
        tmp_path,
        "[windows]\nnews_before_min = 2\nnews_after_min = 2\nflat_before_weekend_min = 30\n"
        "[exposure]\nmin_trade_seconds = 120\n",
    )
    config = live_config(account_rules=str(preset), news_before_min=10.0)
    assert (config.news_before_min, config.news_after_min) == (10.0, 2.0)
    assert config.flat_before_weekend_min == 30.0
    assert config.min_trade_seconds == 120.0
    assert live_config(account_rules=str(preset), min_trade_seconds=600.0).min_trade_seconds == 600
    with pytest.raises(ConfigError, match="MIN_TRADE_SECONDS"):
        live_config(min_trade_seconds=-1.0)
    with pytest.raises(ConfigError, match=r"MIN_TRADE_SECONDS=7200 .* BARS_LOOKBACK=100 M1"):
        live_config(min_trade_seconds=7200.0, bars_lookback=100, timeframe="M1")
    assert config.replace(news_after_min=1.0).news_after_min == 2.0  # never looser
    bad = write_preset(tmp_path, "[windows]\nnews_impact = 'loud'\n", name="bad")
    with pytest.raises(ConfigError, match=r"ACCOUNT_RULES=.*bad\.toml.*windows\.news_impact"):
        live_config(account_rules=str(bad))


class LongThenScaleIn(LongWithStop):
    """Half the volume at the entry, the whole from the next bar on (a scale-in)."""

    def signals(self, bars: pd.DataFrame) -> pd.DataFrame:
        frame = super().signals(bars)
        frame["size"] = np.where(bars["time"] > self.start, 1.0, 0.5)
        return frame


@pytest.mark.parametrize("rules", [False, True])
def test_a_scale_in_is_checked_like_an_entry(
    tmp_path, live_config, make_sim, make_trader, rules, caplog
):
    """Half a lot in with a 200-pip stop (1,000 at risk, 1,500 of room): allowed. The other
    half would put 2,000 at risk with both stops hit: under the rules it is not sent."""
    caplog.set_level("INFO", logger="live.position_care")
    data, bars = dipping_bars(tmp_path, 300)
    preset = write_preset(
        tmp_path, 'buffer_pct = 0.5\n[daily_floor]\nlimit_pct = 2.0\nreset = "00:00 UTC"\n'
    )
    config = live_config(
        dry_run=False,
        lot_size=1.0,
        account_rules=str(preset) if rules else "",
        max_daily_loss_pct=0.0,
        max_positions_per_symbol=2,  # a scale-in is a position of its own when hedging
    )
    terminal = make_sim(data=str(data), history_bars=225, balance=CASH)
    strategy = LongThenScaleIn(bars["time"].iloc[227], 0.02)
    trader = make_trader(config, terminal, strategy=strategy)
    trader.start()
    for _ in range(5):
        trader.iterate()
        terminal.sim_step_bar()
    held = sum(p.volume for p in terminal.positions_get())
    assert held == pytest.approx(0.5 if rules else 1.0)
    said = "scale-in to 1.0 lots not sent: account rules: if every stop were hit"
    assert (said in caplog.text) is rules
    trader.shutdown()


def test_a_breach_on_a_full_disk_closes_at_once_and_its_record_waits_in_the_journal(
    tmp_path, live_config, make_sim, make_trader
):
    """The database cannot be written when the dip comes: the close goes out all the same
    (its rows and the breach event go to the fallback journal) and nothing opens; once
    there is room, the rows move in."""
    from tests.live.conftest import WallClock
    from tests.live.test_audit_outage import fill_the_database, make_room

    wall = WallClock()
    _, terminal, trader = long_before_the_dip(
        tmp_path, live_config, make_sim, make_trader, buffer=0.0, wall_clock=wall
    )
    fill_the_database(trader.audit)
    for _ in range(12):
        trader.iterate()
        terminal.sim_advance(300)
        wall.advance(1.0)
    assert terminal.positions_get() == ()
    kinds = [r["row"].get("kind") for r in trader.audit.journal.records if r["table"] == "events"]
    assert "account_breach" in kinds
    make_room(trader.audit)
    wall.advance(120)  # the next probe is due
    trader.iterate()
    assert trader.audit.journal.records == []
    assert len(events(tmp_path, "account_breach")) == 1
    assert "account rules" in (trader.risk.entry_blocker() or "")
    trader.shutdown()


def test_equity_touching_the_stop_is_a_breach(tmp_path):
    clock = Clock("2024-01-10 12:00")
    guard = guard_on(tmp_path, DAILY_5.format(base="balance", effect="fail"), clock)
    assert guard.check(CASH, 95_500.01) is None
    assert guard.check(CASH, 95_500.0).stop_at == 95_500.0
