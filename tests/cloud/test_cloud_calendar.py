"""Season calendars: the tabular Hijri conversion (with its documented ±1 day), day types, season keys."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cloud.calendar import (
    GregorianCalendar,
    HijriCalendar,
    HijriDate,
    gregorian_to_hijri,
    hijri_month_length,
    hijri_to_gregorian,
    is_hijri_leap_year,
    key_text,
    season_key_fn,
)
from fog.engine.availability import default_season_key


@pytest.mark.parametrize(
    ("gregorian", "hijri"),
    [
        (date(622, 7, 19), HijriDate(1, 1, 1)),          # the epoch (16 July 622 Julian), a Friday
        (date(2023, 7, 19), HijriDate(1445, 1, 1)),      # 1 Muharram 1445, as announced in Saudi Arabia
        (date(2024, 3, 11), HijriDate(1445, 9, 1)),      # 1 Ramadan 1445
        (date(2024, 4, 10), HijriDate(1445, 10, 1)),     # Eid al-Fitr 1445
        (date(2025, 3, 1), HijriDate(1446, 9, 1)),       # 1 Ramadan 1446
    ],
)
def test_tabular_dates_that_agree_with_the_announced_ones(gregorian: date, hijri: HijriDate) -> None:
    assert gregorian_to_hijri(gregorian) == hijri
    assert hijri_to_gregorian(hijri) == gregorian


def test_the_documented_one_day_disagreement_and_its_adjustment() -> None:
    # Arafat day (9 Dhu al-Hijjah 1445) was 15 June 2024 in Saudi Arabia; the tabular calendar puts it a day later.
    arafat = date(2024, 6, 15)
    assert gregorian_to_hijri(arafat) == HijriDate(1445, 12, 8)
    assert HijriCalendar(adjust_days=1).hijri(arafat) == HijriDate(1445, 12, 9)


@given(st.dates(min_value=date(700, 1, 1), max_value=date(2400, 12, 31)))
def test_round_trip_and_consecutive_days(day: date) -> None:
    h = gregorian_to_hijri(day)
    assert hijri_to_gregorian(h) == day
    following = gregorian_to_hijri(day + timedelta(days=1))
    if h.day < hijri_month_length(h.year, h.month):
        assert following == HijriDate(h.year, h.month, h.day + 1)
    elif h.month < 12:
        assert following == HijriDate(h.year, h.month + 1, 1)
    else:
        assert following == HijriDate(h.year + 1, 1, 1)


def test_thirty_year_cycle_has_eleven_leap_years_of_355_days() -> None:
    leap = [y for y in range(1, 31) if is_hijri_leap_year(y)]
    assert leap == [2, 5, 7, 10, 13, 16, 18, 21, 24, 26, 29]
    for year in (1444, 1445, 1446):
        length = (hijri_to_gregorian(HijriDate(year + 1, 1, 1)) - hijri_to_gregorian(HijriDate(year, 1, 1))).days
        assert length == (355 if is_hijri_leap_year(year) else 354)


@pytest.mark.parametrize(("year", "month", "day"), [(1445, 2, 30), (1445, 13, 1), (0, 1, 1), (1446, 12, 30)])
def test_impossible_hijri_dates_are_refused(year: int, month: int, day: int) -> None:
    with pytest.raises(ValueError, match="not a Hijri date"):
        HijriDate(year, month, day)


@pytest.mark.parametrize(
    ("day", "expected"),
    [(date(2024, 3, 15), "ramadan"),       # a Friday in Ramadan: Ramadan wins
     (date(2024, 6, 16), "hajj"),          # 9 Dhu al-Hijjah (tabular)
     (date(2024, 6, 20), "hajj"),          # 13 Dhu al-Hijjah: last day of Tashriq
     (date(2024, 6, 21), "friday"),        # 14 Dhu al-Hijjah, a Friday
     (date(2024, 4, 11), "eid_al_fitr"),
     (date(2024, 5, 6), "weekday"),
     (date(2024, 9, 23), "holiday")],
)
def test_hijri_day_types(day: date, expected: str) -> None:
    calendar = HijriCalendar(holidays=frozenset({date(2024, 9, 23)}))
    assert calendar.day_type(day) == expected


def test_gregorian_day_types_follow_the_engine_default() -> None:
    holidays = frozenset({date(2024, 12, 25)})
    calendar = GregorianCalendar(holidays=holidays)
    for offset in range(0, 400, 3):
        day = date(2024, 1, 1) + timedelta(days=offset)
        ts = datetime(day.year, day.month, day.day, 9, tzinfo=UTC).timestamp()
        assert calendar.day_type(day) == default_season_key(ts, holidays)[0]


def test_season_keys_are_taken_in_the_lots_time_zone() -> None:
    key = season_key_fn(HijriCalendar(), "Asia/Riyadh")
    ts = datetime(2024, 3, 14, 22, 35, tzinfo=UTC).timestamp()  # 01:35 on Friday 15 March in Makkah
    assert key(ts) == ("ramadan", 19)
    assert key_text(key(ts)) == "ramadan/0135"
    assert key_text(("weekday", 103)) == "weekday/0835"
    assert season_key_fn(GregorianCalendar(), "UTC")(ts) == ("weekday", 22 * 12 + 7)
