"""How the command line writes for people and for pipes."""

from __future__ import annotations

from typing import Any


def table_console(**kwargs: Any) -> Any:
    """A rich console for tables: the terminal's width on a terminal; off one (a pipe, a log
    file), wide enough that no number is cut to '0.…'."""
    from rich.console import Console

    console = Console(**kwargs)
    return console if console.is_terminal else Console(width=10_000, **kwargs)


def pay_command(floor: Any, *, config: Any = None, ledger: str | None = None, loop: str | None = None) -> str:
    """The ``clicloop ledger adjust`` command that pays what a summary says is owed, runnable as
    printed: the config when the user gave one (it holds the ledger and the floor), else the
    ledger URL with the floor the summary used (``ledger adjust`` never guesses a floor).
    ``ledger`` beside a config is a ledger other than the config's; ``loop``, a loop the command
    would not pick by itself."""
    import shlex

    parts = ["clicloop ledger adjust"]
    if config is not None:
        parts.append(shlex.quote(str(config)))
    if ledger is not None:
        parts.append(f"--ledger {shlex.quote(str(ledger))}")
    if loop is not None:
        parts.append(f"--loop {shlex.quote(loop)}")
    if config is None:
        parts.append(f"--floor {format(floor.amount.normalize(), 'f')} --currency {floor.currency}")
    return " ".join([*parts, "--apply"])


def one_line_summaries(app: Any) -> None:
    """Give every command of ``app`` (and of its sub-apps) a ``short_help``, the first paragraph of
    its docstring on one line: in the command list, typer's rich mode keeps a docstring's single
    line breaks, which broke each summary mid-sentence at any terminal width."""
    import inspect

    for command in app.registered_commands:
        doc = inspect.getdoc(command.callback) or ""
        if command.short_help is None and doc:
            command.short_help = " ".join(doc.split("\n\n")[0].split())
    for group in app.registered_groups:
        one_line_summaries(group.typer_instance)


def check_listen(host: str, port: int) -> None:
    """Refuse a port number out of range, a host that does not resolve, or a port another process
    listens on, before a server says it is there (uvicorn would print its error, or a traceback,
    after our 'on http://...' line)."""
    import socket

    from clicloop.orchestrator.errors import ConfigError

    if not 0 < port < 65536:
        raise ConfigError(f"--port {port} is not a port number (1-65535)", field="port")
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn: a port in TIME_WAIT is free
        try:
            probe.bind((host, port))
        except socket.gaierror as e:
            raise ConfigError(f"cannot listen on {host}:{port}: the host does not resolve ({e.strerror}); give an "
                              "address of this machine with --host (127.0.0.1: this machine only)") from e
        except OSError as e:
            raise ConfigError(f"cannot listen on {host}:{port}: {e.strerror} (another server running? pick another "
                              "--port)") from e
