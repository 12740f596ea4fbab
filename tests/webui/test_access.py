"""Every route × every role: the route names its roles, others get 403, visitors go to sign-in."""

from __future__ import annotations

import pytest

from engine import customers, users

PUBLIC = {"static", "auth.login", "auth.logout", "home.language"}


@pytest.fixture
def url_values(sessions):
    """Return a real value for every URL argument a route may take."""
    with sessions.begin() as s:
        customer = customers.create_customer(s, {"name": "Matriisi Oy", "business_id": "0737546-2"}, by="t")
        users.add_user(s, "target-user", "salasana-123", ["expert"])
        return {"customer_id": customer.id, "username": "target-user", "filename": "polku.css",
                "task_id": "no-such-task", "version_id": 999, "draft_id": 999, "process_id": "no-such-process",
                "instance_id": 999, "fmt": "csv", "chart": "done", "name": "bpmn-js/dist/assets/bpmn-js.css",
                "incident_id": 999, "company_id": 999}


def _protected(app):
    # the REST API (/api/v1) takes bearer tokens, never the sign-in cookie: tests/api checks its roles
    return [r for r in app.url_map.iter_rules() if r.endpoint not in PUBLIC and not r.endpoint.startswith("api.")]


def _url(rule, values):
    missing = set(rule.arguments) - set(values)
    assert not missing, f"add a value for {missing} of {rule.endpoint} to url_values"
    return rule.build({k: values[k] for k in rule.arguments}, append_unknown=False)[1]


def _request(client, rule, method, url):
    return client.get(url) if method == "GET" else client.post(url, data={})


def test_every_route_but_the_public_ones_declares_its_roles(app):
    for rule in _protected(app):
        assert hasattr(app.view_functions[rule.endpoint], "polku_roles"), f"{rule.endpoint} lacks @login_required"


def test_visitor_is_sent_to_sign_in_from_every_protected_route(app, client, url_values):
    for rule in _protected(app):
        for method in sorted(rule.methods & {"GET", "POST"}):
            response = _request(client, rule, method, _url(rule, url_values))
            assert response.status_code == 302, (method, rule.endpoint)
            assert response.headers["Location"].startswith("/login?next="), (method, rule.endpoint)


@pytest.mark.parametrize("role", users.ROLES)
def test_each_role_reaches_exactly_the_routes_that_name_it(app, client, login_as, url_values, role):
    login_as(role)
    for rule in _protected(app):
        roles = app.view_functions[rule.endpoint].polku_roles
        allowed = not roles or role in roles
        for method in sorted(rule.methods & {"GET", "POST"}):
            response = _request(client, rule, method, _url(rule, url_values))
            if allowed:
                assert response.status_code not in (401, 403), (role, method, rule.endpoint)
                assert not response.headers.get("Location", "").startswith("/login"), (role, method, rule.endpoint)
            else:
                assert response.status_code == 403, (role, method, rule.endpoint)


def test_forbidden_page_is_friendly_and_translated(client, login_as):
    login_as("designer")
    response = client.get("/customers/")
    assert response.status_code == 403
    assert "Sinulla ei ole pääsyä tälle sivulle" in response.get_data(as_text=True)


@pytest.mark.parametrize("role, visible, hidden", [
    ("expert", ["/customers/"], ["/admin/users"]),
    ("admin", ["/customers/", "/admin/users"], []),
    ("auditor", [], ["/customers/", "/admin/users"]),
])
def test_home_links_only_to_areas_the_roles_open(client, login_as, role, visible, hidden):
    login_as(role)
    page = client.get("/").get_data(as_text=True)
    for url in visible:
        assert f'href="{url}"' in page
    for url in hidden:
        assert f'href="{url}"' not in page
