"""The payment journal of the Prolific backend: every bonus and adjustment, written down before it
is paid and again once it is, so that no process pays it twice.

Prolific's pay call is not idempotent ("sending multiple requests with the same bulk bonus payment
ID will result in participants being paid multiple times", its API reference): a key kept in
memory guards one process only, and a resumed or second process would pay the same people again.
The journal is a JSON Lines file (``params.payments_journal``), appended and synced line by line:
``{"key", "state": "started", "bonus_id", "participant", "study", "amount", "currency", "at"}``
before the pay call, then ``{"key", "state": "paid" | "failed", "bonus_id", "at"}`` after it
("failed": Prolific refused the call, so no money moved and the key may be paid again). A key
whose last state is "paid", or "started" (the pay call's answer was lost: whether money moved is
only known at Prolific), is refused, with what to check. Claiming a key (re-reading the file,
checking, writing "started") holds an exclusive lock on the file, so two live processes (a
running loop and a payment script) cannot both pay it. A last line without its newline is a write
a killed process left half done before its pay call: ignored, with a warning.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from clicloop.backends.prolific_client import ProlificError

log = logging.getLogger("clicloop.prolific")


class PaymentRefused(ProlificError):
    """The journal holds this payment's key: paid, or started and never confirmed."""


class PaymentJournal:
    """The journal at ``path`` (made on first use)."""

    def __init__(self, path: str | os.PathLike[str]):
        self.path = Path(path)

    def open(self) -> PaymentJournal:
        """Read what earlier processes wrote; a line that cannot be read stops here, named."""
        from clicloop.orchestrator.config import unexpanded_path

        try:
            unexpanded_path(str(self.path))
        except ValueError as e:
            raise ProlificError(f"prolific: payments_journal {e}") from e
        self.entries_: dict[str, dict[str, Any]] = {}
        if self.path.exists():
            with self._file("r") as f:
                self._read(f)
        return self

    def refusal(self, key: str) -> str | None:
        """Why ``key`` must not be paid (again), or None when it may be."""
        entry = self.entries_.get(key)
        if entry is None or entry["state"] == "failed":
            return None
        if entry["state"] == "paid":
            return f"prolific: payment {key!r} was already made (bulk bonus {entry.get('bonus_id')}); not paying twice"
        return (f"prolific: payment {key!r} was started (bulk bonus {entry.get('bonus_id')}) but never confirmed: the "
                f"pay call's answer was lost. Check the study's bonus payments at Prolific; if it was not "
                f"paid, delete the key's lines from {self.path} and pay again")

    def claim(self, key: str, **fields: Any) -> None:
        """Write ``key`` as started, unless the journal (as it is now on disk, under an exclusive
        lock) refuses it: then a :class:`ProlificError` says why."""
        with self._file("a+") as f:
            fcntl.flock(f, fcntl.LOCK_EX)
            f.seek(0)
            self._read(f)
            refusal = self.refusal(key)
            if refusal:
                raise PaymentRefused(refusal)
            self._append(f, {"key": key, "state": "started", **fields})

    def paid(self, key: str, bonus_id: str) -> None:
        self._settle(key, "paid", bonus_id)

    def failed(self, key: str, bonus_id: str) -> None:
        """Prolific refused the pay call (a 4xx: no money moved): the key may be paid again."""
        self._settle(key, "failed", bonus_id)

    def _settle(self, key: str, state: str, bonus_id: str) -> None:
        with self._file("a") as f:
            fcntl.flock(f, fcntl.LOCK_EX)
            self._append(f, {"key": key, "state": state, "bonus_id": bonus_id})

    def _read(self, f: IO[str]) -> None:
        self.entries_ = {}
        lines = f.read().split("\n")
        last = len(lines) - 1  # the text after the last newline: "" when the file ends with one
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                entry = json.loads(line)
                key, state = entry["key"], entry["state"]
            except (ValueError, KeyError, TypeError) as e:
                if number - 1 == last:  # a half-written last line: its pay call never started
                    log.warning("prolific: %s ends with a half-written line (a process killed while writing it, "
                                "before its pay call): ignored", self.path)
                    continue
                raise ProlificError(f"prolific: {self.path}, line {number}, is not a payment record ({e}); the "
                                    "journal is what keeps payments from being made twice: fix the line") from e
            self.entries_[key] = {**self.entries_.get(key, {}), **entry, "state": state}

    def _append(self, f: IO[str], entry: dict[str, Any]) -> None:
        entry = {**entry, "at": time.time()}
        f.seek(0, os.SEEK_END)
        if f.tell() and not self._ends_with_newline():
            f.write("\n")  # after a half-written line: a record of its own
        f.write(json.dumps(entry, sort_keys=True, default=str) + "\n")
        f.flush()
        os.fsync(f.fileno())
        self.entries_[entry["key"]] = {**self.entries_.get(entry["key"], {}), **entry}

    def _ends_with_newline(self) -> bool:
        with self.path.open("rb") as raw:
            raw.seek(-1, os.SEEK_END)
            return raw.read(1) == b"\n"

    @contextmanager
    def _file(self, mode: str) -> Iterator[IO[str]]:
        """The journal opened in ``mode``; a failure to read or write it is a :class:`ProlificError`
        (a payment's record never goes missing without a word)."""
        try:
            if "a" in mode:
                self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.path.open(mode, encoding="utf-8") as f:
                yield f
        except (OSError, UnicodeDecodeError) as e:
            raise ProlificError(f"prolific: cannot {'write' if 'a' in mode else 'read'} the payments journal "
                                f"{self.path}: {e}") from e
