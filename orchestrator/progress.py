"""Progress for long loops, fed by the lifecycle hooks like any other plugin: a live bar on a
terminal, plain log lines (one per round, flushed as it finishes) in a pipe or a log file, and
in both a line saying where a resumed loop picks up."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from clicloop.orchestrator.hookspecs import hookimpl


def _round_line(loop: Any, result: Any) -> str:
    metric = "-" if result.metric is None else f"{result.metric:.4f}"
    return f"{loop.name}: round {result.round_no}, {result.n_labeled} labels, {loop.config.loop.metric} {metric}"


def _resumed_line(loop: Any, round_no: int) -> str | None:
    """'resumed at round N' when the loop picks up from the ledger (its earlier rounds are loaded),
    with the answers the ledger holds (those of the unfinished round too: they counted only the
    finished rounds' before 2026-12-06)."""
    done = getattr(loop, "results_", [])
    if not done:
        return None
    answers = int(loop.ledger_.spent(loop.name)["answers"])  # an unfinished round's answers too
    rounds = f"{len(done)} round{'s' if len(done) != 1 else ''} finished"
    return f"{loop.name}: resumed at round {round_no} ({rounds}, {answers} answers already in the ledger)"


def _so_far(loop: Any) -> dict[str, Any] | None:
    """The loop's totals in the ledger, in continuous mode (None in rounds mode): there a version's
    own tasks are answered after it is put in use, so its round's answers, hours and cost are 0 when
    it finishes, and the line and the bar show what the loop has gathered so far instead."""
    return loop.ledger_.spent(loop.name) if loop.config.loop.mode == "continuous" else None


class _FirstRound:
    """Says, once, where a run starts: ``(line, done, resumed)`` on its first round, with ``done``
    the answers (or rounds) already in the ledger; ``None`` on later rounds."""

    by_answers: bool
    started_: bool = False

    def _first(self, loop: Any, round_no: int) -> tuple[str, int, bool] | None:
        if self.started_:
            return None
        self.started_ = True
        done = getattr(loop, "results_", [])
        resumed = _resumed_line(loop, round_no)
        line = resumed or f"{loop.name}: starting at round {round_no}"
        return line, sum(r.answers for r in done) if self.by_answers else len(done), resumed is not None


class ProgressPlugin(_FirstRound):
    """Advances a rich progress bar as rounds finish (by answers bought, or by rounds); on a
    resume, the bar starts from what the ledger already holds."""

    def __init__(self, progress: Any, task_id: Any, by_answers: bool):
        self.progress = progress
        self.task_id = task_id
        self.by_answers = by_answers

    @hookimpl
    def clicloop_round_started(self, loop: Any, round_no: int) -> None:
        first = self._first(loop, round_no)
        if first is not None and first[2]:  # resumed: the bar starts from the ledger
            self.progress.update(self.task_id, completed=first[1])
            self.progress.console.print(first[0])

    @hookimpl
    def clicloop_round_finished(self, loop: Any, result: Any) -> None:
        total = _so_far(loop) if self.by_answers else None
        if total is not None:
            self.progress.update(self.task_id, completed=int(total["answers"]), description=_round_line(loop, result))
            return
        self.progress.update(self.task_id, advance=result.answers if self.by_answers else 1,
                             description=_round_line(loop, result))


class LogLinesPlugin(_FirstRound):
    """One plain line per round, written and flushed as the round finishes: for pipes and logs,
    where a live bar would print nothing until the end."""

    def __init__(self, console: Any, total: int | None, by_answers: bool):
        self.console = console
        self.total = total
        self.by_answers = by_answers
        self.done_ = 0

    def _print(self, text: str) -> None:
        self.console.file.write(text + "\n")
        self.console.file.flush()

    @hookimpl
    def clicloop_round_started(self, loop: Any, round_no: int) -> None:
        first = self._first(loop, round_no)
        if first is not None:
            self._print(first[0])
            self.done_ = first[1]

    @hookimpl
    def clicloop_round_finished(self, loop: Any, result: Any) -> None:
        total = _so_far(loop)
        if not self.by_answers:
            self.done_ += result.stop_reason is None  # the closing round evaluates the last model, buys nothing
        elif total is not None:
            self.done_ = int(total["answers"])
        else:
            self.done_ += result.answers
        unit = "answers" if self.by_answers else "rounds"
        of = f"/{self.total}" if self.total is not None else ""
        currency = loop.ledger_.currency(loop.name) or loop.config.wage_floor.for_backend(loop.config.backend.name).currency
        if total is None:
            cost = f", {result.total_hours:.2f} h, cost {result.cost:.2f} {currency}"
        else:
            cost = f", {total['total_hours']:.2f} h, cost {total['cost'] - total['adjustments']:.2f} {currency} so far"
        self._print(f"{_round_line(loop, result)}{cost} ({self.done_}{of} {unit})")


@contextmanager
def progress_plugin(pm: Any, config: Any, console: Any, *, transient: bool = False) -> Iterator[Any]:
    """Register progress reporting on ``pm`` for the loop ``config`` describes, for a ``with``
    block: a live bar when ``console`` is a terminal, plain per-round log lines otherwise."""
    by_answers = config.stop.max_labels is not None
    total = config.stop.max_labels if by_answers else config.stop.max_rounds
    name = f"progress-{config.loop.name}"
    if not console.is_terminal:
        with _registered(pm, LogLinesPlugin(console, total, by_answers), name):
            yield None
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=console, transient=transient) as progress:
        task_id = progress.add_task(f"{config.loop.name}: starting", total=total)
        with _registered(pm, ProgressPlugin(progress, task_id, by_answers), name):
            yield progress


@contextmanager
def _registered(pm: Any, plugin: Any, name: str) -> Iterator[None]:
    """``plugin`` registered on ``pm`` for a ``with`` block."""
    pm.register(plugin, name=name)
    try:
        yield
    finally:
        pm.unregister(plugin)


@contextmanager
def chunk_progress(total: int, description: str, every: float = 0.1) -> Iterator[Any]:
    """Progress of one long step done in chunks (a neighbour graph of the pool): yields
    ``advance(n)``. A transient bar on a terminal; otherwise a log line at each ``every`` of the
    way (for pipes and log files)."""
    import logging
    import sys

    if sys.stderr.isatty():
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        with Progress(TextColumn(description), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                      transient=True) as bar:
            task = bar.add_task(description, total=total)
            yield lambda n: bar.update(task, advance=n)
        return
    logger = logging.getLogger("clicloop.orchestrator.progress")
    state = {"done": 0, "said": 0.0}

    def advance(n: int) -> None:
        state["done"] += n
        share = state["done"] / max(total, 1)
        if share >= state["said"] + every or state["done"] >= total:
            state["said"] = share
            logger.info("%s: %.0f%% (%d of %d)", description, 100 * share, state["done"], total)

    yield advance


def notice(message: str, *args: Any) -> None:
    """A line the person running the loop needs in order to go on, such as where a backend put
    the work and where it waits for answers: logged where progress is, so ``clicloop run`` shows
    it without ``-v``, on a terminal or in a log file."""
    import logging

    logging.getLogger("clicloop.orchestrator.progress").info(message, *args)
