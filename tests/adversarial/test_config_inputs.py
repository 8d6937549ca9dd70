"""Config values and data files that once got through (issue #21, "Ledger and runners"): each is
refused before anything is bought, with an error naming the field or the file, and a refused run
registers nothing, so the corrected config runs without --restart."""

from __future__ import annotations

import gzip
import json
import math
import sqlite3
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from clicloop import Loop, config_from_dict
from clicloop.orchestrator.cli.main import main
from clicloop.orchestrator.errors import ConfigError, DataError
from clicloop.orchestrator.ledger import Ledger
from tests.conftest import digits_config


def registered(url: str) -> list[str]:
    if not Path(url.removeprefix("sqlite:///")).exists():
        return []
    with Ledger(url) as ledger:
        return ledger.loops()


def refused(cfg: dict, error: type, match: str) -> None:
    """The run fails with ``error`` and leaves no loop in the ledger."""
    with pytest.raises(error, match=match):
        Loop(config_from_dict(cfg)).run()
    assert registered(cfg["ledger"]) == []


def digits_frames(n_features: int = 4) -> tuple[pd.DataFrame, pd.DataFrame]:
    from sklearn.datasets import load_digits

    X, y = load_digits(return_X_y=True)
    frame = pd.DataFrame(X[:, 20 : 20 + n_features], columns=[f"f{i}" for i in range(n_features)])
    frame["id"] = [f"d{i}" for i in range(len(y))]
    frame["truth"] = y.astype(str)
    frame["label"] = [str(v) if i < 40 else None for i, v in enumerate(y)]
    pool, evalset = frame.iloc[:1200].copy(), frame.iloc[1200:].drop(columns=["truth"])
    evalset["label"] = frame["truth"].iloc[1200:]
    return pool, evalset


def file_config(tmp_path: Path, pool: str, evalset: str = "eval.csv", **data: object) -> dict:
    cfg = digits_config(f"sqlite:///{tmp_path / 'ledger.db'}", stop={"max_labels": 20})
    cfg["data"] = {"pool": {"path": str(tmp_path / pool), "id": "id", "truth": "truth", "label": "label"},
                   "eval": {"path": str(tmp_path / evalset), "label": "label"}, **data}
    return cfg


# -- config values ---------------------------------------------------------------------------


@pytest.mark.parametrize("section,field,value,match", [
    ("stop", "max_cost", math.inf, "finite"),
    ("stop", "target_metric", 5, "less than or equal to 1"),
    ("stop", "target_metric", math.nan, "finite"),
    ("loop", "seed", -1, "greater than or equal to 0"),
    ("loop", "seed", 10**23, "less than or equal to"),
])
def test_out_of_range_values_are_refused_naming_the_field(tmp_path, section, field, value, match):
    cfg = digits_config(f"sqlite:///{tmp_path / 'ledger.db'}", **{section: {field: value}})
    with pytest.raises(ConfigError, match=match) as e:
        config_from_dict(cfg)
    assert e.value.field == f"{section}.{field}"


def test_model_params_the_model_refuses_fail_before_any_answer(tmp_path):
    cfg = digits_config(f"sqlite:///{tmp_path / 'ledger.db'}", data={"seed_size": 0},
                        model={"name": "scaled-logreg", "params": {"C": "abc"}})
    refused(cfg, ConfigError, r"field 'model.params.C'.*parameter C is a number, not text")


@pytest.mark.parametrize("reward", [math.nan, "abc"])
def test_a_simulated_reward_that_is_not_a_number_is_refused_before_any_answer(tmp_path, reward):
    cfg = digits_config(f"sqlite:///{tmp_path / 'ledger.db'}", backend={"name": "simulated", "params": {"reward": reward}})
    refused(cfg, ConfigError, r"field 'backend.params(.reward)?'")


def test_a_refused_run_registers_nothing_so_the_corrected_config_runs(tmp_path):
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    bad = digits_config(url, model={"name": "scaled-logreg", "params": {"C": "abc"}})
    refused(bad, ConfigError, "model.params")
    good = digits_config(url, model={"name": "scaled-logreg", "params": {"C": 1.0}})
    assert sum(r.answers for r in Loop(config_from_dict(good)).run()) == 50  # no "different config", no --restart


# -- data files -------------------------------------------------------------------------------


def test_a_truncated_gz_pool_is_named_with_a_message_not_a_silent_exit(tmp_path, capsys):
    pool, evalset = digits_frames()
    raw = gzip.compress(pool.to_csv(index=False).encode())
    (tmp_path / "pool.csv.gz").write_bytes(raw[: len(raw) // 2])
    evalset.to_csv(tmp_path / "eval.csv", index=False)
    path = tmp_path / "loop.yaml"
    path.write_text(yaml.safe_dump(file_config(tmp_path, "pool.csv.gz")))
    with pytest.raises(SystemExit) as e:
        main(["run", str(path)])
    err = capsys.readouterr().err
    assert e.value.code == 2 and "pool.csv.gz" in err and "truncated or corrupt" in err
    assert registered(f"sqlite:///{tmp_path / 'ledger.db'}") == []


@pytest.mark.parametrize("bad_line,kind", [([1, 2, 3], "an array"), (7, "a number")])
def test_a_jsonl_line_that_is_not_an_object_is_named(tmp_path, bad_line, kind):
    pool, evalset = digits_frames()
    lines = [json.dumps({k: v for k, v in row.items() if v is not None}) for row in pool.to_dict("records")]
    lines[5] = json.dumps(bad_line)
    (tmp_path / "pool.jsonl").write_text("\n".join(lines) + "\n")
    evalset.to_csv(tmp_path / "eval.csv", index=False)
    refused(file_config(tmp_path, "pool.jsonl"), DataError, rf"pool.jsonl: line 6 is {kind}, not an object")


def test_pool_and_eval_with_different_feature_counts_are_refused(tmp_path):
    pool, _ = digits_frames(4)
    _, evalset = digits_frames(5)
    pool.to_csv(tmp_path / "pool.csv", index=False)
    evalset.to_csv(tmp_path / "eval.csv", index=False)
    refused(file_config(tmp_path, "pool.csv"), DataError, r"eval.csv: the evaluation set has 5 feature\(s\) but the pool .* has 4")


def test_a_seed_label_outside_the_label_set_does_not_become_a_class(tmp_path):
    pool, evalset = digits_frames()
    pool.loc[3, "label"] = "seven"  # a typo among the seed labels
    pool.to_csv(tmp_path / "pool.csv", index=False)
    evalset.to_csv(tmp_path / "eval.csv", index=False)
    refused(file_config(tmp_path, "pool.csv"), DataError, r"seed label\(s\) \['seven'\] appear nowhere")
    labels = [str(i) for i in range(10)]
    refused(file_config(tmp_path, "pool.csv", labels=labels), DataError, r"seed labels \['seven'\] are not in data.labels")


def test_an_eval_label_spelled_otherwise_than_the_pools_does_not_become_a_class(tmp_path):
    """Found 2026-12-06: 'Eel' in the evaluation file against the pool's 'eel' (or 'cat ' against
    'cat') became a fourth class people were asked about; the accuracy target was out of reach."""
    pool, evalset = digits_frames()
    evalset.loc[evalset["label"] == "7", "label"] = "seven"
    pool.to_csv(tmp_path / "pool.csv", index=False)
    evalset.to_csv(tmp_path / "eval.csv", index=False)
    refused(file_config(tmp_path, "pool.csv"), DataError, r"eval.csv: evaluation label\(s\) \['seven'\] appear nowhere in "
            r"the pool's ground truth")
    pool, evalset = digits_frames()
    for frame, column in ((pool, "truth"), (pool, "label"), (evalset, "label")):
        frame[column] = frame[column].where(frame[column].isna(), "d" + frame[column].astype(str))
    pool.loc[pool.index[pool["truth"] == "d7"][-3:], "truth"] = "D7"  # three rows spelled otherwise
    pool.to_csv(tmp_path / "pool.csv", index=False)
    evalset.to_csv(tmp_path / "eval.csv", index=False)
    refused(file_config(tmp_path, "pool.csv"), DataError, r"labels 'D7' and 'd7' differ only in letter case or spaces")


def test_eval_labels_that_match_none_of_the_pools_are_refused(tmp_path):
    pool, evalset = digits_frames()
    evalset["label"] = "digit-" + evalset["label"]
    pool.to_csv(tmp_path / "pool.csv", index=False)
    evalset.to_csv(tmp_path / "eval.csv", index=False)
    refused(file_config(tmp_path, "pool.csv"), DataError, r"eval.csv: its labels .* match none of the pool's")
    refused(file_config(tmp_path, "pool.csv", labels=[str(i) for i in range(10)]), DataError,
            r"evaluation labels .* are not in data.labels")


def test_matching_files_still_run(tmp_path):
    pool, evalset = digits_frames()
    pool.to_csv(tmp_path / "pool.csv", index=False)
    evalset.to_csv(tmp_path / "eval.csv", index=False)
    results = Loop(config_from_dict(file_config(tmp_path, "pool.csv"))).run()
    assert sum(r.answers for r in results) == 20 and np.isfinite(results[-1].metric)


@pytest.mark.parametrize("backend", ["simulated", "event-crowd"])
def test_pool_rows_without_ground_truth_are_refused_before_a_crowd_that_answers_from_it(tmp_path, backend):
    """A row the simulated crowd could be asked about but has no truth for was found only when the
    strategy picked it: the loop was registered and its round's tasks recorded by then, and the
    error came or not by the luck of the picks."""
    pool, evalset = digits_frames()
    pool.loc[[300, 901], "truth"] = None  # two rows without a seed label either
    pool.to_csv(tmp_path / "pool.csv", index=False)
    evalset.to_csv(tmp_path / "eval.csv", index=False)
    cfg = {**file_config(tmp_path, "pool.csv"), "backend": {"name": backend}}
    refused(cfg, DataError, r"pool.csv: data.pool.truth \('truth'\) is empty in 2 row\(s\) .*'d300', 'd901'")
    pool.loc[[300, 901], "label"] = "1"  # a seed label: never asked
    pool.to_csv(tmp_path / "pool.csv", index=False)
    assert sum(r.answers for r in Loop(config_from_dict(cfg)).run()) == 20


def test_a_resume_after_a_pool_row_with_a_task_was_removed_names_the_row(tmp_path):
    pool, evalset = digits_frames()
    pool.to_csv(tmp_path / "pool.csv", index=False)
    evalset.to_csv(tmp_path / "eval.csv", index=False)
    cfg = file_config(tmp_path, "pool.csv")
    Loop(config_from_dict(cfg)).run()
    with Ledger(cfg["ledger"]) as ledger:
        asked = sorted({row["item_id"] for row in ledger.tasks(cfg["loop"]["name"], 1)})
    pool[~pool["id"].isin(asked[:1])].to_csv(tmp_path / "pool.csv", index=False)
    more = {**cfg, "stop": {"max_labels": 40}}
    with pytest.raises(DataError, match=rf"pool.csv: the ledger holds a task of item '{asked[0]}' .* not in the pool"):
        Loop(config_from_dict(more)).run()


def test_a_resume_on_a_changed_evaluation_set_is_refused_naming_the_file(tmp_path):
    """An evaluation row removed or a label changed between runs resumed silently: the loop's
    metric went on on another set, and its gains compared two sets."""
    pool, evalset = digits_frames()
    pool.to_csv(tmp_path / "pool.csv", index=False)
    evalset.to_csv(tmp_path / "eval.csv", index=False)
    cfg = file_config(tmp_path, "pool.csv")
    Loop(config_from_dict(cfg)).run()
    more = {**cfg, "stop": {"max_labels": 30}}
    changed = evalset.copy()
    changed.iloc[0, changed.columns.get_loc("label")] = "9" if changed["label"].iloc[0] != "9" else "8"
    for edited in (evalset.iloc[1:], changed):
        edited.to_csv(tmp_path / "eval.csv", index=False)
        with pytest.raises(DataError, match=r"eval.csv: the evaluation set changed since round \d+ of loop 't' measured its "
                                            r"metric.*restore the file.*--restart"):
            Loop(config_from_dict(more)).run()
    evalset.to_csv(tmp_path / "eval.csv", index=False)
    assert sum(r.answers for r in Loop(config_from_dict(more)).run()) == 30  # restored: resumes to the new budget


def test_a_float32_parquet_evaluation_set_fingerprinted_as_float64_still_resumes(tmp_path):
    """Found 2026-12-07 in review: float32 Parquet features stay float32 since 2026-12-07, and the
    evaluation set's fingerprint, recorded from them widened to float64 by an older clicloop, no
    longer matched: every such loop was refused as 'the evaluation set changed'."""
    import hashlib

    import numpy as np
    from sqlalchemy import create_engine, update

    from clicloop.orchestrator.data import load_data
    from clicloop.orchestrator.ledger import schema as s
    from clicloop.orchestrator.loop_setup import eval_digest

    pool, evalset = digits_frames()
    features = [c for c in pool.columns if c.startswith("f")]
    pool.astype({c: np.float32 for c in features}).to_parquet(tmp_path / "pool.parquet")
    evalset.astype({c: np.float32 for c in features}).to_parquet(tmp_path / "eval.parquet")
    cfg = file_config(tmp_path, "pool.parquet", "eval.parquet")
    Loop(config_from_dict(cfg)).run()
    _, ev, _ = load_data(config_from_dict(cfg).data, 0)
    assert ev.X.dtype == np.float32
    engine = create_engine(cfg["ledger"])
    X = np.asarray(ev.X, dtype=np.float64)  # the fingerprint an older clicloop recorded: the features as float64
    h = hashlib.sha256(f"{X.dtype.str}{X.shape}".encode())
    h.update(np.ascontiguousarray(X).tobytes())
    h.update("\x1e".join(map(str, ev.y)).encode())
    assert h.hexdigest() != eval_digest(ev)
    with engine.begin() as conn:
        conn.execute(update(s.eval_sizes).values(digest=h.hexdigest()))
    engine.dispose()
    assert sum(r.answers for r in Loop(config_from_dict({**cfg, "stop": {"max_labels": 30}})).run()) == 30


def _project(tmp_path: Path, embeddings: bool = False) -> Path:
    """A project folder as ``clicloop init`` leaves it: the config beside its data, relative paths."""
    folder = tmp_path / "tix"
    folder.mkdir()
    pool, evalset = digits_frames()
    pool.to_csv(folder / "pool.csv", index=False)
    evalset.to_csv(folder / "eval.csv", index=False)
    cfg = digits_config("sqlite:///ledger.db", stop={"max_labels": 20})
    cfg["data"] = {"pool": {"path": "pool.csv", "id": "id", "truth": "truth", "label": "label"},
                   "eval": {"path": "eval.csv", "label": "label"}}
    if embeddings:
        np.save(folder / "pool.npy", pool[[f"f{i}" for i in range(4)]].to_numpy())
        np.save(folder / "eval.npy", evalset[[f"f{i}" for i in range(4)]].to_numpy())
        cfg["data"]["pool"]["embeddings"], cfg["data"]["eval"]["embeddings"] = "pool.npy", "eval.npy"
    (folder / "c.yaml").write_text(yaml.safe_dump(cfg))
    return folder


@pytest.mark.parametrize("embeddings", [False, True])
def test_a_loop_resumes_from_another_folder_and_embeddings_resolve_against_the_config(tmp_path, monkeypatch, embeddings):
    """A data path counted in the loop's fingerprint as resolved against the folder the run started
    in: begun inside the project folder, the loop was "a different config" from its parent. And
    an embeddings file was looked for in the working folder, not beside the config."""
    folder = _project(tmp_path, embeddings)
    monkeypatch.chdir(folder)
    main(["run", "c.yaml"])
    monkeypatch.chdir(tmp_path)
    cfg = yaml.safe_load((folder / "c.yaml").read_text())
    cfg["stop"]["max_labels"] = 40
    (folder / "c.yaml").write_text(yaml.safe_dump(cfg))
    main(["run", "tix/c.yaml"])
    with Ledger(f"sqlite:///{folder / 'ledger.db'}") as ledger:
        assert ledger.loops() == ["t"] and sum(len(ledger.tasks("t", r["round_no"])) for r in ledger.rounds("t")) == 40


def test_a_loop_begun_from_another_folder_before_paths_counted_as_written_still_resumes(tmp_path, monkeypatch):
    from clicloop.orchestrator.config import load_config
    from clicloop.orchestrator.loop_setup import fingerprint

    folder = _project(tmp_path)
    monkeypatch.chdir(tmp_path)
    main(["run", "tix/c.yaml"])
    as_run = Loop(load_config("tix/c.yaml"))._build()  # the config as the loop runs it ("auto" settings resolved)
    old, new = (fingerprint(as_run, legacy=legacy)[0] for legacy in (True, False))
    assert old != new
    with sqlite3.connect(folder / "ledger.db") as db:  # the hash the code before recorded
        db.execute("UPDATE loops SET config_hash = ? WHERE name = 't'", (old,))
    main(["run", "tix/c.yaml"])


def test_a_loop_resumed_with_another_config_is_refused_naming_what_differs(tmp_path, monkeypatch, capsys):
    folder = _project(tmp_path)
    monkeypatch.chdir(folder)
    main(["run", "c.yaml"])
    cfg = yaml.safe_load((folder / "c.yaml").read_text())
    cfg["strategy"] = {"name": "entropy"}
    (folder / "c.yaml").write_text(yaml.safe_dump(cfg))
    with pytest.raises(SystemExit) as refusal:
        main(["run", "c.yaml"])
    assert refusal.value.code == 2
    err = capsys.readouterr().err
    assert "it differs in strategy.name ('entropy' now, 'margin-coverage' when the loop began)" in err


def test_a_resume_of_a_row_numbered_pool_says_labels_follow_the_rows(tmp_path, caplog):
    """Found 2026-12-06: a pool without an id column, its rows reordered between runs, resumed with
    no word and trained on bought labels that now sat on other items. The ledger records no item
    content, so the resume cannot tell; it says what it takes the ids to be."""
    pool, evalset = digits_frames()
    pool.drop(columns=["id"]).to_csv(tmp_path / "pool.csv", index=False)
    evalset.to_csv(tmp_path / "eval.csv", index=False)
    cfg = file_config(tmp_path, "pool.csv")
    del cfg["data"]["pool"]["id"]
    Loop(config_from_dict(cfg)).run()
    assert "named by row number" not in caplog.text  # a first run has nothing to carry over
    cfg["stop"] = {"max_labels": 30}
    Loop(config_from_dict(cfg)).run()
    assert "pool.csv has no id column (data.pool.id): its items are named by row number" in caplog.text
    assert "start over with --restart" in caplog.text


def test_the_row_number_warning_says_what_an_npy_pool_can_do(caplog):
    """A .npy file has no columns: 'give the pool an id column' was advice it cannot follow
    (found 2026-12-07 in review)."""
    from types import SimpleNamespace

    from clicloop.orchestrator.loop_setup import check_ledger_items

    ledger = SimpleNamespace(item_ids=lambda loop: ["0", "1"])
    check_ledger_items(ledger, "t", SimpleNamespace(source="pool.npy"), {"0": 0, "1": 1}, row_numbered=True)
    assert "save it as .npz with an 'id' array beside 'X'" in caplog.text
