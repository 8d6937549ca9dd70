"""Settings of the ML-backend server: what the clicloop config gives, plus serving options."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from clicloop.orchestrator.crowd.plausibility import DEFAULT_MAX_ACTIVE_S, check_limit
from clicloop.orchestrator.errors import ConfigError


@dataclass(frozen=True)
class ServeSettings:
    """Everything the server needs; build it with :func:`settings_from_config`.

    token: the shared secret Label Studio must present on every call (HTTP Basic password,
        ``Authorization: Bearer``/``Token``, or the URL path prefix ``/t/<token>/``).
    loop: ledger loop-name prefix; each Label Studio project gets ``<loop>.p<project id>``.
    ledger: SQLAlchemy URL of the clicloop ledger.
    model_name, model_params: the clicloop model (``auto``: sentence embeddings + logistic
        regression for text, TF-IDF + logistic regression without sentence-transformers; scaled
        logistic regression for numeric vectors).
    strategy_name, strategy_params: the acquisition function written into each task's data.
    plugins: extra plugin modules (as in the config).
    train_every: retrain after this many new annotations, and train a first model as soon as two
        different labels are in (0: only on demand).
    min_labels: fewest labeled tasks (with two classes at least) before a first model.
    label_studio_url: where to fetch annotations (default: the ``hostname`` sent in /setup).
    label_studio_api_key: a Label Studio API key (legacy token or personal access token) to fetch
        annotations with until a /setup brings one, so a restarted backend trains at once; used only
        with ``label_studio_url`` (without it, the URL too comes with /setup). A secret: never in a
        repr, a log line or an error.
    max_body_bytes: requests larger than this get 413.
    hourly_wage, currency: pay recorded per annotation (lead_time x wage); 0 records none, and the
        report then says that pay is unknown (``clicloop serve labelstudio`` requires the wage).
    max_active_s: the plausibility limit on one annotation's lead_time; a larger, non-finite or
        negative one is recorded quarantined, at 0 s and unpaid (default 8 h).
    model_store: directory of the fitted model versions (see ``modelstore``); None: beside a
        SQLite ledger (``<ledger stem>-models``), else ``./clicloop-models``.
    write_acquisition: store the acquisition score in ``task.data`` so the Data Manager sorts by it.
    acquisition_workers: concurrent PATCH requests for those writes (Label Studio has no bulk update).
    predict_embed_limit: most texts the embedding cache lacks that one ``/predict`` embeds; the tasks
        of the others get an empty prediction and their texts are embedded in the background, for a
        later request. Label Studio gives up on ``/predict`` after 100 s; 500 texts took about 20 s at
        the slowest cold rate measured on a busy 2-core CPU (25 texts/s, docs/benchmarks.md).
    seed: for strategies that draw random numbers.
    worker_salt: the config's key of worker pseudonyms (None: ``$CLICLOOP_WORKER_SALT`` or the
        ledger's key file), so the server and ``clicloop run`` name the same person alike.
    """

    token: str = field(repr=False)  # a secret: never in a repr, a log line or an error
    loop: str = "labelstudio"
    ledger: str = "sqlite:///clicloop.db"
    model_name: str = "auto"
    model_params: dict[str, Any] = field(default_factory=dict)
    strategy_name: str = "margin"
    strategy_params: dict[str, Any] = field(default_factory=dict)
    plugins: tuple[str, ...] = ()
    train_every: int = 10
    min_labels: int = 2
    label_studio_url: str | None = None
    max_body_bytes: int = 64 * 1024 * 1024
    hourly_wage: float = 0.0
    currency: str = "EUR"
    max_active_s: float = DEFAULT_MAX_ACTIVE_S
    write_acquisition: bool = True
    acquisition_workers: int = 4
    predict_embed_limit: int = 500
    seed: int = 0
    model_store: str | None = None
    worker_salt: str | None = field(default=None, repr=False)
    label_studio_api_key: str | None = field(default=None, repr=False)

    def __repr__(self) -> str:  # the ledger and Label Studio URLs without passwords, the token left out
        from dataclasses import fields

        from clicloop.orchestrator.credentials import public_config

        shown = public_config({f.name: getattr(self, f.name) for f in fields(self) if f.repr})
        return f"ServeSettings({', '.join(f'{k}={v!r}' for k, v in shown.items())})"

    def __post_init__(self) -> None:
        if len(self.token) < 16:
            raise ConfigError("the ML backend token must be at least 16 characters (e.g. `openssl rand -hex 20`)")
        if not self.token.isascii() or not self.token.isprintable() or " " in self.token:
            raise ConfigError("the ML backend token must be printable ASCII without spaces (HTTP headers carry no other "
                              "characters as written: a client could never send it; e.g. `openssl rand -hex 20`)")
        for bad, what in ((self.hourly_wage < 0, f"--hourly-wage (hourly_wage) must be 0 or more, not {self.hourly_wage:g}"),
                          (self.train_every < 0, f"--train-every (train_every) must be 0 or more, not {self.train_every}"),
                          (self.min_labels < 2, f"min_labels must be 2 or more, not {self.min_labels}"),
                          (self.max_body_bytes < 1024, f"--max-body-mb (max_body_bytes) must allow 1024 bytes at least, "
                                                        f"not {self.max_body_bytes}")):
            if bad:
                raise ConfigError(what)
        check_limit(self.max_active_s)
        if not 1 <= self.acquisition_workers <= 64:
            raise ConfigError(f"acquisition_workers must be between 1 and 64, not {self.acquisition_workers}")
        if self.predict_embed_limit < 0:
            raise ConfigError(f"predict_embed_limit must be 0 or more (0: every text the cache lacks is deferred), "
                              f"not {self.predict_embed_limit}")


    @property
    def model_store_dir(self) -> Path:
        """Where the fitted model versions are kept."""
        from clicloop.connectors.labelstudio.modelstore import default_store

        return Path(self.model_store) if self.model_store else default_store(self.ledger)


def settings_from_config(config: Any, token: str, **options: Any) -> ServeSettings:
    """Serve settings from a loaded clicloop :class:`~clicloop.orchestrator.config.Config` and options."""
    return ServeSettings(
        token=token, loop=config.loop.name, ledger=config.ledger, model_name=config.model.name,
        model_params=dict(config.model.params), strategy_name=config.strategy.name,
        strategy_params=dict(config.strategy.params), plugins=tuple(config.plugins), seed=config.loop.seed,
        currency=config.wage_floor.currency, worker_salt=config.worker_salt, **options,
    )
