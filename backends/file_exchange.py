"""File exchange: a crowd backend for vendors and in-house teams without tooling.

Layout under ``directory``: ``outbox/`` one file per batch we send (``<loop>-r<round>-<hash>``,
.jsonl or .csv, one row per task); ``inbox/`` answer files the vendor drops (.jsonl or .csv, any
name; read on every collect); ``rejected/<inbox file>.rejected.jsonl`` every refused row with
file, line, field, task key and reason, never the row's content (rewritten, never appended twice).

Outbox rows: ``task_key`` (answer with it), ``item_id``, ``replica``, ``round``, ``purpose`` (why
this labeling exists), ``instructions``, ``labels`` (allowed answers), ``payload`` (JSON text in
CSV). In a CSV outbox an ``item_id``, ``purpose`` or ``instructions`` cell that a spreadsheet would
run as a formula (it starts with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return) is written
with a leading ``'`` (OWASP's advice on CSV injection); the JSONL outbox holds the values as they
are. Files whose names start with ``.`` are never read (a file being copied in under a temporary
dot-name is not read half-way): give answer files a plain name. Inbox rows (JSON objects, or CSV with a header), validated strictly:

- ``task_key`` (required): a key from one of our outbox files.
- ``worker`` (required): the vendor's id for the person (the ledger stores a salted pseudonym).
- ``label`` (required column): one of the batch's labels; empty or null means "skipped".
- time: ``active_s`` (seconds on the task), or ``started_at`` and ``submitted_at`` (ISO 8601,
  UTC when no offset is given, or epoch seconds); ``search_s`` and ``wait_s`` optional.
  Each time is at most ``max_active_s`` seconds (the plausibility limit, default 8 h).
- pay (optional): ``reward`` (default: the ``reward`` param), ``fee`` (default ``reward *
  fee_rate``), ``currency`` (must equal the ``currency`` param); at most 1e9 per answer.

Only regular files in ``inbox/`` itself are read: a symbolic link, a hard link, a device or pipe,
or a file over 256 MiB is refused whole, unread (see :mod:`clicloop.backends.file_exchange_rows`);
``inbox/``, ``outbox/`` and ``rejected/`` must be folders inside ``directory``, not links.
A malformed row never stops the loop and is never lost: it is skipped, logged once with file +
line + field, and written to ``rejected/``. A row repeating an earlier answer to the same task
is dropped (a file dropped twice counts once); one contradicting it is rejected (files are read
oldest first, so the first answer is the one that arrived first, as the ledger recorded it). A
task's first answer is written down (``.clicloop-first-answers-<loop>.jsonl`` in ``directory``) before
the loop records it, so a restarted backend reports the same first. A
last row without its newline waits, noted in ``rejected/``, until the file ends with one (a
file still being written is never read half-way). Dispatch is
idempotent (a key already in an outbox file is not exported again) and atomic (write, rename).
``confidential`` is a parameter: True for a vendor under NDA or in-house, False for an open crowd.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import logging
import os
import re
import secrets
from collections.abc import Iterable, Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any

from clicloop.backends.file_exchange_rows import (
    FieldError, Rejection, RowRules, answer_from_row, finite_nonneg, read_rows, task_key_of,
)
from clicloop.orchestrator.crowd.plausibility import DEFAULT_MAX_ACTIVE_S, check_limit
from clicloop.orchestrator.errors import BackendError, ConfigError
from clicloop.orchestrator.ledger import money
from clicloop.orchestrator.progress import notice
from clicloop.orchestrator.types import Answer, BackendContext, Task

log = logging.getLogger("clicloop.file_exchange")

FORMATS = ("jsonl", "csv")
OUTBOX_COLUMNS = ("task_key", "item_id", "replica", "round", "purpose", "instructions", "labels", "payload", "content_warning")


class FileExchangeError(BackendError):
    """The exchange directory cannot be used (not writable, wrong format parameter)."""


class FileExchange:
    """Exchange tasks and answers as files with a vendor or an in-house team.

    Parameters
    ----------
    directory: the exchange directory (outbox/, inbox/, rejected/ are created in it).
    format: ``"jsonl"`` or ``"csv"`` for the outbox files (the inbox accepts both).
    confidential: True when the people behind the files may see sensitive items (NDA, in-house).
    instructions: what to do, written into every outbox row next to the purpose statement.
    reward, fee_rate, currency: the default pay per answer when a row gives none.
    max_active_s: the plausibility limit on each time of a row (``active_s``, ``search_s``,
        ``wait_s``); a row above it is rejected (default 8 h).
    """

    reads_ground_truth = False

    def __init__(self, directory: str = "clicloop-exchange", format: str = "jsonl", confidential: bool = False,
                 instructions: str = "", reward: float = 0.0, fee_rate: float = 0.0, currency: str = "EUR",
                 max_active_s: float = DEFAULT_MAX_ACTIVE_S):
        self.directory = directory
        self.format = format
        self.confidential = confidential
        self.instructions = instructions
        self.reward = reward
        self.fee_rate = fee_rate
        self.currency = currency
        self.max_active_s = max_active_s

    # -- lifecycle -------------------------------------------------------------------------------

    def open(self, context: BackendContext) -> None:
        if self.format not in FORMATS:
            raise FileExchangeError(f"file exchange: format must be one of {', '.join(FORMATS)}, not {self.format!r}")
        if not (finite_nonneg(self.reward) and finite_nonneg(self.fee_rate)):
            raise FileExchangeError("file exchange: reward and fee_rate must be finite and not negative")
        try:
            limit = check_limit(self.max_active_s, "backend.params.max_active_s")
        except ConfigError as e:
            raise FileExchangeError(f"file exchange: {e}") from e
        root = Path(self.directory)
        self.context_ = context
        self.rules_ = RowRules(set(), tuple(context.labels), self.reward, self.fee_rate, self.currency, limit)
        self.outbox_, self.inbox_, self.rejected_ = root / "outbox", root / "inbox", root / "rejected"
        try:
            for d in (self.outbox_, self.inbox_, self.rejected_):
                d.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise FileExchangeError(f"file exchange: cannot use directory {root}: {e}") from e
        self._check_folders()
        self.exported_ = self.rules_.keys  # one set: keys exported later are valid answers at once
        self.exported_.update(self._exported_keys())
        self.cache_: dict[str, tuple[tuple[int, int], list[tuple[int, Any]], list[Rejection]]] = {}
        self.logged_: set[tuple[str, int, str]] = set()
        self.first_: dict[str, tuple[Answer, str, int]] = {}  # task key -> its first answer, file and line
        self.firsts_path_ = root / FIRSTS.format(loop=_safe(context.loop))  # one per loop: --restart clears its own
        if context.restart:  # the loop starts over: its answers are recorded afresh, first by arrival
            self.firsts_path_.unlink(missing_ok=True)
        self.firsts_ = _read_firsts(self.firsts_path_)  # task key -> (file, line) reported first, across restarts

    def _check_folders(self) -> None:
        """outbox/, inbox/ and rejected/ are folders inside the exchange directory, not links
        out of it (a vendor with write access must not point clicloop at other files)."""
        root = os.path.realpath(self.directory)
        for d in (self.outbox_, self.inbox_, self.rejected_):
            if d.is_symlink() or not d.is_dir() or os.path.realpath(d) != os.path.join(root, d.name):
                raise FileExchangeError(f"file exchange: {d} must be a folder inside {self.directory}, not a link "
                                        "elsewhere; replace it with a plain folder")

    def close(self) -> None:
        pass  # nothing held open: every call reads and writes whole files

    def expected_cost_per_task(self) -> Decimal | None:
        """Reward + fee of a task at the default pay (exact, as a row without pay would book it); None
        when no default reward is set (the vendor's rows name their pay)."""
        reward = money.exact(self.reward)
        return reward + money.share(reward, self.fee_rate) if reward else None

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
        if tasks and not getattr(self, "told_", False):  # once a run, a resumed one too: where the work is
            self.told_ = True
            newest = max(self.outbox_.glob(f"{_safe(self.context_.loop)}-r*"), key=_mtime, default=None)
            notice("file exchange: %d task(s) out in %s (the newest file: %s); the loop waits for answer files in %s "
                   "(CSV or JSON Lines: task_key, worker, label, active_s; docs/file-exchange.md)", len(tasks),
                   self.outbox_, newest.name if newest else "-", self.inbox_)

    def _export(self, round_no: int, batch: list[Task]) -> None:
        digest = hashlib.sha256("\n".join(t.key for t in batch).encode()).hexdigest()[:12]
        name = f"{_safe(self.context_.loop)}-r{round_no}-{digest}.{self.format}"
        rows = [self._outbox_row(t) for t in batch]
        text = ("".join(json.dumps(r, ensure_ascii=False, sort_keys=True) + "\n" for r in rows)
                if self.format == "jsonl" else _to_csv(rows))
        path = self.outbox_ / name
        try:
            _write_atomic(path, text)
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
            for _, row in read_rows(path)[0]:  # only our own regular files: a link is refused
                if isinstance(row, dict) and isinstance(row.get("task_key"), str):
                    keys.add(row["task_key"])
        return keys

    # -- collect ---------------------------------------------------------------------------------

    def collect(self, tasks: Sequence[Task]) -> list[Answer]:
        wanted = {t.key for t in tasks}
        return [a for a in self.answers() if a.task_key in wanted]

    def answers(self) -> list[Answer]:
        """Every valid answer in the inbox (first answer per task key), rejected rows written out."""
        self._check_folders()
        first = self.first_  # an answer reported once stays the task's first (the ledger keeps the first it records)
        rejected: dict[str, list[Rejection]] = {}
        valid: list[tuple[Answer, str, int]] = []
        for path in _by_arrival(p for p in self.inbox_.iterdir() if not p.name.startswith(".")):
            if path.suffix.lower().lstrip(".") not in FORMATS or (path.is_dir() and not path.is_symlink()):
                continue
            rows, problems = self._parsed(path)
            bad = rejected.setdefault(path.name, list(problems))
            for line, row in rows:
                try:
                    valid.append((answer_from_row(path.name, line, row, self.rules_), path.name, line))
                except FieldError as e:
                    bad.append(Rejection(path.name, line, e.field, e.reason, task_key_of(row)))
        for answer, name, line in valid:  # a first reported before a restart stays first, whatever arrived since
            if first.get(answer.task_key) is None and self.firsts_.get(answer.task_key) == (name, line):
                first[answer.task_key] = (answer, name, line)
        new: dict[str, tuple[str, int]] = {}
        for answer, name, line in valid:
            seen = first.get(answer.task_key)
            if seen is None:
                first[answer.task_key] = (answer, name, line)
                new[answer.task_key] = (name, line)
            elif (seen[1], seen[2]) != (name, line) and not _same(seen[0], answer):  # the same again counts once
                rejected[name].append(Rejection(name, line, "task_key", f"task already answered differently in "
                                                f"{seen[1]} line {seen[2]}; the first answer is kept", answer.task_key))
        self._remember_firsts(new)
        self._write_rejections(rejected)
        return [a for a, _, _ in first.values()]

    def _remember_firsts(self, new: dict[str, tuple[str, int]]) -> None:
        """Append the answers reported first for the first time (before the loop records them), so a
        restarted backend reports the same ones first: the inbox's arrival order changes when a
        vendor appends to a file, and rejected/ then blamed the answer the ledger held."""
        new = {k: v for k, v in new.items() if k.startswith(f"{self.context_.loop}/")}  # this loop's tasks only
        if not new:
            return
        self.firsts_.update(new)
        try:
            torn = _torn(self.firsts_path_)  # a torn last line stays alone (skipped when read), not glued to the next
            with self.firsts_path_.open("a", encoding="utf-8") as f:
                f.write("\n" if torn else "")
                f.write("".join(json.dumps({"task_key": k, "file": n, "line": ln}) + "\n" for k, (n, ln) in new.items()))
                f.flush()
                os.fsync(f.fileno())
        except OSError as e:
            raise FileExchangeError(f"file exchange: cannot write {self.firsts_path_}: {e}") from e

    def _parsed(self, path: Path) -> tuple[list[tuple[int, Any]], list[Rejection]]:
        try:
            st = path.lstat()
        except OSError as e:  # vanished between listing and reading
            return [], [Rejection(path.name, 0, "<file>", f"cannot read: {e.strerror}")]
        signature = (st.st_size, st.st_mtime_ns, st.st_ino, st.st_mode)
        cached = self.cache_.get(path.name)
        if cached is None or cached[0] != signature:
            rows, problems = read_rows(path)
            cached = (signature, rows, problems)
            self.cache_[path.name] = cached
        return cached[1], cached[2]

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
                elif path.is_symlink() or not path.exists() or path.read_text(encoding="utf-8") != text:
                    _write_atomic(path, text)  # replaces a link planted there, never writes through it
            except OSError as e:
                log.error("file exchange: cannot write %s: %s", path, e)

    def __repr__(self) -> str:
        return f"FileExchange(directory={self.directory!r}, format={self.format!r}, confidential={self.confidential})"


# -- helpers -------------------------------------------------------------------------------------


FIRSTS = ".clicloop-first-answers-{loop}.jsonl"  # in the exchange directory: which row was each task's first answer


def _torn(path: Path) -> bool:
    """Whether ``path`` exists and its last line has no newline (a write cut short)."""
    try:
        with path.open("rb") as f:
            if f.seek(0, os.SEEK_END) == 0:
                return False
            f.seek(-1, os.SEEK_END)
            return f.read(1) != b"\n"
    except FileNotFoundError:
        return False


def _mtime(path: Path) -> int:
    try:
        return path.lstat().st_mtime_ns
    except OSError:
        return -1


def _read_firsts(path: Path) -> dict[str, tuple[str, int]]:
    """``task key -> (file, line)`` of the answers reported first, as :meth:`FileExchange._remember_firsts`
    wrote them; an unreadable line (a torn last write) is skipped: that task's first is then
    decided by arrival again."""
    firsts: dict[str, tuple[str, int]] = {}
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        return firsts
    except (OSError, UnicodeDecodeError) as e:
        raise FileExchangeError(f"file exchange: cannot read {path}: {e}; remove it to decide first answers by "
                                "arrival again") from e
    for text in lines:
        try:
            row = json.loads(text)
            firsts[str(row["task_key"])] = (str(row["file"]), int(row["line"]))  # the latest written wins
        except (ValueError, KeyError, TypeError):
            continue
    return firsts


def _by_arrival(paths: Iterable[Path]) -> list[Path]:
    """Inbox files oldest first (modification time, then name): the first answer to a task is the
    one that arrived first, as the ledger recorded it, not the one whose file name sorts first."""
    def arrived(path: Path) -> tuple[int, str]:
        try:
            return path.lstat().st_mtime_ns, path.name
        except OSError:  # vanished since the listing: read (and refused) last
            return 2 ** 63, path.name

    return sorted(paths, key=arrived)


def _write_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a new temporary file of a random name (created
    exclusively: a link planted in the folder is never written through), renamed over it."""
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o666)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _same(a: Answer, b: Answer) -> bool:
    return (a.worker, a.label, a.active_s, a.reward, a.fee) == (b.worker, b.label, b.active_s, b.reward, b.fee)


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


FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _inert(value: Any) -> Any:
    """A cell a spreadsheet shows as text: one starting like a formula gets a leading ``'``."""
    return "'" + value if isinstance(value, str) and value.startswith(FORMULA_START) else value


def _to_csv(rows: Iterable[dict[str, Any]]) -> str:
    out = io.StringIO(newline="")
    writer = csv.DictWriter(out, fieldnames=OUTBOX_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for r in rows:
        writer.writerow({**r, "item_id": _inert(r["item_id"]), "purpose": _inert(r["purpose"]),
                         "instructions": _inert(r["instructions"]),
                         "labels": json.dumps(r["labels"], ensure_ascii=False),
                         "payload": json.dumps(r["payload"], ensure_ascii=False)})
    return out.getvalue()
