"""The labeling loop with item ids that are e-mail addresses and phone numbers (issue #21): an
open crowd gets opaque ids in ``item_id`` and ``task_key``, never the raw ones; answers come back
under the ledger's real keys; a confidential backend gets the ids as they are."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

from clicloop import Loop, config_from_dict
from clicloop.backends.file_exchange import FileExchange
from clicloop.backends.simulated import SimulatedCrowd
from clicloop.orchestrator.ledger import Ledger
from clicloop.orchestrator.ledger.verify import verify

PERSONAL = [f"user{i}@example.com" for i in range(8)] + ["+33 6 12 34 56 78", "0612345678"]


def pool(tmp: Path) -> Path:
    path = tmp / "pool.csv"
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["id", "text", "truth"])
        for i in range(30):
            label = "a" if i % 2 else "b"
            item = PERSONAL[i // 3] if i % 3 == 0 else f"m{i}"
            writer.writerow([item, f"{'alpha apple' if label == 'a' else 'beta banana'} request {i}", label])
    return path


def config(tmp: Path, **loop: Any) -> Any:
    return config_from_dict({
        "loop": {"name": "ids", "purpose": "Route support messages to the right team.", "batch_size": 10, **loop},
        "data": {"pool": {"path": str(pool(tmp)), "id": "id", "text": "text", "truth": "truth", "label": None}, "labels": ["a", "b"]},
        "stop": {"max_rounds": 3}, "ledger": f"sqlite:///{tmp / 'ledger.db'}"})


def leaks(text: str) -> list[str]:
    return [p for p in PERSONAL if p in text]


class Spy:
    """The simulated crowd (not confidential), keeping every task it was handed."""

    reads_ground_truth = True

    def __init__(self) -> None:
        self.inner, self.seen = SimulatedCrowd(careless_fraction=0.0), []

    def open(self, context: Any) -> None:
        self.inner.open(context)

    def dispatch(self, tasks: Any) -> None:
        self.seen += list(tasks)
        self.inner.dispatch(tasks)

    def collect(self, tasks: Any) -> Any:
        self.seen += list(tasks)
        return self.inner.collect(tasks)

    def expected_cost_per_task(self) -> float:
        return self.inner.expected_cost_per_task()

    def close(self) -> None:
        self.inner.close()


def test_an_open_crowd_sees_opaque_ids_and_answers_land_under_the_real_ones(tmp_path: Path) -> None:
    spy = Spy()
    Loop(config(tmp_path), backend=spy).run()
    sent = {t.item_id for t in spy.seen} | {t.key for t in spy.seen}
    assert spy.seen and not leaks(" ".join(sent))
    assert any(item.startswith("item-") for item in sent)
    with Ledger(f"sqlite:///{tmp_path / 'ledger.db'}") as ledger:
        labeled = ledger.labels("ids")
        assert set(labeled) & set(PERSONAL)  # answers to opaque tasks were recorded for the real items
        keys = {row["key"] for r in range(3) for row in ledger.tasks("ids", r)}
        assert {k for k in keys if "@" in k} and ledger.answered("ids", 0) <= keys
        assert verify(ledger) == []


def test_file_exchange_outbox_holds_no_personal_id_unless_confidential(tmp_path: Path) -> None:
    open_crowd = tmp_path / "open"
    Loop(config(tmp_path, round_timeout_s=0.01, poll_seconds=0.01), backend=FileExchange(str(open_crowd))).run()
    rows = [json.loads(line) for f in (open_crowd / "outbox").iterdir() for line in f.read_text().splitlines()]
    assert rows and not leaks(json.dumps(rows)) and any(r["item_id"].startswith("item-") for r in rows)

    in_house = tmp_path / "in-house"
    (tmp_path / "ledger.db").unlink()
    Loop(config(tmp_path, round_timeout_s=0.01, poll_seconds=0.01), backend=FileExchange(str(in_house), confidential=True)).run()
    text = "".join(f.read_text() for f in (in_house / "outbox").iterdir())
    assert leaks(text) and "item-" not in text
