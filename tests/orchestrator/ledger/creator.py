"""Opens (creates) a ledger with a fault injected at one SQL statement, for the creation tests.

``python -m tests.orchestrator.ledger.creator URL kill N``: SIGKILL this process right after the
N-th statement clicloop sends while opening the ledger (prints ``done`` when there were fewer).
``python -m tests.orchestrator.ledger.creator URL pause TEXT``: after the first statement that
contains TEXT, print ``paused`` and wait for a line on stdin, then finish opening.
The boundary is SQLAlchemy's ``after_cursor_execute`` event: no timing is involved.
"""

import os
import signal
import sys

from sqlalchemy import Engine, event

from clicloop.orchestrator.ledger import Ledger


def main(url: str, mode: str, arg: str) -> None:
    seen = 0
    paused = False

    @event.listens_for(Engine, "after_cursor_execute")
    def _inject(conn, cursor, statement, parameters, context, executemany):  # noqa: ANN001 - SQLAlchemy's signature
        nonlocal seen, paused
        seen += 1
        if mode == "kill" and seen == int(arg):
            os.kill(os.getpid(), signal.SIGKILL)
        if mode == "pause" and not paused and arg in statement:
            paused = True
            print("paused", flush=True)
            sys.stdin.readline()

    print("opening", flush=True)
    Ledger(url).open().close()
    print("done", seen, flush=True)


if __name__ == "__main__":
    main(*sys.argv[1:4])
