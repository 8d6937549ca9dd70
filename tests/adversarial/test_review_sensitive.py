"""``deploy review`` with personal data in production predictions (issue #21): on a backend that
is not confidential, text that a detector flags (an e-mail address, a phone number) is not sent
and waits for a confidential backend; a prediction id that is an e-mail leaves only as an opaque
id, and the answer to it is recorded for the real prediction. The policy is the labeling loop's
(``--sensitive`` takes a loop's ``sensitive`` object)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import select

from clicloop.orchestrator.ledger import Ledger
from clicloop.orchestrator.ledger import schema as s
from clicloop.orchestrator.ledger.verify import verify
from clicloop.orchestrator.postdeploy import DeploymentStore, ingest
from clicloop.orchestrator.postdeploy.faults import FAULT_EXIT
from clicloop.orchestrator.postdeploy.triage import Triage, build_policy
from tests.adversarial.test_review_crash import START, clicloop

PREDICTIONS = {"p-plain": "play my running playlist", "p-mail": "send the receipt to jane.doe@example.com please",
               "p-phone": "call me back on +49 170 1234567 tomorrow", "bob@example.org": "set a timer for ten minutes"}
SECRETS = ["jane.doe@example.com", "1234567", "bob@example.org"]


def deployment(url: str) -> None:
    with Ledger(url) as ledger:
        store = DeploymentStore(ledger, "bot")
        store.register_version("v1", ["music", "timer"])
        store.record_promotion("deploy", "v1")
        ingest(ledger, "bot", [{"id": pid, "model_version": "v1", "predicted_label": "music", "text": text, "confidence": 0.3,
                                "time": START + i} for i, (pid, text) in enumerate(PREDICTIONS.items())])
        assert Triage(store, "default", build_policy({"name": "low-confidence", "params": {"threshold": 0.6}})).run().selected == 4


def review(url: str, folder: Path, exchange: str, *extra: str, fault: str | None = None):
    return clicloop("deploy", "review", "--ledger", url, "--deployment", "bot", "--backend", "file-exchange", "--params",
                    json.dumps({"directory": str(folder / exchange), "confidential": exchange == "in-house"}), *extra,
                    cwd=folder, fault=fault)


def outbox(folder: Path) -> list[dict]:
    return [json.loads(line) for f in sorted((folder / "outbox").iterdir()) for line in f.read_text().splitlines()]


@pytest.mark.slow
def test_an_open_crowd_gets_no_personal_text_and_no_personal_id(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    deployment(url)
    assert review(url, tmp_path, "open", fault="dispatched").returncode == FAULT_EXIT  # sent; answers come before the resume
    rows = outbox(tmp_path / "open")
    sent = json.dumps(rows)
    assert len(rows) == 2 and not [x for x in SECRETS if x in sent], sent
    assert "p-plain" in sent and sum(r["item_id"].startswith("item-") for r in rows) == 1
    (tmp_path / "open" / "inbox" / "answers.jsonl").write_text("".join(
        json.dumps({"task_key": r["task_key"], "worker": "w1", "label": "timer", "active_s": 12}) + "\n" for r in rows))

    resumed = review(url, tmp_path, "open", "--timeout", "0")
    assert resumed.returncode == 0, resumed.stderr
    assert resumed.stdout.startswith("batch 0: 2/2 reviewed") and "2 with sensitive text kept" in resumed.stdout, resumed.stdout
    with Ledger(url) as ledger, ledger.engine_.connect() as conn:
        verdicts = dict(conn.execute(select(s.pd_reviews.c.prediction_id, s.pd_reviews.c.label)).all())
        assert verdicts == {"p-plain": "timer", "bob@example.org": "timer"}  # the opaque id's answer is the real prediction's
        assert verify(ledger) == []

    in_house = review(url, tmp_path, "in-house", "--timeout", "0")  # a confidential backend: the held two go there
    assert in_house.returncode == 0 and in_house.stdout.startswith("batch 1: 0/2 reviewed"), in_house.stdout
    assert {r["item_id"] for r in outbox(tmp_path / "in-house")} == {"p-mail", "p-phone"}


@pytest.mark.slow
def test_the_sensitive_option_takes_the_loops_shape(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    deployment(url)
    bad = review(url, tmp_path, "open", "--sensitive", '{"detectors": ["ssn"]}')
    assert bad.returncode == 2 and "--sensitive" in bad.stderr and "detectors" in bad.stderr, bad.stderr
    bad = review(url, tmp_path, "open", "--sensitive", '{"patterns": ["("]}')
    assert bad.returncode == 2 and "not a valid regular expression" in bad.stderr, bad.stderr
    custom = review(url, tmp_path, "open", "--timeout", "0", "--sensitive", '{"patterns": ["playlist"]}')
    assert custom.returncode == 0, custom.stderr
    sent = json.dumps(outbox(tmp_path / "open"))
    assert "playlist" not in sent and "jane.doe@example.com" in sent  # this policy flags only its pattern
    assert "bob@example.org" not in sent  # ids that look personal never leave, whatever the text policy


@pytest.mark.slow
def test_a_resumed_batch_is_checked_again_before_it_is_sent(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    deployment(url)
    lax = review(url, tmp_path, "open", "--sensitive", '{"detectors": []}', fault="dispatched")
    assert lax.returncode == FAULT_EXIT
    strict = review(url, tmp_path, "open", "--timeout", "0")  # the default policy flags the e-mail in p-mail's text
    assert strict.returncode == 2 and "p-mail" in strict.stderr and "not confidential" in strict.stderr, strict.stderr
