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
        1.0994,
        1.0995,
        1.09784,
        1.09804,
    )
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


@pytest.mark.parametrize(
    ("times", "expected"),
    [
        (["2024-01-02T13:00:00Z", "2024-01-02T14:00:00Z"], "2024-01-02 13:00"),
        (["2024-01-02 15:00:00+02:00", "2024-01-02 16:00:00+02:00"], "2024-01-02 13:00"),
        (["1704200400", "1704204000"], "2024-01-02 13:00"),
    ],
)
def test_generic_time_formats(tmp_path, times, expected):
    path = tmp_path / "t.csv"
    path.write_text("time,open,high,low,close\n" + "".join(f"{t},1.1,1.2,1.0,1.1\n" for t in times))
    assert load_csv(path)["time"].iloc[0] == pd.Timestamp(expected, tz="UTC")


def test_save_and_load_round_trip(tmp_path):
    from backtest.synthetic import generate_bars

    bars = generate_bars("USDJPY", "M5", 3000, seed=4)
    save_csv(bars, tmp_path / "out.csv")
    pd.testing.assert_frame_equal(load_csv(tmp_path / "out.csv"), bars)
    assert not list(tmp_path.glob(".out.csv.*"))  # no temporary file left behind


@pytest.fixture(params=["whole", "streamed"])
def arrow_read(request, monkeypatch):
    """Both ways pyarrow reads a well-formed file: whole (up to WHOLE_FILE_BYTES), or
    streamed batch by batch (a larger file; here any file, the limit set to nothing)."""
    import backtest.csv_arrow as csv_arrow

    if request.param == "streamed":
        monkeypatch.setattr(csv_arrow, "WHOLE_FILE_BYTES", 0)
    return request.param


BAD_ROWS = {
    "missing value": ("2024-01-01 01:00:00,1.1,,1.0,1.1,1,1,0\n", "missing value in column high"),
    "not a number": (
        "2024-01-01 01:00:00,1.1,1.2,abc,1.1,1,1,0\n",
        "cannot read 'abc' in column low",
    ),
    "bad time": ("2024-13-45 01:00:00,1.1,1.2,1.0,1.1,1,1,0\n", "cannot read time"),
    "non-positive": ("2024-01-01 01:00:00,1.1,1.2,-1.0,1.1,1,1,0\n", "non-positive price"),
    "high too low": (
        "2024-01-01 01:00:00,1.1,1.15,1.0,1.2,1,1,0\n",
        "high 1.15 < max(open, close) 1.2",
    ),
    "low too high": (
        "2024-01-01 01:00:00,1.1,1.3,1.15,1.2,1,1,0\n",
        "low 1.15 > min(open, close) 1.1",
    ),
    "unsorted": ("2023-12-31 23:00:00,1.1,1.2,1.0,1.1,1,1,0\n", "unsorted"),
    "duplicate": ("2024-01-01 00:00:00,1.1,1.2,1.0,1.1,1,1,0\n", "duplicate"),
    "fractional count": (
        "2024-01-01 01:00:00,1.1,1.2,1.0,1.1,5.5,1,0\n",
        "5.5 in column tick_volume is not a whole number",
    ),
    "negative spread": (
        "2024-01-01 01:00:00,1.1,1.2,1.0,1.1,1,-3,0\n",
        "negative spread -3",
    ),
    "negative volume": ("2024-01-01 01:00:00,1.1,1.2,1.0,1.1,-5,1,0\n", "negative tick_volume -5"),
    "epoch milliseconds": (
        "1704070800000,1.1,1.2,1.0,1.1,1,1,0\n",
        "cannot read time '1704070800000' (epoch times must be whole seconds",
    ),
    "past 2262": (
        "2300-01-01 01:00:00,1.1,1.2,1.0,1.1,1,1,0\n",
        "time 2300-01-01T01:00:00+00:00 (outside 1677-09-22 .. 2262-04-11",
    ),
}


@pytest.mark.parametrize("case", list(BAD_ROWS))
def test_bad_rows_are_named_by_file_and_line(tmp_path, case, arrow_read):
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


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("", "is empty"),
        ("date;o;h\n1;2;3\n", "unknown header"),
        (GENERIC_HEADER, "no bars"),
        ("<DATE>\t<TIME>\t<OPEN>\t<FOO>\n", "unexpected MT5 export columns"),
    ],
)
def test_unusable_files(tmp_path, content, message):
    path = tmp_path / "x.csv"
    path.write_text(content)
    with pytest.raises(DataError, match=message):
        load_csv(path)


def test_missing_file_is_named(tmp_path):
    with pytest.raises(DataError, match=r"data file not found: .*nope\.csv"):
        load_csv(tmp_path / "nope.csv")


def test_validate_frames_directly():
    frame = pd.DataFrame(
        {
            "time": pd.date_range("2024-01-01", periods=2, freq="h", tz="UTC"),
            "open": [1.0, 1.0],
            "high": [1.1, 1.1],
            "low": [0.9, np.nan],
            "close": [1.0, 1.0],
        }
    )
    with pytest.raises(DataError, match="<frame> line 3: missing value in column low"):
        validate_bars(frame)


def h1_bars(hours: list[str], rows: list[tuple[float, float, float, float]]) -> pd.DataFrame:
    o, h, lo, c = zip(*rows, strict=True)
    return pd.DataFrame(
        {
            "time": pd.to_datetime(hours, utc=True).as_unit("ns"),
            "open": o,
            "high": h,
            "low": lo,
            "close": c,
            "tick_volume": [10] * len(rows),
            "spread": [5, 3, 7, 4][: len(rows)],
            "real_volume": [0] * len(rows),
        }
    )


def test_resample_h1_to_h4_by_hand():
    bars = h1_bars(
        ["2024-01-01 00:00", "2024-01-01 01:00", "2024-01-01 03:00", "2024-01-01 04:00"],
        [
            (1.0, 1.2, 0.9, 1.1),
            (1.1, 1.3, 1.0, 1.2),
            (1.2, 1.25, 0.8, 1.0),
            (1.0, 1.05, 0.95, 1.01),
        ],
    )
    h4 = resample_bars(bars, "H4")
    assert list(h4["time"]) == [
        pd.Timestamp("2024-01-01 00:00", tz="UTC"),
        pd.Timestamp("2024-01-01 04:00", tz="UTC"),
    ]
    assert h4.iloc[0][["open", "high", "low", "close"]].tolist() == [1.0, 1.3, 0.8, 1.0]
    assert (h4.iloc[0]["tick_volume"], h4.iloc[0]["spread"]) == (30, 3)


def test_resample_daily_and_weekly_alignment_across_a_weekend():
    from backtest.synthetic import generate_bars

    bars = generate_bars("EURUSD", "H1", 24 * 12, start="2024-01-03", seed=2)
    daily = resample_bars(bars, "D1")
    assert (daily["time"].dt.hour == 0).all()
    assert set(daily["time"].dt.day_name()) <= {
        "Monday",
        "Tuesday",
        "Wednesday",
        "Thursday",
        "Friday",
        "Sunday",
    }
    weekly = resample_bars(bars, "W1")
    assert (weekly["time"].dt.day_name() == "Sunday").all()
    assert (weekly["time"].dt.hour == 0).all()
    # the week that opens on Sunday evening is one bar: its Sunday bars are not the tail of
    # the week before
    sunday_evening = bars[bars["time"].dt.day_name() == "Sunday"]
    assert len(sunday_evening)
    for moment in sunday_evening["time"]:
        week = weekly[weekly["time"] <= moment].iloc[-1]
        assert moment - week["time"] < pd.Timedelta(days=1)
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


MT5_HEADER = "<DATE>\t<TIME>\t<OPEN>\t<HIGH>\t<LOW>\t<CLOSE>\t<TICKVOL>\t<VOL>\t<SPREAD>\n"
MT5_ROW = "2024.01.02\t{h:02d}:00:00\t1.1\t1.2\t1.0\t1.1\t5\t0\t3\n"


def mt5_rows(n: int) -> list[str]:
    return [MT5_ROW.format(h=h) for h in range(n)]


@pytest.mark.parametrize("missing", ["<CLOSE>", "<HIGH>", "<OPEN>"])
def test_mt5_export_without_a_price_column_names_it(missing, tmp_path):
    header = MT5_HEADER.replace(missing + "\t", "")
    path = tmp_path / "export.csv"
    path.write_text(header + "2024.01.02\t00:00:00\t1.1\t1.2\t1.0\t5\t0\t3\n")
    with pytest.raises(DataError, match=rf"^{path}: the MT5 export has no {missing} column"):
        load_csv(path)


# (bad row, message); the bad row is preceded by two good rows and a blank line, so it is
# physical line 5 of the file (header = line 1), not "row 3"
MT5_BAD_ROWS = {
    "not a number": (
        "2024.01.02\t05:00:00\t1.1\tabc\t1.0\t1.1\t5\t0\t3\n",
        "cannot read 'abc' in column high",
    ),
    "inf price": (
        "2024.01.02\t05:00:00\t1.1\tinf\t1.0\t1.1\t5\t0\t3\n",
        "non-finite price (open 1.1, high inf, low 1.0, close 1.1)",
    ),
    "-inf price": ("2024.01.02\t05:00:00\t1.1\t1.2\t-inf\t1.1\t5\t0\t3\n", "non-finite price"),
    "nan price": (
        "2024.01.02\t05:00:00\t1.1\tnan\t1.0\t1.1\t5\t0\t3\n",
        "missing value in column high",
    ),
    "bad volume": (
        "2024.01.02\t05:00:00\t1.1\t1.2\t1.0\t1.1\tmany\t0\t3\n",
        "cannot read 'many' in column tick_volume",
    ),
    "fractional spread": (
        "2024.01.02\t05:00:00\t1.1\t1.2\t1.0\t1.1\t5\t0\t2.5\n",
        "2.5 in column spread is not a whole number",
    ),
    "extra field": (
        "2024.01.02\t05:00:00\t1.1\t1.2\t1.0\t1.1\t5\t0\t3\t9\n",
        "10 fields, but the header has 9 columns",
    ),
    "bad time": (
        "2024.01.02\t25:00:00\t1.1\t1.2\t1.0\t1.1\t5\t0\t3\n",
        "cannot read time '2024.01.02 25:00:00'",
    ),
}


@pytest.mark.parametrize("case", list(MT5_BAD_ROWS))
def test_mt5_bad_values_name_file_and_physical_line(case, tmp_path):
    row, message = MT5_BAD_ROWS[case]
    path = tmp_path / "export.csv"
    path.write_text(MT5_HEADER + "".join(mt5_rows(2)) + "\n" + row + MT5_ROW.format(h=6))
    with pytest.raises(DataError) as info:
        load_csv(path)
    assert str(info.value).startswith(f"{path} line 5: "), str(info.value)
    assert message in str(info.value)


@pytest.mark.parametrize("encoding", ["utf-8", "utf-16"])
def test_an_extra_field_on_the_first_row_is_named_not_shifted(encoding, tmp_path):
    # pandas would read a first row with one field too many as "first column = index"
    # and shift every value one column left
    path = tmp_path / "export.csv"
    first = MT5_ROW.format(h=0).replace("\t3\n", "\t3\t9\n")
    path.write_text(MT5_HEADER + first + "".join(mt5_rows(3)[1:]), encoding=encoding)
    with pytest.raises(DataError, match=rf"^{path} line 2: 10 fields, but the header has 9 "):
        load_csv(path)


@pytest.mark.parametrize(
    "row",
    [
        "2024-01-01 00:00:00,1.1,1.2,1.0,1.1,1,1,0,7\n",
        "2024-01-01 00:00:00,1.1,1.2,1.0,1.1,1,1,0,\n",
    ],
)
def test_generic_first_row_with_an_extra_field_is_refused(row, tmp_path):
    path = tmp_path / "bars.csv"
    path.write_text(GENERIC_HEADER + row + "2024-01-01 01:00:00,1.1,1.2,1.0,1.1,1,1,0\n")
    with pytest.raises(DataError, match=rf"^{path} line 2: 9 fields, but the header has 8 "):
        load_csv(path)


def test_generic_inf_price_names_the_line(tmp_path):
    path = tmp_path / "bars.csv"
    path.write_text(
        GENERIC_HEADER + "2024-01-01 00:00:00,1.1,1.2,1.0,1.1,1,1,0\n\n"
        "2024-01-01 01:00:00,inf,1.2,1.0,1.1,1,1,0\n"
    )
    with pytest.raises(DataError, match=rf"^{path} line 4: non-finite price \(open inf"):
        load_csv(path)


@pytest.mark.parametrize(
    ("source", "target", "message"),
    [
        ("M15", "M20", "cannot resample M15 bars to M20: M20 is not a whole number of M15 bars"),
        ("H1", "M30", "cannot resample H1 bars to the finer timeframe M30"),
        ("H4", "H6", "cannot resample H4 bars to H6"),
        ("M3", "M10", "cannot resample M3 bars to M10"),
        ("H1", "M45", "unknown timeframe 'M45'"),
    ],
)
def test_resampling_to_a_timeframe_that_is_not_a_whole_multiple_is_refused(
    source, target, message, random_bars
):
    bars = random_bars(200, freq=f"{timeframe_seconds(source)}s")
    assert infer_timeframe(bars) == source
    with pytest.raises(DataError, match=message):
        resample_bars(bars, target)


@pytest.mark.parametrize(
    ("source", "target"), [("M15", "H1"), ("M20", "H1"), ("H4", "D1"), ("M3", "M12")]
)
def test_resampling_to_a_whole_multiple_keeps_every_bar(source, target, random_bars):
    bars = random_bars(240, freq=f"{timeframe_seconds(source)}s")
    coarse = resample_bars(bars, target)
    assert coarse["tick_volume"].sum() == bars["tick_volume"].sum()
    assert coarse["high"].max() == bars["high"].max()
    steps = np.diff(coarse["time"].astype("int64") // 10**9)
    assert set(steps) == {timeframe_seconds(target)}


@pytest.mark.parametrize(
    ("content", "line", "shown"),
    [
        (
            "time,open,high,low,close\n1709510400,1.1,1.2,1.0,1.1\n99999999999,1.1,1.2,1.0,1.1\n",
            3,
            "'99999999999'",
        ),
        (
            "<DATE>\t<TIME>\t<OPEN>\t<HIGH>\t<LOW>\t<CLOSE>\t<TICKVOL>\t<VOL>\t<SPREAD>\n"
            "2024.03.04\t02:00:00\t1.1\t1.2\t1.0\t1.1\t1\t0\t1\n"
            "2300.03.04\t03:00:00\t1.1\t1.2\t1.0\t1.1\t1\t0\t1\n",
            3,
            "2300-03-04T03:00:00",
        ),
    ],
    ids=["epoch-seconds", "mt5-export"],
)
def test_times_pandas_cannot_hold_name_the_file_and_line(tmp_path, content, line, shown):
    path = tmp_path / "late.csv"
    path.write_text(content)
    with pytest.raises(DataError) as info:
        load_csv(path)
    text = str(info.value)
    assert text.startswith(f"{path} line {line}: time {shown}")
    assert "the times pandas can hold" in text and "Out of bounds" not in text


def _slow_path_frame(path: Path, tz: str = "UTC") -> pd.DataFrame:
    """The same file through pandas' reader (the path that names bad lines), as a reference."""
    import backtest.csv_bars as csv_bars

    original = csv_bars.read_generic_fast
    csv_bars.read_generic_fast = lambda *args: None
    try:
        return load_csv(path, tz=tz)
    finally:
        csv_bars.read_generic_fast = original


@pytest.mark.parametrize("tz", ["UTC", "Europe/Athens", "NY+7"])
def test_a_file_read_whole_or_in_many_batches_equals_the_reference_reader(tmp_path, tz, arrow_read):
    """Read whole, or in many 1 MB batches into the reserved columns, times on another clock
    too: the same frame as pandas' reader gives."""
    from backtest.synthetic import generate_bars

    bars = generate_bars("EURUSD", "M1", 40_000, seed=9)  # about 2.4 MB: three batches
    save_csv(bars, tmp_path / "m1.csv")
    streamed = load_csv(tmp_path / "m1.csv", tz=tz)
    pd.testing.assert_frame_equal(streamed, _slow_path_frame(tmp_path / "m1.csv", tz))
    if tz == "UTC":
        pd.testing.assert_frame_equal(streamed, bars)


def test_short_lines_after_long_ones_outgrow_the_estimate(tmp_path, monkeypatch):
    """The columns are reserved from the first block's line length; a file whose later
    lines are far shorter holds more rows than that, and the columns grow."""
    import backtest.csv_arrow as csv_arrow
    from backtest.csv_arrow import _row_capacity

    monkeypatch.setattr(csv_arrow, "WHOLE_FILE_BYTES", 0)  # streamed, as a large file is
    times = pd.date_range("2024-01-01", periods=60_000, freq="min").strftime("%Y-%m-%d %H:%M:%S")
    long_tail = ",1.100000000000,1.200000000000,1.000000000000,1.100000000000,1000000,100000,1\n"
    rows = [f"{time}{long_tail}" for time in times[:20_000]]
    rows += [f"{time},1.1,1.2,1,1.1,1,1,0\n" for time in times[20_000:]]
    path = tmp_path / "mixed.csv"
    path.write_text(GENERIC_HEADER + "".join(rows))
    bars = load_csv(path)
    assert len(bars) == len(rows) > _row_capacity(path)
    pd.testing.assert_frame_equal(bars, _slow_path_frame(path))


def test_a_late_value_that_breaks_the_declared_types_is_still_read(tmp_path, arrow_read):
    """A count written as 5.0 deep in the file fails the declared integer column (whole, or
    mid-stream): the file is read again with inference and gives the same bars."""
    rows = [
        f"2024-01-01 {h:02d}:{m:02d}:00,1.1,1.2,1.0,1.1,5,1,0\n"
        for h in range(24)
        for m in range(60)
    ]
    rows[-7] = rows[-7].replace(",5,1,0", ",5.0,1,0")
    path = tmp_path / "late.csv"
    path.write_text(GENERIC_HEADER + "".join(rows))
    bars = load_csv(path)
    assert len(bars) == len(rows)
    assert bars["tick_volume"].dtype == np.int64 and (bars["tick_volume"] == 5).all()


AWARE_TIMES = {
    "z": ["2024-01-02T10:00:00Z", "2024-01-02T11:00:00Z", "2024-01-02T12:00:00Z"],
    "offset": ["2024-01-02T12:00:00+02:00", "2024-01-02T13:00:00+02:00", "2024-01-02 14:00+0200"],
    "mixed": [
        "2024-03-31T01:00:00+01:00",
        "2024-03-31T03:00:00+02:00",
        "2024-03-31T04:00:00+02:00",
    ],
}


@pytest.mark.parametrize("case", list(AWARE_TIMES))
@pytest.mark.parametrize("tz", ["UTC", "UTC+2", "Europe/Athens", "NY+7"])
def test_times_that_carry_their_offset_ignore_the_tz_option(tmp_path, case, tz, arrow_read):
    """`--tz` says how to read naive times; a time written with Z or an offset already says
    when it was, on every path and whatever --tz says."""
    path = tmp_path / "aware.csv"
    path.write_text("time,open,high,low,close\n"
                    + "".join(f"{t},1.1,1.2,1.0,1.1\n" for t in AWARE_TIMES[case]))  # fmt: skip
    bars = load_csv(path, tz=tz)
    expected = pd.to_datetime(AWARE_TIMES[case], utc=True, format="mixed")
    assert list(bars["time"]) == list(expected)
    pd.testing.assert_frame_equal(bars, _slow_path_frame(path, tz))


@pytest.mark.parametrize(
    ("rows", "tz", "message"),
    [
        (["2023-01-06 02:00:00", "2023-01-06 03:00:00.250"], "UTC", "line 3"),
        (
            ["2023-10-29 02:00:00", "2023-10-29 03:00:00", "2023-10-29 04:00:00"],
            "Europe/Athens",
            "line 3",
        ),
    ],
    ids=["fractional-second", "ambiguous-once"],
)
def test_times_the_fast_path_cannot_take_go_the_slow_way(tmp_path, rows, tz, message, arrow_read):
    """A time with a fraction of a second, or a local time the clocks show twice that the
    file shows once: read as the slow path reads it, or refused naming the line; never a
    traceback."""
    path = tmp_path / "odd.csv"
    path.write_text("time,open,high,low,close\n" + "".join(f"{t},1.1,1.2,1.0,1.1\n" for t in rows))
    try:
        expected = _slow_path_frame(path, tz)
    except DataError as refused:
        with pytest.raises(DataError, match=message) as info:
            load_csv(path, tz=tz)
        assert str(info.value) == str(refused)
    else:
        pd.testing.assert_frame_equal(load_csv(path, tz=tz), expected)


@pytest.mark.parametrize(
    ("header", "names"),
    [
        ("time,open,high,low,close,Volume,tick_volume", "'Volume' and 'tick_volume'"),
        ("Date,Time,Open,High,Low,Close", "'Date' and 'Time'"),
    ],
)
def test_two_columns_read_as_one_are_refused_naming_both(tmp_path, header, names):
    path = tmp_path / "two.csv"
    row = "2024-01-02 10:00:00,1.1,1.2,1.0,1.1,5,6" if "Volume" in header else (
        "2024-01-02,10:00:00,1.1,1.2,1.0,1.1")  # fmt: skip
    path.write_text(f"{header}\n{row}\n")
    with pytest.raises(DataError, match=f"columns {names} both"):
        load_csv(path)


def test_a_file_of_one_bar_is_named(tmp_path, capsys):
    from backtest.cli import main

    path = tmp_path / "one.csv"
    path.write_text(GENERIC_HEADER + "2024-01-02 10:00:00,1.1,1.2,1.0,1.1,1,1,0\n")
    args = ["run", "--strategy", "backtest/strategies/sma_cross.py", "--data", str(path)]
    assert main(args) == 2
    error = capsys.readouterr().err
    assert str(path) in error and "1 bar" in error and "None" not in error
