"""The ledger: append-only facts about loops, rounds, tasks, answers, effort and pay.

SQLite is the embedded default; any SQLAlchemy URL works (PostgreSQL for teams).
"""

from clicloop.orchestrator.ledger.store import Ledger

__all__ = ["Ledger"]
