"""The dashboard's waiting-and-staleness view, in real headless Chromium and through the JSON API,
on a SQLite and a PostgreSQL ledger holding a continuous loop and a rounds loop run on the event
crowd: its numbers are those of ``clicloop report`` (one function,
:func:`clicloop.orchestrator.ledger.continuous.summary`), staleness shows for the continuous loop
only, and waiting for both."""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import digits_config, postgresql_url
from tests.orchestrator.dashboard.conftest import Watched
from tests.support.threaded_server import serve_in_thread

pytestmark = pytest.mark.integration
LOOPS = ("cont", "rounds")


def fill(url: str) -> None:
    """A continuous loop and a rounds loop on the same event crowd (40 answers each)."""
    from clicloop.orchestrator.config import config_from_dict
    from clicloop.orchestrator.loop import Loop

    for name in LOOPS:
        mode = "continuous" if name == "cont" else "rounds"
        raw = digits_config(url, loop={"name": name, "mode": mode, "refit_every": 10}, stop={"max_labels": 40},
                            backend={"name": "event-crowd", "params": {"compute_s": 5.0, "n_workers": 8}})
        Loop(config_from_dict(raw)).run()


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def ledger(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('staleness') / 'ledger.db'}"
        fill(url)
        yield url
        return
    with postgresql_url("clicloop_stale") as url:
        fill(url)
        yield url


@pytest.fixture(scope="module")
def live(ledger: str) -> Iterator[str]:
    from clicloop.orchestrator.dashboard.app import create_app

    with serve_in_thread(create_app(ledger), startup_timeout_s=30) as url:
        yield url


def report_figures(url: str) -> dict[str, dict]:
    from clicloop.orchestrator.dashboard.source import ReadOnlyLedger
    from clicloop.orchestrator.reporting.report import build_report

    out = {}
    with ReadOnlyLedger(url) as led:
        for loop in LOOPS:
            totals = build_report(led, loop)[1]
            out[loop] = {k: getattr(totals, k) for k in ("waiting_hours", "waiting_share", "staleness_mean",
                                                         "staleness_median", "staleness_max")}
    return out


def test_the_page_shows_the_reports_waiting_and_staleness(live: str, ledger: str, watched: Watched, artifacts: Path) -> None:
    expected = report_figures(ledger)
    assert expected["cont"]["staleness_mean"] > 0 and expected["rounds"]["staleness_mean"] is None
    assert expected["rounds"]["waiting_share"] > expected["cont"]["waiting_share"]
    response = watched.open(f"{live}/view/staleness")
    assert response.status == 200
    page = watched.page

    def value(key: str) -> float:
        return float(page.locator(f'.num[data-key="{key}"]').get_attribute("data-value"))

    for loop in LOOPS:
        assert value(f"waiting_hours:{loop}") == pytest.approx(expected[loop]["waiting_hours"], rel=1e-12)
        assert value(f"waiting_share:{loop}") == pytest.approx(expected[loop]["waiting_share"], rel=1e-12)
    assert value("staleness_mean:cont") == pytest.approx(expected["cont"]["staleness_mean"], rel=1e-12)
    assert value("staleness_median:cont") == pytest.approx(expected["cont"]["staleness_median"], rel=1e-12)
    assert page.locator('.num[data-key="staleness_mean:rounds"]').count() == 0
    col = page.eval_on_selector_all('table[data-table="staleness-0"] td[data-col="staleness_max"]', "els => els.map(e => e.textContent)")
    assert col == [f"{expected['cont']['staleness_max']:.0f}", "-"]
    assert page.locator("section#staleness .fig .main-svg").count() >= 2  # waiting and staleness, drawn
    page.locator("section#staleness").screenshot(path=str(artifacts / f"staleness-{'pg' if 'postgresql' in ledger else 'sqlite'}.png"))
    assert watched.errors == []


def test_the_api_gives_the_same_numbers(live: str, ledger: str) -> None:
    expected = report_figures(ledger)
    with urllib.request.urlopen(f"{live}/api/views/staleness") as response:
        numbers = {n["key"]: n["value"] for n in json.load(response)["staleness"]["numbers"]}
    for loop in LOOPS:
        assert numbers[f"waiting_share:{loop}"] == pytest.approx(expected[loop]["waiting_share"], rel=1e-12)
    assert numbers["staleness_mean:cont"] == pytest.approx(expected["cont"]["staleness_mean"], rel=1e-12)
    assert numbers["staleness_median:cont"] == pytest.approx(expected["cont"]["staleness_median"], rel=1e-12)
    with urllib.request.urlopen(f"{live}/api/views/staleness?loop=rounds") as response:
        keys = {n["key"] for n in json.load(response)["staleness"]["numbers"]}
    assert keys == {"waiting_hours:rounds", "waiting_share:rounds"}  # the loop filter applies
