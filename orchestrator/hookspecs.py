"""Every hook clicloop calls, typed and documented in one place.

A plugin is a module or object whose functions are marked with :data:`hookimpl` and named after
a hook below. Built-in strategies, backends, models and aggregators register through these same
hooks. Third-party distributions expose their plugin module in the ``clicloop`` entry-point group::

    [project.entry-points.clicloop]
    my_plugin = "my_package.clicloop_plugin"

Registration hooks receive ``register(name, factory, *, requires=(), extra=None)``;
``factory(**params)`` builds the object from the ``params`` of the config section that names it.
``requires`` names the modules the object imports when it is used and ``extra`` what to install
for them (``"crowd"`` means ``pip install 'clicloop[crowd]'``; a text with a space, such as
``"pip install my-lib"``, is shown as is), so
``clicloop plugins`` marks what cannot run yet and a config naming it fails before any work. A name registered twice (by any two
plugins) fails loudly. A misspelled hook name fails when plugins load (``check_pending``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Protocol

import pluggy

if TYPE_CHECKING:
    from clicloop.orchestrator.loop import Loop
    from clicloop.orchestrator.types import RoundResult
    from clicloop.orchestrator.types import Answer, PolicyDecision, Task

PROJECT = "clicloop"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


class Register(Protocol):
    """The callable a registration hook receives."""

    def __call__(self, name: str, factory: Callable[..., Any], *, requires: Sequence[str] = (),
                 extra: str | None = None) -> None: ...


# -- registration ------------------------------------------------------------------------------


@hookspec
def clicloop_register_strategies(register: Register) -> None:
    """Register query strategies: ``register("margin", MarginStrategy)``.

    The factory returns an object satisfying :class:`clicloop.orchestrator.types.Strategy`.
    """


@hookspec
def clicloop_register_backends(register: Register) -> None:
    """Register crowd backends: ``register("simulated", SimulatedCrowd)``.

    The factory returns an object satisfying :class:`clicloop.orchestrator.types.Backend`.
    """


@hookspec
def clicloop_register_models(register: Register) -> None:
    """Register model factories: ``register("logreg", make_logreg)``.

    The factory returns an object with ``fit``, ``predict_proba`` and ``classes_``.
    """


@hookspec
def clicloop_register_aggregators(register: Register) -> None:
    """Register answer aggregators: ``register("majority", MajorityVote)``.

    The factory returns an object satisfying :class:`clicloop.orchestrator.types.Aggregator`.
    """


@hookspec
def clicloop_register_triage_policies(register: Register) -> None:
    """Register post-deployment triage policies: ``register("low-confidence", LowConfidence)``.

    A policy decides, for each production prediction, whether people should review it, and why.
    """


# -- fair-work policies ------------------------------------------------------------------------


@hookspec
def clicloop_task_policy(loop: Loop, backend: str, confidential: bool, tasks: Sequence[Task]) -> Sequence[PolicyDecision] | None:
    """Look at the tasks a round is about to create and veto or reprice some of them.

    Return :class:`clicloop.orchestrator.types.PolicyDecision` objects: ``veto`` keeps a task from this
    backend (its item stays unlabeled and is not offered again in this run; the reason is
    logged), ``reprice`` changes the reward it offers (the ledger records the new price). Called
    before the tasks are recorded, so a resumed round sees the same decisions. The built-in
    policies (purpose statement, sensitive data) answer through this hook too.
    """


# -- lifecycle ---------------------------------------------------------------------------------


@hookspec
def clicloop_round_started(loop: Loop, round_no: int) -> None:
    """A round begins (before the model is fitted). Called again for a round being resumed."""


@hookspec
def clicloop_tasks_dispatched(loop: Loop, round_no: int, tasks: Sequence[Task]) -> None:
    """Tasks were handed to the backend and the dispatch is recorded in the ledger. In rounds
    mode the round's metric may not be recorded yet: the model the round evaluates is fitted
    while people work on these tasks (``orchestrator/later_fit.py``); it is in ``result`` at
    ``clicloop_round_finished``."""


@hookspec
def clicloop_annotation_received(loop: Loop, answer: Answer, status: str) -> None:
    """An answer was committed to the ledger for the first time.

    ``status`` is ``"submitted"`` for a usable label, ``"skipped"`` for effort without a label,
    or ``"quarantined"`` for an answer outside the label set, with broken times or pay, or with
    a ``problem`` its backend found (an implausible time: 0 s, unpaid).
    """


@hookspec
def clicloop_round_finished(loop: Loop, result: RoundResult) -> None:
    """A round is complete and committed: its metric, labels bought, effort and cost."""
