"""What a backend knows that no answer carries, into the ledger after each collect: work that
brought no answer and no pay (``unpaid_work()``: a Prolific submission returned or timed out),
counted as unpaid returned work of that person in every wage view, and the batches it put out
(``published_batches()``: a Prolific study, its places and the rule that sized it).

Both methods are optional and report everything seen so far; the ledger records each item once
(by the platform's id), so a backend that reports it again, or a loop killed and resumed, adds
nothing. An item that cannot be read is logged, naming the backend and the field, and left out:
it never stops the loop (:mod:`clicloop.orchestrator.ledger.unpaid`).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from clicloop.orchestrator.ledger.extra import task_rows
from clicloop.orchestrator.ledger.unpaid import record_batches, record_unpaid_work
from clicloop.orchestrator.types import PublishedBatch, UnpaidWork

if TYPE_CHECKING:
    from clicloop.orchestrator.ledger import Ledger
    from clicloop.orchestrator.loop import Loop

log = logging.getLogger(__name__)


def record_backend_facts(loop: Loop, r: int) -> None:
    """After a collect of ``loop`` (rounds or continuous mode): :func:`record_facts` for its backend."""
    record_facts(loop.ledger_, loop.name, loop.backend_, loop.config.backend.name, r, real=getattr(loop.ids_, "real", {}),
                 seen=loop.__dict__.setdefault("facts_seen_", set()))


def record_facts(ledger: Ledger, loop: str, backend: Any, backend_name: str, r: int, *, real: Mapping[str, str] | None = None,
                 seen: set[tuple[str, str]] | None = None) -> None:
    """Record ``backend``'s new unpaid work and published batches for ``loop``; each in the round
    of the earliest of its tasks the ledger holds (``r``, the current round, when none). ``real``
    maps the opaque task keys a backend saw to the ledger's; ``seen`` (kept by the caller) skips
    what was recorded already without asking the ledger again."""
    real, seen = real or {}, seen if seen is not None else set()
    work = [u for u in _read(backend, "unpaid_work", UnpaidWork, backend_name) if ("work", u.key) not in seen]
    batches = [b for b in _read(backend, "published_batches", PublishedBatch, backend_name) if ("batch", b.key) not in seen]
    if not work and not batches:
        return
    rows = task_rows(ledger, {real.get(k, k) for x in (*work, *batches) for k in x.task_keys})

    def round_of(keys: tuple[str, ...]) -> int:
        rounds = [rows[real.get(k, k)]["round_no"] for k in keys if real.get(k, k) in rows]
        return min(rounds) if rounds else r

    n = record_unpaid_work(ledger, loop, backend_name, [(u, round_of(u.task_keys)) for u in work])
    record_batches(ledger, loop, backend_name, [(b, round_of(b.task_keys)) for b in batches])
    seen.update([("work", u.key) for u in work] + [("batch", b.key) for b in batches])
    if n:
        log.info("%s, round %d: recorded %d stretch(es) of unpaid work that brought no answer (returned, timed out)", loop, r, n)


def _read(backend: Any, method: str, kind: type, name: str) -> list[Any]:
    """``backend.method()``'s items that are well formed; the others logged and left out."""
    read = getattr(backend, method, None)
    if not callable(read):
        return []
    out = []
    for i, item in enumerate(read() or ()):
        problem = _problem(item, kind)
        if problem:
            log.warning("backend %s: item %d of %s() left out of the ledger: %s", name, i, method, problem)
        else:
            out.append(item)
    return out


def _problem(item: Any, kind: type) -> str | None:
    if not isinstance(item, kind):
        return f"expected a {kind.__name__}, got {type(item).__name__}"
    if not isinstance(item.key, str) or not item.key:
        return "field 'key' must be a non-empty string"
    if not isinstance(item.task_keys, tuple) or not all(isinstance(k, str) for k in item.task_keys):
        return "field 'task_keys' must be a tuple of task keys"
    if isinstance(item, UnpaidWork):
        if not isinstance(item.worker, str) or not item.worker:
            return "field 'worker' must be a non-empty string"
        if isinstance(item.seconds, bool) or not isinstance(item.seconds, (int, float)) or not math.isfinite(item.seconds) \
                or item.seconds < 0:
            return f"field 'seconds' must be a finite number >= 0, not {item.seconds!r}"
        if not isinstance(item.kind, str) or not item.kind:
            return "field 'kind' must be a non-empty string"
    elif isinstance(item.places, bool) or not isinstance(item.places, int) or item.places < 0:
        return f"field 'places' must be a whole number >= 0, not {item.places!r}"
    return None
