"""Season calendars for the Markov models: Gregorian day types, or the Hijri calendar's.

A season key (ALGORITHMS.md §3) is ``(day type, 5-minute slot of the local
day)``; it is sent to fogs as the string ``"<day type>/<HHMM>"`` (the slot's
start), e.g. ``"weekday/0835"``. The calendar is pluggable because demand
follows the calendar people live by: in Makkah, Ramadan and the Hajj days move
through the Gregorian year by about 11 days a year.

**Hijri conversion — the caveat.** This is the *tabular* (arithmetical)
Islamic calendar: months alternate 30/29 days, with 11 leap years (a 30-day
Dhu al-Hijjah) in every 30-year cycle (years 2, 5, 7, 10, 13, 16, 18, 21, 24,
26, 29: the common "type II" scheme), and the civil epoch 1 Muharram 1 AH =
16 July 622 (Julian), a Friday. The calendars in use (Saudi Umm al-Qura, which
is computed astronomically, or dates fixed by moon sighting) can differ from
it by a day, sometimes two, at a month's start; the tabular day also starts at
midnight, not at sunset. ``hijri_adjust_days`` in the config shifts every
Hijri date by −2..2 days so an operator can align it with the announced dates
of the season being trained. Both are stated so nobody reads a ±1 day
disagreement as a bug.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Protocol
from zoneinfo import ZoneInfo

from cloud.config import CalendarSettings
from fog.engine.availability import SLOT_S, default_season_key

SeasonKey = tuple[str, int]
HIJRI_EPOCH_JDN = 1_948_440
"""Julian Day Number of 1 Muharram 1 AH in the civil tabular calendar (16 July 622 Julian)."""
_ORDINAL_TO_JDN = 1_721_425  # date(1, 1, 1).toordinal() == 1 is JDN 1,721,426
HIJRI_MONTHS = ("Muharram", "Safar", "Rabi al-Awwal", "Rabi al-Thani", "Jumada al-Ula", "Jumada al-Akhira", "Rajab",
                "Shaban", "Ramadan", "Shawwal", "Dhu al-Qadah", "Dhu al-Hijjah")
RAMADAN, SHAWWAL, DHU_AL_HIJJAH = 9, 10, 12
HAJJ_DAYS = range(8, 14)
"""8–13 Dhu al-Hijjah: the Hajj rites and the days of Tashriq (Eid al-Adha on the 10th)."""
EID_AL_FITR_DAYS = range(1, 4)
FRIDAY = 4


@dataclass(frozen=True, order=True)
class HijriDate:
    """A date of the tabular Islamic calendar."""

    year: int
    month: int
    day: int

    def __post_init__(self) -> None:
        if self.year < 1 or not 1 <= self.month <= 12:
            raise ValueError(f"not a Hijri date: year must be >= 1 and month 1..12, got year {self.year} "
                             f"month {self.month}")
        length = hijri_month_length(self.year, self.month)
        if not 1 <= self.day <= length:
            raise ValueError(f"not a Hijri date: {HIJRI_MONTHS[self.month - 1]} {self.year} has {length} days, "
                             f"got day {self.day}")

    def __str__(self) -> str:
        return f"{self.day} {HIJRI_MONTHS[self.month - 1]} {self.year} AH"


def is_hijri_leap_year(year: int) -> bool:
    """Leap years of the 30-year cycle (type II): Dhu al-Hijjah has 30 days instead of 29."""
    return (14 + 11 * year) % 30 < 11


def hijri_month_length(year: int, month: int) -> int:
    """30 for odd months, 29 for even ones, 30 for Dhu al-Hijjah in a leap year."""
    if month == DHU_AL_HIJJAH and is_hijri_leap_year(year):
        return 30
    return 30 if month % 2 == 1 else 29


def _hijri_to_jdn(year: int, month: int, day: int) -> int:
    # day + ⌈29.5·(month − 1)⌉ + 354·(year − 1) + ⌊(3 + 11·year)/30⌋ + epoch − 1
    return day + (59 * (month - 1) + 1) // 2 + (year - 1) * 354 + (3 + 11 * year) // 30 + HIJRI_EPOCH_JDN - 1


def hijri_to_gregorian(hijri: HijriDate) -> date:
    """The proleptic Gregorian date of a tabular Hijri date."""
    return date.fromordinal(_hijri_to_jdn(hijri.year, hijri.month, hijri.day) - _ORDINAL_TO_JDN)


def gregorian_to_hijri(day: date) -> HijriDate:
    """The tabular Hijri date of a Gregorian date (on or after 16 July 622)."""
    jdn = day.toordinal() + _ORDINAL_TO_JDN
    if jdn < HIJRI_EPOCH_JDN:
        raise ValueError(f"{day} is before the Hijri epoch (622-07-19 Gregorian)")
    year = (30 * (jdn - HIJRI_EPOCH_JDN) + 10646) // 10631
    # month = min(12, ⌈(jdn − (29 + first day of the year)) / 29.5⌉ + 1)
    month = min(12, -((-2 * (jdn - 29 - _hijri_to_jdn(year, 1, 1))) // 59) + 1)
    month = max(1, month)
    return HijriDate(year, month, jdn - _hijri_to_jdn(year, month, 1) + 1)


class SeasonCalendar(Protocol):
    """Names the type of a local day; the slot of the day is added by `season_key`."""

    def day_type(self, day: date) -> str:
        """The day type, e.g. "weekday", "weekend", "holiday", "ramadan"."""
        ...


@dataclass(frozen=True)
class GregorianCalendar:
    """Holiday (configured dates) > weekend (configured weekdays) > weekday: the default of §3."""

    weekend_days: tuple[int, ...] = (5, 6)
    holidays: frozenset[date] = frozenset()

    def day_type(self, day: date) -> str:
        # The same rule as fog.engine.availability.default_season_key, asked for a date.
        noon = datetime(day.year, day.month, day.day, 12, tzinfo=UTC).timestamp()
        return default_season_key(noon, self.holidays, weekend_days=self.weekend_days)[0]


@dataclass(frozen=True)
class HijriCalendar:
    """Day types for a city that lives by the Hijri calendar (the Makkah case).

    Priority: "holiday" (configured Gregorian dates) > "hajj" (8–13 Dhu al-Hijjah)
    > "eid_al_fitr" (1–3 Shawwal) > "ramadan" > "friday" (or "weekend" for other
    configured weekend days) > "weekday".
    """

    weekend_days: tuple[int, ...] = (FRIDAY,)
    holidays: frozenset[date] = frozenset()
    adjust_days: int = 0

    def hijri(self, day: date) -> HijriDate:
        """The (adjusted) tabular Hijri date of a Gregorian date."""
        return gregorian_to_hijri(day + timedelta(days=self.adjust_days))

    def day_type(self, day: date) -> str:
        if day in self.holidays:
            return "holiday"
        h = self.hijri(day)
        if h.month == DHU_AL_HIJJAH and h.day in HAJJ_DAYS:
            return "hajj"
        if h.month == SHAWWAL and h.day in EID_AL_FITR_DAYS:
            return "eid_al_fitr"
        if h.month == RAMADAN:
            return "ramadan"
        weekday = day.weekday()
        if weekday in self.weekend_days:
            return "friday" if weekday == FRIDAY else "weekend"
        return "weekday"


def calendar_from(settings: CalendarSettings) -> SeasonCalendar:
    """The calendar named in the config."""
    if settings.kind == "hijri":
        return HijriCalendar(settings.weekend_days, settings.holidays, settings.hijri_adjust_days)
    return GregorianCalendar(settings.weekend_days, settings.holidays)


def season_key_fn(calendar: SeasonCalendar, timezone: str, slot_s: float = SLOT_S) -> Callable[[float], SeasonKey]:
    """``ts (Unix s) -> (day type, slot)`` in the lot's time zone; day types are cached per date."""
    tz = ZoneInfo(timezone)
    cache: dict[date, str] = {}

    def key(ts: float) -> SeasonKey:
        local = datetime.fromtimestamp(ts, tz)
        day = local.date()
        day_type = cache.get(day)
        if day_type is None:
            day_type = cache[day] = calendar.day_type(day)
        seconds = local.hour * 3600 + local.minute * 60 + local.second
        return day_type, int(seconds // slot_s)

    return key


def key_text(key: SeasonKey, slot_s: float = SLOT_S) -> str:
    """``("weekday", 103)`` -> ``"weekday/0835"`` (the slot's local start time), as MarkovModel.season_key."""
    day_type, slot = key
    minutes = int(slot * slot_s // 60)
    return f"{day_type}/{minutes // 60:02d}{minutes % 60:02d}"


def day_types_between(calendar: SeasonCalendar, first: date, last: date) -> Collection[tuple[date, str]]:
    """Each date from first to last inclusive with its day type (for reports and tests)."""
    return [(first + timedelta(days=i), calendar.day_type(first + timedelta(days=i)))
            for i in range((last - first).days + 1)]
