"""Threads of the native math libraries (BLAS, OpenMP) while a round fits, scores and evaluates:
``loop.blas_threads``.

A round is mostly logistic-regression fits (``docs/benchmarks.md``, "Seconds per round"): many
mid-sized matrix products in a row, where extra BLAS threads buy little and, on a machine whose
cores are busy with other work, spinning threads cost a lot. The limit holds for the round only
and is lifted afterwards (threadpoolctl, a scikit-learn dependency).
"""

from __future__ import annotations

import contextlib
from typing import Any

AUTO_THREADS = 1  # what "auto" means: measured in docs/benchmarks.md, "Seconds per round and BLAS threads"


def resolve_blas_threads(setting: int | str | None) -> int | None:
    """``loop.blas_threads`` as a thread count: ``"auto"`` -> :data:`AUTO_THREADS`, None -> None
    (the libraries' own choice), a count -> itself."""
    if setting == "auto":
        return AUTO_THREADS
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
