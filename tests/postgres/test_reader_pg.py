"""On PostgreSQL a page's read-only work runs in autocommit (`engine.db.reader`): no BEGIN and COMMIT round
trips, each statement reads what was committed when it began (as at READ COMMITTED inside a transaction),
writes are refused before they reach the server, and `begin_writing` moves on to a real transaction."""

from __future__ import annotations

import pytest
from psycopg.pq import TransactionStatus
from sqlalchemy import select, update

from engine.db import WriteInReadTransaction, begin_writing, make_engine, make_sessions, reader, utcnow
from engine.models import Customer


@pytest.fixture
def db_engine(fresh_pg_url):
    from engine.db import upgrade  # a database of its own: the module's shared one keeps other tests' rows
    engine = make_engine(fresh_pg_url)
    upgrade(engine)
    yield engine
    engine.dispose()


def _add_customer(db_engine) -> int:
    with make_sessions(db_engine).begin() as s:
        row = Customer(business_id="1234567-8", name="Acme Oy", created_at=utcnow(), updated_at=utcnow())
        s.add(row)
        s.flush()
        return row.id


def test_reads_open_no_transaction_and_see_each_commit(db_engine):
    customer_id = _add_customer(db_engine)
    with make_sessions(reader(db_engine)).begin() as s:
        assert s.scalar(select(Customer.name).where(Customer.id == customer_id)) == "Acme Oy"
        driver = s.connection().connection.driver_connection
        assert driver.autocommit is True and driver.info.transaction_status == TransactionStatus.IDLE
        with db_engine.begin() as other:
            other.execute(update(Customer).where(Customer.id == customer_id).values(name="Renamed"))
        assert s.scalar(select(Customer.name).where(Customer.id == customer_id)) == "Renamed"
    with db_engine.connect() as conn:  # the pooled connection comes back as a writer's: transactions again
        conn.execute(select(Customer.id))
        assert conn.connection.driver_connection.info.transaction_status == TransactionStatus.INTRANS


def test_a_write_while_reading_is_refused_and_begin_writing_writes_in_a_transaction(db_engine):
    customer_id = _add_customer(db_engine)
    with pytest.raises(WriteInReadTransaction), make_sessions(reader(db_engine)).begin() as s:
        s.get(Customer, customer_id).name = "Changed while reading"
    with make_sessions(reader(db_engine))() as s:
        row = s.get(Customer, customer_id)
        assert row.name == "Acme Oy"
        begin_writing(s, db_engine)
        s.refresh(row)
        row.name = "Mine"
        s.flush()
        assert s.connection().connection.driver_connection.autocommit is False
        s.rollback()  # a real transaction: nothing of it stays
    with make_sessions(db_engine)() as s:
        assert s.get(Customer, customer_id).name == "Acme Oy"
