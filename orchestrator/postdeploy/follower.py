"""Follow a JSONL file of predictions as it grows (``tail -f``), resumable from the ledger.

Only complete lines are read (a line still being written waits for its newline). After each
batch the byte offset is saved in ``pd_offsets``; a restart resumes there. A crash between the
ingest and the offset write replays the batch, which changes nothing: predictions are keyed by
id and rejects by ``<file fingerprint>@<byte offset>``. A file replaced or truncated in place
(its first line changed, or it got shorter) is read again from the start, idempotently.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
import time
from pathlib import Path

from clicloop.orchestrator.postdeploy.ingest import IngestResult, Ingestor

log = logging.getLogger("clicloop.postdeploy")


class FileFollower:
    """Reads ``path`` from the saved offset into ``ingestor``, ``batch_lines`` lines at a time."""

    def __init__(self, ingestor: Ingestor, path: str | Path, *, batch_lines: int = 1000):
        self.ingestor = ingestor
        self.path = Path(path)
        self.key = str(self.path.resolve())
        self.batch_lines = batch_lines
        self._at: tuple[str, int, int] | None = None  # (fingerprint, byte offset, line number there)

    def _line_at(self, fingerprint: str, offset: int) -> int:
        """How many lines precede ``offset`` (counted once per process, then carried along)."""
        if self._at is not None and self._at[:2] == (fingerprint, offset):
            return self._at[2]
        count, left = 0, offset
        with self.path.open("rb") as f:
            while left > 0:
                block = f.read(min(left, 1 << 20))
                if not block:
                    break
                count += block.count(b"\n")
                left -= len(block)
        return count

    def _fingerprint(self) -> str | None:
        """Hash of the first complete line (None while the file has no complete line)."""
        with self.path.open("rb") as f:
            first = f.readline()
        if not first.endswith(b"\n"):
            return None
        return hashlib.sha256(first).hexdigest()[:32]

    def poll(self) -> IngestResult:
        """Ingest every complete line appended since the last poll; returns what it did."""
        total = IngestResult(position="line")
        if not self.path.exists():
            return total
        fingerprint = self._fingerprint()
        if fingerprint is None:
            total.unfinished_bytes = os.path.getsize(self.path)
            return total
        saved = self.ingestor.store.offset(self.key)
        offset = 0
        size = os.path.getsize(self.path)
        if saved is not None and saved[0] == fingerprint and saved[1] <= size:
            offset = saved[1]
        elif saved is not None:
            log.warning("%s was replaced or truncated; reading it again from the start (idempotent)", self.path)
        line_no = self._line_at(fingerprint, offset)
        with self.path.open("rb") as f:
            f.seek(offset)
            while True:
                lines, keys, numbers, start = [], [], [], offset
                while len(lines) < self.batch_lines:
                    line = f.readline()
                    if not line.endswith(b"\n"):
                        break  # end of file, or a line still being written
                    line_no += 1
                    if line.strip():
                        lines.append(line)
                        keys.append(f"file:{fingerprint}@{offset}")
                        numbers.append(line_no)
                    offset += len(line)
                if offset == start:
                    break
                result = self.ingestor.ingest(lines, "file", reject_keys=keys)
                result.rejected = [(numbers[i], reason) for i, reason in result.rejected]
                total.add(result)
                for where, reason in result.rejected:
                    log.warning("%s line %d: rejected a record: %s", self.path, where, reason)
                self.ingestor.store.save_offset(self.key, fingerprint, offset)
                self._at = (fingerprint, offset, line_no)
                f.seek(offset)
        total.unfinished_bytes = max(0, os.path.getsize(self.path) - offset)
        return total

    def follow(self, *, poll_s: float = 1.0, stop: threading.Event | None = None, idle_exit_s: float | None = None) -> IngestResult:
        """Poll until ``stop`` is set (or nothing new came for ``idle_exit_s``)."""
        total, stop, idle_since = IngestResult(position="line"), stop or threading.Event(), time.monotonic()
        while not stop.is_set():
            try:
                result = self.poll()
            except OSError as e:  # rotated or unreadable for a moment: keep following
                log.warning("%s: cannot read it now (%s); trying again in %ss", self.path, e, poll_s)
                result = IngestResult(position="line")
            total.add(result)
            if result.accepted or result.quarantined or result.duplicates or result.rejected:
                idle_since = time.monotonic()
            elif idle_exit_s is not None and time.monotonic() - idle_since >= idle_exit_s:
                break
            stop.wait(poll_s)
        return total
