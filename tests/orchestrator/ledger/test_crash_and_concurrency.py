"""SIGKILL during ledger writes at 50 random points, and several loops writing to one
PostgreSQL ledger at once: the invariants hold and the totals are exact."""

import os
import signal
import subprocess
import sys
import time
from decimal import Decimal
from pathlib import Path

import numpy as np
import pytest
import yaml

from clicloop.orchestrator.ledger import Ledger
from clicloop.orchestrator.ledger.verify import verify
from tests.conftest import digits_config

ROOT = Path(__file__).resolve().parents[3]
BATCHES = 80


def start_writer(url: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "tests.orchestrator.ledger.writer", url, str(BATCHES)], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def exact_totals(ledger: Ledger) -> None:
    spent = ledger.spent("crash")
    assert spent["answers"] == BATCHES * 50
    # every answer paid 0.05 + 0.01 once; one rejected answer per batch reversed; one 0.10 bonus per batch
    assert spent["cost"] == BATCHES * Decimal("3.04")  # 50 x 0.06 - 0.06 + 0.10, exact
    assert spent["income"] == BATCHES * Decimal("2.55")  # 50 x 0.05 - 0.05 + 0.10


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_sigkill_during_writes_at_50_random_points(backend, tmp_path, request):
    url = f"sqlite:///{tmp_path / 'l.db'}" if backend == "sqlite" else request.getfixturevalue("pg_url")
    rng = np.random.default_rng(50)
    killed_mid_write = 0
    for _ in range(50):
        proc = start_writer(url)
        assert proc.stdout.readline().strip() == "ready", proc.stderr.read()
        time.sleep(float(rng.uniform(0.0, 0.12)))
        proc.send_signal(signal.SIGKILL)
        killed_mid_write += proc.wait() == -signal.SIGKILL
        with Ledger(url) as ledger:
            assert verify(ledger) == []
    assert killed_mid_write >= 40  # most kills landed while it was still writing
    done = start_writer(url)
    assert done.wait(timeout=120) == 0, done.stderr.read()
    with Ledger(url) as ledger:
        assert verify(ledger) == []
        exact_totals(ledger)


@pytest.mark.slow
def test_several_loops_write_to_one_postgresql_ledger_at_once(pg_url, tmp_path):
    configs = []
    for i in range(4):
        cfg = digits_config(pg_url, loop={"name": f"team-{i}", "seed": i}, stop={"max_labels": 40})
        path = tmp_path / f"c{i}.yaml"
        path.write_text(yaml.safe_dump(cfg))
        configs.append(path)
    procs = [subprocess.Popen([sys.executable, "-m", "clicloop", "run", str(c)], cwd=ROOT, stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, text=True, env={**os.environ}) for c in configs]
    for p in procs:
        assert p.wait(timeout=300) == 0, p.stderr.read()
    with Ledger(pg_url) as ledger:
        assert sorted(ledger.loops()) == [f"team-{i}" for i in range(4)]
        for i in range(4):
            spent = ledger.spent(f"team-{i}")
            assert spent["answers"] == 40 and spent["cost"] == Decimal("0.96")
        assert verify(ledger) == []
