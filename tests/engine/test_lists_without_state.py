"""Pages and API lists of cases do not read each case's serialized workflow (`instance.state`, about
11 KB for a case of the shipped process): a customer's cases, the API's instance list, a provider's
aftercare cases. A case read this way still gives its state when asked (SQLAlchemy loads it then)."""

from __future__ import annotations

import pytest
from sqlalchemy import inspect

from engine import access, apiquery, customers, history, providers, runtime
from engine.models import Variable

BUSINESS_ID = "0737546-2"


@pytest.fixture
def cases(sessions, deploy):
    deploy("loop.bpmn")
    with sessions.begin() as s:
        customers.create_customer(s, {"name": "Pirkan Puu Oy", "business_id": BUSINESS_ID}, by="anna")
        ids = [runtime.start_instance(s, "loop", by="anna", business_key=BUSINESS_ID).id for _ in range(3)]
        s.add_all(Variable(instance_id=i, name=providers.PROVIDER_ID, value=7) for i in ids)
    runtime.forget_cache()
    return ids


def _statements(sessions, statements_of, read):
    """Return what `read(session)` gives as ids, and the statements it ran (on the cursor too); every listed
    case's row must still give its state when asked (SQLAlchemy loads it then)."""
    with sessions.begin() as s:
        with statements_of(sessions.kw["bind"]) as selected:
            ids, rows = read(s)
        assert all("state" in inspect(row).unloaded for row in rows)
        assert all(len(row.state) > 100 for row in rows)  # loaded when asked
    return ids, selected


@pytest.mark.parametrize("lister", ["customer's cases", "API instance list", "provider's aftercare"])
def test_lists_of_cases_leave_the_serialized_workflow_unread(sessions, cases, lister, statements_of):
    anna = access.Reader.of("anna", ["supervisor"])

    def read(s):
        if lister == "customer's cases":
            rows = customers.customer_processes(s, customers.find_by_business_id(s, BUSINESS_ID), reader=anna)
        elif lister == "API instance list":
            rows = [i for (i,) in apiquery.instances(s, anna, history.InstanceFilter()).rows]
        else:  # gives the cases' rows as plain data
            return [a.instance_id for a in providers.aftercare_of(s, 7)], []
        return [r.id for r in rows], rows

    ids, selected = _statements(sessions, statements_of, read)
    assert sorted(ids) == cases
    assert any("FROM instance" in sql for sql in selected)
    assert not [sql for sql in selected if "instance.state" in sql]
