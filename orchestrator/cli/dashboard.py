"""``clicloop dashboard``: serve the cost-of-human-labor dashboard (read-only) on 127.0.0.1.
(``clicloop report --html out.html`` writes the same views to one file:
``clicloop.orchestrator.dashboard.render.write_html_report``.)

Mounted into the main CLI with ``app.command("dashboard")(dashboard_command)``; plotly, FastAPI
and uvicorn are imported only when the command runs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer


LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")


def dashboard_command(
    ledger: Annotated[Optional[str], typer.Option("--ledger", help="ledger URL, e.g. sqlite:///clicloop.db (opened read-only)")] = None,
    config: Annotated[Optional[list[Path]], typer.Option("--config", help="a loop's config file (repeat for several): its "
                                                         "stop rules give the forecast its target and budget, its wage floor the floor")] = None,
    port: Annotated[int, typer.Option(help="port to listen on")] = 8050,
    host: Annotated[str, typer.Option(help="interface to bind; anything but 127.0.0.1 exposes worker pay to the network")] = "127.0.0.1",
    floor: Annotated[Optional[float], typer.Option(help="hourly wage floor (default: the first config's, else 12.02)")] = None,
    currency: Annotated[str, typer.Option(help="the floor's currency")] = "EUR",
    allow_host: Annotated[Optional[list[str]], typer.Option("--allow-host", help="another name this dashboard is reached "
                                                            "by (repeat for several); other Host headers get 400")] = None,
) -> None:
    """Serve the dashboard: learning curves, forecast, marginal cost per point, wages against the
    floor, unpaid overhead, rejections, post-deployment review and labor cards."""
    import uvicorn

    from clicloop.orchestrator.config import WageFloor, load_config
    from clicloop.orchestrator.dashboard.app import create_app

    from clicloop.orchestrator.cli.output import check_listen

    check_listen(host, port)
    configs = [load_config(path) for path in config or []]
    ledger = ledger or (configs[0].ledger if configs else None)
    if ledger is None:
        raise typer.BadParameter("give --ledger URL (or a --config file, whose ledger is used)")
    if host not in LOCAL_HOSTS:
        typer.secho(f"warning: binding {host}: anyone who reaches this interface sees worker pay and the ledger's figures "
                    "(no login). Use 127.0.0.1 and an SSH tunnel unless you mean it. Requests are answered for "
                    "127.0.0.1, localhost, the bound address and --allow-host names only.", fg="yellow", err=True)
    if floor is not None:
        wage_floor = WageFloor(amount=floor, currency=currency)
    else:
        wage_floor = configs[0].wage_floor if configs else WageFloor(currency=currency)
    app = create_app(ledger, floor=wage_floor, stops={c.loop.name: c.stop for c in configs}, hosts=[host, *(allow_host or [])])
    typer.echo(f"clicloop dashboard on http://{host}:{port} (read-only; Ctrl+C stops it)", err=True)
    uvicorn.run(app, host=host, port=port, log_level="warning")
