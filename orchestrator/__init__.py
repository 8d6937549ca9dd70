"""clicloop: an active-learning labeling orchestrator that accounts for every human second.

``import orchestrator`` stays fast: the names below load on first use.

    from orchestrator import Loop, load_config
    Loop(load_config("clicloop.yaml")).run()
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

__version__ = "0.1.0"

_LAZY = {
    "Loop": "orchestrator.loop",
    "RoundResult": "orchestrator.loop",
    "Config": "orchestrator.config",
    "load_config": "orchestrator.config",
    "config_from_dict": "orchestrator.config",
    "Ledger": "orchestrator.ledger",
    "hookimpl": "orchestrator.hookspecs",
}
__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'orchestrator' has no attribute {name!r}")
