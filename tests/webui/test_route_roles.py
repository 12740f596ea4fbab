"""Route × method × role, written out here and compared with what the app does for every route.

This table is the specification: it is not read from the `@login_required` decorators, so opening
an admin page to every signed-in role fails here. A route the app registers but the table lacks
fails too: add every new route (with the roles meant to reach it) to ROUTES. The REST API
(/api/v1, bearer tokens) is covered by tests/api; least-privilege reads of single objects by
tests/webui/test_least_privilege.py.
"""

from __future__ import annotations

import pytest

from engine import customers, users

E, S, AU, AD, D = "expert", "supervisor", "auditor", "admin", "designer"
ALL = frozenset(users.ROLES)
WORK = frozenset({E, S, AD})  # customer work
PUBLIC = None  # no sign-in needed

# endpoint -> (methods, roles that reach it; PUBLIC = visitors too)
ROUTES: dict[str, tuple[set[str], frozenset[str] | None]] = {
    "static": ({"GET"}, PUBLIC),
    "auth.login": ({"GET", "POST"}, PUBLIC),
    "auth.logout": ({"POST"}, PUBLIC),
    "home.language": ({"POST"}, PUBLIC),
    "home.index": ({"GET"}, ALL),
    "vendor.asset": ({"GET"}, ALL),
    "outreach.notifications": ({"GET"}, ALL),
    "outreach.mark_read": ({"POST"}, ALL),
    "outreach.save_settings": ({"POST"}, ALL),
    "tokens.index": ({"GET", "POST"}, frozenset({E, S, AD, D})),
    "outreach.absences_page": ({"GET", "POST"}, WORK),
    "outreach.take_over": ({"POST"}, WORK),
    "outreach.log_contact": ({"POST"}, WORK),
    "outreach.worklists": ({"GET"}, WORK),
    "outreach.handle_company": ({"POST"}, WORK),
    "outreach.import_companies": ({"POST"}, WORK),
    "outreach.office_settings": ({"GET", "POST"}, frozenset({S, AD})),
    "outreach.mail_outbox": ({"GET", "POST"}, frozenset({AD})),
    "admin.users_list": ({"GET"}, frozenset({AD})),
    "admin.edit_user": ({"GET", "POST"}, frozenset({AD})),
    "admin.reset_password": ({"POST"}, frozenset({AD})),
    "admin.end_sessions": ({"POST"}, frozenset({AD})),
    "admin.create_user": ({"GET", "POST"}, frozenset({AD})),
    "audit.index": ({"GET"}, frozenset({AU, AD})),
    "audit.chain": ({"GET"}, frozenset({AU, AD})),
    "audit.export": ({"GET"}, frozenset({AU, AD})),
    "audit.instance": ({"GET"}, frozenset({AU, AD})),
    "audit.instance_export": ({"GET"}, frozenset({AU, AD})),
    "audit.version": ({"GET"}, frozenset({AU, AD})),
    "audit.kpis": ({"GET"}, frozenset({S, AU, AD})),
    "audit.kpi_csv": ({"GET"}, frozenset({S, AU, AD})),
    "survey.record": ({"POST"}, frozenset({S, AD})),
    "survey.import_file": ({"POST"}, frozenset({S, AD})),
    "customers.index": ({"GET"}, WORK),
    "customers.show": ({"GET"}, WORK),
    "customers.edit": ({"GET", "POST"}, WORK),
    "customers.start": ({"GET", "POST"}, WORK),
    "customers.create": ({"GET", "POST"}, WORK),
    "customers.without_expert": ({"GET"}, WORK),
    "customers.change_expert": ({"POST"}, WORK),
    "providers.index": ({"GET"}, frozenset({E, S, AU, AD})),
    "providers.show": ({"GET"}, frozenset({E, S, AU, AD})),
    "providers.create": ({"GET", "POST"}, WORK),
    "providers.edit": ({"GET", "POST"}, WORK),
    "providers.add_feedback": ({"POST"}, WORK),
    "designer.index": ({"GET"}, frozenset({D, AD})),
    "designer.save_draft": ({"POST"}, frozenset({D, AD})),
    "designer.draft": ({"GET"}, frozenset({D, AD})),
    "designer.delete_draft": ({"POST"}, frozenset({D, AD})),
    "designer.deploy_draft": ({"POST"}, frozenset({D, AD})),
    "designer.review": ({"GET"}, frozenset({D, AD})),
    "designer.migrate_instances": ({"POST"}, frozenset({D, AD})),
    "designer.migration": ({"GET"}, frozenset({D, AD})),
    "designer.upload": ({"POST"}, frozenset({D, AD})),
    "designer.validate": ({"POST"}, frozenset({D, AD})),
    "designer.version": ({"GET"}, frozenset({D, AD})),
    "designer.download": ({"GET"}, frozenset({D, AD})),
    "designer.edit_version": ({"GET"}, frozenset({D, AD})),
    "incidents.index": ({"GET"}, frozenset({S, AD})),
    "incidents.retry": ({"POST"}, frozenset({S, AD})),
    "supervisor.overview": ({"GET"}, frozenset({S, AD})),
    "tasks.inbox": ({"GET"}, WORK),
    "tasks.task": ({"GET", "POST"}, WORK),
    "tasks.assign_task": ({"GET", "POST"}, frozenset({S, AD})),
    "tasks.claim_task": ({"GET", "POST"}, WORK),
    "tasks.release_task": ({"GET", "POST"}, WORK),
    "tasks.cancel_case": ({"GET", "POST"}, WORK),
    "tasks.run_action": ({"GET", "POST"}, WORK),
    "tasks.aftercare": ({"GET"}, WORK),
}
METHODS = {"GET", "POST", "PUT", "PATCH", "DELETE"}


@pytest.fixture
def url_values(sessions):
    """Return a real value for every URL argument a route may take."""
    with sessions.begin() as s:
        customer = customers.create_customer(s, {"name": "Taulukko Oy", "business_id": "0737546-2"}, by="t")
        users.add_user(s, "target-user", "salasana-123", ["expert"])
        return {"customer_id": customer.id, "username": "target-user", "filename": "polku.css",
                "task_id": "no-such-task", "version_id": 999, "draft_id": 999, "process_id": "no-such-process",
                "instance_id": 999, "fmt": "csv", "chart": "done", "name": "bpmn-js/dist/assets/bpmn-js.css",
                "incident_id": 999, "company_id": 999, "provider_id": 999, "action_id": "customer_not_reached"}


def _rules(app):
    return [r for r in app.url_map.iter_rules() if not r.endpoint.startswith("api.")]


def _request(client, method: str, url: str):
    response = client.get(url) if method == "GET" else client.post(url, data={})
    response.close()  # a static file response holds its file open until closed
    return response


def test_the_table_names_exactly_the_routes_and_methods_the_app_has(app):
    found: dict[str, set[str]] = {}
    for rule in _rules(app):
        found.setdefault(rule.endpoint, set()).update(rule.methods & METHODS)
    assert {e: m for e, (m, _r) in ROUTES.items()} == found, "add the new route to ROUTES with its roles"


def test_a_visitor_reaches_only_the_public_routes(client, app, url_values):
    for rule in _rules(app):
        methods, roles = ROUTES[rule.endpoint]
        for method in sorted(rule.methods & methods):
            response = _request(client, method, rule.build({k: url_values[k] for k in rule.arguments},
                                                           append_unknown=False)[1])
            location = response.headers.get("Location", "")
            if roles is PUBLIC:
                assert not location.startswith("/login?next="), (method, rule.endpoint)
            else:
                assert response.status_code == 302 and location.startswith("/login?next="), (method, rule.endpoint)


@pytest.mark.parametrize("role", users.ROLES)
def test_each_role_reaches_exactly_the_routes_the_table_gives_it(app, client, login_as, url_values, role):
    login_as(role)
    for rule in _rules(app):
        methods, roles = ROUTES[rule.endpoint]
        if roles is PUBLIC or rule.endpoint == "auth.logout":
            continue
        url = rule.build({k: url_values[k] for k in rule.arguments}, append_unknown=False)[1]
        for method in sorted(rule.methods & methods):
            response = _request(client, method, url)
            if role in roles:
                assert response.status_code not in (401, 403), (role, method, rule.endpoint)
                assert not response.headers.get("Location", "").startswith("/login"), (role, method, rule.endpoint)
            else:
                assert response.status_code == 403, (role, method, rule.endpoint, response.status_code)
