"""A progress bar for long loops, fed by the lifecycle hooks like any other plugin."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from clicloop.orchestrator.hookspecs import hookimpl


class ProgressPlugin:
    """Advances a rich progress bar as rounds finish (by answers bought, or by rounds)."""

    def __init__(self, progress: Any, task_id: Any, by_answers: bool):
        self.progress = progress
        self.task_id = task_id
        self.by_answers = by_answers

    @hookimpl
    def clicloop_round_finished(self, loop: Any, result: Any) -> None:
        metric = "-" if result.metric is None else f"{result.metric:.4f}"
        self.progress.update(
            self.task_id,
            advance=result.answers if self.by_answers else 1,
            description=f"{loop.name}: round {result.round_no}, {result.n_labeled} labels, {loop.config.loop.metric} {metric}",
        )


@contextmanager
def progress_plugin(pm: Any, config: Any, console: Any, *, transient: bool = False) -> Iterator[Any]:
    """Register a progress bar on ``pm`` for the loop ``config`` describes, for a ``with`` block."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    by_answers = config.stop.max_labels is not None
    total = config.stop.max_labels if by_answers else config.stop.max_rounds
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=console, transient=transient) as progress:
        task_id = progress.add_task(f"{config.loop.name}: starting", total=total)
        plugin = ProgressPlugin(progress, task_id, by_answers)
        pm.register(plugin, name=f"progress-{config.loop.name}")
        try:
            yield progress
        finally:
            pm.unregister(plugin)
