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
    blas = ", ".join(f"{i.get('internal_api')} {i.get('version')} ({i.get('architecture')})"
                     for i in threadpool_info() if i.get("user_api") == "blas")
    return {"cpu": cpu, "blas": blas or "none found"}


def describe() -> str:
    """One line for a benchmark's header: ``CPU ..., BLAS ...``."""
    info = processor()
    return f"CPU {info['cpu']}, BLAS {info['blas']}"
