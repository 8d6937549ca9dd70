"""Reading the file exchange's inbox safely, and judging each row.

Only regular files that sit in ``inbox/`` itself are read: a symbolic link, a hard link, a
device, a pipe or a file above :data:`MAX_FILE_BYTES` is refused as a whole file (its content is
never parsed). A refused row is reported as its file, line, field, task key and reason, never
with its content (the vendor reads ``rejected/``). Every number is checked before it reaches the
ledger: times against the plausibility limit, amounts against
:data:`~clicloop.orchestrator.crowd.plausibility.MAX_AMOUNT`.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import re
import stat
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from clicloop.orchestrator.crowd.plausibility import amount_problem, show, time_problem
from clicloop.orchestrator.ledger import money
from clicloop.orchestrator.types import Answer

#: The largest inbox file read (larger ones are refused whole).
MAX_FILE_BYTES = 256 * 1024 * 1024
_TIME_FIELDS = ("active_s", "search_s", "wait_s")


@dataclass(frozen=True)
class Rejection:
    """One refused inbox row (or file, line 0): where it is, which field, why, and the task key
    it named (when it named one). The row's content is not kept."""

    file: str
    line: int
    field: str
    reason: str
    task_key: str | None = None

    def as_json(self) -> str:
        return json.dumps({"file": self.file, "line": self.line, "field": self.field, "reason": self.reason,
                           "task_key": self.task_key}, sort_keys=True)


@dataclass(frozen=True)
class RowRules:
    """What a row is checked against: the exported task keys, the labels, the default pay and
    the plausibility limit on each time field."""

    keys: set[str]
    labels: Sequence[str]
    reward: float
    fee_rate: float
    currency: str
    max_active_s: float


class FieldError(Exception):
    """One field of a row is unusable: ``field`` and ``reason`` go into the rejection."""

    def __init__(self, field: str, reason: str):
        self.field = field
        self.reason = reason
        super().__init__(f"{field}: {reason}")


def read_text(path: Path) -> str:
    """The UTF-8 text of ``path`` if it is a regular file of its own in its folder; a
    :class:`FieldError` (field ``<file>``) saying why not otherwise. Opened without following
    a symbolic link, so a link swapped in after the folder was listed is refused too."""
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
    try:
        fd = os.open(path, flags)
    except OSError as e:
        if os.path.islink(path):
            raise FieldError("<file>", "a symbolic link: refused (only regular files written into the folder are read)") from e
        raise FieldError("<file>", f"cannot open: {e.strerror}") from e
    with os.fdopen(fd, "rb") as f:
        st = os.fstat(f.fileno())
        if not stat.S_ISREG(st.st_mode):
            raise FieldError("<file>", "not a regular file: refused")
        if st.st_nlink > 1:
            raise FieldError("<file>", f"a hard link ({st.st_nlink} names for one file): refused "
                                       "(copy the file into the folder instead)")
        data = f.read(MAX_FILE_BYTES + 1)
    if len(data) > MAX_FILE_BYTES:
        raise FieldError("<file>", f"larger than {MAX_FILE_BYTES // (1024 * 1024)} MiB: refused (split it)")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise FieldError("<file>", f"not UTF-8 text (byte {e.start})") from e


def read_rows(path: Path) -> tuple[list[tuple[int, Any]], list[Rejection]]:
    """(line number, row) pairs of a .jsonl or .csv file, and the lines (or the file) refused."""
    try:
        text = read_text(path)
    except FieldError as e:
        return [], [Rejection(path.name, 0, e.field, e.reason)]
    rows: list[tuple[int, Any]] = []
    problems: list[Rejection] = []
    if text and not text.endswith(("\n", "\r")):  # a row still being written: read once its newline is there
        line = text.count("\n") + 1
        text = text[:text.rfind("\n") + 1]
        problems.append(Rejection(path.name, line, "<line>", "no newline at its end yet: the row waits (a file still "
                                  "being written is read once it ends with a newline; end the file's last row with one)"))
    if path.suffix.lower() == ".csv":
        reader = csv.DictReader(io.StringIO(text, newline=""), restkey=None)  # type: ignore[arg-type]
        try:
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
            problems.append(Rejection(path.name, n, "<json>", f"not valid JSON: {e.msg} at column {e.colno}"))
    return rows, problems


def task_key_of(row: Any) -> str | None:
    """The row's task key, for the rejection (only a short string: a key, never content)."""
    key = row.get("task_key") if isinstance(row, dict) else None
    return key if isinstance(key, str) and 0 < len(key) <= 300 else None


def answer_from_row(file: str, line: int, row: Any, rules: RowRules) -> Answer:
    """The answer a valid row gives; a :class:`FieldError` naming the first bad field otherwise."""
    if not isinstance(row, dict):
        raise FieldError("<row>", f"expected an object with named fields, got {type(row).__name__}")
    if None in row:
        raise FieldError("<row>", f"{len(row[None])} value(s) more than the header has columns")
    key = row.get("task_key")
    if not isinstance(key, str) or not key.strip():
        raise FieldError("task_key", "missing or empty")
    if key not in rules.keys:
        raise FieldError("task_key", f"unknown task key {show(key, 200)} (not in any outbox batch)")
    worker = row.get("worker")
    if isinstance(worker, (int, float)) and not isinstance(worker, bool):
        worker = str(worker)
    if not isinstance(worker, str) or not worker.strip() or len(worker) > 200:
        raise FieldError("worker", "missing, empty or longer than 200 characters")
    if "label" not in row:
        raise FieldError("label", "missing column (leave it empty to record a skip)")
    label = row["label"]
    label = (label if isinstance(label, str) else str(label)) if label is not None else None
    label = label or None
    if label is not None and label not in rules.labels:
        raise FieldError("label", f"{show(label)} is not one of the labels {', '.join(rules.labels)}")
    active, started, submitted = _timing(row)
    search, wait = _number(row, "search_s", 0.0), _number(row, "wait_s", 0.0)
    for field, seconds in zip(_TIME_FIELDS, (active, search, wait)):
        problem = time_problem(seconds, field, rules.max_active_s)
        if problem:
            raise FieldError(field, problem)
    reward = money.exact(_amount(row, "reward", rules.reward))  # exact from here: the file's number by its repr
    fee = money.exact(_amount(row, "fee", float(money.share(reward, rules.fee_rate))))
    currency = row.get("currency") or rules.currency
    if currency != rules.currency:
        raise FieldError("currency", f"{show(currency)} differs from this exchange's currency {rules.currency!r}")
    return Answer(task_key=key, worker=worker.strip(), label=label, active_s=active, reward=reward, fee=fee,
                  currency=rules.currency, search_s=search, wait_s=wait, accepted_at=started,
                  submitted_at=submitted, external_id=f"{file}#{line}")


def _number(row: dict[str, Any], field: str, default: float) -> float:
    value = row.get(field)
    if value is None or value == "":
        return float(default)
    if isinstance(value, bool):
        raise FieldError(field, f"expected a number, got {value!r}")
    try:
        number = float(value)
    except (TypeError, ValueError, OverflowError):
        raise FieldError(field, f"expected a number, got {show(value)}") from None
    if not finite_nonneg(number):
        raise FieldError(field, f"must be finite and not negative, got {show(value)}")
    return number


def _amount(row: dict[str, Any], field: str, default: float) -> float:
    number = _number(row, field, default)
    problem = amount_problem(number, field)
    if problem:
        raise FieldError(field, problem)
    return number


def _timestamp(row: dict[str, Any], field: str) -> float:
    value = row.get(field)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if not math.isfinite(value):
            raise FieldError(field, f"not a finite time: {value!r}")
        return float(value)
    if isinstance(value, str) and value.strip():
        text = value.strip()
        if re.fullmatch(r"\d{1,15}(\.\d{1,9})?", text):
            return float(text)
        try:
            when = datetime.fromisoformat(text.replace("Z", "+00:00"))
            return (when if when.tzinfo else when.replace(tzinfo=timezone.utc)).timestamp()
        except (ValueError, OverflowError):
            raise FieldError(field, f"not an ISO 8601 time or epoch seconds: {show(value)}") from None
    raise FieldError(field, "missing")


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
        raise FieldError("active_s", "give active_s, or started_at and submitted_at")
    if started is not None and submitted is not None and submitted < started:
        raise FieldError("submitted_at", "is before started_at")
    return round(active, 3), started, submitted


def finite_nonneg(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x) and x >= 0
