"""What a third-party plugin hands the loop is checked before the ledger keeps it: an
aggregator's labels (found 2026-12-06: a label for an item nobody answered was committed, then
every round and every resume failed with KeyError, and ``ledger verify`` failed; a label outside
the set trained an eleventh class)."""

from __future__ import annotations

from collections import Counter

import pytest

from clicloop import hookimpl
from clicloop.orchestrator.config import config_from_dict
from clicloop.orchestrator.errors import AggregatorError
from clicloop.orchestrator.ledger import Ledger
from clicloop.orchestrator.ledger.verify import verify
from clicloop.orchestrator.loop import Loop
from clicloop.orchestrator.plugins import get_plugin_manager
from clicloop.orchestrator.types import Consensus
from tests.conftest import digits_config


class Broken:
    """Majority vote, then one defect (the class's ``mode``: a test sets it, then fixes it)."""

    mode = "ok"
    on_trial = False  # misbehave on the loop's trial aggregation too

    def aggregate(self, votes, rng):
        by: dict[str, list[str]] = {}
        for v in votes:
            by.setdefault(v.item_id, []).append(v.label)
        out = [Consensus(i, Counter(ls).most_common(1)[0][0], 1.0, len(ls)) for i, ls in sorted(by.items())]
        first = out[0]
        if len(votes) <= 6 and not self.on_trial:  # the loop's trial aggregation before anything is bought
            return out
        bad = {"ok": None,
               "unknown item": Consensus("ghost-item", first.label, 1.0, 1),
               "outside the set": Consensus(first.item_id, "zebra", 1.0, 1),
               "nan confidence": Consensus(first.item_id, first.label, float("nan"), 1),
               "twice": Consensus(first.item_id, first.label, 1.0, 1), "left out": None}[self.mode]
        if self.mode == "left out":
            return out[1:]
        if bad is not None:
            out = out[1:] + [bad] if self.mode in ("outside the set", "nan confidence") else out + [bad]
        return out


class BrokenPlugin:
    @hookimpl
    def clicloop_register_aggregators(self, register):
        register("broken", Broken)


def _loop(url: str) -> Loop:
    pm = get_plugin_manager()
    pm.register(BrokenPlugin(), name="broken-aggregator")
    return Loop(config_from_dict(digits_config(url, aggregator={"name": "broken"}, stop={"max_labels": 30})), plugin_manager=pm)


def test_an_aggregator_that_fails_its_trial_is_refused_before_any_answer_is_bought(tmp_path, monkeypatch):
    """An aggregator that leaves items out (or breaks on its params) made the loop buy answers first."""
    url = f"sqlite:///{tmp_path / 'l.db'}"
    monkeypatch.setattr(Broken, "mode", "unknown item")
    monkeypatch.setattr(Broken, "on_trial", True)
    with pytest.raises(AggregatorError, match=r"on a trial of 6 made-up answers \(items trial-a, trial-b\), before any answer is bought: .*ghost-item"):
        _loop(url).run()
    assert not (tmp_path / "l.db").exists() or Ledger(url).open().spent("t")["answers"] == 0


@pytest.mark.parametrize("mode, says", [("unknown item", "'ghost-item' has no answer"),
                                        ("outside the set", "label 'zebra' is not in the label set"),
                                        ("nan confidence", "confidence nan"),
                                        ("twice", "has a second label"),
                                        ("left out", "no label for 1 item")])
def test_an_aggregators_bad_label_is_refused_before_the_ledger_keeps_it(tmp_path, monkeypatch, mode, says):
    url = f"sqlite:///{tmp_path / 'l.db'}"
    monkeypatch.setattr(Broken, "mode", mode)
    with pytest.raises(AggregatorError, match=f"Broken returned .*{says}.*nothing was recorded"):
        _loop(url).run()
    with Ledger(url) as ledger:
        assert ledger.labels("t") == {} or all(v != "zebra" for v in ledger.labels("t").values())
        assert "ghost-item" not in ledger.labels("t")
        assert verify(ledger) == []
        answers = ledger.spent("t")["answers"]
    assert answers > 0  # the answers bought stay in the ledger, paid; the round resumes once the aggregator is fixed
    monkeypatch.setattr(Broken, "mode", "ok")
    _loop(url).run()
    with Ledger(url) as ledger:
        assert ledger.spent("t")["answers"] == 30 and verify(ledger) == []


class Altering:
    """A third-party backend: the simulated crowd, with the first answer of each collect altered."""

    def __init__(self, alter, **params):
        from clicloop.backends.simulated import SimulatedCrowd

        self.inner, self.alter = SimulatedCrowd(**params), alter

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def collect(self, tasks):
        answers = self.inner.collect(tasks)
        return [self.alter(answers[0]), *answers[1:]] if answers else answers


def _altered(url: str, alter, **params) -> dict[str, dict]:
    from sqlalchemy import select

    from clicloop.orchestrator.ledger import schema as s

    Loop(config_from_dict(digits_config(url, stop={"max_labels": 30})), backend=Altering(alter, **params)).run()
    with Ledger(url) as ledger, ledger.engine_.connect() as conn:
        assert verify(ledger) == []
        rows = {r.task_key: r._mapping for r in conn.execute(select(s.assignments))}
        paid = {r.currency for r in conn.execute(select(s.payments))}
        return {"rows": rows, "paid": paid, "currency": ledger.currency("t")}


def test_active_seconds_above_the_limit_from_any_backend_are_quarantined_at_0_s_and_unpaid(tmp_path):
    """A plugin backend's answer of 1e6 active seconds was recorded 'submitted' at 277.8 h and paid
    (the limit was applied by the built-in backends only), and ``ledger verify`` then failed."""
    from dataclasses import replace

    got = _altered(f"sqlite:///{tmp_path / 'l.db'}", lambda a: replace(a, active_s=1e6))
    odd = [r for r in got["rows"].values() if r["status"] == "quarantined"]
    assert len(odd) == 3 and all(r["active_s"] == 0 and "active_s 1e+06 s is above the plausibility limit" in r["reason"]
                                 for r in odd)
    assert all(r["active_s"] <= 28800 for r in got["rows"].values())


def test_pay_in_another_currency_is_quarantined_not_summed_with_the_loops(tmp_path):
    """A plugin backend paying in EUR reported one USD answer a round: it was 'submitted', its
    dollars added to the loop's euros, and the report then labelled the whole loop USD."""
    from dataclasses import replace

    got = _altered(f"sqlite:///{tmp_path / 'l.db'}", lambda a: replace(a, currency="USD"))
    odd = [r for r in got["rows"].values() if r["status"] == "quarantined"]
    assert len(odd) == 3 and all("paid in 'USD'" in r["reason"] and "pays in EUR" in r["reason"] for r in odd)
    assert got["paid"] == {"EUR"} and got["currency"] == "EUR"


class Late:
    """The simulated crowd, but the first task of round 1 is answered only after its round's
    timeout expired it: the answer comes back with the next round's answers."""

    def __init__(self):
        from clicloop.backends.simulated import SimulatedCrowd

        self.inner, self.held, self.late_key = SimulatedCrowd(), None, None

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def collect(self, tasks):
        answers = self.inner.collect(tasks)
        if self.late_key is None and tasks and tasks[0].round_no == 1:
            self.late_key = tasks[0].key
        held = [a for a in answers if a.task_key == self.late_key]
        if held:
            self.held = held[0]
        answers = [a for a in answers if a.task_key != self.late_key]
        if self.held is not None and tasks and tasks[0].round_no >= 2:
            answers.append(self.held)
        return answers


def test_a_late_answer_to_an_expired_task_is_recorded_paid_and_counted(tmp_path):
    """An answer to a task its round had expired was logged "for unknown tasks ... ignored": the
    person's work was neither recorded nor paid, and its label never counted."""
    from sqlalchemy import select

    from clicloop.orchestrator.ledger import schema as s

    url = f"sqlite:///{tmp_path / 'l.db'}"
    backend = Late()
    cfg = digits_config(url, loop={"round_timeout_s": 0.3, "poll_seconds": 0.05}, stop={"max_labels": 40})
    Loop(config_from_dict(cfg), backend=backend).run()
    with Ledger(url) as ledger, ledger.engine_.connect() as conn:
        assert verify(ledger) == []
        task = conn.execute(select(s.tasks).where(s.tasks.c.key == backend.late_key)).one()
        answer = conn.execute(select(s.assignments).where(s.assignments.c.task_key == backend.late_key)).one()
        paid = conn.execute(select(s.payments.c.kind).where(s.payments.c.task_key == backend.late_key)).scalars().all()
        assert task.status == "expired" and task.round_no == 1 and answer.round_no == 1 and answer.status == "submitted"
        assert sorted(paid) == ["fee", "reward"]
        assert task.item_id in ledger.labels("t")


@pytest.mark.parametrize("field", ["wait_s", "search_s", "returned_s", "qualification_s"])
def test_unpaid_seconds_above_the_limit_are_quarantined_too(tmp_path, field):
    """A plugin's 1e6 s of waiting was recorded: 833 h of total time and 10,016 EUR owed, which
    `ledger adjust --apply` would have paid (only active seconds were checked)."""
    from dataclasses import replace

    got = _altered(f"sqlite:///{tmp_path / 'l.db'}", lambda a: replace(a, **{field: 1e6}))
    odd = [r for r in got["rows"].values() if r["status"] == "quarantined"]
    assert len(odd) == 3 and all(f"{field} 1e+06 s is above the plausibility limit" in r["reason"] for r in odd)
    assert all(r[c] < 28800 for r in got["rows"].values() for c in ("active_s", "search_s", "wait_s", "returned_s"))


def test_a_currency_in_other_letters_is_the_same_and_bad_pay_records_no_fee(tmp_path):
    """'eur' from a backend paying EUR was quarantined; a negative reward was quarantined but its
    fee recorded as paid."""
    from dataclasses import replace

    from sqlalchemy import select

    from clicloop.orchestrator.ledger import schema as s

    url = f"sqlite:///{tmp_path / 'l.db'}"
    answers = iter(range(1000))

    def alter(a):
        return replace(a, currency="eur") if next(answers) % 2 else replace(a, reward=-0.5)

    got = _altered(url, alter)
    odd = {k: r for k, r in got["rows"].items() if r["status"] == "quarantined"}
    assert odd and all("-0.5" in r["reason"] for r in odd.values())  # the raw value kept
    with Ledger(url) as ledger, ledger.engine_.connect() as conn:
        assert not conn.execute(select(s.payments).where(s.payments.c.task_key.in_(list(odd)))).all()


class NoCurrency(Altering):
    """A backend that states no currency, whose very first answer is in another one."""

    def __getattr__(self, name):
        if name == "currency":
            raise AttributeError(name)
        return getattr(self.inner, name)


def test_without_a_stated_currency_one_stray_first_answer_does_not_set_the_loops(tmp_path):
    """The first answer recorded set the loop's currency: one USD answer in a first poll of EUR
    answers made the loop USD and quarantined 29 of 30 EUR answers, unpaid."""
    from dataclasses import replace

    from sqlalchemy import select

    from clicloop.orchestrator.ledger import schema as s

    url = f"sqlite:///{tmp_path / 'l.db'}"
    first = iter([True])
    backend = NoCurrency(lambda a: replace(a, currency="USD") if next(first, False) else a)
    Loop(config_from_dict(digits_config(url, stop={"max_labels": 30})), backend=backend).run()
    with Ledger(url) as ledger, ledger.engine_.connect() as conn:
        statuses = [r.status for r in conn.execute(select(s.assignments))]
        assert ledger.currency("t") == "EUR" and statuses.count("quarantined") == 1 and len(statuses) == 30


def test_an_aggregator_that_cannot_be_copied_or_knows_the_real_items_is_not_refused_by_the_trial():
    """The trial runs on a copy: one holding a lock (no copy) or looking up real item ids (a KeyError
    on the made-up ones) is left to the real rounds, not refused as "fails with its params"."""
    import threading

    from clicloop.orchestrator.config import config_from_dict as load
    from clicloop.orchestrator.loop_setup import check_aggregator

    class Locked:
        def __init__(self):
            self.lock = threading.Lock()

        def aggregate(self, votes, rng):
            raise AssertionError("the trial ran on an aggregator it could not copy")

    class Prior:
        prior = {"digit-0001": "1"}

        def aggregate(self, votes, rng):
            return [Consensus(v.item_id, self.prior[v.item_id], 1.0, 1) for v in votes]

    cfg = load(digits_config("sqlite://"))
    check_aggregator(cfg, Locked(), ["a", "b"])
    check_aggregator(cfg, Prior(), ["a", "b"])
