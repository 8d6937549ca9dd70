"""How the command line writes for people and for pipes."""

from __future__ import annotations

from typing import Any


def table_console(**kwargs: Any) -> Any:
    """A rich console for tables: the terminal's width on a terminal; off one (a pipe, a log
    file), wide enough that no number is cut to '0.…'."""
    from rich.console import Console

    console = Console(**kwargs)
    return console if console.is_terminal else Console(width=10_000, **kwargs)
