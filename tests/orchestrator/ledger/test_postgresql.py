"""A ledger on the real PostgreSQL as its operators meet it: a database another application
uses, a role without the rights, a server that drops the loop's connections mid-run."""

from __future__ import annotations

import secrets

import pytest
from sqlalchemy import create_engine, inspect, make_url, text

from clicloop.orchestrator.errors import LedgerError
from clicloop.orchestrator.ledger import Ledger
from tests.conftest import PG_BASE, digits_config, postgresql_url


def test_a_schema_holding_another_applications_tables_is_refused_and_left_untouched() -> None:
    """It was written into (25 clicloop tables beside the application's): only SQLite refused."""
    with postgresql_url("foreign") as url:
        engine = create_engine(url)
        with engine.begin() as conn:
            conn.execute(text("CREATE TABLE users (id int PRIMARY KEY, name text)"))
        with pytest.raises(LedgerError, match="not a clicloop ledger.*users.*refusing"):
            Ledger(url).open()
        assert inspect(engine).get_table_names() == ["users"]
        engine.dispose()


def test_a_role_without_the_right_to_create_tables_is_told_what_to_grant() -> None:
    """It read "not a usable database ... Point 'ledger' at a new file or an existing clicloop ledger"."""
    role = f"clicloop_np_{secrets.token_hex(4)}"
    admin = create_engine(PG_BASE)
    with postgresql_url("noright") as url:
        schema = url.rsplit("%3D", 1)[1]
        with admin.begin() as conn:
            conn.execute(text(f"CREATE ROLE {role} LOGIN"))
            conn.execute(text(f"GRANT USAGE ON SCHEMA {schema} TO {role}"))  # may look, may not create
        try:
            as_role = make_url(url).set(username=role).render_as_string(hide_password=False)
            with pytest.raises(LedgerError, match=f"role '{role}' may not create or write.*GRANT CREATE ON SCHEMA {schema} TO {role}"):
                Ledger(as_role).open()
            assert inspect(admin).get_table_names(schema=schema) == []
        finally:
            with admin.begin() as conn:
                conn.execute(text(f"DROP OWNED BY {role}"))
                conn.execute(text(f"DROP ROLE {role}"))
    admin.dispose()


def test_a_run_whose_connections_the_server_drops_between_rounds_goes_on() -> None:
    """An administrator (or a server restart) ending the loop's sessions between two rounds made
    the next round's first query fail with a traceback, and the next heartbeat lost the lease (its
    lock's session was gone); pooled connections are checked first now, and the lock is taken again."""
    from clicloop import Loop, config_from_dict
    from clicloop.orchestrator.ledger.verify import verify

    name = f"clicloop_drop_{secrets.token_hex(4)}"
    admin = create_engine(PG_BASE)
    with postgresql_url("dropped") as url:
        cfg = config_from_dict(digits_config(f"{url}&application_name={name}", stop={"max_labels": 40}))
        ended, loop = 0, Loop(cfg)
        for result in loop.rounds():
            if result.round_no in (0, 2):
                with admin.begin() as conn:  # the pooled sessions and the one holding the runner's lock
                    ended += sum(conn.execute(text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                                                   "WHERE application_name = :name"), {"name": name}).scalars())
                assert loop.lease_.renew()  # the next heartbeat takes the lock again (it lost the lease: "another runner")
        assert ended >= 4  # the sessions were there, and ended
        with Ledger(url) as ledger:
            assert len(ledger.labels("t")) == 40 and verify(ledger) == []
    admin.dispose()
