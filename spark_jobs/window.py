"""A window of whole days: what a partition (or a single-run backfill of many) covers."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pyiceberg.expressions import BooleanExpression


@dataclass(frozen=True)
class DayWindow:
    start: date
    end: date  # exclusive

    def __post_init__(self) -> None:
        if not isinstance(self.start, date) or not isinstance(self.end, date):
            raise TypeError("DayWindow takes datetime.date values")
        if self.end <= self.start:
            raise ValueError(f"empty window: {self.start} .. {self.end}")

    @classmethod
    def of_day(cls, day: date) -> DayWindow:
        return cls(day, day + timedelta(days=1))

    @classmethod
    def from_datetimes(cls, start: datetime, end: datetime) -> DayWindow:
        return cls(start.date(), end.date())

    @property
    def days(self) -> list[date]:
        return [self.start + timedelta(days=i) for i in range((self.end - self.start).days)]

    def __str__(self) -> str:
        last = self.end - timedelta(days=1)
        return self.start.isoformat() if last == self.start else f"{self.start}..{last}"


def window_parser(description: str) -> argparse.ArgumentParser:
    """A command line taking ``--date D`` or ``--start D --end D`` (inclusive), as every job's
    does; a job adds its own arguments, then ``parse_window`` reads it."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--date", type=date.fromisoformat, help="one day, YYYY-MM-DD")
    parser.add_argument("--start", type=date.fromisoformat, help="first day of a range")
    parser.add_argument("--end", type=date.fromisoformat, help="last day of a range (inclusive)")
    return parser


def parse_window(
    parser: argparse.ArgumentParser, argv: Sequence[str] | None = None
) -> tuple[DayWindow, argparse.Namespace]:
    """The window ``argv`` gives, and every argument parsed; the parser's usage error when
    the days are not one of the two forms."""
    args = parser.parse_args(argv)
    if args.date and not (args.start or args.end):
        return DayWindow.of_day(args.date), args
    if args.start and args.end and not args.date:
        return DayWindow(args.start, args.end + timedelta(days=1)), args
    parser.error("give --date, or both --start and --end")
    raise AssertionError  # parser.error exits


def iceberg_filter(column: str, window: DayWindow) -> BooleanExpression:
    """pyiceberg's row filter for the window's days of a date column (end exclusive)."""
    from pyiceberg.expressions import And, GreaterThanOrEqual, LessThan

    return And(
        GreaterThanOrEqual(column, window.start.isoformat()),  # pyright: ignore[reportCallIssue] - pyiceberg's stubs miss the positional form
        LessThan(column, window.end.isoformat()),  # pyright: ignore[reportCallIssue] - as above
    )
