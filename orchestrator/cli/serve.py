"""``clicloop serve ...``: long-running servers other systems call. Mounted into the main CLI with
``app.add_typer(serve_app, name="serve")``; FastAPI and uvicorn are imported only when a server starts."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Optional

import typer

from clicloop.orchestrator.crowd.plausibility import DEFAULT_MAX_ACTIVE_S
from clicloop.orchestrator.errors import ConfigError

serve_app = typer.Typer(help="Run clicloop as a server (e.g. a Label Studio ML backend).", no_args_is_help=True)


@serve_app.command("labelstudio")
def labelstudio(
    config: Annotated[Path, typer.Option("--config", help="clicloop config: loop name, ledger, model, strategy")],
    port: Annotated[int, typer.Option(help="port to listen on")] = 9090,
    host: Annotated[str, typer.Option(help="interface to bind (127.0.0.1: this machine only)")] = "127.0.0.1",
    token_env: Annotated[str, typer.Option(help="environment variable holding the shared token Label Studio sends")] = "CLICLOOP_ML_TOKEN",
    train_every: Annotated[int, typer.Option(help="retrain after this many new annotations (0: on demand only)")] = 10,
    label_studio_url: Annotated[Optional[str], typer.Option(help="Label Studio URL to fetch annotations from (default: the one /setup sends)")] = None,
    hourly_wage: Annotated[float, typer.Option(help="pay recorded per annotation: lead_time x this hourly wage")] = 0.0,
    max_active_s: Annotated[float, typer.Option(help="plausibility limit on one annotation's lead_time, in seconds; "
                                                     "a larger one is recorded quarantined and unpaid")] = DEFAULT_MAX_ACTIVE_S,
    max_body_mb: Annotated[int, typer.Option(help="largest request body accepted, in MiB")] = 64,
    acquisition_workers: Annotated[int, typer.Option(help="concurrent writes of acquisition scores into task data")] = 4,
) -> None:
    """Serve clicloop as a Label Studio ML backend: predictions with uncertainty ranking, retraining
    on new annotations, and every annotation's lead_time in the ledger."""
    import uvicorn

    from clicloop.connectors.labelstudio import create_app
    from clicloop.connectors.labelstudio.settings import settings_from_config
    from clicloop.orchestrator.config import load_config

    token = os.environ.get(token_env, "")
    if not token:
        raise ConfigError(f"set {token_env} to a secret of 16+ characters (e.g. `export {token_env}=$(openssl rand -hex 20)`) "
                          "and give the same value to Label Studio as the Basic-auth password")
    cfg = load_config(config)
    settings = settings_from_config(cfg, token, train_every=train_every, label_studio_url=label_studio_url,
                                    hourly_wage=hourly_wage, max_active_s=max_active_s, max_body_bytes=max_body_mb * 1024 * 1024,
                                    acquisition_workers=acquisition_workers)
    typer.echo(f"clicloop ML backend on http://{host}:{port} (ledger {cfg.ledger}, loop prefix {cfg.loop.name!r})", err=True)
    # SIGTERM: requests in flight get 5 s to finish; score writes still pending are dropped (logged)
    uvicorn.run(create_app(settings), host=host, port=port, log_level="warning", timeout_graceful_shutdown=5)


from clicloop.orchestrator.cli.deploy import serve_ingest  # noqa: E402 (typer only; the server imports lazily)

serve_app.command("ingest")(serve_ingest)
