"""Two `clicloop run` on one loop (issue #21, "Ledger and runners"): the second is refused with
the holder named, on SQLite and on PostgreSQL; a SIGKILLed runner's loop resumes at once; and
collecting reads what is pending back from the ledger, so answers someone else recorded end the
wait instead of looping forever."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml

from clicloop import Loop, config_from_dict
from clicloop.backends.simulated import SimulatedCrowd
from clicloop.orchestrator.ledger import Ledger
from clicloop.orchestrator.ledger.verify import verify
from clicloop.orchestrator.runner import RunnerLease
from tests.conftest import digits_config

HOLDER = '''
"""Test plugin: at the first round, say so on stdout and wait for a line on stdin."""
import sys
from clicloop.orchestrator.hookspecs import hookimpl

held = False

@hookimpl
def clicloop_round_started(loop, round_no):
    global held
    if not held:
        held = True
        print("holding", flush=True)
        sys.stdin.readline()
'''


def config(tmp_path: Path, url: str) -> Path:
    (tmp_path / "holder_plugin.py").write_text(textwrap.dedent(HOLDER))
    path = tmp_path / "loop.yaml"
    path.write_text(yaml.safe_dump(digits_config(url, stop={"max_labels": 20}, plugins=["holder_plugin"])))
    return path


def clicloop(path: Path, *args: str, **kw: object) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": f"{path.parent}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    return subprocess.Popen([sys.executable, "-m", "clicloop", "run", str(path), *args], env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, **kw)


def holding(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> tuple[str, Path, subprocess.Popen]:
    """A ledger URL, a loop config, and a `clicloop run` of it that holds the loop at its first round."""
    url = f"sqlite:///{tmp_path / 'ledger.db'}" if backend == "sqlite" else request.getfixturevalue("pg_url")
    path = config(tmp_path, url)
    first = clicloop(path, stdin=subprocess.PIPE)
    assert first.stdout.readline().strip() == "holding", first.stderr.read()
    return url, path, first


def assert_finished(url: str, answers: int = 20) -> None:
    with Ledger(url) as ledger:
        assert verify(ledger) == []
        assert ledger.spent("t")["answers"] == answers
        assert RunnerLease(ledger, "t").holder_row() is None  # given back


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_a_second_runner_on_the_same_loop_exits_with_the_holder_named(backend, tmp_path, request):
    url, path, first = holding(backend, tmp_path, request)
    for args in ((), ("--restart",)):  # --restart, too, must not delete a running loop's answers
        second = clicloop(path, *args, stdin=subprocess.DEVNULL)
        out, err = second.communicate(timeout=300)
        assert second.returncode == 2, (args, err)
        assert f"loop 't' is already being run by" in err and f"pid {first.pid}" in err, err
        assert "Traceback" not in err
    first.stdin.write("go\n")
    first.stdin.flush()
    out, err = first.communicate(timeout=300)
    assert first.returncode == 0, err
    assert_finished(url)


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_a_sigkilled_runners_loop_resumes_at_once(backend, tmp_path, request):
    url, path, first = holding(backend, tmp_path, request)
    first.send_signal(signal.SIGKILL)
    assert first.wait(timeout=60) == -signal.SIGKILL
    first.stdout.close(), first.stderr.close(), first.stdin.close()
    resumed = clicloop(path, stdin=subprocess.DEVNULL)  # no expiry to wait for: its holder is gone
    out, err = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, err
    assert "took over the lease" in err
    assert_finished(url)


class AnsweredElsewhere(SimulatedCrowd):
    """A simulated crowd whose answers reach the ledger through another writer before the loop
    records them (what a second runner on the loop did); it fails if the loop polls on and on."""

    def collect(self, tasks):  # noqa: ANN001, ANN201 - the backend protocol's signature
        self.calls_ = getattr(self, "calls_", 0) + 1
        if self.calls_ > 20:
            raise AssertionError("the loop kept polling for answers that are already in the ledger")
        answers = super().collect(tasks)
        with Ledger(self.ledger_url_) as other:
            other.record_answers(tasks[0].loop, "simulated", [(t, a, "submitted", None) for t, a in zip(tasks, answers)])
        return answers


def test_collect_reads_its_pending_tasks_back_from_the_ledger(ledger_url):
    cfg = config_from_dict(digits_config(ledger_url, loop={"poll_seconds": 0.01}, stop={"max_labels": 20}))
    crowd = AnsweredElsewhere()
    crowd.ledger_url_ = ledger_url
    results = Loop(cfg, backend=crowd).run()
    assert sum(r.answers for r in results) == 20
    assert crowd.calls_ == 2  # one collect per round: the answers were there, whoever wrote them


def test_sigterm_stops_a_run_as_ctrl_c_does_and_gives_the_lease_back(tmp_path, request):
    """Found 2026-12-07: SIGTERM (a container stopped, systemd) killed `clicloop run` at once, in
    silence, its runner lease held: elsewhere the next runner waited for the lease to expire."""
    url, path, first = holding("sqlite", tmp_path, request)
    first.send_signal(signal.SIGTERM)
    out, err = first.communicate(timeout=60)
    assert first.returncode == 143, err
    assert "stopped by SIGTERM; run the same command again to resume from the ledger" in err and "Traceback" not in err
    with Ledger(url) as ledger:
        assert RunnerLease(ledger, "t").holder_row() is None
    resumed = clicloop(path, stdin=subprocess.DEVNULL)
    out, err = resumed.communicate(timeout=300)
    assert resumed.returncode == 0 and "took over the lease" not in err, err
    assert_finished(url)
