"""The dashboard under probes (issue #21): a request naming another host (DNS rebinding: a page
on another site reaching 127.0.0.1 through a name it controls) gets 400, and no filter value
makes it answer 500."""

from __future__ import annotations

from pathlib import Path

import pytest

from clicloop import Loop, config_from_dict
from clicloop.orchestrator.errors import ConfigError
from tests.conftest import digits_config


@pytest.fixture(scope="module")
def ledger(tmp_path_factory: pytest.TempPathFactory) -> str:
    url = f"sqlite:///{tmp_path_factory.mktemp('dash') / 'ledger.db'}"
    Loop(config_from_dict(digits_config(url, stop={"max_labels": 20}))).run()
    return url


def _client(ledger: str, host: str, **kw):
    from fastapi.testclient import TestClient

    from clicloop.orchestrator.dashboard.app import create_app

    return TestClient(create_app(ledger, **kw), base_url=f"http://{host}", raise_server_exceptions=False)


@pytest.mark.parametrize("host", ["evil.example:8050", "evil.example", "127.0.0.1.evil.example:8050", "10.0.0.7:8050"])
def test_a_request_for_another_host_gets_400(ledger, host):
    client = _client(ledger, host)
    for path in ("/", "/api/views", "/healthz", "/assets/plotly.min.js"):
        response = client.get(path)
        assert response.status_code == 400, (path, response.status_code)
        assert "workers" not in response.text and "wage" not in response.text


@pytest.mark.parametrize("host", ["127.0.0.1:8050", "localhost:8050", "LOCALHOST", "[::1]:8050"])
def test_the_local_names_are_answered(ledger, host):
    assert _client(ledger, host).get("/api/views/wages").status_code == 200


def test_a_name_given_with_allow_host_is_answered_and_patterns_are_refused(ledger):
    assert _client(ledger, "labels.lab.example:8050", hosts=["labels.lab.example"]).get("/healthz").status_code == 200
    assert _client(ledger, "10.0.0.7:8050", hosts=["0.0.0.0", "10.0.0.7"]).get("/healthz").status_code == 200
    assert _client(ledger, "labels.lab.example", hosts=["labels.lab.example:8050"]).get("/healthz").status_code == 200
    assert _client(ledger, "[fd00::7]:8050", hosts=["fd00::7"]).get("/healthz").status_code == 200
    assert _client(ledger, "other.example", hosts=["0.0.0.0"]).get("/healthz").status_code == 400
    with pytest.raises(ConfigError, match="not patterns"):
        _client(ledger, "x", hosts=["*.example"])


@pytest.mark.parametrize("query", ["date_to=9999-12-31", "date_from=9999-12-31", "date_from=0001-01-01&date_to=9999-12-31",
                                   "date_from=0001-01-01", "date_to=0001-01-01"])
def test_extreme_dates_never_answer_500(ledger, query):
    client = _client(ledger, "127.0.0.1:8050")
    for path in ("/", "/api/views", "/view/wages"):
        response = client.get(f"{path}?{query}")
        assert response.status_code == 200, (path, query, response.text[-300:])
    everything = client.get("/api/views/learning").json()
    through_the_end = client.get("/api/views/learning?date_to=9999-12-31").json()
    assert everything["learning"]["numbers"] and through_the_end == everything  # the last day there is: no upper bound


@pytest.mark.parametrize("query", ["date_to=10000-01-01", "date_to=9999-13-01", "date_from=yesterday"])
def test_a_date_that_is_not_one_is_a_400_naming_the_parameter(ledger, query):
    response = _client(ledger, "127.0.0.1:8050").get(f"/api/views?{query}")
    assert response.status_code == 400 and query.split("=")[0] in response.text


@pytest.mark.parametrize("target", ["-1", "0", "2", "nan", "inf"])
def test_a_forecast_target_report_refuses_is_a_400_here_too(ledger, target):
    """The dashboard answered 200 with "the latest model meets the target -1.0000" (report refuses it)."""
    client = _client(ledger, "127.0.0.1:8050")
    for path in ("/api/views/forecast", "/", "/view/forecast"):
        response = client.get(f"{path}?target={target}")
        assert response.status_code == 400 and "give a number above 0 and at most 1" in response.text, (path, response.text)
    assert client.get("/api/views/forecast?target=0.95").status_code == 200


def test_the_cli_passes_the_bound_host_and_allow_host(ledger, monkeypatch, tmp_path: Path):
    import uvicorn
    from fastapi.testclient import TestClient
    from typer.testing import CliRunner

    from clicloop.orchestrator.cli.main import app

    apps: list = []
    monkeypatch.setattr(uvicorn, "run", lambda a, **kw: apps.append(a))
    result = CliRunner().invoke(app, ["dashboard", "--ledger", ledger, "--host", "0.0.0.0", "--allow-host", "labels.lab.example"])
    assert result.exit_code == 0, result.output
    served = apps[0]
    assert TestClient(served, base_url="http://labels.lab.example:8050").get("/healthz").status_code == 200
    assert TestClient(served, base_url="http://rebind.attacker.example:8050").get("/healthz").status_code == 400
