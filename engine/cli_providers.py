"""`polku provider …`: the providers registry from the command line (see `engine.providers`).

    polku provider add --name TEXT --business-id 1234567-8 --kind training|consultant|partner
                       [--contact-person TEXT] [--email ADDR] [--phone TEXT] [--inactive] [--by WHO]
    polku provider edit ID [--name …] [--business-id …] [--kind …] [--contact-person …] [--email …]
                       [--phone …] [--active | --inactive] [--by WHO]
    polku provider list [--q TEXT] [--kind KIND] [--active]
    polku provider feedback ID --text TEXT [--given-on YYYY-MM-DD] [--by WHO]
    polku provider report ID

A wrong field exits 2 with every field's message (as every form of the CLI).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

from . import providers
from .cli_args import person
from .config import Settings
from .provider_models import Provider

EDITABLE = ("name", "business_id", "kind", "contact_person", "email", "phone")


def provider_dict(p: Provider) -> dict[str, Any]:
    """Return a provider as JSON-able data."""
    return {"id": p.id, "name": p.name, "business_id": p.business_id, "kind": p.kind,
            "contact_person": p.contact_person, "email": p.email, "phone": p.phone, "active": p.active}


def report_dict(report: providers.ProviderReport) -> dict[str, Any]:
    """Return a provider report as JSON-able data (the figures of the report page)."""
    return {"provider": provider_dict(report.provider),
            "services_delivered": len(report.deliveries),
            "deliveries": [{"instance_id": d.instance_id, "business_id": d.business_key, "process_id": d.process_id,
                            "closed_at": d.closed_at.isoformat(), "closed_by": d.closed_by,
                            "ended_on": d.ended_on, "outcome": d.outcome} for d in report.deliveries],
            "aftercare_contacts": len(report.aftercare), "aftercare_reached": report.aftercare_reached,
            "ratings": len(report.ratings), "rating_average": report.rating_average,
            "follow_up_ratings": len(report.follow_up_ratings), "follow_up_average": report.follow_up_average,
            "service_met_need": dict(report.met_need), "new_needs": dict(report.new_needs),
            "aftercare_with_new_needs": report.with_new_needs,
            "aftercare": [{"instance_id": a.instance_id, "business_id": a.business_key, "status": a.status,
                           "service_line": a.variables.get("service_line"), "rating": a.variables.get("service_rating"),
                           "texts": dict(a.texts)} for a in report.aftercare],
            "provider_feedback": [{"given_on": f.given_on.isoformat(), "text": f.text, "recorded_by": f.recorded_by}
                                  for f in report.feedback]}


def cmd_provider(args: argparse.Namespace, sessions: Any, settings: Settings) -> Any:
    """Add, edit, list providers, record their feedback, print a provider's report."""
    with sessions.begin() as session:
        if args.provider_command == "list":
            rows = providers.list_providers(session, args.q or "", kind=args.kind, active_only=args.active)
            return [provider_dict(p) for p in rows]
        if args.provider_command == "add":
            data = {k: getattr(args, k) for k in EDITABLE}
            data["active"] = not args.inactive
            return provider_dict(providers.create_provider(session, data, by=args.by))
        if args.provider_command == "edit":
            current = providers.get_provider(session, args.provider_id)
            data = {k: getattr(args, k) if getattr(args, k) is not None else getattr(current, k) for k in EDITABLE}
            data["active"] = current.active if args.active is None else args.active
            return provider_dict(providers.update_provider(session, args.provider_id, data, by=args.by))
        if args.provider_command == "feedback":
            row = providers.record_feedback(session, args.provider_id, args.text, by=args.by, given_on=args.given_on)
            return {"id": row.id, "provider_id": row.provider_id, "given_on": row.given_on.isoformat(),
                    "text": row.text, "recorded_by": row.recorded_by}
        return report_dict(providers.provider_report(session, args.provider_id))


def add_parser(add: Callable[..., argparse.ArgumentParser]) -> None:
    """Add `provider` with its subcommands to the CLI (`add(name, func, help)` from `engine.cli`)."""
    kinds = [k.value for k in providers.ProviderKind]
    p = add("provider", cmd_provider, "the providers registry: training organisations, consultants, partners")
    sub = p.add_subparsers(dest="provider_command", required=True)
    for name, help_text in (("add", "register a provider"), ("edit", "change a provider's fields")):
        q = sub.add_parser(name, help=help_text)
        if name == "edit":
            q.add_argument("provider_id", type=int)
        q.add_argument("--name", required=name == "add")
        q.add_argument("--business-id", dest="business_id", required=name == "add")
        q.add_argument("--kind", choices=kinds, required=name == "add")
        q.add_argument("--contact-person", dest="contact_person")
        q.add_argument("--email")
        q.add_argument("--phone")
        if name == "add":
            q.add_argument("--inactive", action="store_true", help="register it as not in use")
        else:
            q.add_argument("--active", dest="active", action="store_true", default=None, help="take it into use")
            q.add_argument("--inactive", dest="active", action="store_false", help="no longer offered in forms")
        q.add_argument("--by", type=person, default="cli")
    q = sub.add_parser("list", help="list providers by name")
    q.add_argument("--q", help="part of the name, or the start of the business ID")
    q.add_argument("--kind", choices=kinds)
    q.add_argument("--active", action="store_true", help="only the active ones")
    q = sub.add_parser("feedback", help="record feedback the provider gave the office")
    q.add_argument("provider_id", type=int)
    q.add_argument("--text", required=True)
    q.add_argument("--given-on", dest="given_on", help="the day it was given (default today)")
    q.add_argument("--by", type=person, default="cli")
    q = sub.add_parser("report", help="services delivered, customers' ratings and feedback, new needs, own feedback")
    q.add_argument("provider_id", type=int)
