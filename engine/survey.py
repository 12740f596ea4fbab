"""The national customer survey's results, recorded per period by the supervisor.

The ministry's national customer-feedback survey is anonymous and cannot be tied to a case; its
result (share of positive customer experiences, target 69 %) is the office's scorecard measure.
Polku does not compute it: the supervisor enters it per period (a year `2025`, a half-year
`2025-H1`, a quarter `2025-Q3`) or imports a CSV file. It is shown as its own series beside the
office's own aftercare figures, never mixed with the experts' recorded impressions.

Every change is audited in the `survey` stream (old and new values, who, when). An import checks
every row first and writes nothing when any row is wrong.
"""

from __future__ import annotations

import csv
import io
import re
from datetime import date, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from . import audit
from .db import utcnow
from .errors import FormInvalid, InvalidInput
from .survey_models import SurveyResult
from .users import N_
from .values import whole_number

AUDIT_STREAM = "survey"
RECORDED = "survey_result_recorded"
TARGET_PERCENT = 69.0  # the office's scorecard target for the national survey (balanced scorecard goal 3)
MAX_IMPORT_ROWS = 500
MAX_ANSWERS = 10_000_000
_PERIOD = re.compile(r"^(\d{4})(?:[-/ ]?([HQ])([1-4]))?$")


def parse_period(text: Any) -> tuple[str, date, date]:
    """Return (period, first day, last day) of `2025`, `2025-H1`/`2025-H2` or `2025-Q1`…`2025-Q4`.

    Raises:
        InvalidInput: not one of those forms.
    """
    found = _PERIOD.match(str(text or "").strip().upper())
    if not found:
        raise InvalidInput(N_("Enter the period as a year (2025), a half-year (2025-H1) or a quarter (2025-Q3)."))
    year, kind, number = int(found[1]), found[2], int(found[3] or 0)
    if not 2000 <= year <= 2100 or (kind == "H" and number > 2):
        raise InvalidInput(N_("Enter the period as a year (2025), a half-year (2025-H1) or a quarter (2025-Q3)."))
    if kind is None:
        return str(year), date(year, 1, 1), date(year, 12, 31)
    months = 6 if kind == "H" else 3
    first = (number - 1) * months + 1
    last_month = first + months - 1
    ends = date(year + 1, 1, 1) if last_month == 12 else date(year, last_month + 1, 1)
    return f"{year}-{kind}{number}", date(year, first, 1), date.fromordinal(ends.toordinal() - 1)


def parse_percent(text: Any) -> float:
    """Return a share of positive experiences in percent (0–100, a decimal comma or point, `%` allowed).

    Raises:
        InvalidInput: not a number between 0 and 100.
    """
    cleaned = str(text if text is not None else "").strip().rstrip("%").strip().replace(",", ".")
    try:
        value = float(cleaned)
    except ValueError:
        raise InvalidInput(N_("Enter the share of positive experiences as a percentage, e.g. 71,5.")) from None
    if not 0 <= value <= 100:  # NaN fails this too
        raise InvalidInput(N_("The share of positive experiences must be between 0 and 100 %."))
    return round(value, 1)


def parse_answers(text: Any) -> int | None:
    """Return the number of answers (None when left empty).

    Raises:
        InvalidInput: not a whole number of at least 1.
    """
    cleaned = str(text if text is not None else "").strip().replace(" ", "").replace("\u00a0", "")
    if not cleaned:
        return None
    number = whole_number(cleaned)
    if number is None or not 1 <= number <= MAX_ANSWERS:
        raise InvalidInput(N_("The number of answers must be a whole number of at least 1."))
    return number


def _values(row: SurveyResult | None) -> dict[str, Any] | None:
    if row is None:
        return None
    return {"positive_percent": row.positive_percent, "answers": row.answers, "note": row.note}


def _write(session: Session, period: tuple[str, date, date], percent: float, answers: int | None,
           note: str | None, *, by: str, now: datetime) -> SurveyResult:
    key, starts, ends = period
    row = session.scalar(select(SurveyResult).where(SurveyResult.period == key))
    old = _values(row)
    if row is None:
        row = SurveyResult(period=key, starts_on=starts, ends_on=ends, positive_percent=percent, answers=answers,
                           note=note, recorded_by=by, recorded_at=now)
        session.add(row)
    else:
        row.positive_percent, row.answers, row.note, row.recorded_by, row.recorded_at = percent, answers, note, by, now
    new = _values(row)
    if old != new:
        audit.append(session, RECORDED, actor=by, stream=AUDIT_STREAM, at=now,
                     data={"period": key, "old": old, "new": new})
    return row


def record(session: Session, period: Any, positive_percent: Any, answers: Any = None, note: Any = None, *,
           by: str, now: datetime | None = None) -> SurveyResult:
    """Record (or correct) one period's survey result; return its row.

    Raises:
        FormInvalid: a wrong period, share or number of answers (by field).
    """
    errors: dict[str, str] = {}
    parsed: dict[str, Any] = {}
    for name, parse, value in (("period", parse_period, period), ("positive_percent", parse_percent, positive_percent),
                               ("answers", parse_answers, answers)):
        try:
            parsed[name] = parse(value)
        except InvalidInput as err:
            errors[name] = str(err)
    if errors:
        raise FormInvalid(errors)
    text = str(note or "").strip()[:200] or None
    row = _write(session, parsed["period"], parsed["positive_percent"], parsed["answers"], text, by=by,
                 now=now or utcnow())
    session.flush()
    return row


def import_csv(session: Session, text: str, *, by: str, now: datetime | None = None) -> int:
    """Import survey results from CSV text (columns `period`, `positive_percent`, optional `answers`,
    `note`; separated by `;` or `,`); return how many rows were recorded.

    Every row is checked first; when any row is wrong nothing is recorded.

    Raises:
        InvalidInput: empty file, no usable header, or too many rows.
        FormInvalid: wrong rows; `errors` maps "line N" to the first problem of that line.
    """
    now = now or utcnow()
    first = text.lstrip("\ufeff").split("\n", 1)[0]
    delimiter = ";" if first.count(";") >= first.count(",") and ";" in first else ","
    reader = csv.reader(io.StringIO(text.lstrip("\ufeff")), delimiter=delimiter)
    try:
        header = [h.strip().lower() for h in next(reader)]
    except StopIteration:
        raise InvalidInput(N_("The file is empty.")) from None
    except csv.Error:
        raise InvalidInput(N_("The file is not readable as CSV.")) from None
    if "period" not in header or "positive_percent" not in header:
        raise InvalidInput(N_("The first row must name the columns period and positive_percent."))
    cols: dict[str, int] = {name: header.index(name) for name in ("period", "positive_percent", "answers", "note") if name in header}
    errors: dict[str, str] = {}
    rows: list[tuple[tuple[str, date, date], float, int | None, str | None]] = []
    seen: dict[str, int] = {}
    try:
        for line, cells in enumerate(reader, start=2):
            if line > MAX_IMPORT_ROWS + 1:
                raise InvalidInput(N_("Too many rows in one file."))
            if not any(c.strip() for c in cells):
                continue

            def cell(name: str, cells: list[str] = cells) -> str:
                index = cols.get(name)
                return cells[index].strip() if index is not None and index < len(cells) else ""

            try:
                period = parse_period(cell("period"))
                if period[0] in seen:
                    raise InvalidInput(N_("This period is already on an earlier line of the file."))
                percent, answers = parse_percent(cell("positive_percent")), parse_answers(cell("answers"))
            except InvalidInput as err:
                errors[f"line {line}"] = str(err)
                continue
            seen[period[0]] = line
            rows.append((period, percent, answers, cell("note")[:200] or None))
    except csv.Error:
        raise InvalidInput(N_("The file is not readable as CSV.")) from None
    if errors:
        raise FormInvalid(errors)
    if not rows:
        raise InvalidInput(N_("The file has no rows."))
    for period, percent, answers, note in rows:
        _write(session, period, percent, answers, note, by=by, now=now)
    session.flush()
    return len(rows)


def series(session: Session) -> list[SurveyResult]:
    """Return every recorded period's result, earliest first."""
    return list(session.scalars(select(SurveyResult).order_by(SurveyResult.starts_on, SurveyResult.ends_on.desc())))


def line_of(key: str) -> int:
    """Return the line number of an import error key ("line 3" -> 3)."""
    return int(key.split()[-1])
