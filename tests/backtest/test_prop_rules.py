"""The preset loader: the shipped presets, and a PresetError for every bad input."""

from __future__ import annotations

from pathlib import Path

import pytest

from backtest.prop_rules import (
    PRESETS_DIR,
    DailyFloor,
    MaxLoss,
    PresetError,
    Reset,
    list_presets,
    load_preset,
)

SHIPPED = ("futures_trailing", "higher_of_5_10", "one_step_eod_trailing", "static_5_10")

GOOD = """\
name = "mine"
buffer_pct = 0.5
targets_pct = [10.0, 5.0]
[daily_floor]
limit_pct = 5.0
reset = "00:00 Europe/Prague"
effect = "fail"
[max_loss]
limit_pct = 10.0
mode = "static"
"""


def write(folder: Path, text: str, name: str = "x") -> Path:
    path = folder / f"{name}.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_the_four_presets_ship_in_the_presets_folder():
    assert set(SHIPPED) <= set(list_presets())
    assert PRESETS_DIR.name == "presets"


def test_static_5_10_is_ftmo_two_step_like():
    preset = load_preset("static_5_10")
    assert preset.name == "static_5_10"
    assert preset.buffer_pct == 0.5
    assert preset.targets_pct == (10.0, 5.0)
    assert preset.min_trading_days == 4
    assert preset.trading_day == "position_opened"
    assert preset.daily_floor == DailyFloor(
        limit_pct=5.0, of="initial", day_base="balance", reset=Reset(0, 0, "Europe/Prague")
    )
    assert preset.max_loss == MaxLoss(limit_pct=10.0, mode="static")


def test_higher_of_5_10_uses_the_higher_of_balance_and_equity_at_server_midnight():
    preset = load_preset("higher_of_5_10")
    assert preset.targets_pct == (8.0, 5.0)
    assert preset.min_trading_days == 3
    floor = preset.daily_floor
    assert (floor.limit_pct, floor.of, floor.day_base) == (5.0, "day_base", "higher")
    assert floor.reset == Reset(0, 0, "broker")
    assert floor.effect == "fail"
    assert preset.max_loss == MaxLoss(limit_pct=10.0, mode="static")


def test_one_step_trails_the_end_of_day_balance_without_lock():
    preset = load_preset("one_step_eod_trailing")
    assert preset.targets_pct == (10.0,)
    assert preset.consistency_pct == 50.0
    assert preset.daily_floor.limit_pct == 3.0
    assert preset.max_loss == MaxLoss(
        limit_pct=10.0, mode="trailing", high_water="eod_balance", lock_at_initial=False
    )


def test_futures_trailing_pauses_daily_and_locks_at_initial():
    preset = load_preset("futures_trailing")
    assert preset.daily_floor == DailyFloor(
        limit_amount=1000.0,
        of="day_base",
        day_base="balance",
        reset=Reset(17, 0, "America/New_York"),
        effect="pause",
    )
    assert preset.max_loss == MaxLoss(
        limit_amount=2000.0, mode="trailing", high_water="eod_balance", lock_at_initial=True
    )


def test_a_path_and_a_bare_name_load_the_same_preset(tmp_path):
    path = write(tmp_path, GOOD, "mine")
    by_path = load_preset(str(path))
    assert load_preset("mine", folder=tmp_path) == by_path
    assert load_preset(path) == by_path
    assert by_path.daily_floor.reset == Reset(0, 0, "Europe/Prague")


def test_defaults_fill_missing_keys_and_the_name_is_the_file_stem(tmp_path):
    preset = load_preset(str(write(tmp_path, "", "bare")))
    assert preset.name == "bare"
    assert preset.daily_floor is None and preset.max_loss is None
    assert (preset.buffer_pct, preset.targets_pct, preset.max_days) == (0.0, (), 0)


@pytest.mark.parametrize("zone", ["broker", "UTC", "UTC+2", "UTC-05:30", "NY+7", "Europe/Athens"])
def test_reset_accepts_every_zone_form(tmp_path, zone):
    text = f'[daily_floor]\nlimit_pct = 5.0\nreset = "17:30 {zone}"\n'
    preset = load_preset(str(write(tmp_path, text)))
    assert preset.daily_floor.reset == Reset(17, 30, zone)


BAD = [
    # (file text, key, words the message must contain)
    ("bufer_pct = 0.5\n", "bufer_pct", ["did you mean 'buffer_pct'", "description"]),
    (
        "[daily_floor]\nlimit_pct = 5.0\nefect = 'fail'\n",
        "daily_floor.efect",
        ["did you mean 'daily_floor.effect'", "limit_amount"],
    ),
    ("buffer_pct = -0.5\n", "buffer_pct", ["-0.5", "negative", ">= 0"]),
    ("targets_pct = [10.0, -5.0]\n", "targets_pct[1]", ["-5.0", ">= 0"]),
    ("[max_loss]\nlimit_amount = -100\n", "max_loss.limit_amount", ["-100", ">= 0"]),
    (
        "[daily_floor]\nlimit_pct = 5.0\nlimit_amount = 100.0\n",
        "daily_floor",
        ["exactly one of limit_pct, limit_amount", "both"],
    ),
    (
        "[max_loss]\nmode = 'static'\n",
        "max_loss",
        ["exactly one of limit_pct, limit_amount", "neither"],
    ),
    (
        "[daily_floor]\nlimit_pct = 5.0\nreset = '00:00'\n",
        "daily_floor.reset",
        ["'00:00'", "no zone", "HH:MM ZONE", "broker"],
    ),
    (
        "[daily_floor]\nlimit_pct = 5.0\nreset = '25:00 UTC'\n",
        "daily_floor.reset",
        ["'25:00 UTC'", "00:00-23:59"],
    ),
    (
        "[daily_floor]\nlimit_pct = 5.0\nreset = '00:00 Mars/Olympus'\n",
        "daily_floor.reset",
        ["'Mars/Olympus'", "IANA"],
    ),
    (
        "[daily_floor]\nlimit_pct = 5.0\nreset = 00:00:00\n",
        "daily_floor.reset",
        ["HH:MM ZONE"],
    ),
    ("[daily_floor]\nlimit_pct = '5'\n", "daily_floor.limit_pct", ["'5'", "not a number"]),
    ("buffer_pct = true\n", "buffer_pct", ["True", "not a number"]),
    ("min_trading_days = 2.5\n", "min_trading_days", ["2.5", "whole number"]),
    (
        "[max_loss]\nlimit_pct = 5.0\nlock_at_initial = 1\n",
        "max_loss.lock_at_initial",
        ["true, false"],
    ),
    ("name = 3\n", "name", ["quoted string"]),
    ("daily_floor = 5\n", "daily_floor", ["[daily_floor]"]),
    (
        "[daily_floor]\nlimit_pct = 5.0\neffect = 'explode'\n",
        "daily_floor.effect",
        ["daily_floor.effect = 'explode' is not one of fail, pause"],
    ),
    ("trading_day = 'any'\n", "trading_day", ["is not one of position_opened, profitable"]),
    (
        "[max_loss]\nlimit_pct = 5.0\nmode = 'trailng'\n",
        "max_loss.mode",
        ["is not one of static, trailing"],
    ),
    (
        "[max_loss]\nlimit_pct = 5.0\nhigh_water = 'peak'\n",
        "max_loss.high_water",
        ["is not one of eod_balance, intraday_equity"],
    ),
    (
        "[daily_floor]\nlimit_pct = 5.0\nday_base = 'max'\nof = 'day_base'\n",
        "daily_floor.day_base",
        ["is not one of balance, equity, higher"],
    ),
    (
        "[daily_floor]\nlimit_pct = 5.0\nof = 'peak'\n",
        "daily_floor.of",
        ["is not one of initial, day_base"],
    ),
    ("[exposure]\nmax_risk_pct = -1.0\n", "exposure.max_risk_pct", ["-1.0", "negative"]),
    ("[exposure]\nrequire_sl = true\n", "exposure.require_sl", ["exposure.require_stop"]),
    ("[windows]\nnews_impact = ['huge']\n", "windows.news_impact", ["low, medium, high"]),
    ("[windows]\nnews_before_min = -2\n", "windows.news_before_min", ["-2", "negative"]),
    (
        "[exposure]\nmin_trade_seconds = -60\n",
        "exposure.min_trade_seconds",
        ["-60", "negative"],
    ),
]


@pytest.mark.parametrize(("text", "key", "words"), BAD, ids=[case[1] for case in BAD])
def test_a_bad_value_names_the_file_the_key_and_what_is_allowed(tmp_path, text, key, words):
    path = write(tmp_path, text)
    with pytest.raises(PresetError) as caught:
        load_preset(str(path))
    message = str(caught.value)
    assert caught.value.path == path
    assert caught.value.key == key
    assert message.startswith(f"{path}: ")
    assert key in message
    for word in words:
        assert word in message


def test_a_toml_syntax_error_names_the_file_and_line(tmp_path):
    path = write(tmp_path, 'name = "x"\nbuffer_pct = \n')
    with pytest.raises(PresetError, match=r"line 2, column \d+: not valid TOML") as caught:
        load_preset(str(path))
    assert caught.value.path == path
    assert caught.value.key is None
    assert str(caught.value).startswith(str(path))


def test_an_unknown_name_lists_the_presets_available(tmp_path):
    write(tmp_path, GOOD, "static_5_10")
    write(tmp_path, GOOD, "futures_trailing")
    with pytest.raises(PresetError) as caught:
        load_preset("static_5_1O", folder=tmp_path)
    message = str(caught.value)
    assert "not found" in message
    assert "did you mean 'static_5_10'" in message
    assert "futures_trailing, static_5_10" in message
    assert caught.value.path == tmp_path / "static_5_1O.toml"


def test_a_missing_path_lists_the_presets_beside_it(tmp_path):
    write(tmp_path, GOOD, "mine")
    with pytest.raises(PresetError, match=r"available in .*: mine"):
        load_preset(str(tmp_path / "other.toml"))


def test_the_shipped_folder_is_listed_when_a_name_is_unknown():
    with pytest.raises(PresetError, match="static_5_10"):
        load_preset("no_such_preset")


def test_preset_error_is_a_value_error():
    assert issubclass(PresetError, ValueError)


def test_preset_windows_tighten_the_settings_they_are_given(tmp_path):
    """A firm's windows make the trader's own stricter, never looser: the longer minutes,
    the union of impacts, flattening if either says so."""
    from types import SimpleNamespace

    preset = load_preset(
        write(
            tmp_path,
            "[windows]\nnews_before_min = 2\nnews_after_min = 2\nnews_impact = ['medium']\n"
            "flat_before_weekend_min = 30\n",
        )
    )
    own = SimpleNamespace(news_before_min=5.0, news_after_min=0.0, news_impact="high",
                          news_flatten=False, flat_before_weekend_min=None)  # fmt: skip
    assert preset.windows.tightened(own) == {
        "news_before_min": 5.0,
        "news_after_min": 2.0,
        "news_impact": "high,medium",
        "news_flatten": False,
        "flat_before_weekend_min": 30.0,
    }


def test_a_presets_minimum_trade_duration_lengthens_the_settings_own(tmp_path):
    from types import SimpleNamespace

    preset = load_preset(write(tmp_path, "[exposure]\nmin_trade_seconds = 120\n"))
    assert preset.exposure.min_trade_seconds == 120.0
    assert preset.tightened(SimpleNamespace(min_trade_seconds=0.0)) == {"min_trade_seconds": 120.0}
    assert preset.tightened(SimpleNamespace(min_trade_seconds=300.0)) == {
        "min_trade_seconds": 300.0
    }
    assert load_preset("static_5_10").tightened(SimpleNamespace(min_trade_seconds=5.0)) == {}
