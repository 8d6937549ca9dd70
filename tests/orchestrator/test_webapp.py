"""Every clicloop HTTP app answers HEAD where it answers GET (orchestrator/webapp.py), over real
HTTP on 127.0.0.1: uptime monitors probe with HEAD, and FastAPI's routes answered it 405."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from clicloop import Loop, config_from_dict
from tests.conftest import digits_config


@contextmanager
def _ingest(tmp_path: Path) -> Iterator[tuple[str, dict[str, str], list[str]]]:
    from clicloop.orchestrator.postdeploy.server import IngestSettings, create_ingest_app
    from tests.support.threaded_server import serve_in_thread

    token = secrets.token_hex(20)
    app = create_ingest_app(IngestSettings(token=token, ledger=f"sqlite:///{tmp_path / 'l.db'}", deployment="assistant"))
    with serve_in_thread(app) as url:
        yield url, {"Authorization": f"Bearer {token}"}, ["/health", "/v1/stats"]


@contextmanager
def _dashboard(tmp_path: Path) -> Iterator[tuple[str, dict[str, str], list[str]]]:
    from clicloop.orchestrator.dashboard.app import create_app
    from tests.support.threaded_server import serve_in_thread

    ledger = f"sqlite:///{tmp_path / 'l.db'}"
    Loop(config_from_dict(digits_config(ledger, stop={"max_labels": 20}))).run()
    with serve_in_thread(create_app(ledger)) as url:
        yield url, {}, ["/", "/healthz", "/api/views", "/view/wages"]


@contextmanager
def _labelstudio(tmp_path: Path) -> Iterator[tuple[str, dict[str, str], list[str]]]:
    from clicloop.connectors.labelstudio.settings import ServeSettings
    from tests.support.ml_backend import serve_in_thread

    token = secrets.token_hex(20)
    with serve_in_thread(ServeSettings(token=token, loop="ml", ledger=f"sqlite:///{tmp_path / 'l.db'}")) as served:
        yield served.url, {"Authorization": f"Bearer {token}"}, ["/health", "/versions", "/status"]


@pytest.mark.parametrize("app", [_ingest, _dashboard, _labelstudio], ids=["ingest", "dashboard", "labelstudio"])
def test_every_get_route_answers_head_with_its_status_and_headers_and_no_body(tmp_path: Path, app) -> None:
    with app(tmp_path) as (url, auth, paths), httpx.Client(base_url=url, timeout=30) as http:
        for path in paths:
            get, head = http.get(path, headers=auth), http.head(path, headers=auth)
            assert get.status_code == 200, path
            assert head.status_code == 200, (path, head.status_code)
            assert head.content == b"" and head.headers["content-type"] == get.headers["content-type"], path
        if auth:  # HEAD is no way around the token
            assert http.head(paths[-1]).status_code == 401
        assert http.post(paths[0]).status_code in (401, 405)  # other methods are refused as before
