"""Economic calendar: both file formats, bad rows, symbol currencies, blackouts, next event."""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from backtest.econ_calendar import (
    EVENT_COLUMNS,
    CalendarError,
    CalendarEvent,
    blackout_intervals,
    load_calendar,
    next_event,
    symbol_currencies,
)

ROOT = Path(__file__).resolve().parents[2]
FF_SAMPLE = ROOT / "tests" / "data" / "ff_calendar_sample.csv"
PROJECT_SAMPLE = ROOT / "docs" / "calendar_sample.csv"
PROJECT_HEADER = "time,currency,impact,title"
FF_HEADER = "Title,Country,Date,Time,Impact,Forecast,Previous"


def write(tmp_path: Path, text: str, *, encoding: str = "utf-8", name: str = "calendar.csv"):
    path = tmp_path / name
    path.write_bytes(text.encode(encoding))
    return path


def utc(text: str) -> pd.Timestamp:
    return pd.Timestamp(text, tz="UTC")


def epoch(text: str) -> int:
    return int(utc(text).timestamp())


def times(events: pd.DataFrame) -> list[str]:
    return [t.strftime("%Y-%m-%d %H:%M") for t in events["time"]]


# ---------------------------------------------------------------- project format


def test_project_format_reads_utc_offsets_and_normalises_case(tmp_path):
    path = write(
        tmp_path,
        f"{PROJECT_HEADER}\n"
        "2024-03-08T13:30:00Z,usd,HIGH,Non-Farm Employment Change\n"
        "2024-03-07 13:15,EUR,High,Main Refinancing Rate\n"
        "2024-03-12T14:30:00+02:00,Xau,medium,\n"
        "2024-03-29 00:00,all,holiday,Good Friday\n",
    )
    events = load_calendar(path)
    assert list(events.columns) == list(EVENT_COLUMNS)
    assert str(events["time"].dtype) == "datetime64[ns, UTC]"
    assert times(events) == [
        "2024-03-07 13:15",
        "2024-03-08 13:30",
        "2024-03-12 12:30",  # +02:00 converted to UTC
        "2024-03-29 00:00",
    ]
    assert list(events["currency"]) == ["EUR", "USD", "XAU", "ALL"]
    assert list(events["impact"]) == ["high", "high", "medium", "holiday"]
    assert list(events["title"]) == [
        "Main Refinancing Rate",
        "Non-Farm Employment Change",
        "",
        "Good Friday",
    ]


def test_project_format_ignores_tz_and_keeps_file_order_at_equal_times(tmp_path):
    path = write(
        tmp_path,
        f"{PROJECT_HEADER}\n2024-03-06 15:00,USD,high,Powell\n2024-03-06 15:00,CAD,high,BOC\n",
    )
    events = load_calendar(path, tz="America/New_York")
    assert times(events) == ["2024-03-06 15:00", "2024-03-06 15:00"]
    assert list(events["currency"]) == ["USD", "CAD"]


def test_sample_calendar_covers_the_march_2024_switches():
    events = load_calendar(PROJECT_SAMPLE)
    assert len(events) == 36
    assert events["time"].is_monotonic_increasing
    assert events["time"].min() >= utc("2024-01-01")
    assert events["time"].max() < utc("2024-05-01")
    nfp = events[events["title"] == "Non-Farm Employment Change"]
    # 08:30 New York: EST until 10 March 2024, EDT after
    assert times(nfp) == [
        "2024-01-05 13:30",
        "2024-02-02 13:30",
        "2024-03-08 13:30",
        "2024-04-05 12:30",
    ]
    ecb = events[events["title"] == "Main Refinancing Rate"]
    # 14:15 Frankfurt: CET until 31 March 2024, CEST after
    assert times(ecb) == ["2024-01-25 13:15", "2024-03-07 13:15", "2024-04-11 12:15"]


# ---------------------------------------------------------------- ForexFactory format


def test_forexfactory_times_are_read_in_the_given_zone_across_dst(caplog):
    with caplog.at_level(logging.WARNING, logger="backtest.econ_calendar"):
        events = load_calendar(FF_SAMPLE, tz="America/New_York")
    assert times(events) == [
        "2024-03-08 13:30",  # 8:30am EST
        "2024-03-08 13:30",
        "2024-03-10 05:00",  # All Day: 00:00 EST
        "2024-03-12 07:00",  # 3:00am EDT
        "2024-03-12 07:00",
        "2024-03-12 12:30",  # 8:30am EDT
        "2024-03-12 17:01",  # 1:01pm EDT
        "2024-03-20 04:00",  # All Day: 00:00 EDT
    ]
    assert list(events["currency"]) == ["USD", "USD", "USD", "EUR", "GBP", "USD", "USD", "JPY"]
    assert list(events["impact"]) == [
        "high",
        "high",
        "low",  # Non-Economic
        "low",
        "medium",
        "high",
        "low",
        "holiday",
    ]
    assert events["title"].iloc[0] == "Non-Farm Employment Change"
    assert "OPEC-JMMC Meetings" not in set(events["title"])
    assert [r.getMessage() for r in caplog.records] == [
        f"{FF_SAMPLE} line 9: skipped 'OPEC-JMMC Meetings' on 03-13-2024: its time is Tentative"
    ]


def test_forexfactory_times_default_to_utc():
    events = load_calendar(FF_SAMPLE)
    assert times(events)[0] == "2024-03-08 08:30"
    assert times(events)[5] == "2024-03-12 08:30"


@pytest.mark.parametrize(
    ("clock", "expected"),
    [
        ("1:30pm", "2024-03-08 13:30"),
        ("12:00am", "2024-03-08 00:00"),
        ("12:15pm", "2024-03-08 12:15"),
        ("8:30AM", "2024-03-08 08:30"),
        ("13:30", "2024-03-08 13:30"),
        ("", "2024-03-08 00:00"),
        ("All Day", "2024-03-08 00:00"),
        ("Day 2", "2024-03-08 00:00"),
    ],
)
def test_forexfactory_clock_forms(tmp_path, clock, expected):
    path = write(tmp_path, f"{FF_HEADER}\nEvent,CHF,03-08-2024,{clock},Medium,,\n")
    assert times(load_calendar(path, fmt="forexfactory")) == [expected]


def test_forexfactory_country_all_means_every_currency(tmp_path):
    path = write(tmp_path, f"{FF_HEADER}\nG20 Meetings,All,03-08-2024,Day 1,Low,,\n")
    events = load_calendar(path)
    assert list(events["currency"]) == ["ALL"]


# ---------------------------------------------------------------- formats and encodings


def test_forced_format_must_match_the_header():
    assert len(load_calendar(FF_SAMPLE, fmt="forexfactory")) == 8
    with pytest.raises(CalendarError) as caught:
        load_calendar(FF_SAMPLE, fmt="project")
    assert str(caught.value).startswith(f"{FF_SAMPLE} line 1: unknown header 'title,country,")
    assert str(caught.value).endswith("expected time,currency,impact,title")
    assert caught.value.row == 1


def test_unknown_header_lists_the_accepted_headers(tmp_path):
    path = write(tmp_path, "when,what\n2024-03-08 13:30,NFP\n")
    with pytest.raises(CalendarError) as caught:
        load_calendar(path)
    message = str(caught.value)
    assert message.startswith(f"{path} line 1: unknown header 'when,what'")
    assert "time,currency,impact,title" in message
    assert FF_HEADER in message
    assert caught.value.path == path


@pytest.mark.parametrize(
    "text", ["", "\n\n", f"{PROJECT_HEADER}\n", f"{FF_HEADER}\r\n", f"{PROJECT_HEADER}\n\n"]
)
def test_empty_or_header_only_file_gives_an_empty_frame(tmp_path, text):
    events = load_calendar(write(tmp_path, text))
    assert events.empty
    assert list(events.columns) == list(EVENT_COLUMNS)
    assert str(events["time"].dtype) == "datetime64[ns, UTC]"


@pytest.mark.parametrize("encoding", ["utf-8-sig", "utf-16", "utf-16-le-bom", "utf-16-be-bom"])
def test_bom_and_utf16_files(tmp_path, encoding):
    text = f"{PROJECT_HEADER}\r\n2024-03-08 13:30,USD,high,Non-Farm Employment Change\r\n"
    if encoding.endswith("-bom"):  # Windows tools write the BOM themselves
        raw = "\ufeff".encode(encoding[:-4]) + text.encode(encoding[:-4])
        path = tmp_path / "calendar.csv"
        path.write_bytes(raw)
    else:
        path = write(tmp_path, text, encoding=encoding)
    events = load_calendar(path)
    assert times(events) == ["2024-03-08 13:30"]
    assert list(events["title"]) == ["Non-Farm Employment Change"]


def test_utf16_bad_row_names_its_line(tmp_path):
    text = f"{PROJECT_HEADER}\r\n2024-03-08 13:30,USD,high,NFP\r\n\r\n2024-03-12,USD,huge,CPI\r\n"
    path = write(tmp_path, text, encoding="utf-16")
    with pytest.raises(CalendarError, match=r"line 4: impact 'huge' is not one of"):
        load_calendar(path)


def test_file_that_is_not_utf8_or_utf16(tmp_path):
    path = write(
        tmp_path,
        f"{PROJECT_HEADER}\n2024-03-08 13:30,EUR,high,Zinsentscheid ä\n",
        encoding="latin-1",
    )
    with pytest.raises(CalendarError, match="not UTF-8 or UTF-16 text") as caught:
        load_calendar(path)
    assert str(caught.value).startswith(str(path))


# ---------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("header", "row", "message"),
    [
        (
            PROJECT_HEADER,
            "2024-03-08 13:30,USD,extreme,NFP",
            "impact 'extreme' is not one of low, medium, high, holiday",
        ),
        (
            PROJECT_HEADER,
            "2024-03-32 13:30,USD,high,NFP",
            "time '2024-03-32 13:30' is not ISO 8601",
        ),
        (PROJECT_HEADER, "8:30am,USD,high,NFP", "time '8:30am' is not ISO 8601"),
        (PROJECT_HEADER, ",USD,high,NFP", "time '' is not ISO 8601"),
        (PROJECT_HEADER, "2300-01-01 00:00,USD,high,NFP", "time '2300-01-01 00:00' is outside"),
        (
            PROJECT_HEADER,
            "2024-03-08 13:30,US,high,NFP",
            "currency 'US' is not a 3-letter currency code (A-Z) or ALL",
        ),
        (PROJECT_HEADER, "2024-03-08 13:30,US1,high,NFP", "currency 'US1' is not a 3-letter"),
        (
            PROJECT_HEADER,
            "2024-03-08 13:30,USD,high",
            "expected 4 fields (time,currency,impact,title), found 3",
        ),
        (
            FF_HEADER,
            "NFP,USD,03-08-2024,8:30am,Extreme,,",
            "Impact 'Extreme' is not one of High, Medium, Low, Holiday, Non-Economic",
        ),
        (FF_HEADER, "NFP,USD,13-08-2024,8:30am,High,,", "Date '13-08-2024' is not a date"),
        (FF_HEADER, "NFP,USD,2024-03-08,8:30am,High,,", "Date '2024-03-08' is not a date"),
        (FF_HEADER, "NFP,USD,03-08-2024,13:30pm,High,,", "Time '13:30pm' is not like 8:30am"),
        (FF_HEADER, "NFP,USD,03-08-2024,soon,High,,", "Time 'soon' is not like 8:30am"),
        (FF_HEADER, "NFP,Dollar,03-08-2024,8:30am,High,,", "Country 'Dollar' is not a 3-letter"),
        (FF_HEADER, "NFP,USD,03-08-2024,8:30am,High", "expected 7 fields"),
    ],
)
def test_bad_row_names_file_line_column_and_value(tmp_path, header, row, message):
    good = (
        "2024-03-07 13:15,EUR,high,ECB"
        if header == PROJECT_HEADER
        else "ECB,EUR,03-07-2024,8:15am,High,,"
    )
    # the blank line 3 counts: the bad row is physical line 4
    path = write(tmp_path, f"{header}\n{good}\n\n{row}\n")
    with pytest.raises(CalendarError) as caught:
        load_calendar(path)
    assert str(caught.value).startswith(f"{path} line 4: {message}")
    assert caught.value.row == 4
    assert caught.value.path == path


def test_line_numbers_count_line_breaks_inside_quoted_titles(tmp_path):
    path = write(
        tmp_path,
        f'{PROJECT_HEADER}\n2024-03-06 15:00,USD,high,"Powell, testimony\nday 1"\n'
        '2024-03-07 13:15,EUR,top,"ECB\npress conference"\n',
    )
    with pytest.raises(CalendarError) as caught:
        load_calendar(path)
    assert caught.value.row == 4  # where the bad row starts, not where it ends
    assert "impact 'top'" in str(caught.value)


def test_quoted_title_keeps_its_comma(tmp_path):
    path = write(tmp_path, f'{PROJECT_HEADER}\n2024-03-06 15:00,USD,high,"Powell, Testifies"\n')
    assert list(load_calendar(path)["title"]) == ["Powell, Testifies"]


def test_missing_file_is_named(tmp_path):
    path = tmp_path / "nowhere.csv"
    with pytest.raises(CalendarError) as caught:
        load_calendar(path)
    assert str(caught.value) == f"{path}: no such calendar file"
    assert caught.value.row is None
    assert caught.value.path == path


def test_unknown_time_zone_is_named():
    with pytest.raises(CalendarError, match="time zone 'Mars/Olympus' is not an IANA name"):
        load_calendar(FF_SAMPLE, tz="Mars/Olympus")


def test_unknown_format_is_named():
    with pytest.raises(CalendarError, match="format 'ical' is not one of auto, project"):
        load_calendar(FF_SAMPLE, fmt="ical")


# ---------------------------------------------------------------- symbol currencies


@pytest.mark.parametrize(
    ("symbol", "base", "profit", "expected"),
    [
        ("EURUSD.r", None, None, ("EUR", "USD")),
        ("XAUUSD", None, None, ("XAU", "USD")),
        ("gbpjpym", None, None, ("GBP", "JPY")),
        ("US500", None, None, ("USD",)),
        ("GER40", "EUR", "EUR", ("EUR",)),
        ("GER40", None, "eur", ("USD", "EUR")),
        ("EURUSD", "", "", ("EUR", "USD")),
        ("BTCUSD", "BTC", "USD", ("BTC", "USD")),
    ],
)
def test_symbol_currencies(symbol, base, profit, expected):
    assert symbol_currencies(symbol, base, profit) == expected


# ---------------------------------------------------------------- blackouts


@pytest.fixture
def week(tmp_path) -> pd.DataFrame:
    return load_calendar(
        write(
            tmp_path,
            f"{PROJECT_HEADER}\n"
            "2024-03-07 13:15,EUR,high,Main Refinancing Rate\n"
            "2024-03-07 13:45,EUR,high,ECB Press Conference\n"
            "2024-03-08 13:30,USD,high,Non-Farm Employment Change\n"
            "2024-03-08 14:30,USD,high,Touching NFP's window\n"
            "2024-03-08 20:00,USD,medium,Medium news\n"
            "2024-03-11 09:00,JPY,high,Yen news\n"
            "2024-03-12 12:30,USD,high,CPI m/m\n"
            "2024-03-29 00:00,ALL,high,Good Friday\n",
            name="week.csv",
        )
    )


def test_blackouts_merge_overlapping_and_touching_intervals(week):
    got = blackout_intervals(week, ("EUR", "USD"), before_minutes=30, after_minutes=30)
    assert got.dtype == np.int64
    assert got.tolist() == [
        [epoch("2024-03-07 12:45"), epoch("2024-03-07 14:15")],  # the two ECB events overlap
        [epoch("2024-03-08 13:00"), epoch("2024-03-08 15:00")],  # 14:00 end meets 14:00 start
        [epoch("2024-03-12 12:00"), epoch("2024-03-12 13:00")],
        [epoch("2024-03-28 23:30"), epoch("2024-03-29 00:30")],  # ALL blocks every currency
    ]


def test_blackouts_filter_currency_and_impact(week):
    got = blackout_intervals(
        week, "usd", impacts=("high", "Medium"), before_minutes=2, after_minutes=5.5
    )
    assert got.tolist() == [
        [epoch("2024-03-08 13:28"), epoch("2024-03-08 13:35:30")],
        [epoch("2024-03-08 14:28"), epoch("2024-03-08 14:35:30")],
        [epoch("2024-03-08 19:58"), epoch("2024-03-08 20:05:30")],
        [epoch("2024-03-12 12:28"), epoch("2024-03-12 12:35:30")],
        [epoch("2024-03-28 23:58"), epoch("2024-03-29 00:05:30")],
    ]
    jpy = blackout_intervals(week, ["JPY"], before_minutes=0, after_minutes=0)
    assert jpy.tolist() == [[epoch("2024-03-11 09:00")] * 2, [epoch("2024-03-29 00:00")] * 2]


def test_all_among_currencies_matches_every_event(week):
    got = blackout_intervals(week, ["ALL"], before_minutes=0, after_minutes=1)
    assert len(got) == 7  # every high event; the medium one is left out


def test_no_matching_events_give_an_empty_array(week):
    got = blackout_intervals(week.iloc[:0], ["USD"], before_minutes=30, after_minutes=30)
    assert got.shape == (0, 2)
    assert got.dtype == np.int64
    assert blackout_intervals(
        week, ["NZD"], impacts=("low",), before_minutes=1, after_minutes=1
    ).shape == (0, 2)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"impacts": ("extreme",)}, r"impacts \['extreme'\] are not among"),
        ({"before_minutes": -1}, "before_minutes must be a number of minutes >= 0, got -1"),
        ({"after_minutes": float("nan")}, "after_minutes must be a number of minutes >= 0"),
    ],
)
def test_blackout_arguments_are_checked(week, kwargs, message):
    arguments = {"before_minutes": 30, "after_minutes": 30, **kwargs}
    with pytest.raises(ValueError, match=message):
        blackout_intervals(week, ["USD"], **arguments)


def reference_merge(seconds: np.ndarray, before: int, after: int) -> list[list[int]]:
    merged: list[list[int]] = []
    for t in sorted(seconds.tolist()):
        start, end = t - before, t + after
        if merged and start <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    return merged


def test_blackouts_match_a_plain_merge_on_10k_random_events():
    rng = np.random.default_rng(7)
    seconds = 1_704_067_200 + rng.integers(0, 365 * 86_400 // 60, 10_000) * 60
    currency = rng.choice(["USD", "EUR", "JPY", "ALL"], 10_000)
    impact = rng.choice(["high", "medium", "low"], 10_000)
    events = pd.DataFrame(
        {
            "time": pd.to_datetime(seconds, unit="s", utc=True),
            "currency": currency,
            "impact": impact,
            "title": "",
        }
    )
    got = blackout_intervals(events, ["EUR"], before_minutes=45, after_minutes=90)
    chosen = seconds[np.isin(currency, ["EUR", "ALL"]) & (impact == "high")]
    assert got.tolist() == reference_merge(chosen, 45 * 60, 90 * 60)
    assert 100 < len(got) < len(chosen)  # some merged, many not


# ---------------------------------------------------------------- next event


def test_next_event_is_the_first_matching_at_or_after(week):
    event = next_event(week, ("EUR", "USD"), after=epoch("2024-03-08 13:30"))
    assert event == CalendarEvent(
        time=utc("2024-03-08 13:30"),
        currency="USD",
        impact="high",
        title="Non-Farm Employment Change",
    )
    later = next_event(week, ("EUR", "USD"), after=epoch("2024-03-08 13:30") + 0.5)
    assert later is not None
    assert later.title == "Touching NFP's window"
    jpy = next_event(week, "JPY", after=epoch("2024-03-11 09:00:01"))
    assert jpy is not None
    assert (jpy.currency, jpy.title) == ("ALL", "Good Friday")


def test_next_event_honours_impacts_and_returns_none_after_the_last(week):
    medium = next_event(week, ["USD"], after=epoch("2024-03-08 14:31"), impacts=("medium",))
    assert medium is not None
    assert medium.time == utc("2024-03-08 20:00")
    assert next_event(week, ["USD"], after=epoch("2024-03-29 00:00:01")) is None
    assert next_event(week, ["CHF"], after=0, impacts=("low",)) is None


def test_calendar_event_is_frozen(week):
    event = next_event(week, ["EUR"], after=0)
    assert event is not None
    with pytest.raises(dataclasses.FrozenInstanceError):
        event.title = "changed"  # type: ignore[misc]
