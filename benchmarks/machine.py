"""What a benchmark ran on, recorded beside its figures: the CPU's model and the BLAS libraries
with the kernels they chose for it. A seed's curve is the same run after run on one machine, but
BLAS kernels for another CPU round a fit's sums differently, so the solver's iterations and then
the picks may differ there, and so may every second (docs/benchmarks/log.md, 2026-12-07)."""

from __future__ import annotations

import platform


def processor() -> dict[str, str]:
    """``{"cpu": model name, "blas": "openblas 0.3.29 (SkylakeX), ..."}`` for this process."""
    import numpy  # noqa: F401  (loads the BLAS libraries a fit uses, so threadpoolctl lists them)
    import scipy.linalg  # noqa: F401
    from threadpoolctl import threadpool_info

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), cpu)
    except OSError:  # not Linux: platform's answer
        pass
    blas = ", ".join(sorted(f"{i.get('internal_api')} {i.get('version')} ({i.get('architecture')})"
                            for i in threadpool_info() if i.get("user_api") == "blas"))
    return {"cpu": cpu, "blas": blas or "none found"}


def describe() -> str:
    """One line for a benchmark's header: ``CPU ..., BLAS ...``."""
    info = processor()
    return f"CPU {info['cpu']}, BLAS {info['blas']}"


def other_machine(machines: list[dict[str, object]]) -> str | None:
    """Why runs recorded on these machines (each a run's ``machine`` record) must not be joined, or
    ``None`` when they agree: the first CPU or BLAS that differs, both values named. A record
    without the key (runs older than 2026-12-07) is taken as agreeing."""
    for key in ("cpu", "blas"):
        seen = {_same_order(m[key]) for m in machines if key in m}
        if len(seen) > 1:
            return (f"the runs were made on machines with another {key.upper()} ({' against '.join(map(repr, sorted(seen)))}); "
                    "a seed's curve and its seconds may differ between them, so join only runs of one machine")
    return None


def _same_order(value: object) -> object:
    """A BLAS record's libraries in one order: threadpoolctl lists them in the order the process
    loaded them, which differs between two processes of one machine (found 2026-12-07)."""
    return ", ".join(sorted(value.split(", "))) if isinstance(value, str) else value
