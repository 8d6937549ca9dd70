"""Commands that only read a ledger work on one they cannot write (issue #21): a ledger file of
mode 0444 in a folder of mode 0555 (an archive, another user's results, a read-only mount), and a
PostgreSQL ledger seen through a read-only session. Nothing in the folder changes.

The commands run in a subprocess. As root, permissions do not bind (CAP_DAC_OVERRIDE), so the
subprocess runs under ``setpriv`` without that capability: the same refusal a normal user gets."""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from clicloop import Loop, config_from_dict
from tests.conftest import digits_config


def _as_unprivileged() -> list[str]:
    if os.geteuid() != 0:
        return []
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.fail("running as root, the read-only test needs setpriv (util-linux) to drop CAP_DAC_OVERRIDE")
    return [setpriv, "--bounding-set", "-dac_override,-dac_read_search"]


def _clicloop(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*_as_unprivileged(), sys.executable, "-m", "clicloop", *args], cwd=cwd, capture_output=True,
                          text=True, timeout=300)


def _snapshot(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


@pytest.fixture
def read_only_ledger(tmp_path: Path):
    folder = tmp_path / "archive"
    url = f"sqlite:///{folder / 'ledger.db'}"
    Loop(config_from_dict(digits_config(url, stop={"max_labels": 20}))).run()
    (folder / "ledger.db").chmod(0o444)
    folder.chmod(0o555)
    yield folder, url
    folder.chmod(0o755)


def test_the_setup_really_cannot_write(read_only_ledger, tmp_path):
    folder, _ = read_only_ledger
    probe = subprocess.run([*_as_unprivileged(), sys.executable, "-c", f"open({str(folder / 'x')!r}, 'w')"],
                           capture_output=True, text=True)
    assert probe.returncode != 0 and "Permission denied" in probe.stderr
    assert stat.S_IMODE((folder / "ledger.db").stat().st_mode) == 0o444


@pytest.mark.parametrize("args", [
    ["report", "--ledger", "{url}"],
    ["report", "--ledger", "{url}", "--json"],
    ["report", "--ledger", "{url}", "--html", "{out}/report.html"],
    ["ledger", "verify", "--ledger", "{url}"],
    ["ledger", "export", "{out}/export", "--ledger", "{url}"],
    ["labor-card", "--model-version", "t-r1", "--ledger", "{url}"],
])
def test_read_only_commands_work_on_a_ledger_they_cannot_write(read_only_ledger, tmp_path, args):
    folder, url = read_only_ledger
    out = tmp_path / "out"
    out.mkdir()
    before = _snapshot(folder)
    result = _clicloop(*(a.format(url=url, out=out) for a in args), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert _snapshot(folder) == before  # no -wal, no -shm, not a byte changed


def test_a_read_only_command_on_a_postgresql_ledger_runs_in_a_read_only_session(pg_url):
    from sqlalchemy import text

    from clicloop.orchestrator.ledger.readonly import ReadOnlyLedger

    Loop(config_from_dict(digits_config(pg_url, stop={"max_labels": 10}))).run()
    with ReadOnlyLedger(pg_url) as led, led.engine_.connect() as conn:
        assert conn.execute(text("SHOW transaction_read_only")).scalar() == "on"


def test_a_postgres_url_is_told_how_sqlalchemy_spells_postgresql():
    """``postgres://`` read "ledger databases must be SQLite or PostgreSQL URLs" with no way forward."""
    from clicloop.orchestrator.errors import LedgerError
    from clicloop.orchestrator.ledger.readonly import read_only_engine

    with pytest.raises(LedgerError, match=r"write postgresql\+psycopg://"):
        read_only_engine("postgres://postgres@127.0.0.1:5432/test")
