"""Locust users for bench/http.py (run by it: `locust -f bench/locust/locustfile.py --headless ...`).

Experts sign in once each (sign-in is throttled per address only on failures), then work as the UI
leads them: open the group inbox, open one of its tasks at random, complete it with valid data; the
app answers a completion with a redirect to the case's next task when it is theirs (`tasks._go_on`),
which they open and complete in turn, and with the inbox when there is none. One supervisor refreshes
the supervisor view. Accounts come from POLKU_BENCH_USERS ("name:password,..."; the first is the
supervisor) and are handed out one per simulated user. FastHttpUser (geventhttpclient) keeps the load
tool's own CPU per request low: it shares the machine with the server.
"""

from __future__ import annotations

import os
import random
import re
import threading

from locust import FastHttpUser, between, task

CSRF = re.compile(r'<meta name="csrf-token" content="([^"]+)">')
TASK_LINK = re.compile(r'href="/tasks/([0-9a-f-]{36})"')
NEXT_TASK = re.compile(r"/tasks/([0-9a-f-]{36})$")  # a completion's redirect to the case's next task
ACCOUNTS = [pair.split(":", 1) for pair in os.environ.get("POLKU_BENCH_USERS", "").split(",") if pair]
THINK = float(os.environ.get("POLKU_BENCH_THINK", "0.2"))  # an expert's pause between tasks: 0 to THINK seconds
_lock = threading.Lock()
_next = {"expert": 1}


def _sign_in(user: FastHttpUser, username: str, password: str) -> None:
    page = user.client.get("/login", name="sign-in form").text
    token = CSRF.search(page)[1]
    with user.client.post("/login", data={"csrf_token": token, "username": username, "password": password},
                          name="sign in", allow_redirects=False, catch_response=True) as reply:
        if reply.status_code != 302:
            reply.failure(f"sign-in answered {reply.status_code}")


class Expert(FastHttpUser):
    """Inbox, task, complete; over and over."""

    weight = 20
    wait_time = between(0.0, THINK)

    def on_start(self) -> None:
        with _lock:
            index = _next["expert"]
            _next["expert"] += 1
        username, password = ACCOUNTS[1 + (index - 1) % (len(ACCOUNTS) - 1)]
        _sign_in(self, username, password)

    @task
    def work_one_task(self) -> None:
        task_id = getattr(self, "next_task", None) or self._pick()
        self.next_task = None
        if task_id is None:
            return
        with self.client.get(f"/tasks/{task_id}", name="task page", catch_response=True) as page:
            if page.status_code == 404:  # someone else completed it a moment ago
                page.success()
                return
            found = CSRF.search(page.text or "")
            if found is None:
                page.failure("no CSRF token on the task page")
                return
        fields = re.findall(r'name="(v[1-5])"', page.text)
        data = {"csrf_token": found[1], **{name: str(random.randint(1, 999)) for name in fields}}
        with self.client.post(f"/tasks/{task_id}", data=data, name="complete task", allow_redirects=False,
                              catch_response=True) as done:
            if done.status_code in (302, 303):
                following = NEXT_TASK.search(done.headers.get("Location") or "")
                self.next_task = following[1] if following else None
                done.success()
            elif done.status_code in (404, 409):
                done.success()
            else:
                done.failure(f"completing answered {done.status_code}")

    def _pick(self) -> str | None:
        ids = TASK_LINK.findall(self.client.get("/tasks/?tab=group", name="inbox").text or "")
        return random.choice(ids) if ids else None


class Supervisor(FastHttpUser):
    """Refreshes the supervisor view."""

    weight = 1
    fixed_count = 1
    wait_time = between(0.5, 1.0)

    def on_start(self) -> None:
        username, password = ACCOUNTS[0]
        _sign_in(self, username, password)

    @task
    def refresh(self) -> None:
        self.client.get("/supervisor/", name="supervisor view")
