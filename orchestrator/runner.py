"""One runner per loop: a lease held in the ledger (table ``runner_leases``).

``Loop.run`` (``clicloop run``) takes its loop's lease before it touches the loop (before
``--restart`` deletes anything) and gives it back when it stops, however it stops. The lease row
names its holder (host, pid, since when); a heartbeat thread renews it every ``HEARTBEAT_S``
seconds and it expires ``EXPIRY_S`` seconds after the last renewal. A second runner finds the
lease live and is refused with an error naming the holder. A dead holder's lease is taken over:
at once when the holder ran on this machine (its pid is gone), after the expiry otherwise.

On PostgreSQL the runner also holds a session advisory lock, keyed by the schema and the loop, on
a connection kept for the run, and the lock decides: the server ends it with the holder's
session, so a killed runner's loop is free at once from any machine, whatever the clocks say. The
row only names the holder there.

The loop calls :meth:`RunnerLease.check` before it dispatches or records work: a runner that lost
its lease (suspended past the expiry while another took over) stops there.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import secrets
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, delete, select, text, update
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from clicloop.orchestrator.errors import LeaseLostError, LedgerError, RunnerBusyError
from clicloop.orchestrator.ledger import Ledger
from clicloop.orchestrator.ledger import schema as s
from clicloop.orchestrator.seeding import stable_int

log = logging.getLogger("clicloop")
HEARTBEAT_S = 10.0
EXPIRY_S = 60.0
PG_WAIT_S = 10.0
lease = s.runner_leases.c


@dataclass(frozen=True)
class Holder:
    """Who runs a loop. ``token`` is unique to one run; ``machine`` says where ``pid`` names it."""

    token: str
    host: str
    pid: int
    machine: str

    @classmethod
    def this_process(cls) -> Holder:
        host, pid = socket.gethostname(), os.getpid()
        return cls(f"{host}:{pid}:{secrets.token_hex(4)}", host, pid, machine_id())


def machine_id() -> str:
    """A hash of the host name, the boot and the pid namespace: processes with the same id see the
    same pids (two containers on one host do not)."""
    parts = [socket.gethostname()]
    for read in (lambda: Path("/proc/sys/kernel/random/boot_id").read_text().strip(), lambda: os.readlink("/proc/self/ns/pid")):
        try:
            parts.append(read())
        except OSError:
            parts.append("")
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:32]


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` of this machine still runs (a zombie, killed but not reaped, does not)."""
    if os.name != "posix":
        return True  # no safe check here: the lease waits for its expiry
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


class RunnerLease:
    """The lease of ``loop`` in an open ``ledger``, for one run: :meth:`acquire`, :meth:`check`,
    :meth:`release`. ``holder`` and ``clock`` are for tests (default: this process, ``time.time``);
    ``pg_wait_s``: how long to wait for PostgreSQL to end the session of a holder that is gone."""

    def __init__(self, ledger: Ledger, loop: str, *, holder: Holder | None = None, expiry_s: float = EXPIRY_S,
                 heartbeat_s: float = HEARTBEAT_S, clock: Callable[[], float] = time.time, pg_wait_s: float = PG_WAIT_S):
        self.ledger = ledger
        self.loop = loop
        self.holder = holder
        self.expiry_s = expiry_s
        self.heartbeat_s = heartbeat_s
        self.clock = clock
        self.pg_wait_s = pg_wait_s

    # -- taking it -------------------------------------------------------------------------------

    def acquire(self, *, heartbeat: bool = True) -> RunnerLease:
        """Take the lease or raise :class:`RunnerBusyError` naming its live holder."""
        self.me_ = self.holder or Holder.this_process()
        self.lock_, self.stop_ = threading.Lock(), threading.Event()
        self.lost_: str | None = None
        self.conn_: Connection | None = None
        self.key_: int | None = None  # the PostgreSQL advisory lock's key, once taken
        self.thread_: threading.Thread | None = None
        try:
            if self.ledger.engine_.dialect.name == "postgresql":
                self._lock_postgresql()
            else:
                self._take_row(force=False)
        except BaseException:
            self._close_connection()
            raise
        if heartbeat:
            self.thread_ = threading.Thread(target=self._beat, name=f"clicloop-lease-{self.loop}", daemon=True)
            self.thread_.start()
        return self

    def holder_row(self) -> dict[str, Any] | None:
        """The lease row of the loop, whoever holds it (None when no runner holds it)."""
        with self.ledger.engine_.connect() as conn:
            row = conn.execute(select(s.runner_leases).where(lease.loop == self.loop)).first()
        return None if row is None else dict(row._mapping)

    def _take_row(self, *, force: bool) -> None:
        for _ in range(5):  # lost races with other starting runners: look again
            now, row = self.clock(), self.holder_row()
            if row is None:
                if self._insert(now):
                    return
            elif force or row["holder"] == self.me_.token or self._stale(row, now):
                if self._swap(row["holder"], now):
                    if row["holder"] != self.me_.token:
                        log.warning("loop %r: took over the lease of runner %s (pid %s), which is gone", self.loop,
                                    row["host"], row["pid"])
                    return
            else:
                raise RunnerBusyError(busy_message(self.loop, row, now))
        raise RunnerBusyError(busy_message(self.loop, self.holder_row(), self.clock()))

    def _stale(self, row: dict[str, Any], now: float) -> bool:
        """The holder is gone: its lease expired, or it ran on this machine and its process is gone."""
        return row["expires_at"] < now or (row["machine"] == self.me_.machine and not pid_alive(row["pid"]))

    def _values(self, now: float) -> dict[str, Any]:
        self.expires_ = now + self.expiry_s
        return {"holder": self.me_.token, "host": self.me_.host, "pid": self.me_.pid, "machine": self.me_.machine,
                "acquired_at": now, "heartbeat_at": now, "expires_at": self.expires_}

    def _insert(self, now: float) -> bool:
        try:
            with self.ledger.engine_.begin() as conn:
                conn.execute(s.runner_leases.insert().values(loop=self.loop, **self._values(now)))
        except IntegrityError:
            return False
        return True

    def _swap(self, old_holder: str, now: float) -> bool:
        """Compare-and-set: take the row only if ``old_holder`` still has it."""
        with self.ledger.engine_.begin() as conn:
            done = conn.execute(update(s.runner_leases).where(lease.loop == self.loop, lease.holder == old_holder)
                                .values(**self._values(now)))
        return done.rowcount == 1

    def _lock_postgresql(self) -> None:
        self.conn_ = conn = self.ledger.engine_.connect()
        schema = conn.execute(text("SELECT current_schema()")).scalar()
        key = stable_int(f"clicloop runner\0{schema}\0{self.loop}")
        self.key_ = key - (1 << 64) if key >= 1 << 63 else key  # PostgreSQL's bigint is signed
        deadline = time.monotonic() + self.pg_wait_s
        while True:
            got = conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": self.key_}).scalar()
            conn.commit()
            if got:
                self._take_row(force=True)  # the lock is ours: whoever the row names is gone
                return
            now, row = self.clock(), self.holder_row()
            if (row is not None and not self._stale(row, now)) or time.monotonic() > deadline:
                raise RunnerBusyError(busy_message(self.loop, row, now, backend=self._lock_backend(conn)))
            time.sleep(0.2)  # its holder is starting (its row comes next) or gone (the server ends its session)

    def _lock_backend(self, conn: Connection) -> int | None:
        """The PostgreSQL backend (session) pid that holds the loop's advisory lock."""
        key = self.key_ & 0xFFFFFFFFFFFFFFFF
        return conn.execute(text(
            "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted AND objsubid = 1 "
            "AND classid::bigint = :hi AND objid::bigint = :lo"), {"hi": key >> 32, "lo": key & 0xFFFFFFFF}).scalar()

    # -- holding it ------------------------------------------------------------------------------

    def renew(self) -> bool:
        """One heartbeat; False (and the lease is lost) when another runner holds the loop now."""
        with self.lock_:
            if self.lost_ is not None:
                return False
            now = self.clock()
            if self.key_ is not None and not self._lock_alive():
                if not self._relock():  # a server still down raises: the next beat tries again
                    self.lost_ = "the database session holding its lock ended and another runner holds the loop now"
                    return False
                log.warning("loop %r: the database session holding the runner lock ended (a server restart?); took "
                            "the lock again on a new one", self.loop)
            with self.ledger.engine_.begin() as conn:
                done = conn.execute(update(s.runner_leases).where(lease.loop == self.loop, lease.holder == self.me_.token)
                                    .values(heartbeat_at=now, expires_at=now + self.expiry_s))
            if done.rowcount != 1:
                self.lost_ = "another runner took it over after it expired"
                return False
            self.expires_ = now + self.expiry_s
            return True

    def _lock_alive(self) -> bool:
        """Whether the session that holds the advisory lock is alive (PostgreSQL)."""
        if self.conn_ is None:
            return False
        try:
            self.conn_.execute(text("SELECT 1")).scalar()
            self.conn_.commit()
            return True
        except SQLAlchemyError:
            return False

    def _relock(self) -> bool:
        """After the session that held the advisory lock ended (a server restart, an administrator):
        the lock again on a new session, if nobody took the loop meanwhile (its lease row still
        names this runner). False when another runner has it; a server that cannot be reached
        raises (SQLAlchemyError), the lock left to the next try."""
        old, self.conn_ = self.conn_, None
        if old is not None:
            _end_session(old)
        conn = self.ledger.engine_.connect()  # checked before use: a live session, or it raises
        try:
            got = conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": self.key_}).scalar()
            conn.commit()
            row = self.holder_row() if got else None
        except SQLAlchemyError:
            _end_session(conn)  # and the lock with it, if it was taken
            raise
        if row is None or row["holder"] != self.me_.token:
            _end_session(conn)
            return False
        self.conn_ = conn
        return True

    def check(self) -> None:
        """Raise :class:`LeaseLostError` when this runner no longer holds its loop. Cheap while
        the heartbeat keeps the lease; past its expiry (a suspended process), it asks the ledger."""
        if self.lost_ is None and self.clock() >= self.expires_:
            self.renew()
        if self.lost_ is not None:
            raise LeaseLostError(f"loop {self.loop!r}: this runner lost its lease ({self.lost_}); it stops before "
                                 "dispatching or recording anything more. Run the same command again once the other "
                                 "runner is done: it resumes from the ledger.")

    def _beat(self) -> None:
        while not self.stop_.wait(self.heartbeat_s):
            try:
                if not self.renew():
                    log.error("loop %r: this runner lost its lease (%s)", self.loop, self.lost_)
                    return
            except (SQLAlchemyError, LedgerError) as e:  # the ledger is busy or full: try again at the next beat
                log.warning("loop %r: the runner's heartbeat failed (%s); retrying", self.loop, e)

    # -- giving it back --------------------------------------------------------------------------

    def release(self) -> None:
        """Stop the heartbeat and delete the row (a failure is logged: the next run takes over)."""
        if self.thread_ is not None:
            self.stop_.set()
            self.thread_.join()
        try:
            with self.ledger.engine_.begin() as conn:
                conn.execute(delete(s.runner_leases).where(lease.loop == self.loop, lease.holder == self.me_.token))
        except (SQLAlchemyError, LedgerError) as e:
            log.warning("loop %r: could not give the runner lease back (%s); the next run takes it over", self.loop, e)
        self.key_ = None  # given back: nothing to take again
        self._close_connection()

    def _close_connection(self) -> None:
        conn, self.conn_ = getattr(self, "conn_", None), None
        if conn is None:
            return
        try:
            conn.execute(text("SELECT pg_advisory_unlock_all()"))
            conn.commit()
        except SQLAlchemyError as e:
            log.warning("loop %r: could not unlock the runner lock (%s); it ends with the session", self.loop, e)
        finally:  # never back to the pool: the session ends, and any lock it still held with it
            _end_session(conn)


def _end_session(conn: Connection) -> None:
    """Close ``conn`` for good (never back to the pool): its session ends, and any lock it held."""
    with contextlib.suppress(SQLAlchemyError):
        conn.invalidate()
        conn.close()


def busy_message(loop: str, row: dict[str, Any] | None, now: float, *, backend: int | None = None) -> str:
    """What a second runner is told: who runs the loop, since when, and what to do."""
    if row is None:
        who, stop = "another runner", "stop it"
    else:
        who = (f"{row['host']} pid {row['pid']} (since {_utc(row['acquired_at'])}, last heartbeat "
               f"{max(0.0, now - row['heartbeat_at']):.0f} s ago)")
        stop = f"stop it (Ctrl-C, or `kill {row['pid']}` on {row['host']})"
    text_ = (f"loop {loop!r} is already being run by {who}; one runner per loop. Let it finish or {stop}, then run the "
             "same command again: it resumes from the ledger.")
    if backend is not None:
        return text_ + (f" It holds the loop's lock through PostgreSQL session {backend}; if that runner is gone, end "
                        f"the session (SELECT pg_terminate_backend({backend})).")
    if row is not None:
        text_ += f" If it was killed on another machine, its lease expires at {_utc(row['expires_at'])}."
    return text_


def _utc(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
