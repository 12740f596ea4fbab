"""`polku` commands for customer work outside processes (registered by `engine.cli.build_parser`).

contact CUSTOMER_ID …      log a contact (a prospecting visit may --start-process)
to-contact [--expert U]    the "customers to contact" worklist
import-companies FILE.csv  companies from the web service (first vacancy) onto the group's worklist
office-setting [KEY VALUE] show or change office settings (audited)
absence USER SUBSTITUTE FROM UNTIL   record an absence with a substitute; `absence` alone lists them
run-jobs [--now ISO]       one worker round: scheduled starts, notices, e-mail (--now not in production)
schedules                  timer start events and their next due time
mail-outbox [--retry ID|all]  e-mails waiting or failed (with the last error); queue failed ones again
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from . import absences, contacts, jobs, notices, office, schedules
from .cli_args import person
from .config import Settings
from .errors import InvalidInput, NotAllowed


def _now(text: str | None) -> datetime | None:
    if text is None:
        return None
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise InvalidInput(f"'{text}' is not an ISO 8601 time like 2027-01-01T00:00:00+02:00") from None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def cmd_contact(args: argparse.Namespace, sessions: Any, settings: Settings) -> Any:
    """Log a contact with a customer."""
    data = {"contacted_on": args.date or date.today().isoformat(), "channel": args.channel, "topic": args.topic,
            "notes": args.notes or "", "participants": args.participants or "",
            "next_contact_on": args.next or "", "prospecting": "1" if args.prospecting else ""}
    with sessions.begin() as session:
        contact = contacts.log_contact(session, args.customer_id, data, by=args.by, start_process=args.start_process)
        return {"id": contact.id, "customer_id": contact.customer_id, "instance_id": contact.instance_id}


def cmd_to_contact(args: argparse.Namespace, sessions: Any, settings: Settings) -> Any:
    """List the customers to contact."""
    with sessions.begin() as session:
        rows = contacts.customers_to_contact(session, date.fromisoformat(args.today) if args.today else date.today(),
                                             expert=args.expert)
        return [{"customer_id": r.customer.id, "name": r.customer.name, "business_id": r.customer.business_id,
                 "reason": r.reason, "last_contact_on": r.last_contact_on, "next_contact_on": r.next_contact_on}
                for r in rows]


def cmd_import_companies(args: argparse.Namespace, sessions: Any, settings: Settings) -> Any:
    """Import companies from a CSV file."""
    text = Path(args.file).read_text(encoding="utf-8-sig")
    with sessions.begin() as session:
        result = contacts.import_companies(session, text, by=args.by, source=Path(args.file).name)
    return {"added": result.added, "known": result.known, "errors": {str(k): v for k, v in result.errors.items()}}


def cmd_office_setting(args: argparse.Namespace, sessions: Any, settings: Settings) -> Any:
    """Show the office settings, or change one."""
    with sessions.begin() as session:
        if args.key is not None:
            if args.value is None:
                raise InvalidInput("give the new value: office-setting KEY VALUE")
            office.set_value(session, args.key, args.value, by=args.by)
        return office.all_settings(session)


def cmd_absence(args: argparse.Namespace, sessions: Any, settings: Settings) -> Any:
    """Record an absence, or list absences that have not ended."""
    with sessions.begin() as session:
        if args.username:
            if not (args.substitute and args.starts_on and args.ends_on):
                raise InvalidInput("absence USER SUBSTITUTE FROM UNTIL")
            absences.record_absence(session, args.username, args.substitute, args.starts_on, args.ends_on,
                                    by=args.by, note=args.note or "")
        return [{"id": a.id, "username": a.username, "substitute": a.substitute, "starts_on": a.starts_on,
                 "ends_on": a.ends_on} for a in absences.current_and_coming(session, date.today())]


def cmd_run_jobs(args: argparse.Namespace, sessions: Any, settings: Settings) -> Any:
    """Run one round of the worker's jobs (scheduled starts, notices, e-mail)."""
    if args.now and settings.is_production:
        raise NotAllowed("run-jobs --now moves the clock and is refused when POLKU_ENV=production")
    now = _now(args.now)
    done = jobs.run_jobs(sessions, now=now, worker_id="cli", settings=settings)
    return {"now": (now or datetime.now(UTC)).isoformat(), **done}


def cmd_schedules(args: argparse.Namespace, sessions: Any, settings: Settings) -> Any:
    """List the timer start schedules."""
    with sessions.begin() as session:
        schedules.sync(session)
        return [{"process_id": r.process_id, "version_id": r.version_id, "element_id": r.element_id,
                 "kind": r.kind, "value": r.expression, "next_due_at": r.next_due_at,
                 "last_started_at": r.last_started_at, "last_instance_id": r.last_instance_id}
                for r in schedules.list_schedules(session)]


def cmd_mail_outbox(args: argparse.Namespace, sessions: Any, settings: Settings) -> Any:
    """List e-mails waiting or failed; --retry ID|all queues failed ones again."""
    with sessions.begin() as session:
        if args.retry:
            count = notices.retry_failed(session, None if args.retry == "all" else int(args.retry))
            return {"queued_again": count}
        return [{"id": m.id, "to": m.to_address, "subject": m.subject, "state": m.state, "attempts": m.attempts,
                 "next_attempt_at": m.next_attempt_at, "last_error": m.last_error} for m in notices.outbox(session)]


def register(add: Callable[[str, Callable[..., Any], str], argparse.ArgumentParser]) -> None:
    """Add the commands to the `polku` parser."""
    p = add("contact", cmd_contact, "log a contact with a customer")
    p.add_argument("customer_id", type=int)
    p.add_argument("--channel", required=True, choices=contacts.CHANNELS)
    p.add_argument("--topic", required=True)
    p.add_argument("--date", help="YYYY-MM-DD (default today)")
    p.add_argument("--notes")
    p.add_argument("--participants")
    p.add_argument("--next", help="next contact date YYYY-MM-DD (becomes a reminder)")
    p.add_argument("--prospecting", action="store_true", help="a company visit with no active customership")
    p.add_argument("--start-process", action="store_true", help="start a service process from the contact")
    p.add_argument("--by", type=person, default="cli")
    p = add("to-contact", cmd_to_contact, "list the customers to contact")
    p.add_argument("--expert")
    p.add_argument("--today", help="YYYY-MM-DD")
    p = add("import-companies", cmd_import_companies, "import companies from a CSV file onto the group's worklist")
    p.add_argument("file")
    p.add_argument("--by", type=person, default="cli")
    p = add("office-setting", cmd_office_setting, "show office settings, or change one: office-setting KEY VALUE")
    p.add_argument("key", nargs="?", choices=sorted(office.SETTINGS))
    p.add_argument("value", nargs="?")
    p.add_argument("--by", type=person, default="cli")
    p = add("absence", cmd_absence, "record an absence: absence USER SUBSTITUTE FROM UNTIL; alone: list")
    p.add_argument("username", nargs="?")
    p.add_argument("substitute", nargs="?")
    p.add_argument("starts_on", nargs="?")
    p.add_argument("ends_on", nargs="?")
    p.add_argument("--note")
    p.add_argument("--by", type=person, default="cli")
    p = add("run-jobs", cmd_run_jobs, "one worker round: scheduled starts, notices, e-mail")
    p.add_argument("--now", help="ISO 8601 instant (not in production); default: the real time")
    add("schedules", cmd_schedules, "list timer start events and their next due time")
    p = add("mail-outbox", cmd_mail_outbox, "e-mails waiting or failed; --retry ID|all queues failed ones again")
    p.add_argument("--retry", metavar="ID|all")
