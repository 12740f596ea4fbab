"""What a refused or a signed-in user sees: the friendly 403 page, home links only to open areas.

Which roles reach which route (every route × method × role, visitors too) is the one table in
tests/webui/test_route_roles.py, written out there rather than read from the `@login_required`
decorators.
"""

from __future__ import annotations

import pytest


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


def test_every_page_menu_follows_the_signed_in_users_roles_in_one_app(app, client, login_as, sessions):
    from engine import users

    login_as("expert")
    assert 'href="/admin/users"' not in client.get("/customers/").get_data(as_text=True)
    with sessions.begin() as s:
        users.add_user(s, "paakayttaja", "salasana-123456", ["admin", "expert"])
    admin = app.test_client()
    assert admin.post("/login", data={"username": "paakayttaja", "password": "salasana-123456"}).status_code == 302
    menu = admin.get("/customers/").get_data(as_text=True)
    assert 'href="/admin/users"' in menu and 'href="/customers/"' in menu
    assert 'href="/admin/users"' not in client.get("/customers/").get_data(as_text=True)  # the expert's own again


def _menu(page: str) -> list[tuple[str, bool, str]]:
    import re

    nav = page.split('<nav class="main-nav"', 1)[1].split("</nav>", 1)[0]
    return [(href, current == ' aria-current="page"', label)
            for href, current, label in re.findall(r'<li><a href="([^"]+)"((?: aria-current="page")?)>([^<]+)</a>', nav)]


def test_the_menu_marks_the_area_of_the_page_and_speaks_the_users_language(client, login_as):
    login_as("supervisor")
    menu = _menu(client.get("/tasks/").get_data(as_text=True))
    assert ("/tasks/", True, "Tehtävät") in menu and ("/customers/", False, "Asiakkaat") in menu
    assert [current for _h, current, _l in menu].count(True) == 1
    menu = _menu(client.get("/customers/").get_data(as_text=True))
    assert ("/tasks/", False, "Tehtävät") in menu and ("/customers/", True, "Asiakkaat") in menu
    client.post("/language", data={"lang": "en"})
    menu = _menu(client.get("/supervisor/").get_data(as_text=True))
    assert ("/tasks/", False, "Tasks") in menu and ("/supervisor/", True, "Supervisor view") in menu
    client.post("/language", data={"lang": "fi"})
    assert ("/supervisor/", True, "Esimiesnäkymä") in _menu(client.get("/supervisor/").get_data(as_text=True))


def test_the_page_frames_addresses_follow_the_mount_point(client, login_as):
    """The frame's links and the menu are kept per mount point (a proxy may serve Polku under a prefix)."""
    login_as("supervisor")
    for prefix in ("", "/polku", ""):
        page = client.get("/tasks/", base_url=f"http://localhost{prefix}").get_data(as_text=True)
        assert f'href="{prefix}/static/polku.css"' in page and f'action="{prefix}/logout"' in page
        assert f'<a class="brand" href="{prefix}/">' in page
        assert (f"{prefix}/tasks/", True, "Tehtävät") in _menu(page)


def test_the_frames_kept_addresses_stay_few_whatever_mount_points_arrive(app, client, login_as):
    login_as("supervisor")
    for n in range(300):
        assert f'href="/m{n}/static/polku.css"' in client.get("/tasks/", base_url=f"http://localhost/m{n}").get_data(
            as_text=True)
    assert 0 < len(app.extensions["polku_nav"]) <= 256 and 0 < len(app.extensions["polku_fixed_urls"]) <= 256
