"""``loop.mode: continuous`` (orchestrator/continuous.py) on the discrete-event crowd: the queue stays
topped up, every version and the version that chose each task are recorded, queued tasks that fell
out of the ranking are withdrawn, waiting is measured, and the same seed gives the same ledger."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import select

from clicloop.orchestrator.config import config_from_dict
from clicloop.orchestrator.errors import ConfigError
from clicloop.orchestrator.ledger import Ledger
from clicloop.orchestrator.ledger import continuous as cl
from clicloop.orchestrator.ledger import schema as s
from clicloop.orchestrator.ledger.verify import verify
from clicloop.orchestrator.loop import Loop
from tests.conftest import digits_config
from tests.orchestrator.test_loop import dump as dump_tables

TABLES = ("rounds", "tasks", "assignments", "payments", "labels", "cont_versions", "cont_answers", "cont_waits")


def config(url: str, mode: str = "continuous", *, max_labels: int = 80, **crowd) -> dict:
    return digits_config(url, loop={"mode": mode, "refit_every": 10}, stop={"max_labels": max_labels},
                         backend={"name": "event-crowd", "params": {"compute_s": 2.0, **crowd}})


def dump(path) -> dict:
    return dump_tables(path, TABLES)


def test_a_continuous_loop_buys_its_budget_with_every_version_recorded(ledger_url):
    results = Loop(config_from_dict(config(ledger_url))).run()
    assert results[-1].stop_reason.startswith("label budget spent")
    assert results[-1].metric > results[0].metric
    with Ledger(ledger_url) as ledger:
        assert verify(ledger) == []
        assert ledger.spent("t")["answers"] == 80
        versions = cl.versions(ledger, "t")
        assert sorted(versions) == [r.round_no for r in results]
        assert all(v["clock_s"] is not None and v["compute_s"] == 2.0 for v in versions.values())
        stale = cl.staleness(ledger, "t")
        assert stale["answers"] == 80 and stale["mean"] > 0 and stale["mean_versions"] >= 0
        with ledger.engine_.connect() as conn:
            statuses = [row.status for row in conn.execute(select(s.tasks.c.status))]
            items = list(conn.execute(select(s.assignments.c.item_id)).scalars())
        assert len(items) == len(set(items)) == 80  # one answer per item: nothing asked twice
        assert "withdrawn" in statuses  # refits took queued tasks back
        assert statuses.count("dispatched") == 80 and set(statuses) <= {"dispatched", "withdrawn"}
        assert len(ledger.labels("t")) == 80


def test_refits_come_every_refit_every_answers(ledger_url):
    Loop(config_from_dict(config(ledger_url))).run()
    with Ledger(ledger_url) as ledger:
        seen = [v["answers_seen"] for _, v in sorted(cl.versions(ledger, "t").items())]
    assert seen[0] == 0 and all(b - a >= 10 for a, b in zip(seen[:-2], seen[1:-1]))
    assert seen[-1] == 80  # the last version (the stop) is fitted on every answer


def test_answers_keep_coming_while_the_model_refits(ledger_url):
    """A refit starts at the simulated second of the answer that triggered it and is ready
    ``compute_s`` later; the answers in between are recorded at their simulated times, under the
    version still in use, and the next version is fitted on the answers before the trigger."""
    Loop(config_from_dict(config(ledger_url, compute_s=5.0))).run()
    with Ledger(ledger_url) as ledger, ledger.engine_.connect() as conn:
        versions = cl.versions(ledger, "t")
        rows = conn.execute(select(s.cont_answers.c.seq, s.cont_answers.c.answered_round, s.assignments.c.submitted_at)
                            .join(s.assignments, s.assignments.c.task_key == s.cont_answers.c.task_key)).all()
    at = {seq: submitted - 1_800_000_000.0 for seq, _, submitted in rows}
    during = 0
    for r in sorted(versions)[1:-1]:  # between the first and the stop
        seen, ready = versions[r]["answers_seen"], versions[r]["clock_s"]
        assert ready == pytest.approx(at[seen - 1] + 5.0)  # the trigger's second + the refit
        window = [seq for seq, answered, _ in rows if seq >= seen and answered == r - 1]
        assert all(at[seq] <= ready + 1e-9 for seq in window)
        during += len(window)
    assert during > 10  # people went on answering while the model refitted


def test_people_wait_less_than_in_rounds_on_the_same_crowd(tmp_path):
    share, running = {}, {}
    for mode in ("rounds", "continuous"):
        url = f"sqlite:///{tmp_path / mode}.db"
        Loop(config_from_dict(config(url, mode, max_labels=100, compute_s=5.0))).run()
        with Ledger(url) as ledger:
            wait = cl.waiting(ledger, "t")
        share[mode] = wait["share_of_active"]
        running[mode] = (wait["wait_s"] - wait["trailing_s"]) / wait["active_s"]  # while the loop ran
    assert running["continuous"] < 0.1 < running["rounds"]
    assert share["continuous"] * 5 < share["rounds"]  # the waiting after the last answers counted too


def test_same_seed_same_ledger(tmp_path, monkeypatch):
    monkeypatch.setenv("CLICLOOP_WORKER_SALT", "fixed-salt")
    dumps = [None, None]
    for n, name in enumerate(("a", "b")):
        Loop(config_from_dict(config(f"sqlite:///{tmp_path / name}.db", max_labels=60))).run()
        dumps[n] = dump(tmp_path / f"{name}.db")
    assert dumps[0] == dumps[1] and len(dumps[0]["assignments"]) == 60


def test_the_lookahead_defaults_to_the_workers_present(ledger_url):
    loop = Loop(config_from_dict(config(ledger_url, max_labels=20, n_workers=7)))
    loop.run()
    with Ledger(ledger_url) as ledger, ledger.engine_.connect() as conn:
        first = conn.execute(select(s.tasks.c.key).where(s.tasks.c.round_no == 0)).all()
    assert len(first) >= 14  # one in hand and one queued per worker


@pytest.mark.parametrize(("ramp", "first"), [(False, 14), (True, 7)])
def test_the_lookahead_ramp_first_asks_one_task_per_worker_present(ledger_url, ramp, first):
    from clicloop.backends.des import EventCrowd

    raw = config(ledger_url, max_labels=40, n_workers=7)
    raw["loop"]["lookahead_ramp"] = ramp
    cfg = config_from_dict(raw)
    crowd = EventCrowd(**cfg.backend.params)
    dispatch, sizes = crowd.dispatch, []
    crowd.dispatch = lambda tasks: (sizes.append(len(tasks)), dispatch(tasks))[1]  # type: ignore[method-assign]
    Loop(cfg, backend=crowd).run()
    assert sizes[0] == first


def test_the_lookahead_ramp_adds_one_per_answer_up_to_twice_the_workers():
    from types import SimpleNamespace

    from clicloop.orchestrator.continuous import ContinuousRun

    cfg = config_from_dict(config("sqlite://"))
    loop = SimpleNamespace(config=cfg, backend_=SimpleNamespace(active_workers=lambda: 20))
    run = ContinuousRun(loop)  # type: ignore[arg-type]
    assert [run.lookahead(seen) for seen in (0, 10, 40)] == [40, 40, 40]
    cfg.loop.lookahead_ramp = True
    assert [run.lookahead(seen) for seen in (0, 10, 20, 40)] == [20, 30, 40, 40]


def test_a_run_with_nobody_there_stops_and_says_why(ledger_url):
    results = Loop(config_from_dict(config(ledger_url, present_share=0.0))).run()
    assert results[-1].stop_reason.startswith("no answers")


@pytest.mark.parametrize("extra", [{"redundancy": 2}, {"redundancy": 3, "adaptive": {"max_answers": 4}}])
def test_continuous_mode_refuses_several_answers_per_item(ledger_url, extra):
    raw = config(ledger_url)
    raw["loop"] |= extra
    with pytest.raises(ConfigError, match="continuous asks one answer per item"):
        config_from_dict(raw)


def test_rounds_mode_keeps_its_config_hash():
    from clicloop.orchestrator.loop_setup import fingerprint

    _, text = fingerprint(config_from_dict(digits_config("sqlite://")))
    assert not {"mode", "lookahead", "refit_every"} & set(json.loads(text)["loop"])
    _, text = fingerprint(config_from_dict(digits_config("sqlite://", loop={"mode": "continuous"})))
    assert json.loads(text)["loop"]["mode"] == "continuous"


def test_the_report_shows_waiting_and_staleness(tmp_path):
    from rich.console import Console

    from clicloop.orchestrator.reporting.report import build_report, render_report

    text = {}
    for mode in ("rounds", "continuous"):
        url = f"sqlite:///{tmp_path / mode}.db"
        Loop(config_from_dict(config(url, mode, max_labels=40))).run()
        with Ledger(url) as ledger:
            rows, totals = build_report(ledger, "t")
        console = Console(width=200, record=True)
        console.print(render_report(rows, totals))
        text[mode] = console.export_text()
        assert totals.answers == 40 and totals.waiting_share is not None
        with Ledger(url) as ledger:  # the wage on total time counts the waiting
            assert totals.total_hours * 3600 == pytest.approx(sum(cl.waiting(ledger, "t")[k] for k in ("wait_s", "active_s")))
    assert "waiting (unpaid" in text["rounds"] and "staleness" not in text["rounds"]
    assert "waiting (unpaid" in text["continuous"] and "staleness:" in text["continuous"]


@pytest.mark.parametrize("mode", ["rounds", "continuous"])
def test_workers_who_come_and_go_leave_a_sound_ledger_in_both_modes(tmp_path, mode):
    url = f"sqlite:///{tmp_path / 'l.db'}"
    results = Loop(config_from_dict(config(url, mode, max_labels=60, n_workers=8, session_mean_s=300.0,
                                           absence_mean_s=300.0, present_share=0.5))).run()
    assert results[-1].stop_reason.startswith("label budget spent")
    with Ledger(url) as ledger:
        assert verify(ledger) == [] and ledger.spent("t")["answers"] == 60
        workers = {row["worker"] for row in ledger.votes("t")}
    assert len(workers) > 4  # the ones absent at first came and answered


def test_rounds_mode_on_the_event_crowd_is_reproducible(tmp_path, monkeypatch):
    monkeypatch.setenv("CLICLOOP_WORKER_SALT", "fixed-salt")
    dumps = []
    for name in ("a", "b"):
        Loop(config_from_dict(config(f"sqlite:///{tmp_path / name}.db", "rounds", max_labels=40))).run()
        dumps.append(dump(tmp_path / f"{name}.db"))
    assert dumps[0] == dumps[1] and len(dumps[0]["assignments"]) == 40


def test_a_restart_starts_over_with_a_fresh_crowd_not_its_saved_state(tmp_path, monkeypatch):
    # With state_path the crowd remembers its answers; `run --restart` deletes the loop from the
    # ledger, so the crowd must forget too, or it would replay answers the ledger no longer has.
    monkeypatch.setenv("CLICLOOP_WORKER_SALT", "fixed-salt")
    state = str(tmp_path / "crowd.pkl")
    cfg = config_from_dict(config(f"sqlite:///{tmp_path / 'a.db'}", max_labels=60, state_path=state))
    Loop(cfg).run()
    first = dump(tmp_path / "a.db")
    Loop(cfg).run(restart=True)
    assert dump(tmp_path / "a.db") == first
    ledger = Ledger(cfg.ledger).open()
    try:
        assert verify(ledger) == []
    finally:
        ledger.close()


@pytest.mark.parametrize("mode", ["rounds", "continuous"])
def test_the_waiting_after_the_last_answers_is_recorded_once_and_counts_in_the_wages(tmp_path, mode):
    from clicloop.orchestrator.ledger import accounting
    from clicloop.orchestrator.reporting.report import build_report

    url = f"sqlite:///{tmp_path / 'l.db'}"
    raw = config(url, mode, n_workers=8)
    raw["stop"] = {"max_rounds": 4}  # a stop the loop does not see coming (a budget fully asked sends people home first)
    Loop(config_from_dict(raw)).run()
    with Ledger(url) as ledger, ledger.engine_.connect() as conn:
        rows = conn.execute(select(s.cont_waits)).all()
        last = max(r.round_no for r in conn.execute(select(s.rounds.c.round_no)))
        on_answers = conn.execute(select(s.assignments.c.wait_s)).scalars().all()
        assert rows and {r.round_no for r in rows} == {last} and all(r.wait_s > 0 for r in rows)
        trailing = sum(r.wait_s for r in rows)
        wait = cl.waiting(ledger, "t")
        assert wait["trailing_s"] == pytest.approx(trailing) and wait["wait_s"] == pytest.approx(sum(on_answers) + trailing)
        workers = accounting.by_worker(ledger.engine_, "t")  # the wage views count it
        assert sum(w["unpaid_hours"] for w in workers) * 3600 == pytest.approx(wait["wait_s"])
        assert accounting.unpaid_by_kind(ledger.engine_, "t")["wait"] * 3600 == pytest.approx(wait["wait_s"])
        totals = build_report(ledger, "t")[1]
        assert totals.total_hours * 3600 == pytest.approx(wait["wait_s"] + wait["active_s"])
        assert totals.waiting_hours * 3600 == pytest.approx(wait["wait_s"])


def test_on_a_backend_without_a_simulated_clock_the_refit_thread_runs_beside_the_polls(ledger_url):
    raw = digits_config(ledger_url, loop={"mode": "continuous", "refit_every": 10, "poll_seconds": 0.01, "lookahead": 20},
                        stop={"max_labels": 40})  # the simulated crowd: answers on poll, no clock
    results = Loop(config_from_dict(raw)).run()
    assert results[-1].stop_reason.startswith("label budget spent")
    with Ledger(ledger_url) as ledger:
        assert verify(ledger) == [] and ledger.spent("t")["answers"] == 40
        versions = cl.versions(ledger, "t")
        assert all(v["clock_s"] is None and v["compute_s"] > 0 for v in versions.values())


def test_once_the_budget_is_fully_asked_people_are_not_kept_waiting(tmp_path):
    url = f"sqlite:///{tmp_path / 'l.db'}"
    Loop(config_from_dict(config(url, max_labels=100, compute_s=5.0))).run()
    with Ledger(url) as ledger:
        wait = cl.waiting(ledger, "t")
    assert wait["trailing_s"] == 0.0  # told no more work is coming, they left as they finished


def test_ctrl_c_during_a_refit_gives_the_lease_back_without_waiting_for_the_fit(ledger_url):
    """Found 2026-12-07 (review): the refit pool's exit waited for the fit in hand before the lease
    was released, so a container's SIGTERM grace period could end with the lease still held."""
    import threading
    import time

    from sklearn.linear_model import LogisticRegression

    from clicloop.backends.simulated import SimulatedCrowd
    from clicloop.orchestrator.runner import RunnerLease

    slow_started = threading.Event()

    class SlowLater(LogisticRegression):
        def fit(self, X, y, **kw):  # noqa: ANN001, ANN201, N803
            if len(y) >= 40:  # a later version's fit: slow, in the refit thread
                slow_started.set()
                time.sleep(6)
            return super().fit(X, y, **kw)

    class InterruptedWhileFitting(SimulatedCrowd):
        def collect(self, tasks):  # noqa: ANN001, ANN201
            if slow_started.is_set():
                raise KeyboardInterrupt
            return super().collect(tasks)

    raw = digits_config(ledger_url, loop={"mode": "continuous", "refit_every": 10, "poll_seconds": 0.01, "lookahead": 20,
                                          "pseudo_labels": None}, stop={"max_labels": 200})
    loop = Loop(config_from_dict(raw), model=SlowLater(max_iter=200), backend=InterruptedWhileFitting())
    started = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        loop.run()
    assert time.monotonic() - started < 5, "the run waited for the slow fit before giving the lease back"
    with Ledger(ledger_url) as ledger:
        assert RunnerLease(ledger, "t").holder_row() is None and verify(ledger) == []
