"""``clicloop deploy ...``: post-deployment correction from the command line. Mount with
``app.add_typer(deploy_app, name="deploy")``; everything heavy is imported inside the commands.

    clicloop deploy register v1 --labels labels.txt --model v1.joblib --serve
    clicloop deploy ingest predictions.jsonl [--follow]      # or: clicloop serve ingest (HTTP)
    clicloop deploy triage --policy triage.yaml [--base labeled.jsonl]
    clicloop deploy review --backend simulated --truth truth.jsonl [--sensitive '{"detectors": ["email"]}']
    clicloop deploy retrain --base labeled.jsonl --model tfidf-logreg   # gate, then promote if better
    clicloop deploy promote v3 | rollback [--to v1] | status [--json] | report [--out report]
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from clicloop.orchestrator.errors import ConfigError
from clicloop.orchestrator.postdeploy.errors import PromotionError
from clicloop.orchestrator.ledger.money import json_default

deploy_app = typer.Typer(help="Review a deployed model's predictions with people and learn from their corrections.",
                         no_args_is_help=True)
LedgerOpt = Annotated[str, typer.Option("--ledger", envvar="CLICLOOP_LEDGER", help="ledger URL")]
DeploymentOpt = Annotated[str, typer.Option("--deployment", "-d", help="deployment name")]
ArtifactsOpt = Annotated[Path, typer.Option("--artifacts", help="where fitted model versions are stored")]
DEFAULT_LEDGER = "sqlite:///clicloop.db"
PLUGIN = "clicloop.orchestrator.postdeploy.plugin"


@contextmanager
def _store(ledger: str, deployment: str, create: bool = False) -> Iterator[Any]:
    """The deployment's records; only ``register`` and ``ingest`` (``create``) may create the
    ledger: any other command on a ledger that does not exist is refused, creating nothing."""
    from clicloop.orchestrator.ledger import Ledger
    from clicloop.orchestrator.postdeploy.store import DeploymentStore

    if not create:
        from clicloop.orchestrator.ledger.readonly import require_ledger

        require_ledger(ledger, "register a model first (clicloop deploy register VERSION --labels FILE)")
    with Ledger(ledger) as led:
        yield DeploymentStore(led, deployment)


def _registry(plugins: list[str] | None = None) -> Any:
    from clicloop.orchestrator.postdeploy.triage import triage_registry

    return triage_registry(plugins or ())


@deploy_app.command()
def register(
    version: Annotated[str, typer.Argument(help="the model version name, as production records carry it")],
    labels: Annotated[Path, typer.Option(help="text file: the version's labels, one a line")],
    model: Annotated[Optional[Path], typer.Option(help="the fitted model (joblib), for triage scores and retraining")] = None,
    serve: Annotated[bool, typer.Option("--serve", help="record it as the serving version (a first deployment)")] = False,
    base: Annotated[Optional[Path], typer.Option(help="JSONL {text|features, label} it was trained on (counted on its "
                                                      "labor card)")] = None,
    ledger: LedgerOpt = DEFAULT_LEDGER, deployment: DeploymentOpt = "default",
) -> None:
    """Register a model version and its label set (predictions of unknown versions are quarantined)."""
    from clicloop.orchestrator.postdeploy.inputs import read_labeled, read_labels
    from clicloop.orchestrator.postdeploy.learn import load_model

    names = read_labels(labels)
    n_train = 0 if base is None else len(read_labeled(base).y)
    if model is not None:
        classes = {str(c) for c in getattr(load_model(model), "classes_", ())}
        if not classes <= set(names):
            raise ConfigError(f"the model predicts label(s) {sorted(classes - set(names))[:5]} missing from the label file; "
                              "list every label the model can predict", source=str(labels))
    with _store(ledger, deployment, create=True) as store:
        new = store.register_version(version, names, artifact=None if model is None else str(model.resolve()), n_train=n_train)
        if serve:
            store.record_promotion("deploy", version, reason="registered from the command line")
    typer.echo(f"{deployment}: version {version} with {len(names)} labels{'' if new else ' (already registered)'}"
               f"{', now serving' if serve else ''}")


@deploy_app.command()
def ingest(
    file: Annotated[Path, typer.Argument(help="a JSONL file of prediction records")],
    follow: Annotated[bool, typer.Option("--follow", help="keep reading as the file grows (Ctrl-C to stop)")] = False,
    poll: Annotated[float, typer.Option(help="seconds between polls with --follow", min=0.05)] = 1.0,
    ledger: LedgerOpt = DEFAULT_LEDGER, deployment: DeploymentOpt = "default",
) -> None:
    """Ingest a JSONL file from where the last run stopped (resumable; a replay is not counted twice)."""
    from clicloop.orchestrator.postdeploy.follower import FileFollower
    from clicloop.orchestrator.postdeploy.ingest import Ingestor

    if file.is_dir():
        raise ConfigError(f"{file} is a folder; give the JSONL file the deployed model writes")
    if not follow and not file.is_file():
        raise ConfigError(f"no file {file}; give the JSONL file the deployed model writes (or --follow to wait for it)")
    if file.suffix.lower() in (".csv", ".tsv", ".parquet", ".xlsx"):
        raise ConfigError(f"{file}: deploy ingest reads JSONL (one JSON object per line, docs/postdeploy.md), not "
                          f"{file.suffix.lstrip('.').upper()}; convert it, e.g. pandas' to_json(orient='records', lines=True)")
    with _store(ledger, deployment, create=True) as store:
        follower = FileFollower(Ingestor(store), file)
        try:
            result = follower.follow(poll_s=poll) if follow else follower.poll()
        except KeyboardInterrupt:
            typer.echo("stopped; run again to resume from the saved offset", err=True)
            return
    if result.unfinished_bytes and not follow:
        typer.echo(f"{file}: its last {result.unfinished_bytes} bytes have no newline, so they wait for a later run "
                   "(a line still being written); if the file is complete, end it with a newline. The file must be "
                   "JSONL: one JSON object per line, not a JSON list", err=True)
    typer.echo(json.dumps(result.as_dict()))


@deploy_app.command()
def triage(
    policy: Annotated[Path, typer.Option(help="YAML/JSON triage policy spec (see docs/postdeploy.md)")],
    name: Annotated[str, typer.Option(help="the policy's name in the ledger")] = "default",
    base: Annotated[Optional[Path], typer.Option(help="JSONL {text|features, label}: the first version's training data "
                                                      "(needed by the novelty condition)")] = None,
    plugins: Annotated[Optional[list[str]], typer.Option("--plugin", help="extra plugin module")] = None,
    ledger: LedgerOpt = DEFAULT_LEDGER, deployment: DeploymentOpt = "default",
) -> None:
    """Decide, for every prediction not decided yet, whether people review it (and record why)."""
    import numpy as np

    from clicloop.orchestrator.postdeploy.conditions import TriageContext, normalised, vocabulary_of
    from clicloop.orchestrator.postdeploy.inputs import read_labeled, read_policy
    from clicloop.orchestrator.postdeploy.learn import corrections, featurize, load_model
    from clicloop.orchestrator.postdeploy.triage import Triage, build_policy

    registry = _registry(plugins)
    built = build_policy(read_policy(policy), registry)
    with _store(ledger, deployment) as store:
        serving = store.serving()
        info = store.versions().get(serving) if serving else None
        ctx = TriageContext(model=load_model(Path(info["artifact"])) if info and info["artifact"] else None,
                            featurize=featurize, registry=registry)
        if base is not None:
            data = read_labeled(base)
            used = [c for c in corrections(store) if not c["audit"] and info and c["reviewed_at"] <= info["created_at"]]
            if data.texts is not None:
                ctx.vocabulary = vocabulary_of([*data.texts, *(c["text"] for c in used)])
            else:
                ctx.reference = normalised(np.vstack([data.X, *(featurize([c]) for c in used if c["features_json"])]))
        summary = Triage(store, name, built, ctx).run()
    typer.echo(f"{deployment}/{name}: decided {summary.decided}, selected {summary.selected} for review ({summary.audits} audits)")


@deploy_app.command()
def review(
    backend: Annotated[str, typer.Option(help="a registered backend (simulated, file-exchange, prolific, ...)")] = "simulated",
    params: Annotated[str, typer.Option(help="the backend's params as JSON")] = "{}",
    labels: Annotated[Optional[Path], typer.Option(help="labels reviewers choose from (default: every version's, "
                                                        "plus those in --truth)")] = None,
    truth: Annotated[Optional[Path], typer.Option(help="JSONL {id, label}: ground truth for the simulated crowd only")] = None,
    name: Annotated[str, typer.Option(help="the triage policy whose selection to review")] = "default",
    limit: Annotated[Optional[int], typer.Option(help="review at most this many now")] = None,
    timeout: Annotated[Optional[float], typer.Option(help="seconds to wait for answers")] = None,
    seed: Annotated[int, typer.Option(help="seed of the backend (the simulated crowd's workers)")] = 0,
    sensitive: Annotated[Optional[str], typer.Option(help="JSON {detectors, patterns}, as a loop's `sensitive`: predictions "
                                                          "whose text matches go to confidential backends only (default: "
                                                          "the email and phone detectors)")] = None,
    ledger: LedgerOpt = DEFAULT_LEDGER, deployment: DeploymentOpt = "default",
) -> None:
    """Send the selected predictions to people: confirm, correct, or out of scope."""
    from clicloop.orchestrator.plugins import Registry, get_plugin_manager
    from clicloop.orchestrator.postdeploy.inputs import parse_json_object, parse_sensitive, read_jsonl, read_labels
    from clicloop.orchestrator.postdeploy.review import REVIEW_SENSITIVE, Reviewer

    screen = REVIEW_SENSITIVE if sensitive is None else parse_sensitive(sensitive)
    gold = None if truth is None else {str(r["id"]): str(r["label"]) for r in read_jsonl(truth, ("id", "label"))}
    backend_obj = Registry(get_plugin_manager()).create("backend", backend, parse_json_object(params, "--params"), field="backend")
    with _store(ledger, deployment) as store:
        names = (read_labels(labels) if labels else
                 sorted({lab for v in store.versions().values() for lab in v["labels"]} | set((gold or {}).values())))
        reviewer = Reviewer(store, backend_obj, backend, names, policy=name, truth=gold, timeout_s=timeout, seed=seed,
                            sensitive=screen)
        try:
            s = reviewer.run(limit)
        finally:
            reviewer.close()
    held = f"; {s.held} with sensitive text kept for a confidential backend" if s.held else ""
    typer.echo(f"batch {s.batch}: {s.answered}/{s.tasks} reviewed: {s.confirmed} confirmed, {s.corrected} corrected, "
               f"{s.out_of_scope} out of scope{held}")


@deploy_app.command()
def retrain(
    base: Annotated[Path, typer.Option(help="JSONL {text, label} (or {features, label}): the labeled data of the first version")],
    model: Annotated[str, typer.Option(help="a registered model (tfidf-logreg, logreg, ...)")] = "tfidf-logreg",
    params: Annotated[str, typer.Option(help="the model's params as JSON")] = "{}",
    version: Annotated[Optional[str], typer.Option(help="the new version's name (default: <deployment>-v<n>)")] = None,
    every_reviews: Annotated[Optional[int], typer.Option(help="only if this many reviews arrived since the last version")] = None,
    every_hours: Annotated[Optional[float], typer.Option(help="only if the last version is this old (and reviews came)")] = None,
    min_slice: Annotated[int, typer.Option(help="fewest audits the gate needs")] = 30,
    min_gain: Annotated[float, typer.Option(help="how much lower the candidate's audited error must be")] = 0.0,
    artifacts: ArtifactsOpt = Path("clicloop-models"),
    ledger: LedgerOpt = DEFAULT_LEDGER, deployment: DeploymentOpt = "default",
) -> None:
    """Retrain on the base data plus corrections; promote only if better on the audited slice."""
    from clicloop.orchestrator.loop_setup import trial_fit
    from clicloop.orchestrator.plugins import Registry, get_plugin_manager
    from clicloop.orchestrator.postdeploy.inputs import parse_json_object, read_labeled
    from clicloop.orchestrator.postdeploy.learn import Learner, due

    data = read_labeled(base)
    model_params = parse_json_object(params, "--params")
    registry = Registry(get_plugin_manager())
    trial_fit(registry.create("model", model, model_params, field="model"), model, data.X, sorted(set(data.y)),
              field="--model")  # fail on a bad name or param, or a numeric model on text, before any work
    with _store(ledger, deployment) as store:
        if (every_reviews is not None or every_hours is not None) and not due(
                store, every_reviews=every_reviews, every_s=None if every_hours is None else every_hours * 3600):
            typer.echo("not due yet: no retraining (see --every-reviews / --every-hours)")
            return
        learner = Learner(store, lambda: registry.create("model", model, model_params, field="model"), (data.X, data.y),
                          artifacts=artifacts, min_slice=min_slice, min_gain=min_gain)
        gate = learner.gate(learner.retrain(version))
    typer.echo(("promoted " if gate.promoted else "kept the serving version; rejected ") + f"{gate.candidate}: {gate.reason}")


@deploy_app.command()
def promote(
    version: Annotated[str, typer.Argument(help="a registered version")],
    reason: Annotated[str, typer.Option(help="why (recorded)")] = "promoted by hand",
    ledger: LedgerOpt = DEFAULT_LEDGER, deployment: DeploymentOpt = "default",
) -> None:
    """Serve a version now, without the gate (the gate runs in `retrain`)."""
    with _store(ledger, deployment) as store:
        if store.serving() == version:
            raise PromotionError(f"{version!r} is already serving deployment {deployment!r}: nothing recorded")
        store.record_promotion("promote", version, reason=reason)
    typer.echo(f"{deployment}: {version} is serving")


@deploy_app.command()
def rollback(
    to: Annotated[Optional[str], typer.Option(help="the version to serve (default: the one before)")] = None,
    reason: Annotated[str, typer.Option(help="why (recorded)")] = "rollback on demand",
    ledger: LedgerOpt = DEFAULT_LEDGER, deployment: DeploymentOpt = "default",
) -> None:
    """Serve the previous version (or --to) again."""
    from clicloop.orchestrator.postdeploy.learn import rollback as do_rollback

    with _store(ledger, deployment) as store:
        typer.echo(f"{deployment}: rolled back to {do_rollback(store, to, reason)}")


@deploy_app.command()
def status(
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
    ledger: LedgerOpt = DEFAULT_LEDGER, deployment: DeploymentOpt = "default",
) -> None:
    """Serving version, audited error rate with its interval, errors fixed per hour, time to correction, promotions."""
    from clicloop.orchestrator.postdeploy import report as rep

    with _store(ledger, deployment) as store:
        data = rep.build(store)
    typer.echo(json.dumps(data, indent=2, default=json_default) if as_json else "\n".join([f"deployment {deployment}", *rep.lines(data)]))


@deploy_app.command("report")
def report_command(
    out: Annotated[Optional[Path], typer.Option(help="write <out>.md and <out>.json (default: print Markdown)")] = None,
    ledger: LedgerOpt = DEFAULT_LEDGER, deployment: DeploymentOpt = "default",
) -> None:
    """The post-deployment report as Markdown (and JSON with --out)."""
    from clicloop.orchestrator.postdeploy import report as rep

    with _store(ledger, deployment) as store:
        data = rep.build(store)
    if out is None:
        typer.echo(rep.markdown(data))
        return
    out.with_suffix(".md").write_text(rep.markdown(data), encoding="utf-8")
    out.with_suffix(".json").write_text(json.dumps(data, indent=2, default=json_default), encoding="utf-8")
    typer.echo(f"wrote {out.with_suffix('.md')} and {out.with_suffix('.json')}")


def serve_ingest(
    deployment: DeploymentOpt = "default",
    ledger: LedgerOpt = DEFAULT_LEDGER,
    port: Annotated[int, typer.Option(help="port to listen on")] = 9091,
    host: Annotated[str, typer.Option(help="interface to bind (127.0.0.1: this machine only)")] = "127.0.0.1",
    token_env: Annotated[str, typer.Option(help="environment variable holding the bearer token")] = "CLICLOOP_INGEST_TOKEN",
    max_body_mb: Annotated[int, typer.Option(help="largest request body accepted, in MiB")] = 16,
) -> None:
    """Serve the prediction-ingest endpoint (POST /v1/predictions with a bearer token)."""
    import os

    import uvicorn

    from clicloop.orchestrator.postdeploy.server import IngestSettings, create_ingest_app

    from clicloop.orchestrator.cli.output import check_listen
    from clicloop.orchestrator.credentials import redact_url

    token = os.environ.get(token_env, "")
    if not token:
        raise ConfigError(f"set {token_env} to a secret of 16+ characters (e.g. `export {token_env}=$(openssl rand -hex 20)`)")
    check_listen(host, port)  # before the ledger is opened (created) and the 'on http://' line
    settings = IngestSettings(token=token, ledger=ledger, deployment=deployment, max_body_bytes=max_body_mb * 1024 * 1024)
    with _store(ledger, deployment, create=True) as store:
        if not store.versions():  # a mistyped --deployment or --ledger quarantined every prediction without a word
            typer.echo(f"note: deployment {deployment!r} has no registered model version in {redact_url(ledger)}: every "
                       "prediction is quarantined until one is (`clicloop deploy register`); check --deployment and "
                       "--ledger", err=True)
    typer.echo(f"clicloop ingest on http://{host}:{port}/v1/predictions (deployment {deployment!r})", err=True)
    uvicorn.run(create_ingest_app(settings), host=host, port=port, log_level="warning")
