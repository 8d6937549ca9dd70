"""``clicloop quickstart``: margin sampling against a random baseline on the same budget, on
scikit-learn's digits with the simulated crowd, ending with a summary a person reads in seconds."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from clicloop.orchestrator.config import Config, config_from_dict
from clicloop.orchestrator.loop import Loop
from clicloop.orchestrator.types import RoundResult

PURPOSE = "Teach a model to read handwritten digits on scanned forms."


@dataclass(frozen=True)
class Outcome:
    strategy: str
    results: list[RoundResult]
    reached_at: RoundResult | None  # first round whose model met the target
    answers_to_target: int | None
    hours_to_target: float | None
    cost_to_target: Decimal | None


FAIR_REWARD = 0.12  # EUR a task: the floor on total time for this crowd (the `clicloop init` template's reward)


def quickstart_config(strategy: str, *, ledger: str, seed: int, budget: int, underpaid: bool = False) -> Config:
    """The quickstart's loop. By default it pays the wage floor: a first reward of
    :data:`FAIR_REWARD`, then each round priced from the measured task times
    (``wage_floor.price_rewards``); ``underpaid`` keeps the simulated crowd's own default
    (0.02 EUR a task, far below the floor) to show what the ledger flags and ``ledger adjust`` owes."""
    return config_from_dict(
        {
            "loop": {"name": f"quickstart-{strategy}", "seed": seed, "purpose": PURPOSE, "batch_size": 10},
            "data": {"builtin": "digits", "seed_size": 20},
            "strategy": {"name": strategy},
            "backend": {"name": "simulated", "params": {} if underpaid else {"reward": FAIR_REWARD}},
            "stop": {"max_labels": budget},
            "wage_floor": {"price_rewards": not underpaid},
            "ledger": ledger,
        }
    )


def full_data_metric(config: Config) -> float:
    """Accuracy of the same model trained on the whole pool's ground truth."""
    from clicloop.orchestrator.data import load_data
    from clicloop.orchestrator.training.models import scaled_logreg  # the default numeric model the loops use

    pool, evalset, _ = load_data(config.data, config.loop.seed)
    model = scaled_logreg().fit(pool.X, pool.truth.astype(str))
    return float((model.predict(evalset.X) == evalset.y).mean())


def outcome(strategy: str, results: list[RoundResult], target: float) -> Outcome:
    """What reaching ``target`` took, by the one definition every view uses
    (clicloop.orchestrator.reporting.reach: answers bought before the first round that measured it)."""
    from clicloop.orchestrator.reporting.reach import reach

    got = reach(results, target)
    reached = next((r for r in results if r.round_no == got.round_no), None)
    return Outcome(strategy, results, reached, got.labels, got.hours, got.cost)


def run_quickstart(*, ledger: str, seed: int, budget: int, console: Any = None, underpaid: bool = False,
                   progress_console: Any = None) -> list[Outcome]:
    """Both loops, then their comparison on ``console`` (stdout); each round's progress goes to
    ``progress_console`` (stderr, as ``clicloop run``'s, so ``quickstart > out.txt`` holds the result)."""
    from rich.console import Console

    from clicloop.orchestrator.cli.output import table_console
    from clicloop.orchestrator.plugins import get_plugin_manager
    from clicloop.orchestrator.progress import progress_plugin

    console = console or table_console()
    progress_console = progress_console or Console(stderr=True)
    configs = [quickstart_config(s, ledger=ledger, seed=seed, budget=budget, underpaid=underpaid) for s in ("margin", "random")]
    full = full_data_metric(configs[0])
    target = 0.95 * full
    console.print(
        f"[bold]clicloop quickstart[/]: digits (scikit-learn), simulated crowd, {budget} answers per loop; "
        f"target = 95% of full-data accuracy {full:.3f} = {target:.3f}"
    )
    console.print(_pay_line(configs[0], underpaid))
    outcomes = []
    for cfg in configs:
        pm = get_plugin_manager()
        with progress_plugin(pm, cfg, progress_console):
            results = Loop(cfg, plugin_manager=pm).run(restart=True)
        outcomes.append(outcome(cfg.strategy.name, results, target))
    console.print(summary(outcomes, target, configs[0], ledger))
    return outcomes


def summary(outcomes: list[Outcome], target: float, config: Config, ledger: str) -> Any:
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    from clicloop.orchestrator.cli.output import pay_command
    from clicloop.orchestrator.credentials import redact_url
    from clicloop.orchestrator.ledger.money import fmt
    from clicloop.orchestrator.ledger.readonly import ReadOnlyLedger
    from clicloop.orchestrator.reporting.report import build_report

    floor = config.wage_floor
    table = Table(title=f"to reach accuracy {target:.3f}", title_justify="left")
    for heading in ("strategy", "labels", "human hours", f"cost {floor.currency}", "final accuracy", "wage paid/h", "wage all/h"):
        table.add_column(heading, justify="right")
    totals = {}
    with ReadOnlyLedger(ledger) as led:
        for o in outcomes:
            totals[o.strategy] = build_report(led, f"quickstart-{o.strategy}", floor)[1]
    for o in outcomes:
        t = totals[o.strategy]
        table.add_row(
            o.strategy,
            "not reached" if o.answers_to_target is None else str(o.answers_to_target),
            "-" if o.hours_to_target is None else f"{o.hours_to_target:.2f}",
            "-" if o.cost_to_target is None else f"{o.cost_to_target:.2f}",
            f"{t.final_metric:.3f}" if t.final_metric is not None else "-",
            f"{t.wage_paid_time:.2f}" if t.wage_paid_time else "-",
            f"{t.wage_total_time:.2f}" if t.wage_total_time else "-",
        )
    lines = [_verdict(outcomes)]
    margin = totals["margin"]
    if margin.wage_total_time is not None:
        lines.append(_wage_line(margin.wage_paid_time, margin.wage_total_time, floor.amount, floor.currency))
    shown = redact_url(ledger)  # a password stays in the command line the user typed, never on screen
    owing = [f"{fmt(t.owed, floor.currency)} to {t.workers_below_floor} worker(s) of {name}" for name, t in totals.items() if t.owed]
    if owing:
        lines.append("still owed below the floor on total time: " + ", ".join(owing)
                     + f" (`{pay_command(floor, ledger=shown)}` pays it)")
    lines.append(f"ledger: {shown}  ·  details: clicloop report --ledger {shown}")
    return Group(table, *(Text(line) for line in lines))


def _pay_line(config: Config, underpaid: bool) -> str:
    """How the quickstart pays its simulated workers, and how to see the other case."""
    floor = config.wage_floor
    if underpaid:
        reward = config.backend.params.get("reward", 0.02)  # the simulated crowd's own default
        return (f"pay: {reward} {floor.currency} a task (--underpaid: the simulated crowd's default), far below the "
                f"{floor.amount:.2f} {floor.currency}/h floor on purpose, to show what the ledger flags and owes")
    return (f"pay: {FAIR_REWARD} {floor.currency} a task at first, then each round priced from the measured task times "
            f"(unpaid time included) to pay the {floor.amount:.2f} {floor.currency}/h floor on average over the budget "
            "(a short budget weighs each worker's one-off qualification test more); "
            "--underpaid shows the underpaid case (0.02 a task)")


def _verdict(outcomes: list[Outcome]) -> str:
    m, r = outcomes[0], outcomes[1]
    if m.answers_to_target is None:
        return "margin did not reach the target within the budget; raise --budget"
    if r.answers_to_target is None:
        return f"margin reached the target with {m.answers_to_target} labels; random did not reach it within the budget"
    ratio = m.answers_to_target / r.answers_to_target if r.answers_to_target else float("nan")
    return (
        f"margin reached the target with {m.answers_to_target} labels, random with {r.answers_to_target} "
        f"({ratio:.2f}x the labels, {m.hours_to_target:.2f} h against {r.hours_to_target:.2f} h of human time)"
    )


def _wage_line(paid: Decimal | None, total: Decimal, floor: Decimal, currency: str) -> str:
    verdict = "above" if total >= floor else "BELOW"
    return (
        f"effective wage: {paid or 0:.2f} {currency}/h on paid time, {total:.2f} {currency}/h counting unpaid time "
        f"(searching, waiting, qualification) — {verdict} the {floor:.2f} {currency}/h floor"
    )
