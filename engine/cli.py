"""The `polku` command line: drive the engine from scripts and tests.

Every command prints JSON on stdout with `--json` (the default when stdout is not a terminal)
and exits non-zero with a one-line error on stderr (never a traceback). Exit codes:

- 0 ok
- 1 engine refused (not found, not available, conflict)
- 2 bad input (usage, JSON, form errors, data over the limits)
- 3 invalid model
- 4 audit chain broken
- 70 internal error (a bug: report it with the line printed)
- 75 temporary failure, nothing changed: try again later (the database is unreachable, locked,
  read-only or full; EX_TEMPFAIL of sysexits.h)

Audit events written through the CLI name the operating-system user beside `--by`
(`actor (cli, os user NAME)`), as `--by` is only what the caller says about themselves.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import getpass
import io
import json
import os
import pwd
import sys
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as SATimeoutError
from sqlalchemy.orm.exc import StaleDataError

from . import audit, deploy, inbox, runtime
from .cli_args import person
from .config import Settings
from .db import make_engine, make_sessions, upgrade
from .dbfaults import is_transient
from .errors import EngineError, FormInvalid, InvalidInput, InvalidModel, NotAllowed
from .exports import csv_safe
from .fastsql import QueuedWriteFailed

EXIT_REFUSED, EXIT_INPUT, EXIT_MODEL, EXIT_AUDIT = 1, 2, 3, 4
EXIT_SOFTWARE, EXIT_TEMPFAIL = 70, 75  # sysexits.h: EX_SOFTWARE (a bug), EX_TEMPFAIL (try again later)


class CliError(Exception):
    """A user mistake on the command line, with its exit code."""

    def __init__(self, message: str, code: int = EXIT_INPUT, detail: Any = None):
        super().__init__(message)
        self.code = code
        self.detail = detail


def _json_arg(text: str | None) -> dict[str, Any]:
    if text is None:
        return {}
    if text.startswith("@"):
        try:
            text = Path(text[1:]).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as err:
            reason = err.strerror if isinstance(err, OSError) else "it is not UTF-8 text"
            raise CliError(f"--data file {text[1:]} cannot be read: {reason}") from None
    try:
        value = json.loads(text)
    except json.JSONDecodeError as err:
        raise CliError(f"--data is not valid JSON: {err.msg} at line {err.lineno} column {err.colno}") from None
    if not isinstance(value, dict):
        raise CliError("--data must be a JSON object, like '{\"name\": \"value\"}'")
    return value


def _time_arg(text: str | None) -> datetime | None:
    if text is None:
        return None
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise CliError(f"'{text}' is not an ISO 8601 time like 2026-01-31T09:00:00+02:00") from None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _model_files(paths: Sequence[str]) -> dict[str, bytes]:
    files: dict[str, bytes] = {}
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            for child in sorted([*path.glob("*.bpmn"), *path.glob("*.dmn")]):
                files[child.name] = child.read_bytes()
        elif path.is_file():
            files[path.name] = path.read_bytes()
        else:
            raise CliError(f"no such file or directory: {raw}")
    if not files:
        raise CliError("no .bpmn or .dmn files found in " + ", ".join(paths))
    for name in files:
        if not name.isprintable():  # a CR/LF in a stored file name would break every download of it
            raise CliError(f"model file name {name!r} contains line breaks or other control characters; rename it")
    return files


# ---------------------------------------------------------------------------------------------
# Commands: each takes (args, sessions, settings) and returns JSON-able data.


def cmd_init(args: argparse.Namespace, sessions: Any, settings: Settings) -> Any:
    """Create or migrate the database."""
    return {"database": settings.database_url.split("@")[-1], "status": "migrated"}


def cmd_deploy(args: argparse.Namespace, sessions: Any, settings: Settings) -> Any:
    """Validate and deploy model files."""
    files = _model_files(args.paths)
    with sessions.begin() as session:
        if args.check:
            checked = deploy.check_files(session, files, max_bytes=settings.max_upload_bytes)
            if checked.problems:
                raise InvalidModel(checked.problems)
            return {"valid": True, "files": sorted(files)}
        result = deploy.deploy_files(session, files, by=args.by, max_bytes=settings.max_upload_bytes)
        return {"deployment_id": result.deployment_id,
                "created": [{"process_id": v.process_id, "version": v.version, "kind": str(v.kind)} for v in result.created],
                "unchanged": [{"process_id": v.process_id, "version": v.version} for v in result.unchanged]}


def cmd_processes(args: argparse.Namespace, sessions: Any, settings: Settings) -> Any:
    """List deployed processes and decisions with their versions."""
    with sessions.begin() as session:
        return deploy.list_versions(session)


def cmd_start(args: argparse.Namespace, sessions: Any, settings: Settings) -> Any:
    """Start a process instance."""
    with sessions.begin() as session:
        instance = runtime.start_instance(session, args.process_id, by=args.by, data=_json_arg(args.data),
                                          business_key=args.business_key, version=args.version)
        instance_id = instance.id
    with sessions.begin() as session:
        return runtime.instance_summary(session, instance_id)


def cmd_tasks(args: argparse.Namespace, sessions: Any, settings: Settings) -> Any:
    """List open tasks."""
    with sessions.begin() as session:
        if args.overdue:
            rows = inbox.overdue(session)
        else:
            rows = inbox.tasks(session, instance_id=args.instance, assignee=args.assignee)
        return [runtime.task_dict(t) for t in rows]


def cmd_complete(args: argparse.Namespace, sessions: Any, settings: Settings) -> Any:
    """Complete a task with form data."""
    with sessions.begin() as session:
        if args.covers:  # an aftercare contact covering other lines' contacts (engine.aftercare)
            from . import aftercare

            instance = aftercare.complete_covering(session, args.task_id, _json_arg(args.data), args.covers, by=args.by)
        else:
            instance = runtime.complete_task(session, args.task_id, _json_arg(args.data), by=args.by)
        instance_id = instance.id
    with sessions.begin() as session:
        return runtime.instance_summary(session, instance_id)


def cmd_action(args: argparse.Namespace, sessions: Any, settings: Settings) -> Any:
    """Run a task action (a message boundary event the model marks taskAction) with its form data."""
    from . import actions

    with sessions.begin() as session:
        instance = actions.run_task_action(session, args.task_id, args.action_id, _json_arg(args.data), by=args.by)
        instance_id = instance.id
    with sessions.begin() as session:
        return runtime.instance_summary(session, instance_id)


def cmd_claim(args: argparse.Namespace, sessions: Any, settings: Settings) -> Any:
    """Claim, release or assign a task."""
    with sessions.begin() as session:
        if args.action == "claim":
            task = inbox.claim(session, args.task_id, by=args.by)
        elif args.action == "release":
            task = inbox.release(session, args.task_id, by=args.by)
        else:
            task = inbox.assign(session, args.task_id, args.to, by=args.by)
        return runtime.task_dict(task)


def cmd_message(args: argparse.Namespace, sessions: Any, settings: Settings) -> Any:
    """Deliver a message to waiting instances."""
    with sessions.begin() as session:
        targets = runtime.deliver_message(session, args.name, by=args.by, data=_json_arg(args.data),
                                          business_key=args.business_key, instance_id=args.instance)
    return {"delivered_to": targets}


def cmd_cancel(args: argparse.Namespace, sessions: Any, settings: Settings) -> Any:
    """Cancel a running instance with a reason: its open tasks, timers and waits end (audited)."""
    from . import customers

    with sessions.begin() as session:
        instance = customers.cancel_case(session, args.instance_id, args.reason, by=args.by)
        return {"id": instance.id, "status": str(instance.status)}


def cmd_signal(args: argparse.Namespace, sessions: Any, settings: Settings) -> Any:
    """Broadcast a signal to every running instance waiting for it (and start signal-started processes)."""
    with sessions.begin() as session:
        return runtime.broadcast_signal(session, args.name, by=args.by, data=_json_arg(args.data))


def cmd_task(args: argparse.Namespace, sessions: Any, settings: Settings) -> Any:
    """Show a task and its form (fields with types, labels, defaults, options, constraints, properties)."""
    with sessions.begin() as session:
        details = runtime.task_details(session, args.task_id)
        row = details["task"]
        return {**runtime.task_dict(row), "documentation": details["documentation"],
                "form": [_field_json(f) for f in details["form"]]}


def _field_json(item: Any) -> dict[str, Any]:
    constraints = {"required": item.required, "readonly": item.readonly, "minlength": item.minlength,
                   "maxlength": item.maxlength, "min": item.min, "max": item.max}
    return {"id": item.id, "type": item.type, "label": item.label, "default": item.default,
            "options": [{"id": key, "name": name} for key, name in item.options],
            "constraints": {k: v for k, v in constraints.items() if v not in (None, False)},
            "properties": dict(item.properties)}


def cmd_stuck(args: argparse.Namespace, sessions: Any, settings: Settings) -> Any:
    """List running instances that nothing can move on (no task, timer, message, worker or incident)."""
    with sessions.begin() as session:
        return runtime.stuck_instances(session)


def cmd_instance(args: argparse.Namespace, sessions: Any, settings: Settings) -> Any:
    """Show an instance."""
    with sessions.begin() as session:
        return runtime.instance_summary(session, args.instance_id)


def cmd_history(args: argparse.Namespace, sessions: Any, settings: Settings) -> Any:
    """Show an instance's audit events."""
    with sessions.begin() as session:
        runtime.get_instance(session, args.instance_id)
        events = [audit.event_dict(e) for e in audit.history(session, args.instance_id)]
    if args.format == "csv":
        out = io.StringIO()
        writer = csv.writer(out)
        writer.writerow(["seq", "at", "kind", "actor", "element_id", "task_id", "data", "hash"])
        for e in events:
            writer.writerow([csv_safe(v) for v in (
                e["seq"], e["at"], e["kind"], e["actor"], e["element_id"] or "", e["task_id"] or "",
                json.dumps(e["data"], ensure_ascii=False), e["hash"])])
        return _Raw(out.getvalue())
    return events


def cmd_verify(args: argparse.Namespace, sessions: Any, settings: Settings) -> Any:
    """Check the audit hash chains."""
    with sessions.begin() as session:
        result = audit.verify(session, args.instance_id)
    data = {"ok": result.ok, "streams": result.streams, "events": result.events,
            "breaks": [b.__dict__ for b in result.breaks]}
    if not result.ok:
        first = result.breaks[0]
        raise CliError(f"audit chain broken in {first.stream} at event #{first.seq}"
                       f"{' (id ' + str(first.event_id) + ')' if first.event_id else ''}: {first.reason}",
                       EXIT_AUDIT, data)
    return data


def cmd_incidents(args: argparse.Namespace, sessions: Any, settings: Settings) -> Any:
    """List open incidents, or retry one."""
    with sessions.begin() as session:
        if args.retry is not None:
            incident = runtime.retry_incident(session, args.retry, by=args.by, data=_json_arg(args.data))
            return {"id": incident.id, "status": str(incident.status), "message": incident.message}
        return [{"id": i.id, "instance_id": i.instance_id, "element_id": i.element_id, "message": i.message,
                 "created_at": i.created_at.isoformat()} for i in runtime.open_incidents(session)]


def cmd_fire_timers(args: argparse.Namespace, sessions: Any, settings: Settings) -> Any:
    """Fire every timer due at the given instant."""
    if settings.is_production:
        raise NotAllowed("fire-timers --now moves the engine clock and is refused when POLKU_ENV=production")
    from . import timers

    now = _time_arg(args.now) or datetime.now(UTC)
    fired = timers.fire_due_timers(sessions, now=now, worker_id="cli")
    return {"now": now.isoformat(), "fired": fired}


def cmd_worker(args: argparse.Namespace, sessions: Any, settings: Settings) -> Any:
    """Run the timer worker until interrupted."""
    from . import timers

    _refuse_unsafe_production(sessions, settings)
    lease = timers.DEFAULT_LEASE if args.lease is None else timedelta(seconds=args.lease)
    timers.run_worker(sessions, poll_seconds=args.poll or settings.worker_poll_seconds, once=args.once,
                      lease=lease)
    return {"stopped": True}


def cmd_user(args: argparse.Namespace, sessions: Any, settings: Settings) -> Any:
    """Add a user."""
    from . import users

    with sessions.begin() as session:
        user = users.add_user(session, args.username, args.password, args.roles.split(","),
                              display_name=args.name)
        return {"username": user.username, "roles": sorted(user.role_set)}


def cmd_seed_demo(args: argparse.Namespace, sessions: Any, settings: Settings) -> Any:
    """Create the demo users and the demo office (customers, a year of cases, contacts) once."""
    from . import demo, users

    if settings.is_production:
        raise CliError("seed-demo makes accounts with published passwords and is refused when POLKU_ENV=production",
                       EXIT_REFUSED)
    with sessions.begin() as session:
        created = {u for u, _p, _r in users.seed_demo_users(session)}
    office = None
    with sessions.begin() as session:
        if demo.models_deployed(session):
            office = demo.seed_office(session)
    if office is None:
        print("  demo office: not made (deploy bpmn/ first)", file=sys.stderr)
    elif office["customers_created"]:
        print(f"  demo office: {office['customers_created']} customers, {office['cases_started']} cases, "
              f"{office['aftercare_started']} aftercare (one per ended service line, "
              f"{office['not_reached_recorded']} attempts not reached), "
              f"{office['tasks_completed']} tasks done, {office['timers_fired']} timers fired, "
              f"{office['contacts_logged']} contacts, {office['providers_created']} providers", file=sys.stderr)
    else:
        print(f"  demo office: already there ({office['customers_existing']} customers), nothing added",
              file=sys.stderr)
    for username, password, roles, _name in users.DEMO_USERS:
        print(f"  demo login: {username:<14} password: {password:<22} roles: {', '.join(roles)}", file=sys.stderr)
    logins = [{"username": u, "password": p, "roles": list(r), "new": u in created} for u, p, r, _n in users.DEMO_USERS]
    return {"users": logins, "office": office}


def cmd_serve(args: argparse.Namespace, sessions: Any, settings: Settings) -> Any:
    """Run the web UI under gunicorn (POLKU_WEB_WORKERS x POLKU_WEB_THREADS) with one embedded timer worker."""
    from webui.server import PolkuServer, dev_secret_key

    from .config import DEV_KEY_PREFIX

    if settings.secret_key.startswith(DEV_KEY_PREFIX):  # POLKU_SECRET_KEY not set
        if settings.is_production:
            raise CliError("POLKU_SECRET_KEY is required in production (every web process signs sign-ins with it)",
                           code=EXIT_INPUT)
        settings = replace(settings, secret_key=dev_secret_key())  # shared by every web process, kept in var/
    if not settings.is_production and args.host in LOOPBACK_HOSTS:  # plain http on this machine only
        settings = replace(settings, insecure_cookies=True)
    if args.workers:
        settings = replace(settings, web_workers=args.workers)
    if args.threads:
        settings = replace(settings, web_threads=args.threads)
    _refuse_unsafe_production(sessions, settings)
    sessions.kw["bind"].dispose()  # no pooled connection of this process may leak into the forked web processes
    print(f"Polku is running on http://{args.host}:{args.port}/ with {settings.web_workers} web processes "
          f"x {settings.web_threads} threads (Ctrl+C stops it)", file=sys.stderr)
    master = os.getpid()
    try:
        PolkuServer(settings, host=args.host, port=args.port, access_log=args.access_log).run()
    except SystemExit as done:  # gunicorn's master leaves by sys.exit once every process has stopped
        if os.getpid() != master:  # a web process leaving: not this command's result
            raise
        if done.code not in (None, 0):
            raise CliError(f"the web server stopped with exit status {done.code}", code=EXIT_SOFTWARE) from None
    return {"stopped": True}


LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")


def _refuse_unsafe_production(sessions: Any, settings: Settings) -> None:
    from .production import refuse_unsafe_start

    with sessions.begin() as session:
        refuse_unsafe_start(session, settings)


def cmd_check_production(args: argparse.Namespace, sessions: Any, settings: Settings) -> Any:
    """List what is unsafe for production; exit 1 if anything is."""
    from .production import problems

    with sessions.begin() as session:
        found = problems(session, settings)
    if found:
        for line in found:
            print(f"  unsafe: {line}", file=sys.stderr)
        raise CliError(f"{len(found)} thing(s) unsafe for production", EXIT_REFUSED, {"ok": False, "unsafe": found})
    return {"ok": True, "unsafe": []}


def cmd_sessions(args: argparse.Namespace, sessions: Any, settings: Settings) -> Any:
    """End every sign-in session of a user."""
    from . import users

    with sessions.begin() as session:
        ended = users.end_sessions(session, args.username, by=args.by)
    return {"username": args.username.strip().lower(), "ended": ended}


def cmd_remove_demo(args: argparse.Namespace, sessions: Any, settings: Settings) -> Any:
    """Deactivate every demo user (their passwords are published)."""
    from . import users

    with sessions.begin() as session:
        return {"deactivated": users.deactivate_demo_users(session, by=args.by)}


def cmd_external(args: argparse.Namespace, sessions: Any, settings: Settings) -> Any:
    """Work external tasks as a worker would: fetch, complete, fail, extend; list; unlock."""
    from . import external

    action = args.external_command
    with sessions.begin() as session:
        if action == "fetch":
            topics = [external.Topic(t, args.lock_seconds, tuple(args.variable) if args.variable else None)
                      for t in args.topic]
            return [t.as_dict() for t in external.fetch_and_lock(session, args.worker, topics, max_tasks=args.max)]
        if action == "list":
            rows = external.list_tasks(session, topic=args.topic, instance_id=args.instance,
                                       state=None if args.all else external.ExternalTaskState.OPEN)
            return [external.task_dict(r) for r in rows]
        if action == "complete":
            row = external.complete(session, args.task_id, args.worker, _json_arg(args.data))
        elif action == "fail":
            row = external.fail(session, args.task_id, args.worker, args.message, args.details, args.retries,
                                args.retry_timeout)
        elif action == "extend":
            row = external.extend_lock(session, args.task_id, args.worker, args.lock_seconds)
        else:
            row = external.unlock(session, args.task_id, by=args.by)
        result = external.task_dict(row)
        result["instance_status"] = str(runtime.get_instance(session, row.instance_id).status)
        return result


class _Raw(str):
    """Output printed as is, not as JSON."""


def build_parser() -> argparse.ArgumentParser:
    """Build the argument parser with every subcommand."""
    parser = argparse.ArgumentParser(prog="polku", description="Polku process engine")
    parser.add_argument("--json", action="store_true", help="print JSON (default when not a terminal)")
    sub = parser.add_subparsers(dest="command", required=True)

    def add(name: str, func: Callable[..., Any], help_text: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.set_defaults(func=func)
        return p

    add("init", cmd_init, "create or migrate the database")
    p = add("deploy", cmd_deploy, "validate and deploy .bpmn/.dmn files or folders")
    p.add_argument("paths", nargs="+")
    p.add_argument("--by", type=person, default="cli")
    p.add_argument("--check", action="store_true", help="validate only, deploy nothing")
    add("processes", cmd_processes, "list deployed processes and versions")
    p = add("start", cmd_start, "start a process instance")
    p.add_argument("process_id")
    p.add_argument("--data", help="start data as a JSON object (or @file.json)")
    p.add_argument("--business-key")
    p.add_argument("--version", type=int)
    p.add_argument("--by", type=person, default="cli")
    p = add("tasks", cmd_tasks, "list open tasks")
    p.add_argument("--instance", type=int)
    p.add_argument("--assignee")
    p.add_argument("--overdue", action="store_true")
    p = add("complete", cmd_complete, "complete a task")
    p.add_argument("task_id")
    p.add_argument("--data")
    p.add_argument("--by", type=person, required=True)
    p.add_argument("--covers", nargs="+", metavar="TASK_ID", default=[],
                   help="aftercare contact: also complete these other lines' contacts with the same conversation")
    p = add("action", cmd_action, "run a task action, e.g. action TASK customer_not_reached --data '{...}'")
    p.add_argument("task_id")
    p.add_argument("action_id")
    p.add_argument("--data", help="the action's form data as a JSON object (or @file.json)")
    p.add_argument("--by", type=person, required=True)
    for action in ("claim", "release", "assign"):
        p = add(action, cmd_claim, f"{action} a task")
        p.add_argument("task_id")
        p.add_argument("--by", type=person, required=True)
        if action == "assign":
            p.add_argument("--to", type=person, required=True)
        p.set_defaults(action=action)
    p = add("message", cmd_message, "deliver a message to waiting instances")
    p.add_argument("name")
    p.add_argument("--data")
    p.add_argument("--business-key")
    p.add_argument("--instance", type=int)
    p.add_argument("--by", type=person, default="cli")
    p = add("cancel", cmd_cancel, "cancel a running instance with a reason")
    p.add_argument("instance_id", type=int)
    p.add_argument("--reason", required=True)
    p.add_argument("--by", type=person, default="cli")
    p = add("signal", cmd_signal, "broadcast a signal to every instance waiting for it")
    p.add_argument("name")
    p.add_argument("--data", help="signal payload as a JSON object (or @file.json)")
    p.add_argument("--by", type=person, default="cli")
    add("stuck", cmd_stuck, "list running instances that nothing can move on")
    p = add("task", cmd_task, "show a task: task show ID prints its form as JSON")
    p.add_argument("action", choices=("show",))
    p.add_argument("task_id")
    p = add("instance", cmd_instance, "show an instance")
    p.add_argument("instance_id", type=int)
    p = add("history", cmd_history, "show an instance's audit events")
    p.add_argument("instance_id", type=int)
    p.add_argument("--format", choices=("json", "csv"), default="json")
    p = add("verify-audit", cmd_verify, "check the audit hash chains")
    p.add_argument("instance_id", type=int, nargs="?")
    p = add("incidents", cmd_incidents, "list open incidents or retry one")
    p.add_argument("--retry", type=int, metavar="INCIDENT_ID")
    p.add_argument("--data", help="data to merge before retrying (JSON)")
    p.add_argument("--by", type=person, default="cli")
    p = add("fire-timers", cmd_fire_timers, "fire every timer due at --now (not in production)")
    p.add_argument("--now", help="ISO 8601 instant; default: the real time")
    p = add("worker", cmd_worker, "run the timer worker")
    p.add_argument("--poll", type=float)
    p.add_argument("--once", action="store_true", help="one sweep, then exit")
    p.add_argument("--lease", type=float, metavar="SECONDS",
                   help="how long a claimed timer stays with this worker (default 30); a killed worker's "
                        "timers are taken up by the others after it")
    p = add("user", cmd_user, "add a user")
    p.add_argument("username")
    p.add_argument("--password", required=True)
    p.add_argument("--roles", required=True, help="comma-separated: expert,supervisor,designer,auditor,admin")
    p.add_argument("--name")
    add("seed-demo", cmd_seed_demo, "create the demo users and demo office, once (refused in production)")
    p = add("remove-demo", cmd_remove_demo, "deactivate every demo user")
    p.add_argument("--by", type=person, default="cli")
    add("check-production", cmd_check_production, "list what is unsafe for production; exit 1 if anything is")
    p = add("sessions", cmd_sessions, "end a user's sign-in sessions: sessions end USER")
    p.add_argument("action", choices=("end",))
    p.add_argument("username")
    p.add_argument("--by", type=person, default="cli")
    p = add("external", cmd_external, "external tasks: fetch, complete, fail, extend, list, unlock")
    ext = p.add_subparsers(dest="external_command", required=True)
    q = ext.add_parser("fetch", help="lock free tasks of the topics for a worker; print them with their variables")
    q.add_argument("--worker", required=True)
    q.add_argument("--topic", action="append", required=True, help="a topic (repeat for several)")
    q.add_argument("--lock-seconds", type=float, default=60.0, help="how long the worker holds them (default 60)")
    q.add_argument("--max", type=int, default=10, help="at most this many tasks (default 10)")
    q.add_argument("--variable", action="append", help="only this variable (repeat; default: all)")
    q = ext.add_parser("complete", help="complete a task this worker holds, with result variables")
    q.add_argument("task_id", type=int)
    q.add_argument("--worker", required=True)
    q.add_argument("--data", help="result variables as a JSON object (or @file.json)")
    q = ext.add_parser("fail", help="report a failure; at 0 retries left an incident opens")
    q.add_argument("task_id", type=int)
    q.add_argument("--worker", required=True)
    q.add_argument("--message", required=True)
    q.add_argument("--details")
    q.add_argument("--retries", type=int, help="tries left (default: one fewer than before, 0 at first)")
    q.add_argument("--retry-timeout", type=float, default=0.0, metavar="SECONDS",
                   help="fetchable again after this many seconds")
    q = ext.add_parser("extend", help="keep a task this worker holds for N more seconds from now")
    q.add_argument("task_id", type=int)
    q.add_argument("--worker", required=True)
    q.add_argument("--lock-seconds", type=float, required=True)
    q = ext.add_parser("list", help="list open external tasks")
    q.add_argument("--topic")
    q.add_argument("--instance", type=int)
    q.add_argument("--all", action="store_true", help="completed and cancelled ones too")
    q = ext.add_parser("unlock", help="take the lock off a task (administrators)")
    q.add_argument("task_id", type=int)
    q.add_argument("--by", type=person, default="cli")
    from .cli_outreach import register as register_outreach  # contact log, worklists, schedules, e-mail

    register_outreach(add)
    from .cli_tokens import add_parser as add_token_parser

    add_token_parser(add)  # polku token create|list|revoke
    from .cli_providers import add_parser as add_provider_parser

    add_provider_parser(add)  # polku provider add|edit|list|feedback|report
    from .cli_survey import add_parser as add_survey_parser

    add_survey_parser(add)  # polku survey record|import|list, polku kpi
    p = add("serve", cmd_serve, "run the web UI on http://HOST:PORT")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=5000)
    p.add_argument("--workers", type=int, help="web processes (default POLKU_WEB_WORKERS)")
    p.add_argument("--threads", type=int, help="threads per web process (default POLKU_WEB_THREADS)")
    p.add_argument("--access-log", metavar="FILE", help="write one line per request ('-': standard output)")
    return parser


def _emit(value: Any, as_json: bool) -> None:
    if isinstance(value, _Raw):
        sys.stdout.write(value)
        return
    if as_json:
        print(json.dumps(value, ensure_ascii=False, indent=None if not sys.stdout.isatty() else 2, default=str))
    else:
        print(json.dumps(value, ensure_ascii=False, indent=2, default=str))


def main(argv: Sequence[str] | None = None, settings: Settings | None = None) -> int:
    """Run one polku command; return the exit code."""
    parser = build_parser()
    usage = io.StringIO()
    try:
        with contextlib.redirect_stderr(usage):
            args = parser.parse_args(argv)
    except SystemExit as done:  # a usage error: argparse's last line says what is wrong, once
        lines = usage.getvalue().strip().splitlines()
        if lines:
            print(lines[-1], file=sys.stderr)
        return done.code if isinstance(done.code, int) else EXIT_INPUT
    settings = settings or Settings.from_env()
    as_json = args.json or not sys.stdout.isatty()
    try:
        engine = make_engine(settings.database_url)
        upgrade(engine)
        from . import limits

        limits.configure(settings)  # every POLKU_SCRIPT_* limit, for this command and the worker
        sessions = make_sessions(engine)
        if getattr(args, "by", None) is not None:  # --by is self-declared: the audit names the OS user too
            sessions.configure(info={"audit_origin": f"cli, os user {_os_user()}"})
        try:
            result = args.func(args, sessions, settings)
        except QueuedWriteFailed as err:  # rows queued by timer firings (seed-demo's), written later: say the
            raise err.error from err  # driver's error itself, transient or not, as for any other statement
    except CliError as err:
        print(f"polku: {err}", file=sys.stderr)
        if err.detail is not None:
            _emit(err.detail, as_json)
        return err.code
    except InvalidModel as err:
        print(f"polku: invalid model: {err}", file=sys.stderr)
        _emit({"problems": [p.as_dict() for p in err.problems]}, as_json)
        return EXIT_MODEL
    except FormInvalid as err:
        fields = ", ".join(f"{k} ({v})" for k, v in err.errors.items())
        print(f"polku: form invalid: {fields}", file=sys.stderr)
        _emit({"errors": err.errors}, as_json)
        return EXIT_INPUT
    except StaleDataError:
        print("polku: someone else changed this case at the same time; try again", file=sys.stderr)
        return EXIT_REFUSED
    except InvalidInput as err:
        print(f"polku: {err}", file=sys.stderr)
        return EXIT_INPUT
    except EngineError as err:
        print(f"polku: {err}", file=sys.stderr)
        return EXIT_REFUSED
    except KeyboardInterrupt:
        return 130
    except (DBAPIError, SATimeoutError) as err:
        if is_transient(err):
            print(f"polku: the database is not available just now, nothing was changed; try again later "
                  f"({_first_line(err)})", file=sys.stderr)
            return EXIT_TEMPFAIL
        print(f"polku: database error: {_first_line(err)}", file=sys.stderr)
        return EXIT_SOFTWARE
    except Exception as err:  # noqa: BLE001 - a bug: one line here, not a traceback
        print(f"polku: internal error ({type(err).__name__}): {_first_line(err)}", file=sys.stderr)
        return EXIT_SOFTWARE
    _emit(result, as_json)
    return 0


def _os_user() -> str:
    """Return the operating-system user running this command."""
    try:
        return pwd.getpwuid(os.getuid()).pw_name
    except (KeyError, OSError):
        return getpass.getuser() if os.environ.get("USER") or os.environ.get("LOGNAME") else str(os.getuid())


def _first_line(err: BaseException) -> str:
    """Return the first line of an error's message (driver errors carry SQL and links below it)."""
    orig = getattr(err, "orig", None)
    text = str(orig if orig is not None else err).strip()
    return (text.splitlines() or [type(err).__name__])[0][:300]


if __name__ == "__main__":
    sys.exit(main())
