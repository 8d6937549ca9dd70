"""File exchange: a crowd backend for vendors and in-house teams without tooling.

Layout under ``directory``: ``outbox/`` one file per batch we send (``<loop>-r<round>-<hash>``,
.jsonl or .csv, one row per task); ``inbox/`` answer files the vendor drops (.jsonl or .csv, any
name; read on every collect); ``rejected/<inbox file>.rejected.jsonl`` every refused row with
file, line, field and reason (rewritten, never appended twice).

Outbox rows: ``task_key`` (answer with it), ``item_id``, ``replica``, ``round``, ``purpose`` (why
this labeling exists), ``instructions``, ``labels`` (allowed answers), ``payload`` (JSON text in
CSV). Inbox rows (JSON objects, or CSV with a header), validated strictly:

- ``task_key`` (required): a key from one of our outbox files.
- ``worker`` (required): the vendor's id for the person (the ledger stores a salted pseudonym).
- ``label`` (required column): one of the batch's labels; empty or null means "skipped".
- time: ``active_s`` (seconds on the task), or ``started_at`` and ``submitted_at`` (ISO 8601,
  UTC when no offset is given, or epoch seconds); ``search_s`` and ``wait_s`` optional.
- pay (optional): ``reward`` (default: the ``reward`` param), ``fee`` (default ``reward *
  fee_rate``), ``currency`` (must equal the ``currency`` param).

A malformed row never stops the loop and is never lost: it is skipped, logged once with file +
line + field, and written to ``rejected/``. A row repeating an earlier answer to the same task
is dropped (a file dropped twice counts once); one contradicting it is rejected. Dispatch is
idempotent (a key already in an outbox file is not exported again) and atomic (write, rename).
``confidential`` is a parameter: True for a vendor under NDA or in-house, False for an open crowd.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import logging
import math
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from clicloop.orchestrator.errors import BackendError
from clicloop.orchestrator.types import Answer, BackendContext, Task

log = logging.getLogger("clicloop.file_exchange")

FORMATS = ("jsonl", "csv")
OUTBOX_COLUMNS = ("task_key", "item_id", "replica", "round", "purpose", "instructions", "labels", "payload", "content_warning")


class FileExchangeError(BackendError):
    """The exchange directory cannot be used (not writable, wrong format parameter)."""


@dataclass(frozen=True)
class Rejection:
    """One refused inbox row: where it is, which field, why."""

    file: str
    line: int
    field: str
    reason: str
    row: Any = None

    def as_json(self) -> str:
        row = self.row
        if isinstance(row, dict):  # a CSV row with surplus values has the key None
            row = {("<extra values>" if k is None else str(k)): v for k, v in row.items()}
        return json.dumps({"file": self.file, "line": self.line, "field": self.field, "reason": self.reason,
                           "row": row}, sort_keys=True, default=str)


class FileExchange:
    """Exchange tasks and answers as files with a vendor or an in-house team.

    Parameters
    ----------
    directory: the exchange directory (outbox/, inbox/, rejected/ are created in it).
    format: ``"jsonl"`` or ``"csv"`` for the outbox files (the inbox accepts both).
    confidential: True when the people behind the files may see sensitive items (NDA, in-house).
    instructions: what to do, written into every outbox row next to the purpose statement.
    reward, fee_rate, currency: the default pay per answer when a row gives none.
    """

    reads_ground_truth = False

    def __init__(self, directory: str = "clicloop-exchange", format: str = "jsonl", confidential: bool = False,
                 instructions: str = "", reward: float = 0.0, fee_rate: float = 0.0, currency: str = "EUR"):
        self.directory = directory
        self.format = format
        self.confidential = confidential
        self.instructions = instructions
        self.reward = reward
        self.fee_rate = fee_rate
        self.currency = currency

    # -- lifecycle -------------------------------------------------------------------------------

    def open(self, context: BackendContext) -> None:
        if self.format not in FORMATS:
            raise FileExchangeError(f"file exchange: format must be one of {', '.join(FORMATS)}, not {self.format!r}")
        if not (_finite_nonneg(self.reward) and _finite_nonneg(self.fee_rate)):
            raise FileExchangeError("file exchange: reward and fee_rate must be finite and not negative")
        root = Path(self.directory)
        self.context_ = context
        self.outbox_, self.inbox_, self.rejected_ = root / "outbox", root / "inbox", root / "rejected"
        try:
            for d in (self.outbox_, self.inbox_, self.rejected_):
                d.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise FileExchangeError(f"file exchange: cannot use directory {root}: {e}") from e
        self.exported_ = self._exported_keys()
        self.cache_: dict[str, tuple[tuple[int, int], list[tuple[int, Any]], list[Rejection]]] = {}
        self.logged_: set[tuple[str, int, str]] = set()

    def close(self) -> None:
        pass  # nothing held open: every call reads and writes whole files

    def expected_cost_per_task(self) -> float | None:
        return self.reward * (1 + self.fee_rate) if self.reward else None

    # -- dispatch --------------------------------------------------------------------------------

    def dispatch(self, tasks: Sequence[Task]) -> None:
        new: dict[str, Task] = {}
        for task in tasks:
            if task.key not in self.exported_ and task.key not in new:
                new[task.key] = task
        by_round: dict[int, list[Task]] = {}
        for task in new.values():
            by_round.setdefault(task.round_no, []).append(task)
        for round_no, batch in sorted(by_round.items()):
            self._export(round_no, sorted(batch, key=lambda t: t.key))

    def _export(self, round_no: int, batch: list[Task]) -> None:
        digest = hashlib.sha256("\n".join(t.key for t in batch).encode()).hexdigest()[:12]
        name = f"{_safe(self.context_.loop)}-r{round_no}-{digest}.{self.format}"
        rows = [self._outbox_row(t) for t in batch]
        text = ("".join(json.dumps(r, ensure_ascii=False, sort_keys=True) + "\n" for r in rows)
                if self.format == "jsonl" else _to_csv(rows))
        path = self.outbox_ / name
        tmp = path.with_name(f".{name}.tmp")
        try:
            tmp.write_text(text, encoding="utf-8")
            os.replace(tmp, path)
        except OSError as e:
            raise FileExchangeError(f"file exchange: cannot write {path}: {e}") from e
        self.exported_.update(t.key for t in batch)
        log.info("file exchange: exported %d task(s) to %s", len(batch), path)

    def _outbox_row(self, task: Task) -> dict[str, Any]:
        return {"task_key": task.key, "item_id": task.item_id, "replica": task.replica, "round": task.round_no,
                "purpose": task.purpose, "instructions": self.instructions, "labels": list(task.labels),
                "payload": _jsonable(task.payload), "content_warning": task.content_warning or ""}

    def _exported_keys(self) -> set[str]:
        keys: set[str] = set()
        for path in sorted(self.outbox_.iterdir()):
            if path.name.startswith(".") or path.suffix.lstrip(".") not in FORMATS:
                continue
            for _, row in _read_rows(path)[0]:
                if isinstance(row, dict) and isinstance(row.get("task_key"), str):
                    keys.add(row["task_key"])
        return keys

    # -- collect ---------------------------------------------------------------------------------

    def collect(self, tasks: Sequence[Task]) -> list[Answer]:
        wanted = {t.key for t in tasks}
        return [a for a in self.answers() if a.task_key in wanted]

    def answers(self) -> list[Answer]:
        """Every valid answer in the inbox (first answer per task key), rejected rows written out."""
        first: dict[str, tuple[Answer, str, int]] = {}
        rejected: dict[str, list[Rejection]] = {}
        for path in sorted(p for p in self.inbox_.iterdir() if p.is_file() and not p.name.startswith(".")):
            if path.suffix.lower().lstrip(".") not in FORMATS:
                continue
            rows, problems = self._parsed(path)
            bad = rejected.setdefault(path.name, list(problems))
            for line, row in rows:
                answer = self._validate(path.name, line, row, bad)
                if answer is None:
                    continue
                seen = first.get(answer.task_key)
                if seen is None:
                    first[answer.task_key] = (answer, path.name, line)
                elif not _same(seen[0], answer):  # the same answer again (a file dropped twice) counts once
                    bad.append(Rejection(path.name, line, "task_key", f"task {answer.task_key!r} already answered "
                                         f"differently in {seen[1]} line {seen[2]}; the first answer is kept", row))
        self._write_rejections(rejected)
        return [a for a, _, _ in first.values()]

    def _parsed(self, path: Path) -> tuple[list[tuple[int, Any]], list[Rejection]]:
        try:
            st = path.stat()
        except OSError as e:  # vanished between listing and reading
            return [], [Rejection(path.name, 0, "<file>", f"cannot read: {e}")]
        signature = (st.st_size, st.st_mtime_ns)
        cached = self.cache_.get(path.name)
        if cached is None or cached[0] != signature:
            rows, problems = _read_rows(path)
            cached = (signature, rows, problems)
            self.cache_[path.name] = cached
        return cached[1], cached[2]

    def _validate(self, file: str, line: int, row: Any, bad: list[Rejection]) -> Answer | None:
        def reject(field: str, reason: str) -> None:
            bad.append(Rejection(file, line, field, reason, row))

        if not isinstance(row, dict):
            reject("<row>", f"expected an object with named fields, got {type(row).__name__}")
            return None
        if None in row:
            reject("<row>", f"{len(row[None])} value(s) more than the header has columns")
            return None
        key = row.get("task_key")
        if not isinstance(key, str) or not key.strip():
            reject("task_key", "missing or empty")
            return None
        if key not in self.exported_:
            reject("task_key", f"unknown task key {key!r} (not in any outbox batch)")
            return None
        worker = row.get("worker")
        if isinstance(worker, (int, float)) and not isinstance(worker, bool):
            worker = str(worker)
        if not isinstance(worker, str) or not worker.strip() or len(worker) > 200:
            reject("worker", "missing, empty or longer than 200 characters")
            return None
        if "label" not in row:
            reject("label", "missing column (leave it empty to record a skip)")
            return None
        label = row["label"]
        if label is not None and not isinstance(label, str):
            label = str(label)
        label = label if label else None
        if label is not None and label not in self.context_.labels:
            reject("label", f"{label!r} is not one of the labels {', '.join(self.context_.labels)}")
            return None
        try:
            active, started, submitted = _timing(row)
            search = _number(row, "search_s", 0.0)
            wait = _number(row, "wait_s", 0.0)
            reward = _number(row, "reward", self.reward)
            fee = _number(row, "fee", round(reward * self.fee_rate, 6))
        except _FieldError as e:
            reject(e.field, e.reason)
            return None
        currency = row.get("currency") or self.currency
        if currency != self.currency:
            reject("currency", f"{currency!r} differs from this exchange's currency {self.currency!r}")
            return None
        return Answer(task_key=key, worker=worker.strip(), label=label, active_s=active, reward=reward, fee=fee,
                      currency=self.currency, search_s=search, wait_s=wait, accepted_at=started,
                      submitted_at=submitted, external_id=f"{file}#{line}")

    def _write_rejections(self, rejected: dict[str, list[Rejection]]) -> None:
        for name, items in rejected.items():
            path = self.rejected_ / f"{name}.rejected.jsonl"
            text = "".join(r.as_json() + "\n" for r in items)
            for r in items:
                if (r.file, r.line, r.field) not in self.logged_:
                    self.logged_.add((r.file, r.line, r.field))
                    log.warning("file exchange: %s line %d, field %s: %s (row skipped, see %s)",
                                r.file, r.line, r.field, r.reason, path)
            try:
                if not items:
                    path.unlink(missing_ok=True)
                elif not path.exists() or path.read_text(encoding="utf-8") != text:
                    tmp = path.with_name(f".{path.name}.tmp")
                    tmp.write_text(text, encoding="utf-8")
                    os.replace(tmp, path)
            except OSError as e:
                log.error("file exchange: cannot write %s: %s", path, e)

    def __repr__(self) -> str:
        return f"FileExchange(directory={self.directory!r}, format={self.format!r}, confidential={self.confidential})"


# -- helpers -------------------------------------------------------------------------------------


class _FieldError(Exception):
    def __init__(self, field: str, reason: str):
        self.field = field
        self.reason = reason
        super().__init__(f"{field}: {reason}")


def _read_rows(path: Path) -> tuple[list[tuple[int, Any]], list[Rejection]]:
    """(line number, row) pairs of a .jsonl or .csv file, and the lines that could not be parsed."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as e:
        return [], [Rejection(path.name, 0, "<file>", f"cannot read as UTF-8 text: {e}")]
    rows: list[tuple[int, Any]] = []
    problems: list[Rejection] = []
    if path.suffix.lower() == ".csv":
        try:
            reader = csv.DictReader(io.StringIO(text, newline=""), restkey=None)  # type: ignore[arg-type]
            for row in reader:
                if any(v not in (None, "") for k, v in row.items() if k is not None) or None in row:
                    rows.append((reader.line_num, {k: (v if v != "" else None) if k is not None else v
                                                   for k, v in row.items()}))
        except csv.Error as e:
            problems.append(Rejection(path.name, reader.line_num, "<csv>", f"malformed CSV: {e}"))
        return rows, problems
    for n, raw in enumerate(text.splitlines(), start=1):
        if not raw.strip():
            continue
        try:
            rows.append((n, json.loads(raw)))
        except json.JSONDecodeError as e:
            problems.append(Rejection(path.name, n, "<json>", f"not valid JSON: {e.msg} at column {e.colno}", raw[:500]))
    return rows, problems


def _number(row: dict[str, Any], field: str, default: float) -> float:
    value = row.get(field)
    if value is None or value == "":
        return float(default)
    if isinstance(value, bool):
        raise _FieldError(field, f"expected a number, got {value!r}")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise _FieldError(field, f"expected a number, got {value!r}") from None
    if not _finite_nonneg(number):
        raise _FieldError(field, f"must be finite and not negative, got {value!r}")
    return number


def _timestamp(row: dict[str, Any], field: str) -> float:
    value = row.get(field)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if not math.isfinite(value):
            raise _FieldError(field, f"not a finite time: {value!r}")
        return float(value)
    if isinstance(value, str) and value.strip():
        text = value.strip()
        if re.fullmatch(r"\d+(\.\d+)?", text):
            return float(text)
        try:
            when = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            raise _FieldError(field, f"not an ISO 8601 time or epoch seconds: {value!r}") from None
        return (when if when.tzinfo else when.replace(tzinfo=timezone.utc)).timestamp()
    raise _FieldError(field, "missing")


def _timing(row: dict[str, Any]) -> tuple[float, float | None, float | None]:
    """Active seconds, and the start and submit times when the row gives them."""
    has_times = row.get("started_at") not in (None, "") or row.get("submitted_at") not in (None, "")
    started = _timestamp(row, "started_at") if has_times else None
    submitted = _timestamp(row, "submitted_at") if has_times else None
    if row.get("active_s") not in (None, ""):
        active = _number(row, "active_s", 0.0)
    elif started is not None and submitted is not None:
        active = submitted - started
    else:
        raise _FieldError("active_s", "give active_s, or started_at and submitted_at")
    if started is not None and submitted is not None and submitted < started:
        raise _FieldError("submitted_at", "is before started_at")
    return round(active, 3), started, submitted


def _same(a: Answer, b: Answer) -> bool:
    return (a.worker, a.label, a.active_s, a.reward, a.fee) == (b.worker, b.label, b.active_s, b.reward, b.fee)


def _finite_nonneg(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x) and x >= 0


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name)[:80] or "loop"


def _jsonable(value: Any) -> Any:
    """The payload as plain JSON values (numpy arrays become lists, anything else unknown a string)."""
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value if isinstance(value, (str, int, float, bool)) or value is None else str(value)


def _to_csv(rows: Iterable[dict[str, Any]]) -> str:
    out = io.StringIO(newline="")
    writer = csv.DictWriter(out, fieldnames=OUTBOX_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for r in rows:
        writer.writerow({**r, "labels": json.dumps(r["labels"], ensure_ascii=False),
                         "payload": json.dumps(r["payload"], ensure_ascii=False)})
    return out.getvalue()
