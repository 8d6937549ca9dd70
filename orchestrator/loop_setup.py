"""Checks the loop makes before its first round, so a config that cannot work fails when it is
loaded, saying what to change, and never halfway through a run."""

from __future__ import annotations

from typing import Any

from clicloop.orchestrator.config import Config
from clicloop.orchestrator.errors import BudgetError, ConfigError


def check_strategy(cfg: Config, strategy: Any, model: Any, X: Any) -> None:
    """The strategy gets what it needs from the model and the pool (and from relabeling)."""
    from clicloop.strategies.requirements import unmet
    from clicloop.strategies.scores import RandomSampling

    if cfg.loop.relabel is not None and not (hasattr(strategy, "measure") or isinstance(strategy, RandomSampling)):
        raise ConfigError(f"loop.relabel weighs doubtful items with the strategy's uncertainty measure; strategy "
                          f"{cfg.strategy.name!r} has none: set strategy: {{name: margin}} (or least-confidence, entropy, "
                          "random)", field="loop.relabel")
    missing = unmet(strategy, model, X)
    if missing:
        raise ConfigError(f"strategy {cfg.strategy.name!r} needs {'; '.join(missing)}", field="strategy.name")


def check_money_budget(cfg: Config, per_task: float) -> None:
    """``stop.max_cost`` pays for at least one batch."""
    stop, loop = cfg.stop, cfg.loop
    if stop.max_cost is not None and per_task:
        batch = per_task * loop.batch_size * loop.redundancy
        if stop.max_cost < batch:
            raise BudgetError(
                f"stop.max_cost={stop.max_cost:g} cannot pay for one batch ({loop.batch_size} items x "
                f"{loop.redundancy} answers x {per_task:g} per task = {batch:g}); raise it or lower loop.batch_size",
                field="stop.max_cost",
            )


def make_engine(cfg: Config, strategy: Any) -> Any:
    """The ray engine when the config asks for it (None: score locally, chunk by chunk)."""
    engine = cfg.loop.engine
    if engine.name == "local":
        return None
    if callable(getattr(strategy, "select", None)):
        raise ConfigError(f"loop.engine 'ray' scores the pool for score strategies; {cfg.strategy.name!r} selects whole "
                          "batches: set a score strategy (strategy: {name: margin}) or use engine 'local'",
                          field="loop.engine.name")
    from clicloop.strategies.ray_engine import RayEngine

    return RayEngine(address=engine.address, num_workers=engine.num_workers, range_rows=engine.range_rows)
