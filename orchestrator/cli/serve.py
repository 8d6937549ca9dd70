"""``clicloop serve ...``: long-running servers other systems call. Mounted into the main CLI with
``app.add_typer(serve_app, name="serve")``; FastAPI and uvicorn are imported only when a server starts."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Optional

import typer

from clicloop.orchestrator.crowd.plausibility import DEFAULT_MAX_ACTIVE_S
from clicloop.orchestrator.cli.output import check_listen
from clicloop.orchestrator.errors import ConfigError

serve_app = typer.Typer(help="Run clicloop as a server (e.g. a Label Studio ML backend).", no_args_is_help=True)


@serve_app.command("labelstudio")
def labelstudio(
    config: Annotated[Path, typer.Option("--config", help="clicloop config: loop name, ledger, model, strategy")],
    port: Annotated[int, typer.Option(help="port to listen on")] = 9090,
    host: Annotated[str, typer.Option(help="interface to bind (127.0.0.1: this machine only)")] = "127.0.0.1",
    token_env: Annotated[str, typer.Option(help="environment variable holding the shared token Label Studio sends")] = "CLICLOOP_ML_TOKEN",
    train_every: Annotated[int, typer.Option(help="retrain after this many new annotations (0: on demand only)")] = 10,
    label_studio_url: Annotated[Optional[str], typer.Option(help="Label Studio URL to fetch annotations from (default: "
                                                                  "$LABEL_STUDIO_URL, else the one /setup sends)")] = None,
    api_key_env: Annotated[str, typer.Option(help="environment variable holding a Label Studio API key (optional): with it "
                                                  "and the URL, a restarted backend trains without waiting for a /setup")] = "LABEL_STUDIO_API_KEY",
    hourly_wage: Annotated[Optional[float], typer.Option(help="required: your annotators' gross pay per hour, in the config's "
                                                               "wage_floor.currency (recorded per annotation: lead_time x wage); "
                                                               "0: pay unknown, none recorded")] = None,
    max_active_s: Annotated[float, typer.Option(help="plausibility limit on one annotation's lead_time, in seconds; "
                                                     "a larger one is recorded quarantined and unpaid")] = DEFAULT_MAX_ACTIVE_S,
    model_store: Annotated[Optional[Path], typer.Option(help="directory of the fitted model versions (default: "
                                                               "<ledger stem>-models beside a SQLite ledger)")] = None,
    max_body_mb: Annotated[int, typer.Option(help="largest request body accepted, in MiB")] = 64,
    acquisition_workers: Annotated[int, typer.Option(help="concurrent writes of acquisition scores into task data")] = 4,
    predict_embed_limit: Annotated[int, typer.Option(help="most texts missing from the embedding cache that one /predict "
                                                          "embeds; the other tasks get an empty prediction now and are "
                                                          "embedded in the background")] = 500,
) -> None:
    """Serve clicloop as a Label Studio ML backend: predictions with uncertainty ranking, retraining
    on new annotations, and every annotation's lead_time in the ledger."""
    import uvicorn

    from clicloop.connectors.labelstudio import create_app
    from clicloop.connectors.labelstudio.settings import settings_from_config
    from clicloop.orchestrator.config import load_config
    from clicloop.orchestrator.credentials import redact_url

    token = os.environ.get(token_env, "")
    if not token:
        raise ConfigError(f"set {token_env} to a secret of 16+ characters (e.g. `export {token_env}=$(openssl rand -hex 20)`) "
                          "and give Label Studio the model URL http://HOST:PORT/t/<that value> (docs/labelstudio.md)")
    if hourly_wage is None:
        raise ConfigError("--hourly-wage is required: what your annotators earn per hour (e.g. --hourly-wage 18), so the "
                          "ledger and `clicloop report` show what their time cost; --hourly-wage 0 records no pay and the "
                          "report then says that pay is unknown")
    cfg = load_config(config)
    label_studio_url = label_studio_url or os.environ.get("LABEL_STUDIO_URL") or None
    settings = settings_from_config(cfg, token, train_every=train_every, label_studio_url=label_studio_url,
                                    label_studio_api_key=os.environ.get(api_key_env) or None,
                                    hourly_wage=hourly_wage, max_active_s=max_active_s, max_body_bytes=max_body_mb * 1024 * 1024,
                                    acquisition_workers=acquisition_workers, predict_embed_limit=predict_embed_limit,
                                    model_store=str(model_store) if model_store is not None else None)
    if settings.label_studio_api_key and not label_studio_url:
        typer.echo(f"note: ${api_key_env} is set but no --label-studio-url (or $LABEL_STUDIO_URL): the key is only ever sent "
                   "to that URL, so it is not used; each project trains once Label Studio's /setup brings its own token",
                   err=True)
    check_listen(host, port)
    app = create_app(settings)  # reopens the stored models before the port opens
    typer.echo(f"clicloop ML backend on http://{host}:{port} (ledger {redact_url(cfg.ledger)}, loop prefix {cfg.loop.name!r}, "
               f"models in {settings.model_store_dir})", err=True)
    # SIGTERM: requests in flight get 5 s to finish; score writes still pending are dropped (logged)
    uvicorn.run(app, host=host, port=port, log_level="warning", timeout_graceful_shutdown=5)


from clicloop.orchestrator.cli.deploy import serve_ingest  # noqa: E402 (typer only; the server imports lazily)

serve_app.command("ingest")(serve_ingest)
