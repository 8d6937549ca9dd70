"""Fixtures for the dashboard tests: ledgers made by a real (small) quickstart run on SQLite and
on the real PostgreSQL, with reviews added through the Ledger's API and a post-deployment
deployment (ingest, triage, review through the simulated crowd) through clicloop.orchestrator.postdeploy;
the dashboard served by uvicorn on 127.0.0.1; Debian's Chromium driven by Playwright.

A missing Chromium FAILS the tests (run ``bash .ci/chromium``), never skips. Screenshots are kept
under ``$CLICLOOP_TEST_ARTIFACTS/dashboard`` or, by default, pytest's temp dir
(``<basetemp>/dashboard-artifacts``; pytest keeps the last three runs)."""

from __future__ import annotations

import io
import os
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import postgresql_url

CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--disable-dev-shm-usage"]
REJECT_REASONS = ("answer contradicts the gold item", "answer contradicts the gold item", "submitted in under a second")
DEPLOYMENT = "assistant"
TRIAGE = {"any": [{"name": "low-confidence", "params": {"threshold": 0.6}}, "user-flagged",
                  {"name": "random-audit", "params": {"rate": 0.3}}]}
DAY = 86400.0


def chromium_path() -> str:
    path = os.environ.get("CLICLOOP_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    if not path or not Path(path).exists():
        pytest.fail("Chromium is required for the dashboard's browser tests and was not found: run `bash .ci/chromium` "
                    "(installs Debian's chromium) or set CLICLOOP_CHROMIUM to its path", pytrace=False)
    return path


@pytest.fixture(scope="session")
def artifacts(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where screenshots go (kept after the run)."""
    root = os.environ.get("CLICLOOP_TEST_ARTIFACTS")
    path = Path(root) / "dashboard" if root else tmp_path_factory.getbasetemp() / "dashboard-artifacts"
    path.mkdir(parents=True, exist_ok=True)
    return path


def fill_ledger(url: str, seed: int = 0) -> None:
    """What a new user's ledger holds after a while: a quickstart (margin sampling and the random
    baseline, 100 answers each), three rejections with reasons (one withholding pay) and two
    accepts, and a deployed assistant whose predictions of the last six days were triaged and
    reviewed by the simulated crowd over four days."""
    from rich.console import Console
    from sqlalchemy import select

    from clicloop.backends.simulated import SimulatedCrowd
    from clicloop.orchestrator.ledger import Ledger
    from clicloop.orchestrator.ledger import schema as s
    from clicloop.orchestrator.training.models import tfidf_logreg
    from clicloop.orchestrator.postdeploy import DeploymentStore, ingest
    from clicloop.orchestrator.postdeploy.conditions import TriageContext
    from clicloop.orchestrator.postdeploy.learn import Learner, featurize
    from clicloop.orchestrator.postdeploy.review import Reviewer
    from clicloop.orchestrator.postdeploy.triage import Triage, build_policy
    from clicloop.orchestrator.cli.quickstart import run_quickstart
    from tests.orchestrator.postdeploy.synth import INTENTS, fit_model, records, utterances

    run_quickstart(ledger=url, seed=seed, budget=100, console=Console(file=io.StringIO()))
    with Ledger(url) as led:
        with led.engine_.connect() as conn:
            keys = conn.execute(select(s.assignments.c.task_key).where(s.assignments.c.loop == "quickstart-margin")
                                .order_by(s.assignments.c.task_key).limit(5)).scalars().all()
        for i, (key, reason) in enumerate(zip(keys, REJECT_REASONS)):
            led.review(key, accept=False, reason=reason, withhold_pay=i == 0)
        for key in keys[3:]:
            led.review(key, accept=True)

        base = utterances(120, seed=1)
        model = fit_model(base)
        traffic = utterances(240, seed=3, oos_share=0.1)
        start = time.time() - 6 * DAY
        recs = records(model, traffic, f"{DEPLOYMENT}-v1", start=start, step=5 * DAY / len(traffic), flag_errors=0.5)
        truth = {r["id"]: label for r, (_, label) in zip(recs, traffic)}
        store = DeploymentStore(led, DEPLOYMENT)
        Learner(store, lambda: tfidf_logreg(C=10.0), ([t for t, _ in base], [y for _, y in base]), min_slice=20) \
            .deploy(f"{DEPLOYMENT}-v1", model, n_train=len(base))
        ingest(led, DEPLOYMENT, recs)
        Triage(store, "default", build_policy(TRIAGE), TriageContext(model=model, featurize=featurize)).run()
        ticks = iter(range(10**6))
        for day in range(4):  # four days of review, a batch a day
            base_t = start + (day + 2) * DAY

            def clock(base_t: float = base_t) -> float:
                return base_t + 30.0 * next(ticks)

            reviewer = Reviewer(store, SimulatedCrowd(accuracy_mean=0.99, careless_fraction=0.0, reward=0.05), "simulated",
                                sorted(INTENTS), truth=truth, poll_s=0.0, clock=clock, seed=seed)
            reviewer.run(limit=None if day == 3 else 30)
            reviewer.close()


@pytest.fixture(scope="session")
def sqlite_ledger(tmp_path_factory: pytest.TempPathFactory) -> str:
    url = f"sqlite:///{tmp_path_factory.mktemp('quickstart') / 'clicloop-quickstart.db'}"
    fill_ledger(url)
    return url


@pytest.fixture(scope="session")
def postgresql_ledger() -> Iterator[str]:
    """The same ledger in its own schema of the real PostgreSQL (dropped afterwards)."""
    with postgresql_url("clicloop_dash") as url:
        fill_ledger(url)
        yield url


@pytest.fixture(scope="session", params=["sqlite", "postgresql"])
def quickstart_ledger(request: pytest.FixtureRequest) -> str:
    """Every browser test runs on the SQLite and on the PostgreSQL ledger."""
    return str(request.getfixturevalue(f"{request.param}_ledger"))


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="session")
def server(quickstart_ledger: str) -> Iterator[str]:
    """The dashboard app served by uvicorn on 127.0.0.1; yields its base URL."""
    import uvicorn

    from clicloop.orchestrator.dashboard.app import create_app

    port = _free_port()
    srv = uvicorn.Server(uvicorn.Config(create_app(quickstart_ledger), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not srv.started:
        if time.monotonic() > deadline or not thread.is_alive():
            pytest.fail("the dashboard server did not start")
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    srv.should_exit = True
    thread.join(timeout=10)


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    path = chromium_path()
    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=path, args=CHROMIUM_ARGS)  # Playwright gives it a fresh temp profile
        yield b
        b.close()


class Watched:
    """A page with its console errors, page errors and failed requests collected."""

    def __init__(self, page: Any):
        self.page = page
        self.errors: list[str] = []
        self.requests: list[str] = []
        page.on("console", lambda m: self.errors.append(f"console.{m.type}: {m.text}") if m.type == "error" else None)
        page.on("pageerror", lambda e: self.errors.append(f"pageerror: {e}"))
        page.on("requestfailed", lambda r: self.errors.append(f"request failed: {r.url}"))
        page.on("request", lambda r: self.requests.append(r.url))

    def open(self, url: str) -> Any:
        response = self.page.goto(url)
        self.page.wait_for_function("document.body && (document.body.hasAttribute('data-plotted') || "
                                    "!document.querySelector('script[data-figure-for]'))", timeout=30_000)
        return response


@pytest.fixture
def watched(browser: Any) -> Iterator[Watched]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    yield Watched(context.new_page())
    context.close()


def docs_screenshot(page: Any, selector: str, name: str) -> None:
    """With CLICLOOP_DOCS_SCREENSHOTS=1, also save a screenshot for docs/dashboard.md."""
    if os.environ.get("CLICLOOP_DOCS_SCREENSHOTS") == "1":
        target = Path(__file__).resolve().parents[3] / "docs" / "img" / f"dashboard-{name}.png"
        page.locator(selector).screenshot(path=str(target))
