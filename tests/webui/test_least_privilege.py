"""Least-privilege reads: route × role × object, written out as a table and compared with the app.

The table is the specification: it does not come from the decorators. "own" objects belong to
the signed-in expert (their customer, their assigned task), "colleague" is a task of the expert
role held by another expert (readable, but without the case's data), "other" is a customer and
case of another expert, "supervisor" a task of the supervisor role, "free" a customer without a
responsible expert (any expert may take it).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from engine import customers, deploy, runtime, users
from engine.inbox import claim
from engine.inbox import tasks as open_tasks
from engine.models import Task

BPMN = Path(__file__).parents[2] / "bpmn"
PASSWORD = "salasana-123"
START = {"contact_channel": "phone_service", "contact_reason": "Kasvusuunnitelma"}

# (method, route, object, {role: expected status})
E, S, AU, AD, D = "expert", "supervisor", "auditor", "admin", "designer"
MATRIX = [
    ("GET", "/tasks/{own_task}", "own task", {E: 200, S: 200, AU: 403, AD: 200, D: 403}),
    ("GET", "/tasks/{colleague_task}", "colleague's task", {E: 200, S: 200, AU: 403, AD: 200, D: 403}),
    ("GET", "/tasks/{supervisor_task}", "supervisor task", {E: 404, S: 200, AU: 403, AD: 200, D: 403}),
    ("POST", "/tasks/{supervisor_task}", "supervisor task", {E: 404, S: 422, AU: 403, AD: 422, D: 403}),
    ("GET", "/customers/{own_customer}", "own customer", {E: 200, S: 200, AU: 403, AD: 200, D: 403}),
    ("GET", "/customers/{free_customer}", "free customer", {E: 200, S: 200, AU: 403, AD: 200, D: 403}),
    ("GET", "/customers/{other_customer}", "other customer", {E: 404, S: 200, AU: 403, AD: 200, D: 403}),
    ("GET", "/customers/{other_customer}/edit", "other customer", {E: 404, S: 200, AU: 403, AD: 200, D: 403}),
    ("POST", "/customers/{other_customer}/edit", "other customer", {E: 404, S: 422, AU: 403, AD: 422, D: 403}),
    ("GET", "/customers/{other_customer}/start", "other customer", {E: 404, S: 200, AU: 403, AD: 200, D: 403}),
    ("GET", "/customers/{own_customer}/start", "own customer", {E: 200, S: 200, AU: 403, AD: 200, D: 403}),
    ("GET", "/audit/instances/{other_case}", "other case", {E: 403, S: 403, AU: 200, AD: 200, D: 403}),
    ("GET", "/audit/instances/{own_case}", "own case", {E: 403, S: 403, AU: 200, AD: 200, D: 403}),
    ("GET", "/incidents/", "incidents", {E: 403, S: 200, AU: 403, AD: 200, D: 403}),
]
# what the customer list shows each role: {role: (names shown, names hidden)}
CUSTOMER_LIST = {
    E: ({"Oma Oy", "Vapaa Oy"}, {"Muu Oy"}),
    S: ({"Oma Oy", "Vapaa Oy", "Muu Oy"}, set()),
    AD: ({"Oma Oy", "Vapaa Oy", "Muu Oy"}, set()),
}
LOGINS = {E: "oma", S: "esimies", AU: "tarkastaja", AD: "paakayttaja", D: "suunnittelija"}


@pytest.fixture
def office(sessions) -> dict[str, object]:
    """Two experts, three customers, cases with an own, a colleague's and a supervisor task."""
    with sessions.begin() as s:
        files = {p.name: p.read_bytes() for p in BPMN.iterdir() if p.suffix in (".bpmn", ".dmn")}
        deploy.deploy_files(s, files, by="test")
        for username, roles in (("oma", [E]), ("muu", [E]), ("esimies", [S]), ("tarkastaja", [AU]),
                                ("paakayttaja", [AD]), ("suunnittelija", [D])):
            users.add_user(s, username, PASSWORD, roles)
        ids = {}
        for key, name, business_id, expert in (("own", "Oma Oy", "0737546-2", "oma"),
                                               ("other", "Muu Oy", "2617416-4", "muu"),
                                               ("free", "Vapaa Oy", "1572860-0", None)):
            customer = customers.create_customer(s, {"name": name, "business_id": business_id,
                                                     "responsible_expert": expert or ""}, by="test")
            ids[f"{key}_customer"] = customer.id
            ids[f"{key}_id"] = business_id

    def start(business_id: str, name: str) -> tuple[int, str]:
        with sessions.begin() as s:
            data = {**START, "business_id": business_id, "company_name": name}
            instance = runtime.start_instance(s, "customer_service", by="test", data=data, business_key=business_id)
            return instance.id, open_tasks(s, instance_id=instance.id)[0].id

    ids["own_case"], ids["own_task"] = start(ids["own_id"], "Oma Oy")
    ids["other_case"], ids["colleague_task"] = start(ids["other_id"], "Muu Oy")
    _case, ids["supervisor_task"] = start(ids["other_id"], "Muu Oy")
    with sessions.begin() as s:
        claim(s, ids["own_task"], by="oma", roles={E})
        claim(s, ids["colleague_task"], by="muu", roles={E})
        s.get(Task, ids["supervisor_task"]).candidate_role = "supervisor"
    return ids


def _sign_in(client, role: str) -> None:
    response = client.post("/login", data={"username": LOGINS[role], "password": PASSWORD})
    assert response.status_code == 302


@pytest.mark.parametrize("role", [E, S, AU, AD, D])
def test_route_role_object_matrix(client, office, role):
    _sign_in(client, role)
    found = {}
    for method, route, what, expected in MATRIX:
        url = route.format(**office)
        response = client.get(url) if method == "GET" else client.post(url, data={})
        found[(method, route, what)] = response.status_code
        if response.status_code in (403, 404):
            body = response.get_data(as_text=True)
            assert "Muu Oy" not in body and "2617416-4" not in body, (method, url)  # no case data
    wanted = {(m, r, w): e[role] for m, r, w, e in MATRIX}
    assert found == wanted


def test_a_colleagues_task_opens_without_the_case_data(client, office):
    _sign_in(client, E)
    page = client.get(f"/tasks/{office['colleague_task']}").get_data(as_text=True)
    assert "Muu Oy" not in page and "2617416-4" not in page and "Kasvusuunnitelma" not in page
    own = client.get(f"/tasks/{office['own_task']}").get_data(as_text=True)
    assert "Oma Oy" in own and "Kasvusuunnitelma" in own


@pytest.mark.parametrize("role", sorted(CUSTOMER_LIST))
def test_customer_list_shows_only_readable_customers(client, office, role):
    _sign_in(client, role)
    page = client.get("/customers/").get_data(as_text=True)
    shown, hidden = CUSTOMER_LIST[role]
    assert all(name in page for name in shown), role
    assert not any(name in page for name in hidden), role
    search = client.get("/customers/?q=Oy").get_data(as_text=True)
    assert not any(name in search for name in hidden), role


def test_an_expert_reads_a_case_once_it_becomes_theirs(client, office, sessions):
    _sign_in(client, E)
    assert client.get(f"/customers/{office['other_customer']}").status_code == 404
    with sessions.begin() as s:  # the supervisor hands the other customer's task to this expert
        s.get(Task, office["colleague_task"]).assignee = "oma"
    page = client.get(f"/customers/{office['other_customer']}")
    assert page.status_code == 200
    body = page.get_data(as_text=True)
    assert body.count("Yritysasiakkaan palveluprosessi #") == 1  # only the case that is theirs
    task_page = client.get(f"/tasks/{office['colleague_task']}").get_data(as_text=True)
    assert "Muu Oy" in task_page
