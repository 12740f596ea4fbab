"""`polku survey …` and `polku kpi`: the national customer survey's results and the aftercare figures
from the command line (see `engine.survey` and `engine.kpi`).

    polku survey record PERIOD PERCENT [--answers N] [--note TEXT] [--by WHO]
    polku survey import FILE.csv [--by WHO]     (every row checked first; nothing saved on an error)
    polku survey list
    polku kpi [--from YYYY-MM-DD] [--to YYYY-MM-DD] [--expert USER] [--service-line LINE]

A wrong field or CSV line exits 2 with every message (as every form of the CLI).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from . import kpi, survey
from .cli_args import person
from .config import Settings
from .errors import InvalidInput
from .survey_models import SurveyResult


def result_dict(row: SurveyResult) -> dict[str, Any]:
    """Return one period's survey result as JSON-able data, with its standing against the target."""
    return {"period": row.period, "starts_on": row.starts_on.isoformat(), "ends_on": row.ends_on.isoformat(),
            "positive_percent": row.positive_percent, "answers": row.answers, "note": row.note,
            "meets_target": row.positive_percent >= survey.TARGET_PERCENT, "recorded_by": row.recorded_by}


def cmd_survey(args: argparse.Namespace, sessions: Any, settings: Settings) -> Any:
    """Record, import or list the national survey's results."""
    with sessions.begin() as session:
        if args.survey_command == "record":
            survey.record(session, args.period, args.percent, args.answers, args.note, by=args.by)
        elif args.survey_command == "import":
            survey.import_csv(session, Path(args.file).read_text(encoding="utf-8-sig"), by=args.by)
        return {"target_percent": survey.TARGET_PERCENT, "series": [result_dict(r) for r in survey.series(session)]}


def _day(text: str | None, zone: ZoneInfo) -> datetime | None:
    if not text:
        return None
    try:
        day = date.fromisoformat(text)
    except ValueError:
        raise InvalidInput(f"'{text}' is not a date (YYYY-MM-DD)") from None
    return datetime(day.year, day.month, day.day, tzinfo=zone)


def cmd_kpi(args: argparse.Namespace, sessions: Any, settings: Settings) -> Any:
    """Print the aftercare figures (the KPI page's) and the national survey series."""
    zone = ZoneInfo(settings.timezone)
    end = _day(args.to, zone)
    flt = kpi.AftercareFilter(start=_day(args.start, zone), end=end + timedelta(days=1) if end else None,
                              expert=args.expert, service_line=args.service_line)
    with sessions.begin() as session:
        r = kpi.aftercare_report(session, flt, settings.timezone)
        return {"service_lines_ended": r.finished, "contacts_made": r.done, "not_reached": r.not_reached,
                "open_past_target": r.overdue, "within_target": r.within_target, "after_target": r.late,
                "within_target_share": r.within_share, "days_median": r.days_median, "days_p90": r.days_p90,
                "rating_mean_where_given": r.rating_mean, "ratings_given": r.rated,
                "expert_recorded_positive": r.positive, "expert_recorded_answered": r.answered,
                "national_survey": [result_dict(x) for x in survey.series(session)],
                "national_survey_target_percent": survey.TARGET_PERCENT}


def add_parser(add: Callable[..., argparse.ArgumentParser]) -> None:
    """Add `survey` (with its subcommands) and `kpi` to the CLI (`add(name, func, help)` from `engine.cli`)."""
    p = add("survey", cmd_survey, "the national customer survey's results per period (share of positive experiences)")
    sub = p.add_subparsers(dest="survey_command", required=True)
    q = sub.add_parser("record", help="record or correct a period's result: record 2025-H1 71,5 --answers 412")
    q.add_argument("period", help="a year (2025), a half-year (2025-H1) or a quarter (2025-Q3)")
    q.add_argument("percent", help="share of positive experiences, percent")
    q.add_argument("--answers")
    q.add_argument("--note")
    q.add_argument("--by", type=person, default="cli")
    q = sub.add_parser("import", help="import results from CSV (period;positive_percent[;answers;note])")
    q.add_argument("file")
    q.add_argument("--by", type=person, default="cli")
    sub.add_parser("list", help="list the recorded results, earliest first")
    p = add("kpi", cmd_kpi, "print the aftercare figures and the national survey series")
    p.add_argument("--from", dest="start", help="services ended from this day (YYYY-MM-DD)")
    p.add_argument("--to", help="services ended up to and including this day (YYYY-MM-DD)")
    p.add_argument("--expert")
    p.add_argument("--service-line", dest="service_line")
