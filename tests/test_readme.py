"""The README's Python example runs as written and pays as `clicloop init` does."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_the_readmes_python_loop_runs_in_its_own_ledger_at_the_floor(tmp_path, monkeypatch, capsys):
    """Found 2026-12-07: the example wrote into the CLI's ./clicloop.db at the crowd's default
    reward (1.74 EUR/h on total time against a floor of 12.02), saying nothing."""
    from clicloop.orchestrator.ledger import Ledger

    text = (ROOT / "README.md").read_text(encoding="utf-8")
    code = re.search(r"The same loop from Python:\n\n```python\n(.*?)```", text, re.S).group(1)
    monkeypatch.chdir(tmp_path)
    exec(compile(code, "README.md", "exec"), {})
    printed = capsys.readouterr().out.splitlines()
    assert len(printed) >= 10 and printed[-1].split()[1] == "220"  # 20 seed labels + 200 bought
    assert (tmp_path / "demo.db").exists() and not (tmp_path / "clicloop.db").exists()
    with Ledger(f"sqlite:///{tmp_path / 'demo.db'}") as ledger:
        spent = ledger.spent("demo")
        assert spent["answers"] == 200 and float(spent["income"]) / spent["total_hours"] > 10  # priced to the floor (1.74 before)
