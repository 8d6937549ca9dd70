"""Output a pipe or a log file can read: per-round lines as rounds finish, a line on resume,
tables whose numbers are never cut, and CSV."""

from __future__ import annotations

import csv
import io
import re
import subprocess
import sys

import yaml

from tests.conftest import digits_config


def _config(tmp_path, max_labels: int):
    cfg = digits_config(f"sqlite:///{tmp_path / 'l.db'}", stop={"max_labels": max_labels})
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def _clicloop(*args, cwd) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "clicloop", *args], cwd=cwd, capture_output=True, text=True, timeout=300)


def test_a_continuous_run_in_a_pipe_counts_the_answers_gathered_so_far(tmp_path):
    """In continuous mode a version's own tasks are answered after it is put in use: each line
    said "(10/60 answers)", 0.00 h and cost 0.00 to the end (the bar did not move either)."""
    cfg = digits_config(f"sqlite:///{tmp_path / 'l.db'}", stop={"max_labels": 60},
                        loop={"mode": "continuous"}, backend={"name": "event-crowd", "params": {"n_workers": 5}})
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(cfg))
    done = _clicloop("run", "c.yaml", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    lines = [ln for ln in done.stderr.splitlines() if ln.startswith("t: round ")]
    counts = [int(re.search(r"\((\d+)/60 answers\)", ln).group(1)) for ln in lines]
    assert counts == sorted(counts) and counts[-1] == 60 and len(set(counts)) > 2, lines
    assert all(ln.count(" so far (") == 1 for ln in lines) and "cost 0.00 EUR so far" not in lines[-1], lines


def test_a_run_in_a_pipe_writes_one_line_per_round_as_it_goes(tmp_path):
    config = _config(tmp_path, 30)
    proc = subprocess.Popen([sys.executable, "-m", "clicloop", "run", str(config)], cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    first = proc.stderr.readline()  # a line while the loop runs, not everything at the end
    while first.startswith("WARNING"):  # e.g. where the new ledger's pseudonym key was written
        first = proc.stderr.readline()
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    assert first.startswith("t: starting at round 0"), first
    assert [ln.split(",")[0] for ln in err.splitlines() if ln.startswith("t: round")] == [f"t: round {i}" for i in range(4)]

    more = _config(tmp_path, 50)
    resumed = _clicloop("run", str(more), cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    lines = resumed.stderr.splitlines()
    assert lines[0].startswith("t: resumed at round "), lines[:3]
    assert "30 answers already in the ledger" in lines[0]
    round_lines = [ln for ln in lines if ln.startswith("t: round ")]
    assert round_lines[0].startswith("t: round 3,") and round_lines[-1].endswith("(50/50 answers)"), round_lines
    assert all(re.search(r", cost \d+\.\d\d EUR \(", ln) for ln in round_lines), round_lines  # money names its currency


def test_report_in_a_pipe_keeps_every_number_and_speaks_csv(tmp_path):
    config = _config(tmp_path, 30)
    assert _clicloop("run", str(config), cwd=tmp_path).returncode == 0
    table = _clicloop("report", str(config), cwd=tmp_path)
    assert table.returncode == 0, table.stderr
    assert "…" not in table.stdout and "total: 30 answers" in table.stdout

    as_csv = _clicloop("report", str(config), "--format", "csv", cwd=tmp_path)
    assert as_csv.returncode == 0, as_csv.stderr
    rows = list(csv.DictReader(io.StringIO(as_csv.stdout)))
    assert [r["round_no"] for r in rows] == ["0", "1", "2", "3"]
    assert {r["loop"] for r in rows} == {"t"} and {r["currency"] for r in rows} == {"EUR"}
    assert sum(int(r["answers"]) for r in rows) == 30

    bad = _clicloop("report", str(config), "--format", "xml", cwd=tmp_path)
    assert bad.returncode == 2 and "--format" in bad.stderr


def test_the_resume_line_counts_every_answer_in_the_ledger_not_only_finished_rounds():
    """'resumed at round 1 (1 rounds and 4 answers already in the ledger)' was printed over a
    ledger holding 7: the unfinished round's answers were left out."""
    from types import SimpleNamespace

    from clicloop.orchestrator.progress import _resumed_line

    loop = SimpleNamespace(name="t", results_=[SimpleNamespace(answers=4)],
                           ledger_=SimpleNamespace(spent=lambda name: {"answers": 7.0}))
    assert _resumed_line(loop, 1) == "t: resumed at round 1 (1 round finished, 7 answers already in the ledger)"


def test_the_round_count_leaves_out_the_closing_round(tmp_path):
    """Found 2026-12-06: a run with ``stop.max_rounds: 2`` ended on "(3/2 rounds)": the closing
    round, which evaluates the last model and buys nothing, was counted as a labeling round."""
    cfg = {**digits_config(f"sqlite:///{tmp_path / 'l.db'}"), "stop": {"max_rounds": 2}}
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(cfg))
    done = _clicloop("run", "c.yaml", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    counts = re.findall(r"\((\d+/\d+) rounds\)", done.stderr)
    assert counts == ["1/2", "2/2", "2/2"], done.stderr


def test_a_long_step_in_a_pipe_writes_its_progress_without_verbose(tmp_path):
    """Found 2026-12-06: on a 1,000,000-item pool the first neighbour graph took two minutes and a
    run writing to a log file printed nothing meanwhile (its lines were INFO, shown only with -v)."""
    cfg = {**digits_config(f"sqlite:///{tmp_path / 'l.db'}"), "stop": {"max_rounds": 2}}
    cfg["loop"] = {**cfg["loop"], "pseudo_labels": {"graph": "approximate"}}
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(cfg))
    done = _clicloop("run", "c.yaml", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert re.search(r"neighbour graph of 1,\d{3} items \(two passes: cells, then neighbours\): 100% \(\d+ of \d+\)",
                     done.stderr), done.stderr
