"""An external-task worker for Polku's REST API: fetch and lock, do the work, complete or report a failure.

Run against a Polku server with a token of a supervisor or admin (external tasks need one):

    POLKU_API_URL=http://127.0.0.1:5000 POLKU_API_TOKEN=polku_... python examples/external_worker.py

It works the topic `registry-lookup` of the example model `examples/registry_check.bpmn`
(deploy it first): it "looks the company up" (here: a fixed answer from the business ID) and
completes the task with the result variables, so the case moves on to its review task. A lookup
that fails is reported with retries and a retry timeout; at 0 retries Polku opens an incident.

Only `httpx` is needed. `work_once` takes any httpx client, so a test can pass one bound to the
Flask app in process (`httpx.WSGITransport`).
"""

from __future__ import annotations

import os
import time
from typing import Any

import httpx

TOPIC = "registry-lookup"
LOCK_SECONDS = 60


def lookup(business_id: str) -> dict[str, Any]:
    """Pretend to ask the trade register about a company (a real worker calls the registry here)."""
    if not business_id or "-" not in business_id:
        raise ValueError(f"not a business ID: {business_id!r}")
    return {"registry_name": f"Company {business_id}", "registry_status": "active"}


def work_once(client: httpx.Client, worker_id: str = "registry-worker-1", max_tasks: int = 5) -> list[int]:
    """Fetch and lock up to `max_tasks` tasks, work each one; return the ids completed."""
    response = client.post("/api/v1/external-tasks/fetch-and-lock", json={
        "worker_id": worker_id, "max_tasks": max_tasks,
        "topics": [{"name": TOPIC, "lock_seconds": LOCK_SECONDS, "variables": ["business_id"]}]})
    response.raise_for_status()
    done = []
    for task in response.json()["items"]:
        try:
            result = lookup(str(task["variables"].get("business_id", "")))
        except ValueError as exc:
            retries = task["retries"] - 1 if task["retries"] else 2
            client.post(f"/api/v1/external-tasks/{task['id']}/failure", json={
                "worker_id": worker_id, "message": str(exc), "retries": max(retries, 0),
                "retry_timeout_seconds": 60}).raise_for_status()
            continue
        client.post(f"/api/v1/external-tasks/{task['id']}/complete",
                    json={"worker_id": worker_id, "variables": result}).raise_for_status()
        done.append(task["id"])
    return done


def main() -> None:
    """Poll the server every few seconds until stopped."""
    url = os.environ.get("POLKU_API_URL", "http://127.0.0.1:5000")
    token = os.environ["POLKU_API_TOKEN"]
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=30) as client:
        while True:
            for task_id in work_once(client):
                print(f"completed external task {task_id}")
            time.sleep(5)


if __name__ == "__main__":
    main()
