"""clicloop: an active-learning labeling orchestrator that accounts for every human second.

The public entry. ``import clicloop`` stays fast: the names below load on first use.

    from clicloop import Loop, load_config
    for result in Loop(load_config("clicloop.yaml")).run():
        print(result.round_no, result.metric)

The package's rooms: ``clicloop.orchestrator`` (the loop, config, data, ledger, reporting, CLI),
``clicloop.strategies``, ``clicloop.backends``, ``clicloop.connectors``. This file lives in the
repository's ``orchestrator/_public/`` (setuptools' package-dir maps it to ``clicloop``), so the
repository keeps its four top-level folders.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

__version__ = "0.1.0"

_LAZY = {
    "Loop": "clicloop.orchestrator.loop",
    "RoundResult": "clicloop.orchestrator.types",
    "Config": "clicloop.orchestrator.config",
    "load_config": "clicloop.orchestrator.config",
    "config_from_dict": "clicloop.orchestrator.config",
    "Ledger": "clicloop.orchestrator.ledger",
    "hookimpl": "clicloop.orchestrator.hookspecs",
}
__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'clicloop' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_LAZY])
