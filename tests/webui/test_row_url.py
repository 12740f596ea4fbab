"""`row_url`, the per-request URL builder of table rows, gives what `url_for` gives."""

from __future__ import annotations

import pytest
from flask import url_for

from webui.tasks import row_url

VALUES = [("tasks.task", "task_id", "3f2c9a1e-0d4b-4c1e-9f00-000000000000"), ("tasks.claim_task", "task_id", "0"),
          ("tasks.release_task", "task_id", "a b/ä?#%"), ("tasks.assign_task", "task_id", "xrowslotx-0"),
          ("audit.instance", "instance_id", 0), ("audit.instance", "instance_id", 918273645546372819),
          ("audit.version", "version_id", 12), ("customers.show", "customer_id", 7)]


@pytest.mark.parametrize(("endpoint", "name", "value"), VALUES)
def test_row_url_is_url_for(app, endpoint, name, value):
    with app.test_request_context():
        assert row_url(endpoint, **{name: value}) == url_for(endpoint, **{name: value})
        assert row_url(endpoint, **{name: value}) == url_for(endpoint, **{name: value})  # from the kept rule


def test_rows_of_one_request_get_their_own_urls(app):
    with app.test_request_context():
        urls = [row_url("tasks.task", task_id=f"t{n}") for n in range(3)]
        assert urls == [url_for("tasks.task", task_id=f"t{n}") for n in range(3)]
