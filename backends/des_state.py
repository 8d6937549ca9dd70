"""The event crowd's state (backends/des.py): its workers, queue and clock, and how it is kept in
a file between runs (atomically, after every call) so a killed loop resumes with the crowd it left."""

from __future__ import annotations

import logging
import os
import pickle
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from clicloop.orchestrator.errors import BackendError
from clicloop.orchestrator.types import Answer, BackendContext

log = logging.getLogger("clicloop")
STATE_VERSION = 1


@dataclass
class _Worker:
    speed_s: float  # this worker's median answer time
    error_rate: float
    present: bool = True
    toggle_at: float = float("inf")  # when they next leave (present) or arrive (absent)
    toggles: int = 0
    task: str | None = None  # the task being answered
    sent_home: bool = False  # left (or stayed away) because the requester said no more work is coming
    busy_until: float = 0.0
    idle_since: float | None = 0.0  # present and idle since (None: busy or absent)
    waited_s: float = 0.0  # waiting since the last task, reported on the next answer


@dataclass
class _State:
    loop: str
    seed: int
    now: float = 0.0
    seq: int = 0  # dispatch order: the queue is first come, first served
    queue: list[tuple[int, str]] = field(default_factory=list)  # heap of (seq, key)
    tasks: dict[str, tuple[str, float | None]] = field(default_factory=dict)  # key -> (item, offered reward)
    queued: set[str] = field(default_factory=set)
    withdrawn: set[str] = field(default_factory=set)
    done: dict[str, Answer] = field(default_factory=dict)
    charged: set[str] = field(default_factory=set)
    charged_s: float = 0.0
    workers: list[_Worker] = field(default_factory=list)
    settled: dict[str, dict[str, float]] = field(default_factory=dict)  # settle_waits key -> what it reported
    charges: dict[str, float] = field(default_factory=dict)  # charge key -> seconds charged
    closed: bool = False  # the requester said no more work is coming (no_more_tasks) and sent nothing since
    begun: dict[str, float] = field(default_factory=dict)  # background computation key -> its start (simulated second)


def load_state(path: str | None, context: BackendContext) -> _State | None:
    """The state saved at ``path`` for this loop and seed; None without one (or when the loop
    starts over: the saved crowd would replay answers the ledger no longer has, so it is removed)."""
    if path is None or not Path(path).exists():
        return None
    if context.restart:
        Path(path).unlink()
        log.info("event crowd: the loop starts over; removed its saved state %s", path)
        return None
    try:
        with open(path, "rb") as f:
            version, st = pickle.load(f)
    except (OSError, pickle.UnpicklingError, EOFError, ValueError) as e:
        raise BackendError(f"event crowd: cannot read its state {path!r} ({e}); delete it to start a fresh crowd") from e
    if version != STATE_VERSION or st.loop != context.loop or st.seed != context.seed:
        raise BackendError(f"event crowd: the state in {path!r} belongs to loop {st.loop!r} seed {st.seed}, "
                           f"not {context.loop!r} seed {context.seed}; delete it (or give another state_path)")
    log.info("event crowd: resumed at simulated second %.0f from %s", st.now, path)
    return st


def save_state(path: str | None, state: _State) -> None:
    """Write ``state`` to ``path`` atomically (nothing without a path)."""
    if path is None:
        return
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=target.name, suffix=".tmp")
    with os.fdopen(fd, "wb") as f:
        pickle.dump((STATE_VERSION, state), f, protocol=pickle.HIGHEST_PROTOCOL)
    os.replace(tmp, target)
