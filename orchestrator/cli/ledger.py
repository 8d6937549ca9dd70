"""``clicloop ledger ...`` and ``clicloop labor-card``: verify, export, wage-floor adjustments."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from clicloop.orchestrator.cli.output import table_console
from clicloop.orchestrator.crowd.plausibility import DEFAULT_MAX_ACTIVE_S
from clicloop.orchestrator.errors import ClicloopError
from clicloop.orchestrator.ledger.money import json_default

ledger_app = typer.Typer(help="Check, export and settle the human-labor ledger.", no_args_is_help=True)
LedgerOpt = Annotated[Optional[str], typer.Option("--ledger", help="ledger URL (default: the config's)")]
ConfigOpt = Annotated[Optional[Path], typer.Argument(help="a loop config (for its ledger, loop and wage floor)")]


def _resolve(config: Path | None, ledger: str | None) -> tuple[str, object | None]:
    cfg = None
    if config is not None:
        from clicloop.orchestrator.config import load_config

        cfg = load_config(config)
        ledger = ledger or cfg.ledger
    if ledger is None:
        raise ClicloopError("give a config file or --ledger URL")
    return ledger, cfg


@ledger_app.command()
def verify(
    config: ConfigOpt = None,
    ledger: LedgerOpt = None,
    max_active_s: Annotated[float, typer.Option(help="flag answers recorded (not quarantined) with more active seconds "
                                                     "than this plausibility limit (0: do not check)", min=0)] = DEFAULT_MAX_ACTIVE_S,
) -> None:
    """Check the invariants: every payment has its answer, nothing is paid twice, totals add up,
    no answer holds an implausible time unless quarantined (the ledger is opened read-only)."""
    from clicloop.orchestrator.ledger.readonly import ReadOnlyLedger
    from clicloop.orchestrator.ledger.verify import check_names
    from clicloop.orchestrator.ledger.verify import verify as run_checks

    url, _ = _resolve(config, ledger)
    limit = max_active_s if max_active_s > 0 else None
    with ReadOnlyLedger(url) as led:
        violations = run_checks(led, limit)
    for v in violations:
        typer.echo(f"FAIL {v.check}: {v.count} row(s), e.g. {', '.join(v.examples)}")
    if violations:
        raise typer.Exit(1)
    typer.echo(f"ok: {len(check_names(limit))} invariants hold")


@ledger_app.command()
def export(
    out: Annotated[Path, typer.Argument(help="directory to write into")],
    config: Annotated[Optional[Path], typer.Option("--config", help="a loop config (for its ledger)")] = None,
    ledger: LedgerOpt = None,
    fmt: Annotated[str, typer.Option("--format", help="csv or parquet")] = "csv",
    include_external_ids: Annotated[bool, typer.Option("--include-external-ids", help="keep the platforms' submission ids "
                                                       "(they link answers back to the people who gave them)")] = False,
) -> None:
    """Write every table to CSV or Parquet files (read-only): worker pseudonyms, never raw ids,
    nor the platforms' submission ids unless asked, nor any secret of a stored config."""
    from clicloop.orchestrator.ledger.export import export as run_export
    from clicloop.orchestrator.ledger.readonly import ReadOnlyLedger

    url, _ = _resolve(config, ledger)
    if out.exists() and not out.is_dir():
        raise ClicloopError(f"{out} is a file; give a folder to write the tables into (it is created if missing)")
    with ReadOnlyLedger(url) as led:
        counts = run_export(led, out, fmt, include_external_ids=include_external_ids)
    for table, n in counts.items():
        typer.echo(f"{out / f'{table}.{fmt}'}: {n} rows")


@ledger_app.command()
def adjust(
    config: Annotated[Optional[Path], typer.Argument(help="a loop config (its ledger, wage floor and loop name)")] = None,
    ledger: LedgerOpt = None,
    loop: Annotated[Optional[list[str]], typer.Option("--loop", help="a loop of the ledger, repeatable (default: the config's loop; with --ledger alone, every loop, review loops included)")] = None,
    floor: Annotated[Optional[float], typer.Option("--floor", help="hourly wage floor on total time (default: the config's wage_floor)")] = None,
    currency: Annotated[Optional[str], typer.Option("--currency", help="currency of --floor (default: the config's, else EUR)")] = None,
    apply: Annotated[bool, typer.Option("--apply", help="record the payments (otherwise only list them)")] = False,
) -> None:
    """Adjustment payments that lift every worker below the wage floor (on total time) to it,
    for any loop of a ledger: a labeling loop, or a deployment's review loop (named <name>:review)."""
    from clicloop.orchestrator.config import WageFloor
    from clicloop.orchestrator.fairwork.wages import apply_adjustments, proposed_adjustments
    from clicloop.orchestrator.ledger import Ledger

    url, cfg = _resolve(config, ledger)
    if cfg is None and floor is None:
        raise ClicloopError("give the wage floor: --floor AMOUNT [--currency EUR], or a config with wage_floor")
    from clicloop.orchestrator.ledger.readonly import require_ledger

    require_ledger(url)  # nothing to adjust in a ledger that does not exist: never create one
    wage_floor = cfg.wage_floor if cfg is not None else WageFloor()  # type: ignore[union-attr]
    if floor is not None or currency is not None:
        given = {k: v for k, v in (("amount", floor), ("currency", currency)) if v is not None}
        wage_floor = WageFloor.model_validate({**wage_floor.model_dump(), **given})  # validated: --floor exact, by its repr
    with Ledger(url) as led:
        known = led.loops()
        names = loop or ([cfg.loop.name] if cfg is not None else known)  # type: ignore[union-attr]
        unknown = [n for n in names if n not in known]
        if unknown:
            raise ClicloopError(f"no loop {unknown[0]!r} in the ledger; loops there: {', '.join(known) or '(none)'} (pick one with "
                                "--loop NAME; a Label Studio ML backend's loops are <loop>.p<project id>)")
        for name in names:
            _adjust_loop(led, name, wage_floor, apply, proposed_adjustments, apply_adjustments)


def _adjust_loop(led: Any, name: str, floor: Any, apply: bool, propose: Any, record: Any) -> None:
    from clicloop.orchestrator.fairwork.currency import not_compared, pay_currencies
    from clicloop.orchestrator.fairwork.wages import pay_unknown

    if pay_unknown(led, name):
        typer.echo(f"{name}: pay unknown (no payment recorded), so no wage and no adjustment is computed")
        return
    notes = not_compared(floor, pay_currencies(led.engine_, name))
    if notes:  # before, it said "every worker earns at least the floor": a floor in euros skipped pay in dollars
        for note in notes:
            typer.echo(f"{note}; no adjustment is computed for {name}")
        return
    proposals = propose(led, name, floor)
    for adj in proposals:
        typer.echo(f"{name} {adj.backend}/{adj.worker}: {adj.wage_total_time:.2f} {adj.currency}/h < "
                   f"{adj.floor:.2f} {adj.currency}/h -> pay {adj.amount:.2f} {adj.currency}")
    if not proposals:
        typer.echo(f"{name}: every worker earns at least the floor on total time")
    elif apply:
        # attributed to the last round that bought answers: the labor card of the model it trained counts them
        last = max(led.effort_by_round(name), default=0)
        typer.echo(f"{name}: recorded {record(led, proposals, last)} adjustment payment(s)")
    else:
        typer.echo(f"{name}: total {sum(a.amount for a in proposals):.2f} {proposals[0].currency}; pass --apply to record them")


def labor_card_command(
    model_version: Annotated[Optional[str], typer.Option("--model-version", help="e.g. quickstart-margin-r12 (default: the latest finished round's, of the config's loop when a config is given)")] = None,
    config: ConfigOpt = None,
    ledger: LedgerOpt = None,
    out: Annotated[Optional[Path], typer.Option(help="write <out>.md and <out>.json (default: print Markdown)")] = None,
) -> None:
    """The human labor behind one model version, as Markdown and JSON, to ship beside its model card."""
    from clicloop.orchestrator.ledger.readonly import ReadOnlyLedger
    from clicloop.orchestrator.reporting.laborcard import labor_card, latest_model_version, render_markdown

    url, cfg = _resolve(config, ledger)
    with ReadOnlyLedger(url) as led:
        if model_version is None:
            model_version = latest_model_version(led, cfg.loop.name if cfg else None)  # type: ignore[union-attr]
            typer.echo(f"labor card of {model_version} (the latest finished round; --model-version picks another)", err=True)
        card = labor_card(led, model_version, cfg.wage_floor if cfg else None,  # type: ignore[union-attr]
                          loop=cfg.loop.name if cfg else None)  # type: ignore[union-attr]
    if out is None:
        typer.echo(render_markdown(card))
        return
    out.with_suffix(".md").write_text(render_markdown(card), encoding="utf-8")
    out.with_suffix(".json").write_text(json.dumps(card, indent=2, default=json_default), encoding="utf-8")
    typer.echo(f"wrote {out.with_suffix('.md')} and {out.with_suffix('.json')}")


@ledger_app.command()
def quality(
    config: Annotated[Path, typer.Argument(help="the loop's config (its gold settings and known answers)")],
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
) -> None:
    """Each worker's accuracy on gold questions, and the gold items their workers disputed."""
    from clicloop.orchestrator.config import Gold, load_config
    from clicloop.orchestrator.data import load_data
    from clicloop.orchestrator.ledger import Ledger
    from clicloop.orchestrator.crowd.quality import gold_status, worker_accuracy

    cfg = load_config(config)
    gold = cfg.loop.gold or Gold()
    from clicloop.orchestrator.ledger.readonly import require_ledger

    require_ledger(cfg.ledger)
    with Ledger(cfg.ledger, salt=cfg.worker_salt) as led:
        answers = led.gold_answers(cfg.loop.name)
        seed_labels = load_data(cfg.data, cfg.loop.seed)[0].seed_labels if answers else {}  # the pool only when needed
        accuracy = worker_accuracy(led, cfg.loop.name, seed_labels, gold)
        disputed = sorted(i for i, g in gold_status(answers, seed_labels, gold).items() if g.disputed)
    rows = [{"worker": w, "right": right, "answered": n, "accuracy": right / n} for w, (right, n) in sorted(accuracy.items())]
    if as_json:
        print(json.dumps({"workers": rows, "disputed_gold": disputed}, indent=2))
        return
    if not rows:
        typer.echo(f"no gold answers on undisputed items in loop {cfg.loop.name!r}" if disputed else
                   f"no gold answers in loop {cfg.loop.name!r} (set loop.gold in the config)")
        if disputed:
            typer.echo(f"disputed gold items (answers accepted and paid; check their answer key): {', '.join(disputed)}")
        return
    from rich.table import Table

    table = Table("worker (pseudonym)", "gold right", "answered", "accuracy", title=f"gold questions, loop {cfg.loop.name}")
    for r in rows:
        table.add_row(r["worker"], str(r["right"]), str(r["answered"]), f"{r['accuracy']:.0%}")
    table_console().print(table)
    if disputed:
        typer.echo(f"disputed gold items (answers accepted and paid; check their answer key): {', '.join(disputed)}")
