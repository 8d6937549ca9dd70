"""A full disk under a SQLite ledger (issue #21, "Ledger and runners"): `clicloop run` says so,
naming the ledger, without a traceback; nothing is half-written; freeing space and running again
resumes the loop to exact totals.

The end-to-end test mounts a 4 MiB tmpfs (as root; elsewhere it is skipped and says why); the
unit test fills the ledger with SQLite's own page limit, which raises the same SQLITE_FULL."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest
import yaml
from sqlalchemy import event

from clicloop.orchestrator.errors import LedgerError
from clicloop.orchestrator.ledger import Ledger
from clicloop.orchestrator.ledger.verify import verify
from clicloop.orchestrator.types import Answer, Task
from tests.conftest import digits_config


def fill(disk: Path, leave: int) -> Path:
    """Write a file until the disk is full, then give ``leave`` bytes back."""
    filler = disk / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT)
    try:
        while True:
            os.write(fd, b"\0" * 65536)
    except OSError:
        pass
    finally:
        os.close(fd)
    os.truncate(filler, max(0, filler.stat().st_size - leave))
    return filler


@pytest.fixture
def tiny_disk(tmp_path: Path) -> Iterator[Path]:
    disk = tmp_path / "disk"
    disk.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(disk)], capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f"mounting a 4 MiB tmpfs needs root: {mounted.stderr.strip()}")
    yield disk
    subprocess.run(["umount", "-l", str(disk)], check=True)


def run(config: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "clicloop", "run", str(config)], capture_output=True, text=True,
                          timeout=300, env={**os.environ, "CLICLOOP_WORKER_SALT": "disk-full-test"})


@pytest.mark.slow
@pytest.mark.parametrize("leave", [0, 256 * 1024], ids=["not-a-byte-left", "room-for-a-few-rounds"])
def test_a_full_disk_stops_the_run_with_a_clear_error_and_the_run_resumes_once_there_is_room(tiny_disk, tmp_path, leave):
    url = f"sqlite:///{tiny_disk / 'ledger.db'}"
    config = tmp_path / "loop.yaml"
    config.write_text(yaml.safe_dump(digits_config(url, stop={"max_labels": 30})))
    assert run(config).returncode == 0
    config.write_text(yaml.safe_dump(digits_config(url, stop={"max_labels": 150})))  # a bigger budget: more to write
    filler = fill(tiny_disk, leave)
    full = run(config)
    assert full.returncode == 2, full.stderr
    assert f"cannot write to the ledger at {url}: the disk is full" in full.stderr
    assert "Traceback" not in full.stderr
    filler.unlink()
    resumed = run(config)
    assert resumed.returncode == 0, resumed.stderr
    with Ledger(url) as ledger:
        assert verify(ledger) == []
        spent = ledger.spent("t")
        assert spent["answers"] == 150 and spent["cost"] == Decimal("3.6")


def test_a_ledger_write_the_disk_cannot_hold_is_a_clear_error_and_rolls_back(tmp_path):
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    with Ledger(url) as ledger:
        ledger.begin_loop("l", "h", "{}", 0)
        pages = ledger.engine_.connect().exec_driver_sql("PRAGMA page_count").scalar()
        ledger.engine_.dispose()
        event.listen(ledger.engine_, "connect", lambda conn, _: conn.execute(f"PRAGMA max_page_count = {pages + 2}"))
        tasks = [Task(f"l/0/item{i}/0", "l", 0, f"item{i}", 0, "Sort tickets by topic.", ("a", "b")) for i in range(2000)]
        ledger.record_tasks(tasks[:10], "sim")
        rows = [(t, Answer(t.key, "w1", "a", active_s=3.0, reward=0.05, fee=0.01, currency="EUR"), "submitted", None) for t in tasks]
        with pytest.raises(LedgerError, match=rf"cannot write to the ledger at {url}: the disk is full; nothing was half-written"):
            ledger.record_answers("l", "sim", rows)
        assert ledger.spent("l")["answers"] == 0  # the whole batch was rolled back
    with Ledger(url) as ledger:
        assert verify(ledger) == []
