"""The labor card from the command line: the latest version by default, the real ones when a
version is wrong."""

from __future__ import annotations

import subprocess
import sys

import yaml

from clicloop import Loop, config_from_dict
from tests.conftest import digits_config


def _clicloop(*args: str, cwd) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "clicloop", *args], cwd=cwd, capture_output=True, text=True, timeout=300)


def test_labor_card_defaults_to_the_latest_version_and_lists_the_real_ones(tmp_path):
    cfg = digits_config(f"sqlite:///{tmp_path / 'l.db'}", stop={"max_labels": 30})
    results = Loop(config_from_dict(cfg)).run()
    latest = f"t-r{results[-1].round_no}"
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump(cfg))

    card = _clicloop("labor-card", str(config), cwd=tmp_path)
    assert card.returncode == 0, card.stderr
    assert f"labor card of {latest}" in card.stderr
    assert latest in card.stdout

    wrong = _clicloop("labor-card", str(config), "--model-version", "t-r99", cwd=tmp_path)
    assert wrong.returncode == 2
    assert "no model version 't-r99'" in wrong.stderr and latest in wrong.stderr and "Traceback" not in wrong.stderr


def test_labor_card_of_an_empty_ledger_says_there_is_nothing_yet(tmp_path):
    from clicloop.orchestrator.ledger import Ledger

    url = f"sqlite:///{tmp_path / 'empty.db'}"
    Ledger(url).open().close()
    empty = _clicloop("labor-card", "--ledger", url, cwd=tmp_path)
    assert empty.returncode == 2 and "no finished round yet" in empty.stderr, empty.stderr


def test_a_wrong_version_lists_the_configs_loop_versions_not_another_loops(tmp_path):
    """Found 2026-12-07: the versions listed were the ledger's latest, another loop's (demo-r20,
    ...) when it had run more recently than the config's."""
    url = f"sqlite:///{tmp_path / 'l.db'}"
    cfg = digits_config(url, stop={"max_labels": 30})
    Loop(config_from_dict(cfg)).run()
    Loop(config_from_dict(digits_config(url, loop={"name": "demo"}, stop={"max_labels": 30}))).run()
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump(cfg))
    wrong = _clicloop("labor-card", str(config), "--model-version", "t-r99", cwd=tmp_path)
    assert wrong.returncode == 2 and "the latest of loop 't' are: t-r" in wrong.stderr and "demo-r" not in wrong.stderr, wrong.stderr
