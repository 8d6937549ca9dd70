"""The ``clicloop`` command line: parse, call the core, format. Errors print without a traceback."""

from __future__ import annotations

import contextlib
import json
import logging
import sys
from pathlib import Path
from collections.abc import Iterator
from typing import Annotated, Any, Optional

import typer

from clicloop.orchestrator.cli.output import one_line_summaries, pay_command, table_console
from clicloop.orchestrator.errors import ClicloopError

app = typer.Typer(
    help="clicloop: an active-learning labeling loop that accounts for every human second behind a model.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
ConfigArg = Annotated[Path, typer.Argument(help="the loop's config file (YAML or TOML)")]


def _print_version(value: bool) -> None:
    if value:
        from importlib.metadata import PackageNotFoundError, version

        from clicloop import __version__

        try:
            number = version("clicloop")
        except PackageNotFoundError:  # run from a source tree that is not installed
            number = __version__
        typer.echo(f"clicloop {number} (Python {sys.version.split()[0]})")
        raise typer.Exit()


@app.callback()
def _options(
    show_version: Annotated[bool, typer.Option("--version", help="print the version and exit", is_eager=True,
                                               callback=_print_version)] = False,
) -> None:
    """clicloop: an active-learning labeling loop that accounts for every human second behind a model."""


@app.command()
def quickstart(
    ledger: Annotated[str, typer.Option(help="where to write the ledger (the quickstart's two loops start over in it "
                                              "each time; other loops there are kept)")] = "sqlite:///clicloop-quickstart.db",
    seed: Annotated[int, typer.Option(help="seed for data split, crowd and selection")] = 0,
    budget: Annotated[int, typer.Option(help="answers each loop may buy", min=1)] = 300,
    underpaid: Annotated[bool, typer.Option("--underpaid", help="pay the simulated crowd's default 0.02 EUR a task, far "
                                                                "below the wage floor, to see what the ledger flags and owes")] = False,
) -> None:
    """Margin sampling against random sampling on scikit-learn's digits, with a simulated crowd
    paid at the wage floor (--underpaid: below it)."""
    from clicloop.orchestrator.cli.quickstart import run_quickstart

    run_quickstart(ledger=ledger, seed=seed, budget=budget, underpaid=underpaid)


@app.command()
def run(
    config: ConfigArg,
    restart: Annotated[bool, typer.Option("--restart", help="delete this loop's records first and start over")] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="also show the loop's decisions and why: which model "
                                                                  "'model: auto' chose, pseudo-labels on or off, the cold "
                                                                  "start")] = False,
) -> None:
    """Run a loop, or resume it from the ledger where it stopped."""
    if verbose:
        logging.getLogger("clicloop").setLevel(logging.INFO)
    logging.getLogger("clicloop.orchestrator.progress").setLevel(logging.INFO)  # long steps, off a terminal too
    from rich.console import Console

    from clicloop.orchestrator.config import load_config
    from clicloop.orchestrator.loop import Loop
    from clicloop.orchestrator.progress import progress_plugin
    from clicloop.orchestrator.plugins import Registry, check_names, get_plugin_manager

    cfg = load_config(config)
    console = Console(stderr=True)
    with _naming_the_file(config):
        pm = get_plugin_manager(cfg.plugins)
        check_names(cfg, Registry(pm))
        with progress_plugin(pm, cfg, console):
            loop = Loop(cfg, plugin_manager=pm)
            loop.run(restart=restart)
    _print_report(cfg.ledger, cfg.loop.name, cfg.wage_floor, config=config, own=(True, cfg.loop.name))


@contextlib.contextmanager
def _naming_the_file(config: Path) -> Iterator[None]:
    """A config error found after the file was read (an unknown strategy, a floor in another
    currency than the pay) names the file as a parse error does."""
    from clicloop.orchestrator.errors import ConfigError

    try:
        yield
    except ConfigError as e:
        if e.source is not None:
            raise
        raise ConfigError(e.detail, source=str(config), field=e.field) from e


@app.command()
def report(
    config: Annotated[Optional[Path], typer.Argument(help="config file (for its ledger and loop name)")] = None,
    ledger: Annotated[Optional[str], typer.Option(help="ledger URL (instead of a config)")] = None,
    loop: Annotated[Optional[str], typer.Option(help="loop name (default: every loop in the ledger)")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON instead of tables (same as --format json)")] = False,
    fmt: Annotated[str, typer.Option("--format", help="table (default), csv (one row per round, for spreadsheets and pipes) or json")] = "table",
    html: Annotated[Optional[Path], typer.Option("--html", help="write the dashboard's views to this one self-contained HTML file (opens offline)")] = None,
    target: Annotated[Optional[float], typer.Option(help="target metric of the forecast, above 0 and at most 1 (default: the "
                                                        "config's stop.target_metric, else the best metric so far rounded up "
                                                        "to a whole point, plus 2 points)")] = None,
) -> None:
    """Per round: labels, human hours (active / with unpaid time), cost, metric, gain, cost per point, wages;
    then the forecast of the hours and money still needed to reach the target."""
    import contextlib
    import io

    from clicloop.orchestrator.errors import ConfigError
    from clicloop.orchestrator.reporting.forecast import check_target

    if fmt not in ("table", "csv", "json"):
        raise typer.BadParameter(f"--format {fmt!r}: use table, csv or json", param_hint="--format")
    if as_json and fmt == "csv":
        raise typer.BadParameter("--json is --format json: give one of them", param_hint="--json")
    try:
        check_target(target)
    except ConfigError as e:
        raise typer.BadParameter(e.detail, param_hint="--target") from e
    as_json = as_json or fmt == "json"
    floor, stops, own = None, {}, None
    if config is not None:
        from clicloop.orchestrator.config import load_config

        cfg = load_config(config)
        own = (ledger is None or ledger == cfg.ledger, cfg.loop.name)  # what `ledger adjust CONFIG` picks by itself
        ledger, loop, floor = ledger or cfg.ledger, loop or cfg.loop.name, cfg.wage_floor
        stops = {cfg.loop.name: cfg.stop}  # the forecast's target and budget (the ledger keeps no stop rules)
    if ledger is None:
        raise typer.BadParameter("give a config file or --ledger URL")
    if html is not None:
        from clicloop.orchestrator.dashboard.render import write_html_report

        out = write_html_report(ledger, html, loop, floor=floor, target=target, stops=stops)
        typer.echo(f"wrote {out} (every dashboard view, one self-contained file; it opens without a network)")
        return
    if fmt == "csv":
        _print_csv(ledger, loop)
        return
    from clicloop.orchestrator.ledger.money import fmt as fmt_money
    from clicloop.orchestrator.ledger.money import json_default
    from clicloop.orchestrator.ledger.readonly import ReadOnlyLedger
    from clicloop.orchestrator.reporting.report import build_report, forecasts

    captured = io.StringIO()
    with contextlib.redirect_stdout(captured) if as_json else contextlib.nullcontext():
        _print_report(ledger, loop, floor, as_json=as_json, config=config, own=own)
    with ReadOnlyLedger(ledger) as led:
        names = [loop] if loop else led.loops()
        predicted = forecasts(led, {n: build_report(led, n) for n in names}, target, stops)
    if as_json:
        data = json.loads(captured.getvalue())
        for name, fc in predicted.items():
            data[name]["forecast"] = fc
        print(json.dumps(data, indent=2, default=json_default))
        return
    for name, fc in predicted.items():
        typer.echo(f"{name}: {fc['text']}")
        m = fc.get("marginal")
        if m is not None and m["beyond_plateau"]:
            typer.echo(f"{name}: the next point would take the best-fitting curve from {m['curve_now']:.4f} to "
                       f"{m['curve_now'] + 0.01:.4f}, above where it levels off ({m['curve_plateau']:.4f}): more labels buy "
                       "no point on average (the forecast also counts the other curve families and the evaluation's noise)")
        elif m is not None:
            cur = fc.get("currency") or ""
            typer.echo(f"{name}: the next point costs about {m['labels_per_point']:,.0f} labels, {m['hours_per_point']:.2f} h, "
                       f"{fmt_money(m['cost_per_point'], cur)} (marginal, from the fitted curve; zero-gain rounds counted)")


def _loop_names(ledger: Any, loop: str | None) -> list[str]:
    """The loops a report shows: ``loop``, else every loop of the ledger; an unknown name or an
    empty ledger is an error (every format says so, none prints nothing)."""
    from clicloop.orchestrator.errors import LedgerError

    known = ledger.loops()
    if loop is not None and loop not in known:
        raise LedgerError(f"no loop {loop!r} in the ledger; loops there: {', '.join(known) or '(none)'} (pick one with --loop "
                          "NAME; a Label Studio ML backend's loops are <loop>.p<project id>)")
    if not known:
        raise LedgerError("the ledger holds no loop yet")
    return [loop] if loop is not None else known


def _print_csv(url: str, loop: str | None) -> None:
    """The per-round rows of every loop (or ``loop``) as CSV on stdout, with a ``loop`` column."""
    import csv

    from clicloop.orchestrator.ledger.readonly import ReadOnlyLedger
    from clicloop.orchestrator.reporting.report import build_report, report_dict

    with ReadOnlyLedger(url) as led:
        names = _loop_names(led, loop)
        tables = {n: report_dict(*build_report(led, n)) for n in names}
    writer = None
    for name, data in tables.items():
        currency = data["totals"]["currency"]
        for row in data["rounds"]:
            row = {"loop": name, **row, "currency": currency}
            if writer is None:
                writer = csv.DictWriter(sys.stdout, fieldnames=list(row), lineterminator="\n")
                writer.writeheader()
            writer.writerow(row)


def _print_report(url: str, loop: str | None, floor: Any, *, as_json: bool = False, config: Path | None = None,
                  own: tuple[bool, str] | None = None) -> None:
    """``own``: with a config, whether ``url`` is the config's ledger, and the config's loop."""
    from clicloop.orchestrator.config import WageFloor
    from clicloop.orchestrator.credentials import redact_url
    from clicloop.orchestrator.ledger.money import fmt as fmt_money
    from clicloop.orchestrator.ledger.money import json_default
    from clicloop.orchestrator.ledger.readonly import ReadOnlyLedger
    from clicloop.orchestrator.reporting.report import build_report, render_report, report_dict

    floor = floor or WageFloor()
    with ReadOnlyLedger(url) as ledger:  # a report never writes: it works on a ledger it cannot write
        names = _loop_names(ledger, loop)
        reports = {n: build_report(ledger, n, floor) for n in names}  # owed wages below the floor: Totals.owed
    if as_json:
        out = {n: {**report_dict(*r), "below_floor": {"workers": r[1].workers_below_floor, "adjustments_owed": r[1].owed,
                                                      "currency": r[1].currency or floor.currency}
                   if r[1].pay_known else None} for n, r in reports.items()}
        print(json.dumps(out, indent=2, default=json_default))
        return
    console = table_console()
    for name, (rows, totals) in reports.items():
        console.print(render_report(rows, totals))
        if totals.workers_below_floor:
            command = pay_command(floor, config=config, ledger=None if own and own[0] else redact_url(url),
                                  loop=(None if name == own[1] else name) if own else loop)
            console.print(f"[bold]! {totals.workers_below_floor} worker(s) earn below the floor of {totals.floor}/h "
                          f"on total time; adjustments owed: {fmt_money(totals.owed, totals.currency)} ({command})[/]")


@app.command()
def init(
    path: Annotated[Path, typer.Argument(help="where to write the config")] = Path("clicloop.yaml"),
    force: Annotated[bool, typer.Option("--force", help="overwrite an existing file")] = False,
) -> None:
    """Write a commented starter config (runs as is on the bundled digits data)."""
    from importlib.resources import files

    if path.exists() and not force:
        raise ClicloopError(f"{path} exists; pass --force to overwrite it")
    if path.is_dir():
        raise ClicloopError(f"{path} is a folder; give the config file's path (e.g. {path / 'clicloop.yaml'})")
    if path.suffix.lower() == ".toml":
        raise ClicloopError(f"{path}: clicloop init writes YAML, and `clicloop run` reads a .toml file as TOML; give "
                            f"a name such as {path.with_suffix('.yaml')}")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(files("clicloop.orchestrator").joinpath("templates/clicloop.yaml").read_text(encoding="utf-8"), encoding="utf-8")
    typer.echo(f"wrote {path}; run it with: clicloop run {path}")


@app.command()
def plugins(as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False) -> None:
    """List the strategies, backends, models, aggregators and triage policies installed, where each
    comes from, and what to install for those whose extra is missing."""
    from clicloop.orchestrator.plugins import KINDS, Registry, get_plugin_manager

    registry = Registry(get_plugin_manager())
    rows = []
    for kind in KINDS:
        for e in sorted(registry.entries[kind].values(), key=lambda e: e.name):
            missing = e.missing()
            rows.append({"kind": kind, "name": e.name, "plugin": e.plugin, "distribution": e.distribution or "clicloop (built-in)",
                         "usable": not missing, "missing": missing, "install": e.install_hint() if missing else None})
    if as_json:
        print(json.dumps(rows, indent=2))
        return
    from rich.table import Table

    table = Table("kind", "name", "plugin", "from", "status")
    for r in rows:
        table.add_row(r["kind"], r["name"], r["plugin"], r["distribution"], "ok" if r["usable"] else f"needs: {r['install']}")
    table_console().print(table)


from clicloop.orchestrator.cli.ledger import labor_card_command, ledger_app  # noqa: E402 (typer only; commands import lazily)

app.add_typer(ledger_app, name="ledger")
from clicloop.orchestrator.cli.serve import serve_app  # noqa: E402 (typer only; servers import lazily)

app.add_typer(serve_app, name="serve")
app.command("labor-card")(labor_card_command)
from clicloop.orchestrator.cli.deploy import deploy_app  # noqa: E402 (typer only; commands import lazily)

app.add_typer(deploy_app, name="deploy")
from clicloop.orchestrator.cli.dashboard import dashboard_command  # noqa: E402 (typer only; the server imports lazily)

app.command("dashboard")(dashboard_command)
one_line_summaries(app)


INTERRUPTED = 130  # the exit status of a command stopped by Ctrl-C (128 + SIGINT)
TERMINATED = 143  # ... by SIGTERM (128 + 15): a container stopped, systemd, kill
_signalled: list[int] = []


def _stop_as_ctrl_c(signum: int, _frame: Any) -> None:
    """SIGTERM stops a command as Ctrl-C does: the loop's with-blocks close, its runner lease is
    released and the ledger stays as committed (it died at once, lease held, with no message)."""
    if _signalled:  # a second SIGTERM while the first is being handled must not cut the lease's release short
        return
    _signalled.append(signum)
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> Any:
    """Console-script entry point: clicloop errors become one clear line and exit status 2; SIGTERM
    stops a command as Ctrl-C does (the handler before is put back when the command ends)."""
    import signal

    try:
        before = signal.signal(signal.SIGTERM, _stop_as_ctrl_c)  # a server's uvicorn puts its own in place while it serves
    except ValueError:  # not the main thread: SIGTERM stays as it is
        before = None
    try:
        return _main(argv)
    finally:
        if before is not None:
            signal.signal(signal.SIGTERM, before)
        _signalled.clear()


def _main(argv: list[str] | None) -> Any:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        result = app(args=argv, standalone_mode=False)
        if result == INTERRUPTED:  # typer turns Ctrl-C into Exit(130), which click returns when not standalone
            raise KeyboardInterrupt
        return result
    except ClicloopError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        what = "stopped by SIGTERM" if _signalled else "interrupted"
        print(f"{what}; run the same command again to resume from the ledger", file=sys.stderr)
        sys.exit(TERMINATED if _signalled else INTERRUPTED)
    except typer.Exit as e:
        sys.exit(e.exit_code)
    except ModuleNotFoundError as e:
        extra = _EXTRA_OF.get((e.name or "").split(".")[0])
        if extra is None:
            raise
        print(f"error: this command needs {e.name}, which is not installed; install the extra that brings it: "
              f"pip install 'clicloop[{extra}]'", file=sys.stderr)
        sys.exit(2)
    except Exception as e:  # usage errors: click's, or typer's own since typer 0.16 (duck-typed: both have show/exit_code)
        if callable(getattr(e, "show", None)) and isinstance(getattr(e, "exit_code", None), int):
            e.show()
            sys.exit(e.exit_code)
        if type(e).__name__ == "Abort":
            sys.exit(1)
        lost = _ledger_connection_lost(e)
        if lost is None:
            raise
        print(f"error: the ledger's database failed mid-command ({lost}); what was committed is kept: run the same "
              "command again (a loop resumes where it stopped)", file=sys.stderr)
        sys.exit(2)


_LOST_STATES = ("08", "57P01", "57P02", "57P03", "53")  # connection exceptions, shutdowns, insufficient resources (a full disk)


def _ledger_connection_lost(e: BaseException) -> str | None:
    """The database's own words when ``e`` is a lost connection or a server failure (a PostgreSQL
    restart, an administrator ending the session mid-run, a full disk), else None: any other
    database error (a missing table: a bug) keeps its traceback."""
    exc = sys.modules.get("sqlalchemy.exc")
    if exc is None or not isinstance(e, exc.OperationalError):
        return None
    state = str(getattr(e.orig, "sqlstate", "") or "")
    unreachable = not state and type(e.orig).__module__.startswith("psycopg")  # refused, reset: no server answer at all
    if not (getattr(e, "connection_invalidated", False) or unreachable or state.startswith(_LOST_STATES)):
        return None
    from clicloop.orchestrator.credentials import redact_url

    words = redact_url(str(getattr(e, "orig", e))).strip().splitlines()  # a URL in the driver's words loses its password
    return words[0] if words else type(e).__name__


# optional dependencies -> the extra (pyproject.toml) that installs them
_EXTRA_OF = {"plotly": "dashboard", "fastapi": "labelstudio,dashboard", "uvicorn": "labelstudio,dashboard", "httpx": "labelstudio", "psycopg": "postgres",
             "pyarrow": "parquet", "crowdkit": "crowd", "ray": "ray", "torch": "torch", "modAL": "modal"}
