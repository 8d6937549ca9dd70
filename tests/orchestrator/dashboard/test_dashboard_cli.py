"""The commands a data lead types: `clicloop dashboard` (a real server on 127.0.0.1, a warning for
any other interface), `clicloop report` with its forecast line, and the read-only promise."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from clicloop.orchestrator.cli.main import app
from tests.orchestrator.dashboard.conftest import _free_port

pytestmark = pytest.mark.integration


def test_dashboard_command_serves_on_localhost(sqlite_ledger: str, tmp_path: Path) -> None:
    import httpx

    port = _free_port()
    log = (tmp_path / "dashboard.log").open("w")
    proc = subprocess.Popen([sys.executable, "-m", "clicloop", "dashboard", "--ledger", sqlite_ledger, "--port", str(port)],
                            stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        deadline, response = time.monotonic() + 60, None
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                response = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2)
                break
            except httpx.TransportError:
                time.sleep(0.2)
        assert response is not None and response.status_code == 200, (tmp_path / "dashboard.log").read_text()
        page = httpx.get(f"http://127.0.0.1:{port}/", timeout=60)
        assert page.status_code == 200 and page.text.count('<section class="view"') == len(response.json()["views"])
        assert page.headers["content-security-policy"].startswith("default-src 'none'")
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=20)
        log.close()
    output = (tmp_path / "dashboard.log").read_text()
    assert f"http://127.0.0.1:{port}" in output and "warning" not in output


def test_binding_elsewhere_needs_the_option_and_warns(sqlite_ledger: str, monkeypatch: pytest.MonkeyPatch) -> None:
    import uvicorn

    calls: list[dict[str, Any]] = []
    monkeypatch.setattr(uvicorn, "run", lambda app_, **kw: calls.append(kw))
    result = CliRunner().invoke(app, ["dashboard", "--ledger", sqlite_ledger, "--host", "0.0.0.0", "--port", "8123"])
    assert result.exit_code == 0, result.output
    assert "warning: binding 0.0.0.0" in result.output and calls == [{"host": "0.0.0.0", "port": 8123, "log_level": "warning"}]
    calls.clear()
    result = CliRunner().invoke(app, ["dashboard", "--ledger", sqlite_ledger])
    assert "warning" not in result.output and calls[0]["host"] == "127.0.0.1"
    result = CliRunner().invoke(app, ["dashboard", "--ledger", "sqlite:///nowhere/none.db"])
    assert result.exit_code != 0 and "run a loop first" in str(result.exception)  # main() prints it without a traceback


def test_report_prints_the_forecast(sqlite_ledger: str) -> None:
    from clicloop.orchestrator.dashboard.source import ReadOnlyLedger
    from clicloop.orchestrator.reporting.forecast import forecast
    from clicloop.orchestrator.reporting.report import build_report

    result = CliRunner().invoke(app, ["report", "--ledger", sqlite_ledger, "--target", "0.99"])
    assert result.exit_code == 0, result.output
    with ReadOnlyLedger(sqlite_ledger) as led:
        rows, _ = build_report(led, "quickstart-margin")
    fc = forecast(rows, 0.99)
    line = next(x for x in result.output.splitlines() if x.startswith("quickstart-margin: forecast to 0.9900"))
    if fc.status == "forecast":
        assert f"{fc.hours_to_target.point:.2f} human hours" in line
    else:
        assert fc.status in ("unreachable", "too-few-rounds") and ("out of reach" in line or "not yet" in line)
    assert not any(x.startswith(f"assistant:review: forecast") for x in result.output.splitlines())

    data = json.loads(CliRunner().invoke(app, ["report", "--ledger", sqlite_ledger, "--json", "--target", "0.5"]).output)
    assert data["quickstart-margin"]["forecast"]["status"] == "reached"
    assert data["quickstart-margin"]["forecast"]["target"] == 0.5 and "rounds" in data["quickstart-margin"]


@pytest.mark.parametrize("which", ["sqlite", "postgresql"])
def test_the_dashboard_cannot_write(which: str, request: pytest.FixtureRequest) -> None:
    from sqlalchemy import text
    from sqlalchemy.exc import DBAPIError

    from clicloop.orchestrator.dashboard.source import read_only_engine

    url = request.getfixturevalue(f"{which}_ledger")
    engine = read_only_engine(url)
    try:
        with pytest.raises(DBAPIError, match="(?i)read.only|readonly"):
            with engine.begin() as conn:
                conn.execute(text("DELETE FROM assignments"))
        with engine.connect() as conn:
            assert conn.execute(text("SELECT count(*) FROM assignments")).scalar_one() > 0
    finally:
        engine.dispose()


@pytest.mark.parametrize("which", ["sqlite", "postgresql"])
def test_the_dashboard_card_is_the_labor_card(which: str, request: pytest.FixtureRequest) -> None:
    from clicloop.orchestrator.dashboard.base import Context
    from clicloop.orchestrator.dashboard.source import Filters, ReadOnlyLedger
    from clicloop.orchestrator.dashboard.views_cards import version_card
    from clicloop.orchestrator.reporting.laborcard import labor_card

    url = request.getfixturevalue(f"{which}_ledger")
    with ReadOnlyLedger(url) as led:
        ctx = Context(led.engine_, Filters())
        rows = [r for r in ctx.rounds if r["model_version"] in ("quickstart-margin-r0", "quickstart-margin-r4", "quickstart-random-r10")]
        assert len(rows) == 3
        for row in rows:
            mine, theirs = version_card(ctx, led, row), labor_card(led, row["model_version"])
            theirs.pop("post_deployment_corrections", None)
            assert _approx_equal(mine, theirs), (row["model_version"], mine, theirs)


def _approx_equal(a: Any, b: Any) -> bool:
    """Dicts equal, floats to 1e-9 relative (sums in another order)."""
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_approx_equal(a[k], b[k]) for k in a)
    if isinstance(a, float) or isinstance(b, float):
        return a == pytest.approx(b, rel=1e-9, abs=1e-12)
    return bool(a == b)


def test_configs_give_the_forecast_its_target_and_budget(sqlite_ledger: str, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    import uvicorn
    import yaml

    from clicloop.orchestrator.config import Stop
    from clicloop.orchestrator.dashboard.source import ReadOnlyLedger, read_only_engine
    from clicloop.orchestrator.dashboard.views import build_views
    from clicloop.orchestrator.reporting.forecast import forecast
    from clicloop.orchestrator.reporting.report import build_report

    with ReadOnlyLedger(sqlite_ledger) as led:
        rows, totals = build_report(led, "quickstart-margin")
    stop = Stop(target_metric=0.985, max_hours=totals.total_hours + 0.05, forecast={})  # never a default (2 decimals)
    engine = read_only_engine(sqlite_ledger)
    try:
        view = build_views(engine, names=["forecast"], stops={"quickstart-margin": stop})[0]
    finally:
        engine.dispose()
    table = view.tables[0]
    row = dict(zip(table.keys, table.rows[0]))
    fc = forecast(rows, 0.985)
    assert row["loop"] == "quickstart-margin" and row["target"] == 0.985 and row["budget"] == "0.05 h"
    assert row["beyond"] == ("over budget" if fc.beyond(hours_left=0.05) else "within")
    other = dict(zip(table.keys, table.rows[1]))
    assert other["budget"] == "-" and other["target"] != 0.985  # no config for the random loop: the default target

    # `clicloop dashboard --config` reads the loop's config for its stop rules and wage floor
    cfg = {"loop": {"name": "quickstart-margin", "purpose": "Teach a model to read handwritten digits on scanned forms."},
           "data": {"builtin": "digits"}, "stop": {"target_metric": 0.97, "max_hours": 1.0},
           "wage_floor": {"amount": 9.5}, "ledger": sqlite_ledger}
    (tmp_path / "margin.yaml").write_text(yaml.safe_dump(cfg))
    seen: list[Any] = []
    monkeypatch.setattr(uvicorn, "run", lambda app_, **kw: seen.append(app_))
    result = CliRunner().invoke(app, ["dashboard", "--config", str(tmp_path / "margin.yaml")])
    assert result.exit_code == 0, result.output
    from fastapi.testclient import TestClient

    local = TestClient(seen[0], base_url="http://127.0.0.1:8050")  # the dashboard answers its own host names only
    page = local.get("/view/forecast").text
    assert 'data-key="target:quickstart-margin" data-value="0.97"' in page
    assert "floor 9.50" in local.get("/view/wages").text


@pytest.mark.parametrize("which", ["sqlite", "postgresql"])
def test_a_filter_holding_a_nul_is_a_400_naming_it(which: str, request: pytest.FixtureRequest) -> None:
    """Found 2026-12-07: on PostgreSQL `/?loop=%00` (and backend, model_version) answered 500."""
    from fastapi.testclient import TestClient

    from clicloop.orchestrator.dashboard.app import create_app

    client = TestClient(create_app(request.getfixturevalue(f"{which}_ledger")), base_url="http://127.0.0.1:8050")
    for query in ("loop=%00", "backend=x%00", "model_version=v1%00"):
        for path in ("/", "/api/views"):
            r = client.get(f"{path}?{query}")
            assert r.status_code == 400 and "holds a NUL character" in r.text, (path, query, r.status_code, r.text[:200])
