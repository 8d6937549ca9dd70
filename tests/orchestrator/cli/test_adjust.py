"""`clicloop ledger adjust` pays the workers of any loop in a ledger, a deployment's review loop
included, with the floor given on the command line when there is no config."""

from __future__ import annotations

import subprocess
import sys

from clicloop.orchestrator.ledger import Ledger
from clicloop.orchestrator.types import Answer, Task


def _clicloop(*args, cwd) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "clicloop", *args], cwd=cwd, capture_output=True, text=True, timeout=300)


def _review_ledger(url: str) -> None:
    """A review loop ``bot:review`` whose two reviewers earned 0.05 EUR for 60 s each (3 EUR/h)."""
    loop = "bot:review"
    with Ledger(url) as ledger:
        ledger.begin_loop(loop, "h", "{}", 0)
        tasks = [Task(f"{loop}/0/p{i}/0", loop, 0, f"p{i}", 0, "Check what a deployed assistant understood.", ("a", "b"))
                 for i in range(2)]
        ledger.record_tasks(tasks, "sim")
        ledger.record_answers(loop, "sim", [
            (t, Answer(t.key, f"w{i}", "a", active_s=60.0, reward=0.05, fee=0.01, currency="EUR"), "submitted", None)
            for i, t in enumerate(tasks)
        ])


def test_adjust_pays_a_review_loop_from_the_ledger_url(tmp_path):
    url = f"sqlite:///{tmp_path / 'l.db'}"
    _review_ledger(url)

    no_floor = _clicloop("ledger", "adjust", "--ledger", url, cwd=tmp_path)
    assert no_floor.returncode == 2 and "--floor" in no_floor.stderr

    listed = _clicloop("ledger", "adjust", "--ledger", url, "--floor", "12.02", "--currency", "EUR", cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.count("bot:review sim/") == 2 and "pay 0.16 EUR" in listed.stdout  # 12.02 / 60 - 0.05 = 0.1503, up to the cent
    assert "EUR/h < 12.02 EUR/h" in listed.stdout  # every amount names its currency

    applied = _clicloop("ledger", "adjust", "--ledger", url, "--loop", "bot:review", "--floor", "12.02", "--apply", cwd=tmp_path)
    assert applied.returncode == 0 and "bot:review: recorded 2 adjustment payment(s)" in applied.stdout
    again = _clicloop("ledger", "adjust", "--ledger", url, "--floor", "12.02", cwd=tmp_path)
    assert "bot:review: every worker earns at least the floor" in again.stdout

    unknown = _clicloop("ledger", "adjust", "--ledger", url, "--loop", "nope", "--floor", "12", cwd=tmp_path)
    assert unknown.returncode == 2 and "no loop 'nope'" in unknown.stderr and "bot:review" in unknown.stderr


def test_adjust_computes_nothing_where_pay_is_unknown(tmp_path):
    """Answers with no payment (an in-house team whose pay was never given): no wage, no
    adjustment, the same rule as the report's 'pay unknown'."""
    url = f"sqlite:///{tmp_path / 'l.db'}"
    loop = "team.p1"
    with Ledger(url) as ledger:
        ledger.begin_loop(loop, "h", "{}", 0)
        task = Task(f"{loop}/0/x/0", loop, 0, "x", 0, "Sort tickets by topic.", ("a", "b"))
        ledger.record_tasks([task], "labelstudio")
        ledger.record_answers(loop, "labelstudio", [(task, Answer(task.key, "u1", "a", active_s=600.0, reward=0.0, fee=0.0, currency="EUR"), "submitted", None)])
    listed = _clicloop("ledger", "adjust", "--ledger", url, "--floor", "12.02", cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    assert f"{loop}: pay unknown" in listed.stdout and "pay 0" not in listed.stdout and "->" not in listed.stdout
    report = _clicloop("report", "--ledger", url, cwd=tmp_path)
    assert "pay unknown" in report.stdout


def test_the_report_names_a_pay_command_that_runs_as_printed(tmp_path):
    """`clicloop report --ledger URL` computes what is owed at the default floor and names the
    command that pays it, floor included. (Before 2026-12-05 it printed `clicloop ledger adjust
    CONFIG --apply`, with no config to give.)"""
    import re
    import shlex

    url = f"sqlite:///{tmp_path / 'l.db'}"
    _review_ledger(url)
    report = _clicloop("report", "--ledger", url, cwd=tmp_path)
    assert report.returncode == 0, report.stderr
    command = re.search(r"\((clicloop ledger adjust [^)]+)\)", " ".join(report.stdout.split()))
    assert command is not None, report.stdout
    args = shlex.split(command.group(1))[1:]
    assert args[-5:] == ["--floor", "12.02", "--currency", "EUR", "--apply"]
    paid = _clicloop(*args, cwd=tmp_path)
    assert paid.returncode == 0 and "bot:review: recorded 2 adjustment payment(s)" in paid.stdout
    assert "adjustments owed" not in _clicloop("report", "--ledger", url, cwd=tmp_path).stdout


def test_the_report_with_a_config_and_another_ledger_names_that_ledger(tmp_path):
    """`clicloop report CONFIG --ledger URL --loop NAME` reads URL, so the pay command it prints
    names URL and the loop too. (Before 2026-12-05 it printed `clicloop ledger adjust CONFIG
    --apply`, which pays the config's own ledger and loop: not what the report said was owed.)"""
    import re
    import shlex

    assert _clicloop("init", "c.yaml", cwd=tmp_path).returncode == 0  # its ledger: clicloop.db, its loop: not bot:review
    url = f"sqlite:///{tmp_path / 'other.db'}"
    _review_ledger(url)
    report = _clicloop("report", "c.yaml", "--ledger", url, "--loop", "bot:review", cwd=tmp_path)
    assert report.returncode == 0, report.stderr
    command = re.search(r"\((clicloop ledger adjust [^)]+)\)", " ".join(report.stdout.split()))
    assert command is not None, report.stdout
    args = shlex.split(command.group(1))[1:]
    assert args == ["ledger", "adjust", "c.yaml", "--ledger", url, "--loop", "bot:review", "--apply"]
    paid = _clicloop(*args, cwd=tmp_path)
    assert paid.returncode == 0 and "bot:review: recorded 2 adjustment payment(s)" in paid.stdout, paid.stderr
    assert "adjustments owed" not in _clicloop("report", "--ledger", url, cwd=tmp_path).stdout
