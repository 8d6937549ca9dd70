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

    def aggregate(self, votes, rng):
        by: dict[str, list[str]] = {}
        for v in votes:
            by.setdefault(v.item_id, []).append(v.label)
        out = [Consensus(i, Counter(ls).most_common(1)[0][0], 1.0, len(ls)) for i, ls in sorted(by.items())]
        first = out[0]
        bad = {"ok": None,
               "unknown item": Consensus("ghost-item", first.label, 1.0, 1),
               "outside the set": Consensus(first.item_id, "zebra", 1.0, 1),
               "nan confidence": Consensus(first.item_id, first.label, float("nan"), 1),
               "twice": Consensus(first.item_id, first.label, 1.0, 1)}[self.mode]
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


@pytest.mark.parametrize("mode, says", [("unknown item", "'ghost-item' has no answer"),
                                        ("outside the set", "label 'zebra' is not in the label set"),
                                        ("nan confidence", "confidence nan"),
                                        ("twice", "has a second label")])
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
