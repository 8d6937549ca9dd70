"""The payment journal of the Prolific backend: every bonus and adjustment, written down before it
is paid and again once it is, so that no process pays it twice.

Prolific's pay call is not idempotent ("sending multiple requests with the same bulk bonus payment
ID will result in participants being paid multiple times", its API reference): a key kept in
memory guards one process only, and a resumed or second process would pay the same people again.
The journal is a JSON Lines file (``params.payments_journal``), appended and synced line by line:
``{"key", "state": "started", "bonus_id", "participant", "study", "amount", "currency", "at"}``
before the pay call, then ``{"key", "state": "paid", "bonus_id", "at"}`` after it. A key found
there is refused: "paid", or "started" without "paid" (the pay call failed or its answer was lost:
whether money moved is only known at Prolific), with what to check.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from clicloop.backends.prolific_client import ProlificError


class PaymentJournal:
    """The journal at ``path`` (made on first use)."""

    def __init__(self, path: str | os.PathLike[str]):
        self.path = Path(path)

    def open(self) -> PaymentJournal:
        """Read what earlier processes wrote; a line that cannot be read stops here, named."""
        self.entries_: dict[str, dict[str, Any]] = {}
        if not self.path.exists():
            return self
        with self.path.open(encoding="utf-8") as f:
            for number, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    entry = json.loads(line)
                    key, state = entry["key"], entry["state"]
                except (ValueError, KeyError, TypeError) as e:
                    raise ProlificError(f"prolific: {self.path}, line {number}, is not a payment record ({e}); the "
                                        "journal is what keeps payments from being made twice: fix the line") from e
                self.entries_[key] = {**self.entries_.get(key, {}), **entry, "state": state}
        return self

    def refusal(self, key: str) -> str | None:
        """Why ``key`` must not be paid (again), or None when the journal has never seen it."""
        entry = self.entries_.get(key)
        if entry is None:
            return None
        if entry["state"] == "paid":
            return f"prolific: payment {key!r} was already made (bulk bonus {entry.get('bonus_id')}); not paying twice"
        return (f"prolific: payment {key!r} was started (bulk bonus {entry.get('bonus_id')}) but never confirmed: the "
                f"pay call failed or its answer was lost. Check the study's bonus payments at Prolific; if it was not "
                f"paid, delete the key's lines from {self.path} and pay again")

    def started(self, key: str, **fields: Any) -> None:
        self._append({"key": key, "state": "started", **fields})

    def paid(self, key: str, bonus_id: str) -> None:
        self._append({"key": key, "state": "paid", "bonus_id": bonus_id})

    def _append(self, entry: dict[str, Any]) -> None:
        entry = {**entry, "at": time.time()}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a", encoding="utf-8") as f:
            f.write(json.dumps(entry, sort_keys=True, default=str) + "\n")
            f.flush()
            os.fsync(f.fileno())
        self.entries_[entry["key"]] = {**self.entries_.get(entry["key"], {}), **entry}
