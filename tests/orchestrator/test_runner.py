"""The runner lease (orchestrator/runner.py) on SQLite and PostgreSQL: one holder per loop, a
live holder is named, a dead or expired one is taken over, a lost lease is noticed. Clocks are
injected; heartbeats are called by hand (no thread, no sleeping)."""

from __future__ import annotations

import subprocess
import sys

import pytest
from sqlalchemy import update

from clicloop.orchestrator.errors import LeaseLostError, RunnerBusyError
from clicloop.orchestrator.ledger import Ledger
from clicloop.orchestrator.ledger import schema as s
from clicloop.orchestrator.runner import Holder, RunnerLease, machine_id, pid_alive


class Clock:
    def __init__(self, now: float = 1_000_000.0):
        self.now = now

    def __call__(self) -> float:
        return self.now


def other_machine(pid: int = 4242) -> Holder:
    return Holder(f"elsewhere:{pid}:abcd", "elsewhere", pid, "another-machine")


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()  # reaped: the pid names no process now
    return proc.pid


def lease(ledger: Ledger, clock: Clock, holder: Holder | None = None, loop: str = "l") -> RunnerLease:
    return RunnerLease(ledger, loop, holder=holder, clock=clock, expiry_s=60, heartbeat_s=10, pg_wait_s=0)


def test_a_second_runner_is_refused_with_the_holder_named(ledger_url):
    clock = Clock()
    with Ledger(ledger_url) as ledger:
        first = lease(ledger, clock, other_machine()).acquire(heartbeat=False)
        with pytest.raises(RunnerBusyError, match=r"loop 'l' is already being run by elsewhere pid 4242 \(since .* UTC"):
            lease(ledger, clock).acquire(heartbeat=False)
        assert lease(ledger, clock, loop="other").acquire(heartbeat=False).holder_row()["loop"] == "other"  # per loop
        first.release()
        second = lease(ledger, clock).acquire(heartbeat=False)  # given back: free
        assert second.holder_row()["pid"] == second.me_.pid
        second.release()
        assert second.holder_row() is None


def test_a_lease_whose_holder_died_on_this_machine_is_taken_over_at_once(ledger_url):
    clock = Clock()
    with Ledger(ledger_url) as ledger:
        pid = dead_pid()
        dead = Holder(f"here:{pid}:dead", "here", pid, machine_id())
        lease(ledger, clock, dead).acquire(heartbeat=False)._close_connection()  # killed: its session ends, its row stays
        taker = lease(ledger, clock).acquire(heartbeat=False)  # no expiry to wait for
        assert taker.holder_row()["holder"] == taker.me_.token
        taker.release()


def test_a_lease_from_another_machine_is_taken_over_only_after_it_expires(tmp_path):
    clock = Clock()
    with Ledger(f"sqlite:///{tmp_path / 'l.db'}") as ledger:
        lease(ledger, clock, other_machine()).acquire(heartbeat=False)
        clock.now += 59
        with pytest.raises(RunnerBusyError, match="expires at"):
            lease(ledger, clock).acquire(heartbeat=False)
        clock.now += 2
        taker = lease(ledger, clock).acquire(heartbeat=False)
        assert taker.holder_row()["holder"] == taker.me_.token


def test_on_postgresql_the_lock_decides_not_the_clock(pg_url):
    clock = Clock()
    with Ledger(pg_url) as ledger:
        holder = lease(ledger, clock, other_machine()).acquire(heartbeat=False)
        clock.now += 3600  # its row looks long expired, but its session still holds the lock
        with pytest.raises(RunnerBusyError, match=r"PostgreSQL session \d+.*pg_terminate_backend"):
            lease(ledger, clock).acquire(heartbeat=False)
        holder._close_connection()  # its session ends (a killed runner): free at once, from any machine
        taker = lease(ledger, clock).acquire(heartbeat=False)
        assert taker.holder_row()["holder"] == taker.me_.token
        taker.release()


def test_a_runner_that_lost_its_lease_stops_at_its_next_check(ledger_url):
    clock = Clock()
    with Ledger(ledger_url) as ledger:
        mine = lease(ledger, clock).acquire(heartbeat=False)
        assert mine.renew() is True
        mine.check()
        with ledger.engine_.begin() as conn:  # another runner took the row over (it expired while this one slept)
            conn.execute(update(s.runner_leases).values(holder="elsewhere:1:beef"))
        clock.now += 61
        with pytest.raises(LeaseLostError, match="lost its lease.*took it over"):
            mine.check()
        mine.release()
        assert mine.holder_row()["holder"] == "elsewhere:1:beef"  # giving back never deletes another's lease


def test_pid_alive_tells_dead_and_live_processes_apart():
    import os

    assert pid_alive(os.getpid()) and not pid_alive(dead_pid())
