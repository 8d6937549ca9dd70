"""The command line as a user runs it: a subprocess, real files, exit codes."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest


def clicloop(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "clicloop", *args], cwd=cwd, capture_output=True, text=True, timeout=300)


@pytest.mark.slow
def test_quickstart_prints_a_summary_against_random(tmp_path):
    run = clicloop("quickstart", "--budget", "200", cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    assert "margin reached the target with" in run.stdout
    assert "effective wage" in run.stdout and "floor" in run.stdout
    # progress on stderr as `clicloop run`'s, so `quickstart > result.txt` holds the result only
    assert "quickstart-margin: round 1," in run.stderr and "quickstart-margin: round" not in run.stdout
    assert (tmp_path / "clicloop-quickstart.db").exists()
    report = clicloop("report", "--ledger", "sqlite:///clicloop-quickstart.db", "--json", cwd=tmp_path)
    data = json.loads(report.stdout)
    assert set(data) == {"quickstart-margin", "quickstart-random"}
    assert data["quickstart-margin"]["totals"]["answers"] == 200


def test_init_then_run_then_report(tmp_path):
    assert clicloop("init", cwd=tmp_path).returncode == 0
    config = tmp_path / "clicloop.yaml"
    config.write_text(config.read_text().replace("max_labels: 300", "max_labels: 30"))
    run = clicloop("run", "clicloop.yaml", cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    assert "total: 30 answers" in run.stdout and "effective wage" in run.stdout
    assert clicloop("init", cwd=tmp_path).returncode == 2  # refuses to overwrite


def test_errors_are_one_clear_line_and_exit_2(tmp_path):
    (tmp_path / "bad.yaml").write_text("loop: {purpose: 'Label digits for a form reader.'}\ndata: {builtin: digits}\nstop: {max_rounds: 1}\nstrategy: {name: nope}\n")
    run = clicloop("run", "bad.yaml", cwd=tmp_path)
    assert run.returncode == 2
    assert run.stderr.startswith("error: ") and "unknown strategy 'nope'" in run.stderr and "Traceback" not in run.stderr


def test_help_lists_the_commands(tmp_path):
    out = clicloop("--help", cwd=tmp_path).stdout
    for command in ("quickstart", "run", "report", "init", "plugins"):
        assert command in out


def test_help_reflows_each_commands_summary_instead_of_keeping_the_docstrings_line_breaks(tmp_path):
    # rich markup mode kept a docstring's single line breaks in the command list, so a summary
    # broke mid-sentence ("with a simulated crowd" / "paid at the wage floor") at any width
    run = subprocess.run([sys.executable, "-m", "clicloop", "--help"], cwd=tmp_path, capture_output=True, text=True,
                         timeout=60, env={**os.environ, "COLUMNS": "250"})
    assert "with a simulated crowd paid at the wage floor" in run.stdout


def test_ledger_commands_verify_export_adjust_and_labor_card(tmp_path):
    assert clicloop("init", cwd=tmp_path).returncode == 0
    config = tmp_path / "clicloop.yaml"
    config.write_text(config.read_text().replace("max_labels: 300", "max_labels: 20"))
    assert clicloop("run", "clicloop.yaml", cwd=tmp_path).returncode == 0
    verified = clicloop("ledger", "verify", "clicloop.yaml", cwd=tmp_path)
    assert verified.returncode == 0 and "invariants hold" in verified.stdout
    exported = clicloop("ledger", "export", "out", "--config", "clicloop.yaml", "--format", "csv", cwd=tmp_path)
    assert exported.returncode == 0 and (tmp_path / "out" / "assignments.csv").exists()
    proposed = clicloop("ledger", "adjust", "clicloop.yaml", cwd=tmp_path)
    assert proposed.returncode == 0 and "pass --apply" in proposed.stdout
    applied = clicloop("ledger", "adjust", "clicloop.yaml", "--apply", cwd=tmp_path)
    assert "recorded" in applied.stdout
    assert "every worker earns at least the floor" in clicloop("ledger", "adjust", "clicloop.yaml", cwd=tmp_path).stdout
    card = clicloop("labor-card", "clicloop.yaml", "--model-version", "digits-margin-r2", "--out", "card", cwd=tmp_path)
    assert card.returncode == 0, card.stderr
    text = (tmp_path / "card.md").read_text()
    assert "# Labor card: digits-margin-r2" in text and "0 of" in text and "below the 12.02 floor" in text
    missing = clicloop("labor-card", "clicloop.yaml", "--model-version", "nope", cwd=tmp_path)
    assert missing.returncode == 2 and "no model version 'nope'" in missing.stderr


def test_a_missing_optional_dependency_names_the_extra_to_install(monkeypatch, capsys, tmp_path):
    from clicloop.orchestrator.cli.main import main

    monkeypatch.setitem(sys.modules, "uvicorn", None)  # as if the dashboard extra were not installed
    with pytest.raises(SystemExit) as exit_info:
        main(["dashboard", "--ledger", f"sqlite:///{tmp_path / 'l.db'}"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "uvicorn" in err and "pip install 'clicloop[labelstudio,dashboard]'" in err


def test_a_usage_error_exits_2_with_the_option_named(capsys):
    from clicloop.orchestrator.cli.main import main

    with pytest.raises(SystemExit) as exit_info:
        main(["run", "--bogus"])
    assert exit_info.value.code == 2
    assert "--bogus" in capsys.readouterr().err


def test_run_verbose_says_which_model_and_pseudo_labels_and_why(tmp_path):
    """`clicloop run -v` shows the loop's decisions (the model `auto` picked, pseudo-labels on or
    off) with their reasons; without it they stay out of the output. (Before 2026-12-05 the loop
    logged them at INFO and `clicloop run` had no way to show them.)"""
    assert clicloop("init", cwd=tmp_path).returncode == 0
    config = tmp_path / "clicloop.yaml"
    config.write_text(config.read_text().replace("max_labels: 300", "max_labels: 20"))
    quiet = clicloop("run", "clicloop.yaml", cwd=tmp_path)
    assert quiet.returncode == 0, quiet.stderr
    assert "model: scaled-logreg" not in quiet.stderr
    loud = clicloop("run", "clicloop.yaml", "--restart", "-v", cwd=tmp_path)
    assert loud.returncode == 0, loud.stderr
    assert "model: scaled-logreg (" in loud.stderr and "loop.pseudo_labels: auto is on" in loud.stderr


def test_ctrl_c_says_how_to_resume(tmp_path, monkeypatch, capsys):
    """Typer turns KeyboardInterrupt into Exit(130) before main() sees it, so the resume hint was
    never printed: Ctrl-C on `clicloop run` exited 130 in silence."""
    import pytest

    from clicloop.orchestrator.cli.main import main
    from clicloop.orchestrator.loop import Loop

    monkeypatch.chdir(tmp_path)
    assert main(["init"]) is None

    def interrupted(self, *args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(Loop, "run", interrupted)
    with pytest.raises(SystemExit) as e:
        main(["run", "clicloop.yaml"])
    assert e.value.code == 130
    assert "interrupted; run the same command again to resume from the ledger" in capsys.readouterr().err


def test_a_ledger_connection_lost_mid_run_is_one_line_that_says_to_run_again(tmp_path, monkeypatch, capsys):
    """A PostgreSQL session ended by an administrator mid-query ended `clicloop run` with 90
    lines of traceback and exit status 1."""
    from sqlalchemy.exc import OperationalError

    from clicloop.orchestrator.cli.main import main
    from clicloop.orchestrator.loop import Loop

    monkeypatch.chdir(tmp_path)
    assert main(["init"]) is None

    class AdminShutdown(Exception):
        sqlstate = "57P01"

    def dropped(self, *args, **kwargs):
        raise OperationalError("SELECT labels.item_id FROM labels", {}, AdminShutdown(
            "terminating connection due to administrator command\nSSL connection has been closed unexpectedly"))

    monkeypatch.setattr(Loop, "run", dropped)
    with pytest.raises(SystemExit) as e:
        main(["run", "clicloop.yaml"])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: the ledger's database failed mid-command (terminating connection due to administrator "
                          "command); what was committed is kept: run the same command again") and "Traceback" not in err

    def missing_table(self, *args, **kwargs):  # a bug, not a lost connection: its traceback stays
        raise OperationalError("SELECT x FROM nowhere", {}, Exception("no such table: nowhere"))

    monkeypatch.setattr(Loop, "run", missing_table)
    with pytest.raises(OperationalError, match="no such table"):
        main(["run", "clicloop.yaml"])


def test_commands_that_need_a_ledger_never_create_one(tmp_path, capsys):
    """deploy status/report/promote/rollback, ledger adjust (a dry run) and ledger quality made an
    empty ledger, folders included, then said 'nothing deployed' with exit 0; `ledger verify` then
    passed on that empty file."""
    import pytest

    from clicloop.orchestrator.cli.main import main

    url = f"sqlite:///{tmp_path / 'nope' / 'x.db'}"
    for args in (["deploy", "status", "--ledger", url], ["deploy", "report", "--ledger", url],
                 ["deploy", "promote", "v1", "--ledger", url], ["deploy", "rollback", "--ledger", url],
                 ["ledger", "adjust", "--ledger", url, "--floor", "12"]):
        with pytest.raises(SystemExit) as e:
            main(args)
        assert e.value.code == 2 and "no ledger at" in capsys.readouterr().err, args
    assert not (tmp_path / "nope").exists()


def test_servers_refuse_a_port_out_of_range_or_in_use_before_saying_they_listen(tmp_path, monkeypatch, capsys):
    """`serve ingest --port -1` (and `serve labelstudio --port 70000`) ended in an OverflowError
    traceback, the ledger created; the dashboard on a port in use printed 'on http://...' first."""
    import socket

    import pytest

    from clicloop.orchestrator.cli.main import main

    monkeypatch.setenv("CLICLOOP_INGEST_TOKEN", "t" * 20)
    url = f"sqlite:///{tmp_path / 'ing.db'}"
    with pytest.raises(SystemExit) as e:
        main(["serve", "ingest", "--ledger", url, "--port", "-1"])
    assert e.value.code == 2 and "--port -1 is not a port number" in capsys.readouterr().err
    assert not (tmp_path / "ing.db").exists()
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(SystemExit) as e:
            main(["dashboard", "--ledger", url, "--port", str(port)])
        err = capsys.readouterr().err
        assert e.value.code == 2 and f"cannot listen on 127.0.0.1:{port}" in err and "dashboard on" not in err


def test_wrong_paths_and_values_are_one_clear_line(tmp_path, monkeypatch, capsys):
    """Each of these was a traceback (init into a missing folder, export onto a file), an empty
    output with exit 0 (csv of a loop the ledger lacks) or a forecast 'to nan'."""
    import pytest

    from clicloop.orchestrator.cli.main import main

    monkeypatch.chdir(tmp_path)
    assert main(["init", "sub/dir/c.yaml"]) is None and (tmp_path / "sub" / "dir" / "c.yaml").is_file()
    (tmp_path / "c.yaml").write_text((tmp_path / "sub" / "dir" / "c.yaml").read_text().replace("max_labels: 300", "max_labels: 20"))
    assert main(["run", "c.yaml"]) is None
    capsys.readouterr()
    (tmp_path / "afile").write_text("")
    for args, said in ((["ledger", "export", "afile", "--config", "c.yaml"], "afile is a file"),
                       (["report", "c.yaml", "--loop", "nosuch", "--format", "csv"], "no loop 'nosuch'"),
                       (["report", "c.yaml", "--target", "nan"], "--target"),
                       (["report", "c.yaml", "--target", "5"], "--target"),
                       (["quickstart", "--budget", "0"], "--budget"),
                       (["report", "c.yaml", "--json", "--format", "csv"], "--json")):
        with pytest.raises(SystemExit) as e:
            main(args)
        assert e.value.code == 2 and said in capsys.readouterr().err, args


def test_a_config_error_found_after_reading_names_the_file(tmp_path, monkeypatch, capsys):
    import pytest

    from clicloop.orchestrator.cli.main import main

    monkeypatch.chdir(tmp_path)
    main(["init", "c.yaml"])
    (tmp_path / "c.yaml").write_text((tmp_path / "c.yaml").read_text().replace("name: margin-coverage", "name: marginn"))
    with pytest.raises(SystemExit):
        main(["run", "c.yaml"])
    assert capsys.readouterr().err.startswith("error: c.yaml, field 'strategy.name': unknown strategy 'marginn'")


def test_version_prints_the_installed_version(tmp_path):
    """There was no --version ("No such option")."""
    from importlib.metadata import version

    run = clicloop("--version", cwd=tmp_path)
    assert run.returncode == 0 and run.stdout.startswith(f"clicloop {version('clicloop')} (Python "), run.stdout + run.stderr


def test_ledger_quality_without_gold_answers_reads_no_pool(tmp_path, capsys):
    """Found 2026-12-06: `ledger quality` read and checked the whole pool (8.5 s and 2 GB on
    1,000,000 items) only to say there were no gold answers; it needs the pool for their labels."""
    import yaml

    from clicloop.orchestrator.cli.main import main
    from tests.conftest import digits_config

    X = np.random.default_rng(0).normal(size=(200, 4))
    pd.DataFrame({"id": [f"i{i}" for i in range(200)], **{f"f{j}": X[:, j] for j in range(4)},
                  "truth": [str(i % 3) for i in range(200)]}).to_csv(tmp_path / "pool.csv", index=False)
    cfg = {**digits_config(f"sqlite:///{tmp_path / 'l.db'}"), "stop": {"max_labels": 20},
           "data": {"pool": {"path": "pool.csv", "id": "id", "truth": "truth"}, "seed_size": 10}}
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(cfg))
    main(["run", str(tmp_path / "c.yaml")])
    (tmp_path / "pool.csv").write_text("not,a,pool\n")  # the pool file is gone: nothing reads it
    capsys.readouterr()
    main(["ledger", "quality", str(tmp_path / "c.yaml")])
    assert "no gold answers in loop 't'" in capsys.readouterr().out


def test_serve_labelstudio_says_when_its_api_key_has_no_url_to_go_to(tmp_path, monkeypatch, capsys):
    """Since 2026-12-06 the configured Label Studio API key goes only to --label-studio-url; with
    the key and no URL, it was silently unused (found 2026-12-07 in review)."""
    import socket

    import uvicorn
    import yaml

    from clicloop.orchestrator.cli.main import main
    from tests.conftest import digits_config

    def free_port() -> int:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            return sock.getsockname()[1]

    (tmp_path / "ls.yaml").write_text(yaml.safe_dump(digits_config(f"sqlite:///{tmp_path / 'l.db'}")))
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: None)
    monkeypatch.setenv("CLICLOOP_ML_TOKEN", "t" * 20)
    monkeypatch.delenv("LABEL_STUDIO_URL", raising=False)
    monkeypatch.setenv("LABEL_STUDIO_API_KEY", "k" * 40)
    port = str(free_port())
    main(["serve", "labelstudio", "--config", str(tmp_path / "ls.yaml"), "--hourly-wage", "15", "--port", port])
    err = capsys.readouterr().err
    assert "$LABEL_STUDIO_API_KEY is set but no --label-studio-url" in err and "k" * 40 not in err
    monkeypatch.setenv("LABEL_STUDIO_URL", "http://127.0.0.1:8080")
    main(["serve", "labelstudio", "--config", str(tmp_path / "ls.yaml"), "--hourly-wage", "15", "--port", port])
    assert "is set but no --label-studio-url" not in capsys.readouterr().err


def test_serve_ingest_says_when_its_deployment_has_no_version(tmp_path, monkeypatch, capsys):
    """Found 2026-12-07: a mistyped --deployment (or --ledger) served, answered 200 and quarantined
    every prediction without a word."""
    import socket

    import uvicorn

    from clicloop.orchestrator.cli.main import main

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = str(sock.getsockname()[1])
    runs: list[dict] = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: runs.append(kw))
    monkeypatch.setenv("CLICLOOP_INGEST_TOKEN", "0123456789abcdef0123")
    url = f"sqlite:///{tmp_path / 'l.db'}"
    main(["serve", "ingest", "--deployment", "asistant", "--ledger", url, "--port", port])
    assert "deployment 'asistant' has no registered model version" in capsys.readouterr().err
    main(["deploy", "register", "v1", "--labels", str(_labels(tmp_path)), "--deployment", "asistant", "--ledger", url])
    main(["serve", "ingest", "--deployment", "asistant", "--ledger", url, "--port", port])
    assert "no registered model version" not in capsys.readouterr().err


def _labels(tmp_path):
    path = tmp_path / "labels.txt"
    path.write_text("music\ntimer\n")
    return path


@pytest.mark.parametrize("name", ["x.toml", "X.TOML"])
def test_init_refuses_a_file_name_run_would_read_as_toml(tmp_path, name):
    """Found 2026-12-07: `clicloop init x.toml` wrote YAML and said to run it; the run failed as
    invalid TOML. Any other name is read as YAML, so it is written."""
    run = clicloop("init", name, cwd=tmp_path)
    assert run.returncode == 2 and "writes YAML" in run.stderr and not (tmp_path / name).exists(), run.stderr
    assert clicloop("init", "loop.conf", cwd=tmp_path).returncode == 0


def test_run_says_where_a_file_exchange_put_the_work_and_waits_for_answers_without_v(tmp_path):
    """Found 2026-12-07: `clicloop run` with the file exchange printed "starting at round 0", then
    nothing while it waited: the outbox file and the inbox folder were said only with -v."""
    (tmp_path / "fx.yaml").write_text(
        "loop: {purpose: 'Label digits for a form reader.', batch_size: 5, round_timeout_s: 1, poll_seconds: 0.2}\n"
        "data: {builtin: digits, seed_size: 20}\nbackend: {name: file-exchange, params: {directory: ex, format: csv}}\n"
        "stop: {max_rounds: 1}\n")
    run = clicloop("run", "fx.yaml", cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    (outbox,) = (tmp_path / "ex" / "outbox").iterdir()
    assert f"5 task(s) out in {Path('ex') / 'outbox'} (the newest file: {outbox.name})" in run.stderr, run.stderr
    assert f"waits for answer files in {Path('ex') / 'inbox'}" in run.stderr and "docs/file-exchange.md" in run.stderr
    (tmp_path / "fx.yaml").write_text((tmp_path / "fx.yaml").read_text().replace("max_rounds: 1", "max_rounds: 2"))
    resumed = clicloop("run", "fx.yaml", cwd=tmp_path)  # round 1's tasks are new; a resume says it again, once
    assert resumed.returncode == 0 and resumed.stderr.count("waits for answer files in") == 1, resumed.stderr


def test_main_puts_the_sigterm_handler_it_found_back_when_the_command_ends(tmp_path, monkeypatch):
    """A process calling main() (a test runner, a notebook) keeps its own SIGTERM handling after."""
    import signal

    from clicloop.orchestrator.cli.main import main

    def mine(signum, frame):  # noqa: ANN001, ANN202
        pass

    monkeypatch.chdir(tmp_path)
    before = signal.signal(signal.SIGTERM, mine)
    try:
        assert main(["init"]) is None
        assert signal.getsignal(signal.SIGTERM) is mine
    finally:
        signal.signal(signal.SIGTERM, before)


def test_a_second_sigterm_while_the_first_is_handled_is_ignored():
    from clicloop.orchestrator.cli import main as cli

    cli._signalled.clear()
    with pytest.raises(KeyboardInterrupt):
        cli._stop_as_ctrl_c(15, None)
    try:
        assert cli._stop_as_ctrl_c(15, None) is None  # the cleanup of the first goes on
    finally:
        cli._signalled.clear()
