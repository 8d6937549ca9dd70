"""Label quality and policies in the loop: adaptive redundancy, confidence weights, sensitive data."""

import collections
from decimal import Decimal

import numpy as np
import pytest

from clicloop.orchestrator.config import config_from_dict
from clicloop.orchestrator.errors import ConfigError
from clicloop.orchestrator.ledger import Ledger
from clicloop.orchestrator.loop import Loop
from clicloop.orchestrator.plugins import Registry, get_plugin_manager
from clicloop.orchestrator.fairwork.policies import PolicyError, check_dispatch, sensitive_mask
from clicloop.orchestrator.config import Sensitive
from clicloop.orchestrator.types import Answer, Task
from tests.conftest import digits_config

NOISY = {"name": "simulated", "params": {"careless_fraction": 0.3}}


def test_adaptive_redundancy_asks_more_only_where_answers_disagree(ledger_url):
    cfg = digits_config(ledger_url, loop={"redundancy": 2, "adaptive": {"max_answers": 4, "agreement": 0.7}},
                        backend=NOISY, stop={"max_labels": None, "max_rounds": 3})  # no budget cuts a round short
    Loop(config_from_dict(cfg)).run()
    with Ledger(ledger_url) as ledger:
        per_item = collections.Counter(t["item_id"] for r in range(3) for t in ledger.tasks("t", r))
        votes = collections.defaultdict(list)
        for v in ledger.votes("t"):
            votes[v["item_id"]].append(v["label"])
        assert ledger.spent("t")["answers"] == sum(per_item.values())
    assert set(per_item.values()) <= {2, 3, 4} and max(per_item.values()) > 2
    for item, n in per_item.items():
        labels = votes[item]
        if n == 2:  # stopped at two answers: they agreed
            assert len(labels) == 2 and labels[0] == labels[1]


def test_adaptive_redundancy_needs_two_first_answers():
    with pytest.raises(ConfigError, match="redundancy >= 2"):
        config_from_dict(digits_config("sqlite://", loop={"adaptive": {"max_answers": 3}}))


def test_confidence_weights_reach_the_model(tmp_path):
    seen = {}

    class Spy:
        def __init__(self):
            from sklearn.linear_model import LogisticRegression
            self.inner = LogisticRegression(max_iter=500)

        def fit(self, X, y, sample_weight=None):
            seen["w"] = sample_weight
            self.inner.fit(X, y, sample_weight=sample_weight)
            self.classes_ = self.inner.classes_
            return self

        def predict_proba(self, X):
            return self.inner.predict_proba(X)

    cfg = digits_config(f"sqlite:///{tmp_path / 'w.db'}", loop={"redundancy": 3, "weight_by_confidence": True, "pseudo_labels": None},
                        backend=NOISY, stop={"max_labels": 60})
    Loop(config_from_dict(cfg), model=Spy()).run()
    w = seen["w"]
    assert w is not None and len(w) == 40 and (w[w < 1] >= 1 / 3).all() and (w < 1).any()


def test_sensitive_items_never_reach_an_open_crowd(tmp_path):
    pool = tmp_path / "pool.csv"
    rows = ["id,text,truth,private"]
    for i in range(40):
        text = f"call me at +33 6 12 34 56 {i:02d}" if i % 4 == 0 else f"please reset password number {i}"
        rows.append(f"m{i},{text},{'a' if i % 2 else 'b'},{'true' if i == 1 else 'false'}")
    pool.write_text("\n".join(rows))
    sent = []

    class Recorder:
        confidential = False
        reads_ground_truth = True

        def __init__(self):
            from clicloop.backends.simulated import SimulatedCrowd
            self.inner = SimulatedCrowd()

        def open(self, context):
            self.inner.open(context)

        def dispatch(self, tasks):
            sent.extend(tasks)

        def collect(self, tasks):
            return self.inner.collect(tasks)

        def expected_cost_per_task(self):
            return 0.02

        def close(self):
            pass

    cfg = {"loop": {"name": "s", "purpose": "Route support messages to the right team.", "batch_size": 10,
                    "sensitive": {"detectors": ["phone"]}},
           "data": {"pool": {"path": str(pool), "id": "id", "text": "text", "truth": "truth", "sensitive": "private", "label": None},
                    "labels": ["a", "b"]},
           "stop": {"max_rounds": 10}, "ledger": f"sqlite:///{tmp_path / 's.db'}"}
    results = Loop(config_from_dict(cfg), backend=Recorder()).run()
    flagged = {f"m{i}" for i in range(40) if i % 4 == 0} | {"m1"}
    assert sent and not {t.item_id for t in sent} & flagged
    assert len({t.item_id for t in sent}) == 40 - len(flagged)
    assert "11 sensitive item(s) kept" in results[-1].stop_reason


def test_the_last_check_refuses_a_sensitive_task_or_a_task_without_purpose():
    task = Task("l/0/x/0", "l", 0, "x", 0, "Route support messages.", ("a",), sensitive=True)
    with pytest.raises(PolicyError, match="not confidential"):
        check_dispatch([task], "open-crowd", confidential=False)
    check_dispatch([task], "in-house", confidential=True)
    with pytest.raises(PolicyError, match="no purpose"):
        check_dispatch([Task("l/0/y/0", "l", 0, "y", 0, "  ", ("a",))], "in-house", confidential=True)


def test_detectors_catch_emails_and_phones():
    texts = ["write to ana@example.org", "my number is 06 12 34 56 78", "the 3 parcels arrived", "order 12345"]
    mask = sensitive_mask(texts, None, Sensitive(detectors=["email", "phone"]), len(texts))
    assert mask.tolist() == [True, True, False, False]


@pytest.mark.parametrize("name", Registry(get_plugin_manager()).names("backend"))
def test_every_backend_declares_whether_it_is_confidential(name):
    import inspect

    factory = Registry(get_plugin_manager()).get("backend", name).factory
    param = inspect.signature(factory).parameters.get("confidential")
    declared = isinstance(getattr(factory, "confidential", None), bool) or (param is not None and isinstance(param.default, bool))
    assert declared, (
        f"backend {name!r} must declare `confidential` (True only for in-house people): the loop keeps sensitive items "
        "from every backend that is not")


def test_a_policy_plugin_can_veto_and_reprice_tasks(tmp_path):
    from clicloop.orchestrator.hookspecs import hookimpl
    from clicloop.orchestrator.types import PolicyDecision

    sent = []

    class FairPay:
        @hookimpl
        def clicloop_task_policy(self, loop, backend, confidential, tasks):
            return [PolicyDecision(t.key, "veto", "item under legal hold") if t.item_id.endswith("7") else
                    PolicyDecision(t.key, "reprice", "hard item: pay more", reward=0.05) for t in tasks]

        @hookimpl
        def clicloop_tasks_dispatched(self, loop, round_no, tasks):
            sent.extend(tasks)

    pm = get_plugin_manager()
    pm.register(FairPay())
    cfg = config_from_dict(digits_config(f"sqlite:///{tmp_path / 'p.db'}", stop={"max_labels": None, "max_rounds": 3}))
    Loop(cfg, plugin_manager=pm).run()
    assert sent and not [t for t in sent if t.item_id.endswith("7")]
    assert all(t.reward == Decimal("0.05") and isinstance(t.reward, Decimal) for t in sent)  # a plugin's float, made exact
    with Ledger(cfg.ledger) as ledger:
        rows = [t for r in range(3) for t in ledger.tasks("t", r)]
        assert rows and {t["reward_micros"] for t in rows} == {50_000}
        assert ledger.spent("t")["cost"] == len(rows) * Decimal("0.06")  # reward + 20% fee


def test_a_malformed_policy_decision_names_the_fault(tmp_path):
    from clicloop.orchestrator.hookspecs import hookimpl

    class Broken:
        @hookimpl
        def clicloop_task_policy(self, loop, backend, confidential, tasks):
            return ["veto everything"]

    pm = get_plugin_manager()
    pm.register(Broken())
    cfg = config_from_dict(digits_config(f"sqlite:///{tmp_path / 'b.db'}"))
    with pytest.raises(PolicyError, match="expected PolicyDecision"):
        Loop(cfg, plugin_manager=pm).run()
