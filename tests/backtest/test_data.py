"""Loading generic and MT5-export CSVs, validation messages, resampling and rates conversion."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from backtest.data import (
    RATES_DTYPE,
    DataError,
    frame_to_rates,
    infer_timeframe,
    load_csv,
    rates_to_frame,
    resample_bars,
    save_csv,
    timeframe_seconds,
    validate_bars,
)

DATA = Path(__file__).resolve().parent.parent / "data"
GENERIC_HEADER = "time,open,high,low,close,tick_volume,spread,real_volume\n"


def test_generic_file_values():
    bars = load_csv(DATA / "eurusd_h1_generic.csv")
    assert len(bars) == 50
    assert str(bars["time"].dtype) == "datetime64[ns, UTC]"
    first = bars.iloc[1]
    assert first["time"] == pd.Timestamp("2024-03-04 01:00", tz="UTC")
    assert (first["open"], first["high"], first["low"], first["close"]) == (
        1.0994, 1.0995, 1.09784, 1.09804)
    assert (first["tick_volume"], first["spread"]) == (1012, 14)


def test_mt5_export_in_server_time_is_converted_to_utc():
    bars = load_csv(DATA / "eurusd_h1_mt5.csv", tz="Europe/Athens")
    generic = load_csv(DATA / "eurusd_h1_generic.csv")
    assert len(bars) == 40
    pd.testing.assert_frame_equal(bars, generic.head(40))  # same bars, written at UTC+2


def test_mt5_export_read_as_utc_keeps_the_clock_time():
    bars = load_csv(DATA / "eurusd_h1_mt5.csv")
    assert bars["time"].iloc[0] == pd.Timestamp("2024-03-04 02:00", tz="UTC")


def test_utf16_mt5_export():
    bars = load_csv(DATA / "eurusd_h1_mt5_utf16.csv", tz="Europe/Athens")
    pd.testing.assert_frame_equal(bars, load_csv(DATA / "eurusd_h1_generic.csv").head(10))


def test_daily_mt5_export_without_time_column():
    bars = load_csv(DATA / "eurusd_d1_mt5.csv")
    assert len(bars) == 20
    assert bars["time"].iloc[1] == pd.Timestamp("2024-03-05", tz="UTC")
    assert infer_timeframe(bars) == "D1"


@pytest.mark.parametrize(("times", "expected"), [
    (["2024-01-02T13:00:00Z", "2024-01-02T14:00:00Z"], "2024-01-02 13:00"),
    (["2024-01-02 15:00:00+02:00", "2024-01-02 16:00:00+02:00"], "2024-01-02 13:00"),
    (["1704200400", "1704204000"], "2024-01-02 13:00"),
])
def test_generic_time_formats(tmp_path, times, expected):
    path = tmp_path / "t.csv"
    path.write_text("time,open,high,low,close\n" + "".join(
        f"{t},1.1,1.2,1.0,1.1\n" for t in times))
    assert load_csv(path)["time"].iloc[0] == pd.Timestamp(expected, tz="UTC")


def test_save_and_load_round_trip(tmp_path):
    from backtest.synthetic import generate_bars

    bars = generate_bars("USDJPY", "M5", 3000, seed=4)
    save_csv(bars, tmp_path / "out.csv")
    pd.testing.assert_frame_equal(load_csv(tmp_path / "out.csv"), bars)
    assert not list(tmp_path.glob(".out.csv.*"))  # no temporary file left behind


BAD_ROWS = {
    "missing value": ("2024-01-01 01:00:00,1.1,,1.0,1.1,1,1,0\n", "missing value in column high"),
    "not a number": ("2024-01-01 01:00:00,1.1,1.2,abc,1.1,1,1,0\n",
                     "cannot read 'abc' in column low"),
    "bad time": ("2024-13-45 01:00:00,1.1,1.2,1.0,1.1,1,1,0\n", "cannot read time"),
    "non-positive": ("2024-01-01 01:00:00,1.1,1.2,-1.0,1.1,1,1,0\n", "non-positive price"),
    "high too low": ("2024-01-01 01:00:00,1.1,1.15,1.0,1.2,1,1,0\n",
                     "high 1.15 < max(open, close) 1.2"),
    "low too high": ("2024-01-01 01:00:00,1.1,1.3,1.15,1.2,1,1,0\n",
                     "low 1.15 > min(open, close) 1.1"),
    "unsorted": ("2023-12-31 23:00:00,1.1,1.2,1.0,1.1,1,1,0\n", "unsorted"),
    "duplicate": ("2024-01-01 00:00:00,1.1,1.2,1.0,1.1,1,1,0\n", "duplicate"),
}


@pytest.mark.parametrize("case", list(BAD_ROWS))
def test_bad_rows_are_named_by_file_and_line(tmp_path, case):
    row, message = BAD_ROWS[case]
    path = tmp_path / "bad.csv"
    good = "2024-01-01 00:00:00,1.1,1.2,1.0,1.1,1,1,0\n"
    path.write_text(GENERIC_HEADER + good + row + "2024-01-01 05:00:00,1.1,1.2,1.0,1.1,1,1,0\n")
    with pytest.raises(DataError) as info:
        load_csv(path)
    text = str(info.value)
    assert f"{path} line 3" in text
    assert message in text


def test_many_bad_rows_are_counted(tmp_path):
    path = tmp_path / "bad.csv"
    rows = "".join(f"2024-01-01 {h:02d}:00:00,1.1,1.0,0.9,1.1,1,1,0\n" for h in range(5))
    path.write_text(GENERIC_HEADER + rows)
    with pytest.raises(DataError, match=r"line 2: high 1.0 < max\(open, close\) 1.1 \(4 more"):
        load_csv(path)


@pytest.mark.parametrize(("content", "message"), [
    ("", "is empty"),
    ("date;o;h\n1;2;3\n", "unknown header"),
    (GENERIC_HEADER, "no bars"),
    ("<DATE>\t<TIME>\t<OPEN>\t<FOO>\n", "unexpected MT5 export columns"),
])
def test_unusable_files(tmp_path, content, message):
    path = tmp_path / "x.csv"
    path.write_text(content)
    with pytest.raises(DataError, match=message):
        load_csv(path)


def test_missing_file_is_named(tmp_path):
    with pytest.raises(DataError, match=r"data file not found: .*nope\.csv"):
        load_csv(tmp_path / "nope.csv")


def test_validate_frames_directly():
    frame = pd.DataFrame({"time": pd.date_range("2024-01-01", periods=2, freq="h", tz="UTC"),
                          "open": [1.0, 1.0], "high": [1.1, 1.1], "low": [0.9, np.nan],
                          "close": [1.0, 1.0]})
    with pytest.raises(DataError, match="<frame> line 3: missing value in column low"):
        validate_bars(frame)


def h1_bars(hours: list[str], rows: list[tuple[float, float, float, float]]) -> pd.DataFrame:
    o, h, lo, c = zip(*rows, strict=True)
    return pd.DataFrame({"time": pd.to_datetime(hours, utc=True).as_unit("ns"), "open": o,
                         "high": h, "low": lo, "close": c, "tick_volume": [10] * len(rows),
                         "spread": [5, 3, 7, 4][: len(rows)], "real_volume": [0] * len(rows)})


def test_resample_h1_to_h4_by_hand():
    bars = h1_bars(["2024-01-01 00:00", "2024-01-01 01:00", "2024-01-01 03:00",
                    "2024-01-01 04:00"],
                   [(1.0, 1.2, 0.9, 1.1), (1.1, 1.3, 1.0, 1.2), (1.2, 1.25, 0.8, 1.0),
                    (1.0, 1.05, 0.95, 1.01)])
    h4 = resample_bars(bars, "H4")
    assert list(h4["time"]) == [pd.Timestamp("2024-01-01 00:00", tz="UTC"),
                                pd.Timestamp("2024-01-01 04:00", tz="UTC")]
    assert h4.iloc[0][["open", "high", "low", "close"]].tolist() == [1.0, 1.3, 0.8, 1.0]
    assert (h4.iloc[0]["tick_volume"], h4.iloc[0]["spread"]) == (30, 3)


def test_resample_daily_and_weekly_alignment_across_a_weekend():
    from backtest.synthetic import generate_bars

    bars = generate_bars("EURUSD", "H1", 24 * 12, start="2024-01-03", seed=2)
    daily = resample_bars(bars, "D1")
    assert (daily["time"].dt.hour == 0).all()
    assert set(daily["time"].dt.day_name()) <= {"Monday", "Tuesday", "Wednesday", "Thursday",
                                                 "Friday", "Sunday"}
    weekly = resample_bars(bars, "W1")
    assert (weekly["time"].dt.day_name() == "Monday").all()
    assert weekly["high"].max() == bars["high"].max()
    assert weekly["tick_volume"].sum() == bars["tick_volume"].sum()


def test_resampling_to_a_finer_timeframe_is_refused():
    bars = load_csv(DATA / "eurusd_d1_mt5.csv")
    with pytest.raises(DataError, match="finer timeframe H1"):
        resample_bars(bars, "H1")


def test_timeframes():
    assert timeframe_seconds("h4") == 4 * 3600
    with pytest.raises(DataError, match="did you mean H1"):
        timeframe_seconds("H11")


def test_rates_round_trip_and_dtype():
    bars = load_csv(DATA / "eurusd_h1_generic.csv")
    rates = frame_to_rates(bars)
    assert rates.dtype == RATES_DTYPE and rates.dtype.itemsize == 60
    assert rates["time"][0] == int(pd.Timestamp("2024-03-04", tz="UTC").timestamp())
    pd.testing.assert_frame_equal(rates_to_frame(rates), bars)
    with pytest.raises(DataError, match="not an MT5 rates array"):
        rates_to_frame(np.zeros(3))
