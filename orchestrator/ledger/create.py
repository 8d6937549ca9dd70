"""Creating a ledger, or recognising one: clicloop's own (migrated to the newest schema), a
half-made one an older clicloop left when killed while creating it (completed), or a foreign or
corrupt database (refused, never written to).

Creation runs in one transaction that holds the database's write lock (``BEGIN IMMEDIATE`` on
SQLite, an advisory lock on PostgreSQL) and writes the ``clicloop_meta`` marker last, so a kill at
any point leaves no ledger or a complete one.
"""

from __future__ import annotations

import logging
import re
from urllib.parse import unquote

from sqlalchemy import Connection, inspect, make_url, select

from clicloop.orchestrator.errors import LedgerError
from clicloop.orchestrator.ledger import schema as s
from clicloop.orchestrator.ledger import secrecy
from clicloop.orchestrator.ledger.db import insert_ignore, migrate, redact, revisions

log = logging.getLogger("clicloop")
ALEMBIC = "alembic_version"


def check_or_create(conn: Connection, url: str) -> bool:
    """Inside ``conn``'s locked transaction: create, complete or migrate the ledger, or refuse it;
    then keep the pseudonym key outside it (``secrecy.prepare``). True when secrets were erased
    from an older ledger (the caller flushes them out of the file)."""
    existing = set(inspect(conn).get_table_names())
    app = conn.execute(select(s.meta.c.value).where(s.meta.c.key == "app")).scalar() if s.meta.name in existing else None
    if app is None and conn.dialect.name == "sqlite" and _half_made(conn, existing):
        log.warning("%s: completing a ledger whose creation was interrupted (it holds no data)", redact(url))
        for name in existing:
            conn.exec_driver_sql(f"DROP TABLE {conn.dialect.identifier_preparer.quote(name)}")
        existing = set()
    if s.meta.name in existing:
        if app != s.APP:
            raise LedgerError(f"{redact(url)} has a {s.meta.name} table that clicloop did not write; refusing to use it. "
                              "Point 'ledger' at a new file, database or schema.")
    else:
        if existing:  # ours without the marker, or another application's (a PostgreSQL schema it shares, too)
            raise LedgerError(
                f"{redact(url)} already holds tables that are not a clicloop ledger "
                f"({', '.join(sorted(existing)[:5])}); refusing to write into it. Use a new file, database or schema."
            )
    migrate(conn)
    insert_ignore(conn, s.meta, [{"key": "app", "value": s.APP}])
    return secrecy.prepare(conn, url)


def _half_made(conn: Connection, existing: set[str]) -> bool:
    """A creation an older clicloop left unfinished (its SQLite creation committed each CREATE
    TABLE on its own): Alembic's table with one of our revisions or none, only our tables, no
    marker, and not one row of data. Dropping it loses nothing."""
    ours = {t.name: t for t in s.TABLES}
    if ALEMBIC not in existing or not (existing - {ALEMBIC}) <= set(ours):
        return False
    versions = set(conn.exec_driver_sql(f"SELECT version_num FROM {ALEMBIC}").scalars())
    if not versions <= revisions():
        return False
    return all(conn.execute(select(ours[name]).limit(1)).first() is None for name in existing - {ALEMBIC})


def privilege_message(url: str, reason: str) -> str:
    """What to do when the PostgreSQL role at ``url`` lacks a right the ledger needs (``reason``: the
    server's words): the GRANTs, on the URL's schema (its ``search_path`` option, else public)."""
    parsed = make_url(url)
    user = parsed.username or "this role"
    role = user if re.fullmatch(r"[a-z_][a-z0-9_$]*", user) else '"' + user.replace('"', '""') + '"'
    options = parsed.query.get("options", "")
    found = re.search(r"search_path\s*=\s*(\S+)", unquote(" ".join(options) if isinstance(options, tuple) else options))
    paths = [x for x in (found.group(1).split(",") if found else []) if x.strip('"') != "$user"]  # $user: a schema per role
    schema = paths[0] if paths else "public"
    return (f"{redact(url)}: the PostgreSQL role {user!r} may not create or write the ledger's tables "
            f"({reason.splitlines()[0]}); nothing was written. Run as the role that owns the ledger, or grant the rights, "
            f"e.g. GRANT CREATE ON SCHEMA {schema} TO {role} (a new ledger), GRANT SELECT, INSERT, UPDATE, DELETE ON ALL "
            f"TABLES IN SCHEMA {schema} TO {role} (an existing one). Read-only commands (report, verify, export) need SELECT only.")
