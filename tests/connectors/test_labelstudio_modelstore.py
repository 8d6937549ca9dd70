"""Unit tests of the ML backend's parts that need no server: the model store, the round clock
and a model seen through a changed label set."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from clicloop.connectors.labelstudio.labelset import compare, parse_schema, restrict
from clicloop.connectors.labelstudio.modelstore import (
    ModelStore,
    StoredModelError,
    default_store,
    stored_projects,
    training_set_hash,
    version_number,
)
from clicloop.connectors.labelstudio.rounds import RoundClock


def _fitted() -> object:
    from sklearn.linear_model import LogisticRegression

    X = np.random.default_rng(0).normal(size=(30, 2))
    return LogisticRegression().fit(X, np.array(["a", "b", "c"] * 10))


def test_a_stored_model_comes_back_with_its_record_and_no_temporary_file(tmp_path: Path) -> None:
    store = ModelStore(tmp_path, "support.p3")
    model = _fitted()
    record = store.save("support-v1", model, {"trained_on": 30, "training_set": training_set_hash([2, 1], ["a", "b"], ["x", "y"])})
    assert record["libraries"]["sklearn"] and store.meta("support-v1") == record
    X = np.zeros((2, 2))
    np.testing.assert_array_equal(store.load("support-v1").predict_proba(X), model.predict_proba(X))  # type: ignore[attr-defined]
    store.save_config("<View/>")
    assert sorted(p.name for p in store.dir.iterdir()) == ["config.xml", "support-v1.joblib", "support-v1.json"]
    assert store.versions() == ["support-v1"] and list(stored_projects(tmp_path, "support")) == [3]
    assert stored_projects(tmp_path, "other") == {}


def test_a_model_of_other_library_versions_or_a_broken_file_is_refused_with_the_reason(tmp_path: Path) -> None:
    store = ModelStore(tmp_path, "p.p1")
    store.save("p-v1", _fitted(), {})
    meta = store.dir / "p-v1.json"
    record = json.loads(meta.read_text())
    meta.write_text(json.dumps({**record, "libraries": {**record["libraries"], "numpy": "1.0.0"}}))
    with pytest.raises(StoredModelError, match=r"other library versions \(numpy 1.0.0 -> .*retraining instead"):
        store.load("p-v1")
    meta.write_text(json.dumps(record))
    (store.dir / "p-v1.joblib").write_bytes(b"not a pickle")
    with pytest.raises(StoredModelError, match="cannot load model p-v1"):
        store.load("p-v1")
    with pytest.raises(StoredModelError, match="not in the model store"):
        store.load("p-v2")


def test_the_training_set_hash_ignores_task_order() -> None:
    assert training_set_hash([1, 2], ["a", "b"], ["x", "y"]) == training_set_hash([2, 1], ["b", "a"], ["y", "x"])
    assert training_set_hash([1, 2], ["a", "b"], ["x", "y"]) != training_set_hash([1, 2], ["a", "a"], ["x", "y"])


def test_the_default_store_sits_beside_a_sqlite_ledger() -> None:
    assert default_store("sqlite:////data/support.db") == Path("/data/support-models")
    assert default_store("sqlite:///support.db") == Path("support-models")
    assert default_store("postgresql+psycopg://u@h/db") == Path("clicloop-models")
    assert version_number("support-v12", "support") == 12
    assert version_number("support.p3-cold", "support") is None and version_number("other-v1", "support") is None


def test_the_round_clock_finds_the_version_serving_at_a_moment() -> None:
    clock = RoundClock([{"round_no": 1, "recorded_at": 2000.0}, {"round_no": 0, "recorded_at": 1000.0}])
    clock.add(2, 3000.0)
    at = "1970-01-01T00:{:02d}:{:02d}Z".format
    assert [clock.round_at(at(m, s), default=9) for m, s in ((0, 1), (20, 0), (40, 0), (55, 0))] == [0, 0, 1, 2]
    assert clock.round_at(None, default=9) == 9 and clock.round_at("yesterday", default=9) == 9


def test_a_removed_label_is_never_predicted() -> None:
    model = _fitted()
    X = np.random.default_rng(1).normal(size=(5, 2))
    kept = restrict(model, ("a", "c", "z"))
    P = kept.predict_proba(X)
    assert list(kept.classes_) == ["a", "c"] and np.allclose(P.sum(axis=1), 1)
    full = model.predict_proba(X)  # type: ignore[attr-defined]
    np.testing.assert_allclose(P, full[:, [0, 2]] / full[:, [0, 2]].sum(axis=1, keepdims=True))
    assert restrict(model, ("a", "b", "c")) is model and restrict(model, ("z",)) is None
    old = parse_schema('<View><Text name="t" value="$t"/><Choices name="c" toName="t"><Choice value="a"/><Choice value="b"/></Choices></View>')
    new = parse_schema('<View><Text name="t" value="$t"/><Choices name="c" toName="t"><Choice value="b"/><Choice value="c"/></Choices></View>')
    change = compare(old, new)
    assert (change.added, change.removed, change.any) == (("c",), ("a",), True) and not compare(new, new).any
