"""What a ledger must not hold: the key of its worker pseudonyms, and secrets in stored configs.

Worker ids are stored as ``HMAC-SHA256(key, backend NUL raw id)``. The key never sits in the
ledger (with it, anyone holding the file could test every Prolific or Label Studio id in
seconds); it comes, in order, from the config's ``worker_salt``, ``$CLICLOOP_WORKER_SALT``, or a
key file ``<key dir>/<ledger id>.key`` (mode 0600) made on first use, its path logged once.
The key dir is ``$CLICLOOP_KEY_DIR``, else ``$XDG_CONFIG_HOME/clicloop/keys``, else
``~/.config/clicloop/keys``. The ledger keeps only its random id and a key check (an HMAC of a
constant), so a resume with another key is refused instead of splitting workers in two.

Ledgers written before keys moved out hold a ``salt`` row: the first writable open moves it to
the key file (the same pseudonyms keep coming) and deletes it from the ledger. The same open
strips secrets from stored loop configs (``credentials.public_config``), rehashing them, so a
loop whose old config held a token resumes once the token moves to ``{env: ...}``.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import Connection, Engine, delete, select, update

from clicloop.orchestrator.credentials import public_config, redact_url
from clicloop.orchestrator.errors import LedgerError
from clicloop.orchestrator.ledger import schema as s
from clicloop.orchestrator.ledger.db import insert_ignore

KEY_ENV = "CLICLOOP_WORKER_SALT"
KEY_DIR_ENV = "CLICLOOP_KEY_DIR"
_CHECK = b"clicloop worker-pseudonym key check"
log = logging.getLogger(__name__)


def key_dir() -> Path:
    """Where key files live (see the module docstring)."""
    if os.environ.get(KEY_DIR_ENV):
        return Path(os.environ[KEY_DIR_ENV]).expanduser()
    return Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config") / "clicloop" / "keys"


def pseudonym(key: str, backend: str, raw_worker_id: str) -> str:
    """The keyed hash that stands for a worker in the ledger."""
    return hmac.new(key.encode(), f"{backend}\x00{raw_worker_id}".encode(), hashlib.sha256).hexdigest()[:16]


def prepare(conn: Connection, url: str) -> bool:
    """On a writable open: give the ledger an id, move an older clicloop's stored salt out to its
    key file, and strip secrets from stored loop configs. True if a secret was erased (SQLite:
    checkpoint after the commit, :func:`flush`, so the old pages leave the file too)."""
    insert_ignore(conn, s.meta, [{"key": "ledger_id", "value": secrets.token_hex(8)}])
    salt = _meta(conn, "salt")
    if salt is not None:
        path = key_dir() / f"{_meta(conn, 'ledger_id')}.key"
        if not _in_memory(url):
            stored = _read_key(path) if path.exists() else _create_key(path, salt)
            if stored != salt:
                raise LedgerError(f"{redact_url(url)} holds a pseudonym salt and {path} another key; move one of them "
                                  "away (the salt made this ledger's pseudonyms)")
            log.warning("moved the worker-pseudonym key of the ledger %s out of it, into %s (mode 0600): keep it with "
                        "the ledger, a resumed loop needs it", redact_url(url), path)
        with _erasing(conn):
            conn.execute(delete(s.meta).where(s.meta.c.key == "salt"))
    with _erasing(conn):
        return scrub_stored_configs(conn) > 0 or salt is not None


def flush(engine: Engine) -> None:
    """Write the WAL back into a SQLite ledger file now (erased secrets leave its old pages)."""
    if engine.dialect.name == "sqlite":
        with engine.connect() as conn:
            conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")


def resolve_key(engine: Engine, url: str, explicit: str | None) -> str:
    """The pseudonym key for this ledger, checked against the one its pseudonyms were made with."""
    key, source = explicit, "worker_salt"
    if key is None and os.environ.get(KEY_ENV):
        key, source = os.environ[KEY_ENV], f"${KEY_ENV}"
    with engine.begin() as conn:
        ledger_id = _meta(conn, "ledger_id")
        if ledger_id is None:
            raise LedgerError(f"{redact_url(url)} was opened read-only; it cannot record workers")
        where = f"give it (worker_salt or ${KEY_ENV}), or copy its key file {ledger_id}.key into {key_dir()}"
        if key is None and _in_memory(url):
            key, source = secrets.token_hex(32), "a key for this process"
        elif key is None:
            path = key_dir() / f"{ledger_id}.key"
            if not path.exists() and _meta(conn, "key_check") is not None:
                raise LedgerError(f"the worker pseudonyms in {redact_url(url)} were made with a key that is not here: {where}")
            key, source = _read_key(path) if path.exists() else _new_key(path, url), str(path)
        check = hmac.new(key.encode(), _CHECK, hashlib.sha256).hexdigest()[:16]
        insert_ignore(conn, s.meta, [{"key": "key_check", "value": check}])
        made_with = _meta(conn, "key_check")
    if made_with != check:
        raise LedgerError(f"the worker pseudonyms in {redact_url(url)} were made with another key than {source}; resuming "
                          f"would give returning workers new pseudonyms: {where}")
    return key


def scrub_stored_configs(conn: Connection) -> int:
    """Strip secrets from every stored loop config (and rehash a fingerprint of its text); returns
    how many configs changed."""
    changed = 0
    for name, text, digest in conn.execute(select(s.loops.c.name, s.loops.c.config_json, s.loops.c.config_hash)).all():
        try:
            body = json.loads(text)
        except json.JSONDecodeError:
            continue
        clean = json.dumps(public_config(body), sort_keys=True)
        if clean == json.dumps(body, sort_keys=True):
            continue
        fingerprint = hashlib.sha256(text.encode()).hexdigest() == digest  # loops hash their config's text
        values = {"config_json": clean, **({"config_hash": hashlib.sha256(clean.encode()).hexdigest()} if fingerprint else {})}
        conn.execute(update(s.loops).where(s.loops.c.name == name).values(**values))
        changed += 1
    return changed


@contextmanager
def _erasing(conn: Connection) -> Iterator[None]:
    """SQLite overwrites what these statements delete (else a removed secret lingers in free space)."""
    sqlite = conn.dialect.name == "sqlite"
    if sqlite:
        conn.exec_driver_sql("PRAGMA secure_delete=ON")
    try:
        yield
    finally:
        if sqlite:
            conn.exec_driver_sql("PRAGMA secure_delete=OFF")


def _meta(conn: Connection, key: str) -> str | None:
    return conn.execute(select(s.meta.c.value).where(s.meta.c.key == key)).scalar()


def _in_memory(url: str) -> bool:
    return url in ("sqlite://", "sqlite:///:memory:")


def _new_key(path: Path, url: str) -> str:
    new = secrets.token_hex(32)
    key = _create_key(path, new)
    if key == new:  # not another process's
        log.warning("created the worker-pseudonym key of the ledger %s: %s (mode 0600; never stored in the ledger). "
                    "Keep it with the ledger: a resumed loop needs it.", redact_url(url), path)
    return key


def _create_key(path: Path, key: str) -> str:
    """Write ``key`` to a new file readable by its owner only; if another process wrote the file
    first, its key wins. Returns the key the file holds."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(key + "\n")
            f.flush()
            os.fsync(f.fileno())
        try:
            os.link(tmp, path)  # atomic: the file appears complete, or not at all
        except FileExistsError:
            return _read_key(path)
    except OSError as e:
        raise LedgerError(f"cannot write the worker-pseudonym key file {path} ({e.strerror}); set ${KEY_DIR_ENV} to a "
                          f"folder only you can read, or give the key in ${KEY_ENV}") from e
    finally:
        tmp.unlink(missing_ok=True)
    return key


def _read_key(path: Path) -> str:
    try:
        key = path.read_text(encoding="utf-8").strip()
    except OSError as e:
        raise LedgerError(f"cannot read the worker-pseudonym key file {path}: {e.strerror}") from e
    if not key:
        raise LedgerError(f"the worker-pseudonym key file {path} is empty; restore it from a backup")
    return key
