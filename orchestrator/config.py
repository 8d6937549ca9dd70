"""The loop's configuration: a YAML or TOML file validated with pydantic.

Errors name the file and the dotted field. Relative paths resolve against the config file.
"""

from __future__ import annotations

import tomllib
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import Field, PrivateAttr, ValidationError, field_validator, model_validator

from clicloop.orchestrator.config_people import (  # noqa: F401 (importers name them from here)
    Adaptive, ContentWarning, Floor, Gold, Relabel, Sensitive, WageFloor, _money, _Strict,
)
from clicloop.orchestrator.credentials import check_secret_params, resolve_secret_files
from clicloop.orchestrator.errors import BudgetError, ConfigError
from clicloop.orchestrator.yamlfile import load_yaml

BUILTIN_DATASETS = ("digits",)


def unexpanded_path(path: str) -> None:
    """A path is taken as written: a leading ``~`` (``~/...``, ``~user/...``), a ``${NAME}``, or a
    ``$NAME`` as a whole path component would become folders of those names (a ledger landed in
    ``./${HOME}/c.db``), so they are refused, naming what to write, whatever the environment holds
    (a variable unset under cron made a fresh ledger). ``price$usd.csv`` is a file name."""
    import re

    braced = re.search(r"\$\{[A-Za-z_][A-Za-z0-9_]*\}", path)
    variable = re.search(r"(^|[/\\])\$[A-Za-z_][A-Za-z0-9_]*([/\\]|$)", path)  # a whole component: $HOME/..., .../$DIR/...
    if path.startswith("~") or braced or variable:
        raise ValueError(f"{path!r}: clicloop expands no '~' or '$VARIABLE' in paths; write the path in full "
                         "(a relative path is read from the config file's folder)")


class Source(_Strict):
    """One tabular or array file. Columns name the id, the features and the labels."""

    path: Path
    id: str | None = Field(None, description="id column; row numbers when absent")
    text: str | None = Field(None, description="text column (text features)")
    features: list[str] | None = Field(None, description="numeric feature columns (default: every numeric column)")
    vectors: str | None = Field(None, description="a column of precomputed embeddings (lists of numbers) as the features")
    embeddings: Path | None = Field(None, description="precomputed embeddings as the features: .npy (rows in order), "
                                    ".npz (X, optional id) or a table with an id column (docs/text.md)")
    label: str | None = Field("label", description="label column: seed labels in the pool, required in eval")
    truth: str | None = Field(None, description="ground truth that only the simulated crowd reads")
    sensitive: str | None = Field(None, description="boolean column: personal or sensitive items (confidential backends only)")
    disturbing: str | None = Field(None, description="boolean column: items that need a content warning")
    _written: dict[str, str] = PrivateAttr(default_factory=dict)  # relative paths as the config file gives them

    @field_validator("path", "embeddings")
    @classmethod
    def _expanded(cls, value: Path | None) -> Path | None:
        if value is not None:
            unexpanded_path(str(value))
        return value

    @model_validator(mode="after")
    def _text_or_features(self) -> Source:
        if self.text and self.features:
            raise ValueError("give either 'text' or 'features', not both")
        if self.vectors and self.embeddings:
            raise ValueError("give either 'vectors' (a column) or 'embeddings' (a file), not both")
        if (self.vectors or self.embeddings) and self.features:
            raise ValueError("'vectors' / 'embeddings' are the features: remove 'features'")
        return self


class Data(_Strict):
    """The pool to label, seed labels, and the evaluation set."""

    builtin: Literal["digits"] | None = Field(None, description="a dataset that ships with a dependency")
    pool: Source | None = None
    eval: Source | None = None
    eval_fraction: float = Field(0.25, gt=0, lt=1, description="builtin only: share held out for evaluation")
    seed_size: int = Field(0, ge=0, description="seed labels drawn from the ground truth (simulations)")
    labels: list[str] | None = Field(None, description="the label set; inferred from eval and seed labels")

    @field_validator("labels", mode="before")
    @classmethod
    def _whole_numbers_name_classes(cls, v: Any) -> Any:
        """``labels: [0, 1, 2]`` names classes as the data files do (read as text, as every label is)."""
        if isinstance(v, list):
            return [str(x) if isinstance(x, int) and not isinstance(x, bool) else x for x in v]
        return v

    @model_validator(mode="after")
    def _one_source(self) -> Data:
        if (self.builtin is None) == (self.pool is None):
            raise ValueError("give exactly one of 'builtin' or 'pool'")
        return self


class PluginRef(_Strict):
    """A plugin by name, with its parameters. A secret parameter (``token``, ``api_key``, ...:
    orchestrator/credentials.py) is given as ``{env: NAME}`` or ``{file: PATH}``, never literally."""

    name: str
    params: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _a_name_alone(cls, data: Any) -> Any:
        """``model: auto`` is ``model: {name: auto}`` (no params)."""
        return {"name": data} if isinstance(data, str) else data

    @field_validator("params")
    @classmethod
    def _no_literal_secret(cls, params: dict[str, Any]) -> dict[str, Any]:
        check_secret_params(params)
        return params


class Plateau(_Strict):
    rounds: int = Field(3, ge=1)
    min_points_per_hour: float = Field(..., ge=0)


class ForecastStop(_Strict):
    """Stop when the forecast to ``target_metric`` (a learning curve fitted to the rounds so far,
    orchestrator/reporting/forecast.py) needs more human hours or money than ``max_hours`` / ``max_cost`` leave."""

    conservative: bool = Field(True, description="compare the optimistic end of the 80% interval: stop only when even it is over budget")
    min_rounds: int = Field(4, ge=3, description="evaluated rounds the forecast needs before it may stop the loop")


class Stop(_Strict):
    """Stopping rules; the loop stops at the first that holds (or when the pool runs out)."""

    max_rounds: int | None = Field(None, ge=1)
    max_labels: int | None = Field(None, ge=1, description="human answers bought")
    max_cost: Decimal | None = Field(None, gt=0, description="requester cost, reward + fees, in the loop's currency (exact: a Decimal)")
    max_hours: float | None = Field(None, gt=0, description="human hours, unpaid overhead included")
    target_metric: float | None = Field(None, ge=0, le=1, description="stop once the metric (accuracy, macro F1: 0 to 1) reaches this")
    plateau: Plateau | None = None
    forecast: ForecastStop | None = Field(None, description="stop when the forecast to target_metric exceeds the budget left")

    @field_validator("max_cost", mode="before")
    @classmethod
    def _exact_money(cls, value: Any) -> Any:
        """Money is exact: the amount as written (``10.0`` is 10.000000, never a float's 9.99999...)."""
        return _money(value, "stop.max_cost")

    @model_validator(mode="after")
    def _forecast_needs_target_and_budget(self) -> Stop:
        if self.forecast is not None and (self.target_metric is None or (self.max_hours is None and self.max_cost is None)):
            raise ValueError("stop.forecast needs stop.target_metric and a budget to compare with (stop.max_hours or stop.max_cost)")
        return self

    def is_empty(self) -> bool:
        return all(getattr(self, f) is None for f in type(self).model_fields)


class PseudoLabels(_Strict):
    """Label spreading over the pool's nearest-neighbour graph; the surest unlabeled items train the
    model with their spread label (never stored, never paid). Numeric pools only. By default
    every unlabeled item whose spread label the model (fitted on the human labels alone) also
    predicts is kept, and the strategy queries with that human-label fit."""

    share: float = Field(1.0, gt=0, le=1, description="share of the unlabeled pool, surest first, added to training")
    neighbors: int = Field(10, ge=1, description="neighbours per item in the graph")
    alpha: float = Field(0.2, gt=0, lt=1, description="label spreading's clamping factor (0: keep the given labels)")
    max_pool: int | None = Field(None, ge=2, description="largest pool to build the graph for (None: any pool; auto "
                                 "keeps to half the machine's memory)")
    max_rows: int | None = Field(20_000, ge=1, description="most pseudo-labeled items in a round's fit, surest first "
                                 "(bounds the second fit's time on a large pool; None: no limit)")
    fit_tol: Annotated[float, Field(gt=0)] | Literal["auto"] | None = Field(
        "auto", description="the pseudo-labeled fit's solver tolerance (the model's ``tol``, or its pipeline step's; it "
        "starts from the last round's fit); auto: at most 0.00001 for logistic regression (at its own 0.0001 the warm-"
        "started fit stops a few iterations in, short of converged), the model's own for other models; None: the model's own")
    fit_C: Annotated[float, Field(gt=0)] | Literal["scaled"] | None = Field(
        "scaled", description="the pseudo-labeled fit's inverse regularisation (the model's ``C``, or its pipeline step's; "
        "the fit the strategy queries with keeps the model's own); scaled: the model's own times human labels / rows "
        "trained on, so the prior weighs against the loss as on the human labels alone (a C that is not a number is left "
        "as it is); None: the model's own (the default before 2026-12-07; docs/strategies.md)")
    graph: Literal["auto", "exact", "approximate"] = Field(
        "auto", description="the neighbour graph: exact (brute force, n^2 distances), approximate (faiss IVF), auto: "
        "exact up to 20,000 items, approximate above")
    agree: bool = Field(True, description="keep only the items whose spread label the model (fitted on the human "
                        "labels alone) also predicts; costs a second fit per round")
    newest_check: int = Field(8, ge=0, description="0: off; N >= 1: a round evaluates and deploys its fit on human "
                              "labels instead of the pseudo-labeled one when, on the labels bought in the last N rounds, "
                              "the fits on human labels that came before them got at least 90% right and no fewer than "
                              "the pseudo-labeled fits (with agree; no pick changes; docs/benchmarks/log.md, 2026-12-05)")
    check_folds: int = Field(0, ge=0, description="0: off; N >= 2: each round, use pseudo-labels only if, fitted on N-1 "
                             "folds of the human labels, they get at least as many of the held-out fold right (costs "
                             "about N more rounds of fitting; measured in docs/benchmarks/log.md, 2026-12-04)")

    @field_validator("check_folds")
    @classmethod
    def _folds(cls, v: int) -> int:
        if v == 1:
            raise ValueError("check_folds must be 0 (off) or at least 2: one fold leaves no labels to fit on")
        return v


class Engine(_Strict):
    """Where the pool is scored: ``local`` (chunked, in this process) or ``ray`` (actors on a
    Ray cluster at ``address``; None starts a local Ray). Both pick exactly the same items."""

    name: Literal["local", "ray"] = "local"
    address: str | None = Field(None, description="Ray cluster address, e.g. ray://head:10001 (ray only)")
    num_workers: int = Field(2, ge=1, description="scoring actors (ray only)")
    range_rows: int = Field(262_144, ge=1, description="pool rows per actor task (ray only)")
    threads: int | None = Field(None, ge=1, description="threads scoring pool chunks (local only; None: one per core, "
                                "up to 8; 1 for a model that is not safe to call from several threads)")


class LoopSection(_Strict):
    name: str = Field("default", min_length=1, pattern=r"^[A-Za-z0-9_.\-]+$")
    seed: int = Field(0, ge=0, le=2**63 - 1, description="seeds every random choice (a non-negative 64-bit integer)")
    purpose: str = Field(..., min_length=10, description="one plain sentence shown to every worker")
    batch_size: int = Field(10, ge=1)
    redundancy: int = Field(1, ge=1, description="answers per item (the minimum, with adaptive)")
    adaptive: Adaptive | None = Field(None, description="ask for more answers while they disagree")
    weight_by_confidence: bool = Field(False, description="train on aggregated labels weighted by their confidence")
    sensitive: Sensitive = Sensitive()
    gold: Gold | None = Field(None, description="gold questions from the seed labels: per-worker accuracy")
    relabel: Relabel | None = Field(None, description="let doubtful labeled items compete with new ones")
    content_warning: ContentWarning | None = Field(None, description="warn, allow opt-out and cap exposure on flagged items")
    metric: Literal["accuracy", "macro_f1"] = "accuracy"
    cold_start_labels: Annotated[int, Field(ge=0)] | Literal["auto"] = Field(
        "auto", description="pick by pool coverage (model-free cold start: typical items of the pool's clusters; random "
        "for a text pool) while fewer than this many items are labeled, then by the strategy; auto: on a pool with numeric "
        "features, the first round (continuous mode: the first wave) and every later round while fewer than two items a "
        "class are labeled; 0: only while no model exists")
    pseudo_labels: PseudoLabels | Literal["auto"] | None = Field(
        "auto", description="train on label-spreading pseudo-labels too (a training change, see docs/strategies.md); "
        "auto: with the defaults on a numeric pool that fits half the machine's memory, off otherwise; null: off")
    blas_threads: Annotated[int, Field(ge=1)] | Literal["auto"] | None = Field(
        "auto", description="threads of the math libraries (BLAS, OpenMP) during a round: a count; auto: a "
        "quarter of the cores, 1 to 4 (measured, docs/benchmarks.md); null: the libraries' own choice")
    chunk_size: int = Field(65536, ge=1, description="pool rows scored at once")
    engine: Engine = Engine()
    poll_seconds: float = Field(2.0, gt=0, description="wait between collects while answers are pending")
    round_timeout_s: float | None = Field(None, gt=0, description="give up on unanswered tasks after this")
    mode: Literal["rounds", "continuous"] = Field(
        "rounds", description="rounds: one batch at a time; continuous: the backend's queue stays topped up and the "
        "model refits every refit_every answers (orchestrator/continuous.py)")
    lookahead: int | None = Field(None, ge=1, description="continuous: open tasks kept in the backend's queue "
                                  "(null: twice the backend's active workers, else batch_size)")
    refit_every: int = Field(10, ge=1, description="continuous: refit after this many new answers")
    lookahead_ramp: bool = Field(False, description="continuous, lookahead null: start at the active workers' count "
                                 "(one task in hand each) and add one per answer gathered up to twice that")


class Config(_Strict):
    loop: LoopSection
    data: Data
    model: PluginRef = PluginRef(name="auto")
    strategy: PluginRef = PluginRef(name="margin-coverage")
    backend: PluginRef = PluginRef(name="simulated")
    aggregator: PluginRef = PluginRef(name="majority")
    stop: Stop = Stop()
    ledger: str = Field("sqlite:///clicloop.db", description="SQLAlchemy URL of the ledger")
    worker_salt: str | None = Field(None, min_length=8, description="key of worker pseudonyms (else $CLICLOOP_WORKER_SALT, "
                                    "else a key file outside the ledger: orchestrator/ledger/keys.py)")
    wage_floor: WageFloor = WageFloor()
    plugins: list[str] = Field(default_factory=list, description="extra plugins to load: module names, or .py files "
                               "(relative to the config file)")
    _written: dict[str, Any] = PrivateAttr(default_factory=dict)  # relative paths as the config file gives them

    @field_validator("ledger")
    @classmethod
    def _ledger_url(cls, value: str) -> str:
        if not value.startswith(("sqlite", "postgresql")):
            raise ValueError("the ledger is a SQLite or PostgreSQL URL: sqlite:///clicloop.db or "
                             "postgresql+psycopg://user@host/db")
        if value.startswith("sqlite"):
            unexpanded_path(value.split(":///", 1)[-1])
        return value

    @model_validator(mode="after")
    def _checks(self) -> Config:
        adaptive = self.loop.adaptive
        if adaptive is not None and self.loop.redundancy < 2:
            raise ValueError("loop.adaptive needs loop.redundancy >= 2: agreement is measured between the first answers")
        if adaptive is not None and adaptive.max_answers < self.loop.redundancy:
            raise ValueError(f"loop.adaptive.max_answers ({adaptive.max_answers}) is below loop.redundancy ({self.loop.redundancy})")
        if self.loop.gold is not None and self.data.seed_size == 0 and not (self.data.pool and self.data.pool.label):
            raise ValueError("loop.gold needs items with known answers: set data.seed_size or give seed labels in the pool")
        if self.loop.mode == "continuous":
            extra = [name for name, on in (("loop.adaptive", adaptive is not None), ("loop.gold", self.loop.gold is not None),
                                           ("loop.relabel", self.loop.relabel is not None)) if on]
            if self.loop.redundancy != 1 or extra:
                raise ValueError("loop.mode continuous asks one answer per item: set loop.redundancy to 1 and leave out "
                                 f"{', '.join(extra) or 'adaptive, gold and relabel'} (or use loop.mode rounds)")
        if self.stop.is_empty():
            raise ValueError("add at least one stop rule (stop.max_rounds, max_labels, max_cost, max_hours, target_metric)")
        per_batch = self.loop.batch_size * self.loop.redundancy
        if self.stop.max_labels is not None and self.stop.max_labels < per_batch:
            raise BudgetError(
                f"stop.max_labels={self.stop.max_labels} cannot pay for one batch of "
                f"{self.loop.batch_size} items x {self.loop.redundancy} answers = {per_batch}; "
                "raise max_labels or lower loop.batch_size",
                field="stop.max_labels",
            )
        return self


def load_config(path: str | Path) -> Config:
    """Read and validate a YAML (.yaml/.yml) or TOML (.toml) config file."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise ConfigError(f"cannot read the config file: {e.strerror}", source=str(path)) from e
    try:
        raw = tomllib.loads(text) if path.suffix.lower() == ".toml" else load_yaml(text)
    except (tomllib.TOMLDecodeError, yaml.YAMLError) as e:
        raise ConfigError(f"not valid {'TOML' if path.suffix.lower() == '.toml' else 'YAML'}: {e}", source=str(path)) from e
    if not isinstance(raw, dict):
        raise ConfigError("the file must hold a mapping of sections (loop:, data:, ...)", source=str(path))
    return config_from_dict(raw, source=str(path), base_dir=path.parent)


def config_from_dict(raw: dict[str, Any], *, source: str = "<python>", base_dir: Path | None = None) -> Config:
    """Validate a config given as a dict; relative data paths resolve against ``base_dir``."""
    try:
        config = Config.model_validate(raw)
    except BudgetError as e:
        raise BudgetError(e.detail, source=source, field=e.field) from e
    except ValidationError as e:
        raise _config_error(e, source) from e
    if base_dir is not None:
        _resolve_paths(config, base_dir)
    return config


def _config_error(e: ValidationError, source: str) -> ConfigError:
    """The first problem, an unknown field before any other (a misspelled key also makes the
    field it meant missing, and "required" alone hid the typo), with the closest required field
    it may have meant, and the fields of the other problems."""
    errors = sorted(e.errors(), key=lambda err: err["type"] != "extra_forbidden")
    first = errors[0]
    field = _dotted(first["loc"]) or None
    message = first["msg"]
    if first["type"] == "extra_forbidden":
        message = "unknown field (check its spelling; `clicloop init` writes a commented example)"
        meant = _meant(first["loc"], errors)
        if meant:
            message = f"unknown field: did you mean '{meant}'? (`clicloop init` writes a commented example)"
    if first["type"] == "missing":
        message = "this field is required"
    if first["type"] == "model_type" and "PluginRef" in message:
        message = "give a plugin's name (e.g. margin), or {name: NAME, params: {...}}"
    others = [_dotted(err["loc"]) or "the config" for err in errors[1:]]
    if others:
        message += f" (and {len(others)} more problem(s): {', '.join(others[:3])}{', ...' if len(others) > 3 else ''})"
    return ConfigError(message, source=source, field=field)


def _dotted(loc: tuple[Any, ...]) -> str:
    return ".".join(str(p) for p in loc)


def _meant(loc: tuple[Any, ...], errors: list[Any]) -> str | None:
    """A required field missing beside the unknown one at ``loc`` whose name is close to it."""
    import difflib

    missing = [str(err["loc"][-1]) for err in errors if err["type"] == "missing" and tuple(err["loc"][:-1]) == tuple(loc[:-1])]
    close = difflib.get_close_matches(str(loc[-1]), missing, n=1, cutoff=0.6)
    return close[0] if close else None


def _resolve_paths(config: Config, base_dir: Path) -> None:
    for source in (config.data.pool, config.data.eval):
        for key in ("path", "embeddings"):
            value = None if source is None else getattr(source, key)
            if value is not None and not value.is_absolute():  # the loop's fingerprint keeps them as written
                source._written[key] = str(value)
                setattr(source, key, base_dir / value)
    written = list(config.plugins)
    config.plugins = [str(base_dir / p) if p.endswith(".py") and not Path(p).is_absolute() else p for p in written]
    if config.plugins != written:  # a .py file, relative: the fingerprint keeps it as written
        config._written["plugins"] = written
    for ref in (config.model, config.strategy, config.backend, config.aggregator):
        resolve_secret_files(ref.params, base_dir)
    journal = config.backend.params.get("payments_journal")  # a file the backend writes: beside the config, as the ledger
    if isinstance(journal, str) and journal and not Path(journal).is_absolute() and not journal.startswith("~"):
        config.backend.params["payments_journal"] = str(base_dir / journal)
    prefix = "sqlite:///"
    if config.ledger.startswith(prefix) and not config.ledger.startswith(prefix + "/"):
        rel = config.ledger[len(prefix) :]
        if rel and rel != ":memory:":
            config.ledger = prefix + str((base_dir / rel).resolve())
