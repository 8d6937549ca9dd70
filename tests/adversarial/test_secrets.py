"""Secrets in configs and ledger URLs (issue #21): a Prolific token and a ledger password never
reach the ledger file, an export, a report or anything the CLI prints.

The Prolific API is tests/support/prolific_server.py (a local stand-in that checks the token);
PostgreSQL is the real server (trust auth: it ignores the password, which is the point here: the
URL carries one and nothing may show it)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy import create_engine, text

from clicloop import config_from_dict
from clicloop.orchestrator.cli.main import main
from clicloop.orchestrator.credentials import public_config, redact_url
from clicloop.orchestrator.errors import ConfigError
from tests.conftest import digits_config
from tests.support import prolific_server

TOKEN = "prolific-SECRET-7f3a9c2e41d8b06a"
PASSWORD = "pg-SECRET-b51e07c9"


def _cli(capsys: pytest.CaptureFixture[str], *args: str) -> str:
    """Run ``clicloop ARGS`` in-process; returns stdout and stderr (exit status 0 required)."""
    try:
        main(list(args))
    except SystemExit as e:
        out = capsys.readouterr()
        assert e.code in (0, None), f"clicloop {' '.join(args)} exited {e.code}: {out.out}{out.err}"
    out = capsys.readouterr()
    return out.out + out.err


def _files_text(root: Path) -> bytes:
    return b"".join(p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file())


def _prolific_config(tmp_path: Path, url: str, token: Any, **loop: Any) -> Path:
    cfg = digits_config(f"sqlite:///{tmp_path / 'ledger.db'}", loop={"name": "p", "poll_seconds": 0.01, **loop},
                        backend={"name": "prolific", "params": {"survey_url": f"{url}/survey", "base_url": url, "token": token}},
                        stop={"max_labels": 20}, wage_floor={"per_backend": {"prolific": {"amount": 9.0, "currency": "GBP"}}})
    path = tmp_path / "clicloop.yaml"
    path.write_text(yaml.safe_dump(cfg), encoding="utf-8")
    return path


def test_a_literal_token_in_a_config_is_refused_with_how_to_pass_it(tmp_path):
    cfg = digits_config("sqlite:///x.db", backend={"name": "prolific", "params": {"survey_url": "http://s", "token": TOKEN}})
    with pytest.raises(ConfigError) as err:
        config_from_dict(cfg)
    message = str(err.value)
    assert "backend.params" in message and "token" in message and "{env: TOKEN}" in message and "{file:" in message
    assert TOKEN not in message


def test_a_prolific_token_never_reaches_the_ledger_exports_reports_or_the_output(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("CLICLOOP_TEST_PROLIFIC", TOKEN)
    (tmp_path / "secret").mkdir()
    (tmp_path / "secret" / "prolific").write_text(TOKEN + "\n", encoding="utf-8")
    state = prolific_server.new_state(seed=3, token=TOKEN)
    out = tmp_path / "out"
    with prolific_server.running(state) as url:
        config = _prolific_config(tmp_path, url, {"env": "CLICLOOP_TEST_PROLIFIC"})
        printed = _cli(capsys, "run", str(config))
        assert len(state.studies) == 2  # the token reached Prolific (the stand-in checks it)
        config = _prolific_config(tmp_path, url, {"file": "secret/prolific"})  # the same loop, the token from a file
        printed += _cli(capsys, "run", str(config))
    printed += _cli(capsys, "report", str(config))
    printed += _cli(capsys, "report", str(config), "--json")
    printed += _cli(capsys, "report", str(config), "--html", str(out / "report.html"))
    printed += _cli(capsys, "ledger", "export", str(out / "csv"), "--config", str(config))
    printed += _cli(capsys, "ledger", "verify", str(config))
    assert (out / "report.html").is_file() and (out / "csv" / "loops.csv").is_file()
    assert TOKEN not in printed
    ledger_files = _files_text(tmp_path).replace((tmp_path / "secret" / "prolific").read_bytes(), b"")
    assert TOKEN.encode() not in ledger_files  # the SQLite file, exports and the HTML report
    engine = create_engine(f"sqlite:///{tmp_path / 'ledger.db'}")
    with engine.connect() as conn:
        stored = json.loads(conn.execute(text("select config_json from loops")).scalar_one())
    engine.dispose()
    assert "token" not in stored["backend"]["params"] and stored["backend"]["params"]["base_url"] == url


def test_a_loop_whose_old_config_held_a_literal_token_resumes_and_the_token_leaves_the_ledger(tmp_path, monkeypatch, capsys):
    """An older clicloop stored (and hashed) a literal token; once the config says {env: ...}, the
    same loop resumes, and the ledger file no longer holds the token."""
    monkeypatch.setenv("CLICLOOP_TEST_PROLIFIC", TOKEN)
    db = tmp_path / "ledger.db"
    state = prolific_server.new_state(seed=3, token=TOKEN)
    with prolific_server.running(state) as url:
        config = _prolific_config(tmp_path, url, {"env": "CLICLOOP_TEST_PROLIFIC"})
        _cli(capsys, "run", str(config))
        engine = create_engine(f"sqlite:///{db}")
        with engine.begin() as conn:  # what clicloop wrote before secrets were kept out
            body = json.loads(conn.execute(text("select config_json from loops")).scalar_one())
            body["backend"]["params"]["token"] = TOKEN
            old = json.dumps(body, sort_keys=True)
            conn.execute(text("update loops set config_json = :j, config_hash = :h"),
                         {"j": old, "h": hashlib.sha256(old.encode()).hexdigest()})
        engine.dispose()
        assert TOKEN.encode() in db.read_bytes()
        bigger = yaml.safe_load(config.read_text())
        bigger["stop"]["max_labels"] = 30
        config.write_text(yaml.safe_dump(bigger))
        printed = _cli(capsys, "run", str(config))
    assert "different config" not in printed and len(state.studies) == 3  # resumed: one more round, not a new loop
    assert TOKEN.encode() not in _files_text(tmp_path)  # the ledger file (and its -wal)


def test_a_ledger_password_is_never_printed_nor_rendered(pg_url, tmp_path, monkeypatch, capsys):
    """The PostgreSQL URL carries a password (in the user part, and as a query parameter): the
    quickstart, report (text, JSON, HTML), verify, export, the dashboard page and the
    ``serve labelstudio`` startup line show ``***`` instead, and so do error messages."""
    import uvicorn
    from fastapi.testclient import TestClient

    url = pg_url.replace("postgres@", f"postgres:{PASSWORD}@", 1)
    query_url = f"{pg_url}&password={PASSWORD}"
    printed = _cli(capsys, "quickstart", "--ledger", url, "--budget", "30")
    assert "postgres:***@127.0.0.1" in printed
    for ledger in (url, query_url):
        printed += _cli(capsys, "report", "--ledger", ledger)
        printed += _cli(capsys, "report", "--ledger", ledger, "--json")
        printed += _cli(capsys, "report", "--ledger", ledger, "--html", str(tmp_path / "out" / "report.html"))
        printed += _cli(capsys, "ledger", "verify", "--ledger", ledger)
        printed += _cli(capsys, "ledger", "export", str(tmp_path / "out" / "csv"), "--ledger", ledger)
    with pytest.raises(SystemExit):  # a database that does not exist: the error names the URL, without its password
        main(["report", "--ledger", url.replace("/test?", "/no_such_db?")])
    printed += capsys.readouterr().err
    apps: list[Any] = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: apps.append(app))
    printed += _cli(capsys, "dashboard", "--ledger", query_url)
    page = TestClient(apps[0], base_url="http://127.0.0.1:8050").get("/").text
    assert "password=***" in page
    printed += page
    cfg = digits_config(url)
    (tmp_path / "ls.yaml").write_text(yaml.safe_dump(cfg), encoding="utf-8")
    monkeypatch.setenv("CLICLOOP_ML_TOKEN", "t" * 20)
    printed += _cli(capsys, "serve", "labelstudio", "--config", str(tmp_path / "ls.yaml"), "--hourly-wage", "15")
    assert "clicloop ML backend on" in printed and "does not exist" in printed
    assert PASSWORD not in printed
    assert PASSWORD.encode() not in _files_text(tmp_path / "out")  # the HTML report and the export


@pytest.mark.parametrize(("url", "shown"), [
    ("postgresql+psycopg://u:pw@h:5432/db", "postgresql+psycopg://u:***@h:5432/db"),
    ("postgresql://:pw@h/db", "postgresql://:***@h/db"),
    ("postgresql://u:p/w#x@h/db", "postgresql://u:***@h/db"),  # SQLAlchemy reads a password up to the '@'
    ("postgresql://u@h/db?sslmode=require&password=pw", "postgresql://u@h/db?sslmode=require&password=***"),
    ("https://h/api?api_key=k&x=1", "https://h/api?api_key=***&x=1"),
    ("postgresql://u@h/db?options=-csearch_path%3Ds", "postgresql://u@h/db?options=-csearch_path%3Ds"),
    ("sqlite:////tmp/a@b:c/ledger.db", "sqlite:////tmp/a@b:c/ledger.db"),
])
def test_redact_url_hides_every_password_form(url, shown):
    assert redact_url(url) == shown


def test_a_url_password_in_a_plugin_param_is_masked_before_hashing_and_storing():
    body = {"backend": {"name": "labelstudio", "params": {"url": "http://admin:pw@ls.example", "api_key": {"env": "K"}}}}
    assert public_config(body) == {"backend": {"name": "labelstudio", "params": {"url": "http://admin:***@ls.example"}}}
