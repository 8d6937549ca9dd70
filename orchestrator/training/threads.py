"""Threads of the native math libraries (BLAS, OpenMP) while a round fits, scores and evaluates:
``loop.blas_threads``.

A round is mostly logistic-regression fits: many mid-sized matrix products in a row, where the
libraries' default (a thread per core) costs more than it buys. Measured with the real loop
(``docs/benchmarks.md``, "Seconds per round and BLAS threads"): on a 2-core machine one thread
was fastest; on a 16-core machine four were, and sixteen took 2.5x as long as one. The limit
holds for the round only and is lifted afterwards (threadpoolctl, a scikit-learn dependency).
"""

from __future__ import annotations

import contextlib
import os
from typing import Any

MAX_AUTO_THREADS = 4  # measured: docs/benchmarks.md, "Seconds per round and BLAS threads"


def auto_threads(cores: int | None = None) -> int:
    """What ``"auto"`` means: a quarter of the cores this process may use, at least 1 and at most
    :data:`MAX_AUTO_THREADS` (1 on a 2-core machine, 4 on a 16-core one: the fastest of the
    settings measured on each)."""
    if cores is None:
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, min(MAX_AUTO_THREADS, cores // 4))


def resolve_blas_threads(setting: int | str | None) -> int | None:
    """``loop.blas_threads`` as a thread count: ``"auto"`` -> :func:`auto_threads`, None -> None
    (the libraries' own choice), a count -> itself."""
    if setting == "auto":
        return auto_threads()
    if setting is None or isinstance(setting, int):
        return setting
    raise ValueError(f"loop.blas_threads must be a count, 'auto' or null, got {setting!r}")


def blas_limits(setting: int | str | None) -> Any:
    """A context manager that holds the BLAS and OpenMP thread pools to ``setting``'s count (see
    :func:`resolve_blas_threads`); a no-op for None. The libraries are looked up on each call
    (a few milliseconds), so one loaded since the last round is held too."""
    threads = resolve_blas_threads(setting)
    if threads is None:
        return contextlib.nullcontext()
    from threadpoolctl import threadpool_limits

    return threadpool_limits(limits=threads)
