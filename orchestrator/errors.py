"""The error hierarchy. Every error clicloop raises on purpose is a :class:`ClicloopError`.

Messages say what is wrong and what to do; the CLI prints them without a traceback.
"""

from __future__ import annotations


class ClicloopError(Exception):
    """Base class of every error raised on purpose by clicloop."""


class ConfigError(ClicloopError):
    """A configuration file or value is invalid.

    ``source`` names the file (or "<python>"), ``field`` the dotted path of the bad value.
    """

    def __init__(self, message: str, *, source: str | None = None, field: str | None = None):
        self.source = source
        self.field = field
        self.detail = message
        where = ", ".join(p for p in (source, f"field '{field}'" if field else None) if p)
        super().__init__(f"{where}: {message}" if where else message)


class PluginError(ClicloopError):
    """A plugin could not be loaded or registered."""


class DuplicatePluginError(PluginError):
    """Two plugins registered the same name for the same kind."""


class AggregatorError(PluginError):
    """An aggregator returned a label the ledger cannot keep (an item nobody answered in this
    aggregation, a label outside the set, a confidence outside [0, 1]); nothing was recorded."""


class UnknownPluginError(PluginError, ConfigError):
    """A config names a strategy, backend, model or aggregator that no plugin registered."""

    def __init__(self, kind: str, name: str, known: list[str], *, field: str | None = None):
        self.kind = kind
        self.name = name
        self.known = known
        ConfigError.__init__(
            self,
            f"unknown {kind} {name!r}; known: {', '.join(sorted(known)) or '(none)'}. "
            "Check the spelling, or install the plugin that provides it (see `clicloop plugins`).",
            field=field,
        )


class DataError(ClicloopError):
    """A pool, seed-label or evaluation file is unusable (names the file, column and rows)."""


class ModelError(ClicloopError):
    """A model's output cannot be used: class probabilities that are not finite, or not one per
    class and row."""


class StrategyError(ClicloopError):
    """A strategy cannot run with this model or data, or produced unusable scores."""


class BackendError(ClicloopError):
    """A crowd backend failed to dispatch or collect."""


class BackendParamError(BackendError, ConfigError):
    """A backend parameter that cannot run (``field``: ``backend.params.<name>``): a backend's
    error when it opens, a config error when the loop checks the config."""

    def __init__(self, message: str, *, field: str):
        ConfigError.__init__(self, message, field=field)


class LedgerError(ClicloopError):
    """The ledger database is unusable, foreign, or inconsistent with the run being resumed."""


class RunnerBusyError(LedgerError):
    """Another live runner holds the loop's lease (the message names it: host, pid, since when)."""


class LeaseLostError(LedgerError):
    """This runner lost its loop's lease (another took it over after it expired): it stops."""


class BudgetError(ConfigError):
    """A budget cannot pay for even one batch."""
