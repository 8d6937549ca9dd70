"""Checks the loop makes before its first round, so a config that cannot work fails when it is
loaded, saying what to change, and never halfway through a run: a refused run registers nothing
in the ledger and buys nothing. And the fingerprint that ties a loop to its config."""

from __future__ import annotations

import hashlib
import json
import logging
import math
import numbers
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

import numpy as np

from clicloop.orchestrator.config import Config
from clicloop.orchestrator.credentials import public_config
from clicloop.orchestrator.errors import BudgetError, ConfigError, DataError
from clicloop.orchestrator.ledger.money import exact

log = logging.getLogger("clicloop")


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


def plugin_manager_for(cfg: Any, given: Any = None) -> Any:
    """The loop's plugin manager: ``given`` (``Loop(plugin_manager=...)``) with the config's
    ``plugins`` added, else a new one; a :class:`ConfigError` if ``cfg`` is not a Config."""
    from clicloop.orchestrator.plugins import add_modules, get_plugin_manager

    if not isinstance(cfg, Config):
        raise ConfigError(f"Loop takes a Config, not {type(cfg).__name__}: build it with load_config(path) or "
                          "config_from_dict(dict)")
    if given is None:
        return get_plugin_manager(cfg.plugins)
    add_modules(given, cfg.plugins)
    return given


def check_protocols(cfg: Config, model: Any, backend: Any, given: tuple[bool, bool]) -> None:
    """The model and the backend have the methods the loop calls (a model without
    ``predict_proba`` failed mid-run, after its round was registered, with ``strategy: random``),
    and the backend accepts its params (its optional ``check_params()``). ``given``: whether each
    was handed to ``Loop`` rather than named in the config."""
    for part, obj, needs, by_hand, field in (
            ("model", model, ("fit", "predict_proba"), given[0], "model.name"),
            ("backend", backend, ("open", "dispatch", "collect", "close", "expected_cost_per_task"), given[1], "backend.name")):
        missing = [m for m in needs if not callable(getattr(obj, m, None))]
        if missing:
            what = f"the {part} given to Loop ({type(obj).__name__})" if by_hand else f"{part} {getattr(cfg, part).name!r}"
            hint = (" (the loop evaluates, pseudo-labels and queries with class probabilities: wrap it, e.g. "
                    "CalibratedClassifierCV(LinearSVC()))" if part == "model" else " (the Backend protocol, clicloop.orchestrator.types)")
            raise ConfigError(f"{what} has no {', '.join(missing)}{hint}", field=field)
    check = getattr(backend, "check_params", None)
    if callable(check):  # its params, before the ledger exists (a bad one left an empty ledger file)
        check()


def check_model(cfg: Config, model: Any, X: Any, labels: Sequence[str]) -> None:
    """The model accepts its params and the pool's kind of input: :func:`trial_fit` on a few pool
    rows, so a bad value (``C: abc``) or a numeric model on a text pool fails now, not after the
    first answers are bought."""
    trial_fit(model, cfg.model.name, X, labels, field="model")


def trial_fit(model: Any, name: str, X: Any, labels: Sequence[str], *, field: str) -> None:
    """Fit ``model`` (unfitted, or a copy) on up to 4 rows of ``X`` with made-up ``labels``: a
    ConfigError naming ``field`` when it refuses a parameter, or when ``X`` is text and the model
    needs numbers. Only those fail here; anything else a fit this small may hit (too few rows,
    one class) is left to the real fit."""
    import numpy as np

    try:
        from sklearn.utils._param_validation import InvalidParameterError
    except ImportError:  # pragma: no cover - scikit-learn is a dependency; a future one may move it
        InvalidParameterError = ()  # type: ignore[assignment,misc]  # noqa: N806
    rows = np.arange(min(len(X), 4))
    sample = X[rows] if hasattr(X, "shape") else [X[i] for i in rows]
    try:
        model.fit(sample, np.array([labels[i % len(labels)] for i in rows], dtype=object).astype(str))
    except InvalidParameterError as e:
        raise ConfigError(f"model {name!r} refuses its params: {e}", field=f"{field}.params") from e
    except (ValueError, TypeError) as e:
        if _is_text(sample) and "could not convert string" in str(e):
            raise ConfigError(f"model {name!r} needs numeric features and this data is text; use a text model "
                              "(tfidf-logreg, or sentence-embedding with pip install 'clicloop[text]'; model: auto "
                              "picks one), or give numeric features (feature columns or embeddings)",
                              field=f"{field}.name" if field == "model" else field) from e
    except Exception:  # noqa: BLE001 - too few rows, one class, ...: the real fit, on real labels, decides
        return


def _is_text(sample: Any) -> bool:
    import numpy as np

    values = np.asarray(sample, dtype=object).ravel()
    return values.size > 0 and all(isinstance(v, str) for v in values)


def warn_inert_relabel(cfg: Config) -> None:
    """A relabel setting that can never ask for an answer is said (not refused: a loop begun with it resumes)."""
    if cfg.loop.relabel is not None and cfg.loop.relabel.max_answers <= cfg.loop.redundancy:
        log.warning("loop.relabel.max_answers (%d) is not above loop.redundancy (%d): every item has that many answers "
                    "already, so relabeling never asks for another", cfg.loop.relabel.max_answers, cfg.loop.redundancy)


def check_aggregator(cfg: Config, aggregator: Any, labels: Sequence[str]) -> None:
    """The aggregator works with its params: a trial on made-up votes (three workers on two
    items, on a copy of it), so a bad value (crowd-kit's ``n_restarts: 0``) fails now, not after
    the first round's answers are bought. Its output is checked as a round's would be."""
    import copy

    from clicloop.orchestrator.crowd.quality import checked_consensus
    from clicloop.orchestrator.errors import AggregatorError, ClicloopError
    from clicloop.orchestrator.types import Vote

    votes = [Vote(item, worker, labels[(i + j) % len(labels)] if j < 2 else labels[i % len(labels)])
             for i, item in enumerate(("trial-a", "trial-b")) for j, worker in enumerate(("w1", "w2", "w3"))]
    try:
        trial = copy.deepcopy(aggregator)  # a stateful aggregator never meets the made-up workers
    except (TypeError, copy.Error):  # it holds a lock or a client: no trial, the real rounds decide
        return
    try:
        checked_consensus(trial.aggregate(votes, np.random.default_rng(0)), votes, labels, trial)
    except AggregatorError as e:  # its output: the code's fault, not the params'
        raise AggregatorError(f"on a trial of 6 made-up answers (items trial-a, trial-b), before any answer is bought: "
                              f"{e}") from e
    except LookupError:  # an aggregator that knows the real items (a prior per item): the real rounds decide
        return
    except (ClicloopError, ValueError, TypeError, ArithmeticError, NameError) as e:
        raise ConfigError(f"aggregator {cfg.aggregator.name!r} fails with its params on a trial of 6 made-up answers "
                          f"(items trial-a, trial-b): {e}", field="aggregator.params") from e


def check_money_budget(cfg: Config, backend: Any) -> None:
    """The backend prices a task from its params (a finite, non-negative number), and
    ``stop.max_cost`` pays for at least one batch."""
    try:
        per_task = backend.expected_cost_per_task()
    except (TypeError, ValueError, ArithmeticError) as e:
        raise ConfigError(f"backend {cfg.backend.name!r} cannot price a task from its params ({e}); give numbers "
                          "(reward, fee_rate, ...)", field="backend.params") from e
    if per_task is None:  # the backend does not know its price up front (e.g. a vendor's file exchange)
        return
    if (isinstance(per_task, bool) or not isinstance(per_task, (numbers.Real, Decimal)) or not math.isfinite(per_task)
            or per_task < 0):
        raise ConfigError(f"backend {cfg.backend.name!r} prices a task at {per_task!r}; its params (reward, fee_rate, ...) "
                          "must be finite, non-negative numbers", field="backend.params")
    stop, loop = cfg.stop, cfg.loop
    if stop.max_cost is not None and per_task:
        price = exact(per_task)
        batch = price * loop.batch_size * loop.redundancy
        if stop.max_cost < batch:
            raise BudgetError(
                f"stop.max_cost={float(stop.max_cost):g} cannot pay for one batch ({loop.batch_size} items x "
                f"{loop.redundancy} answers x {float(price):g} per task = {float(batch):g}); raise it or lower loop.batch_size",
                field="stop.max_cost",
            )


def check_floor_currency(cfg: Config, backend: Any) -> None:
    """The wage floor the backend's workers are held to is in the currency the backend pays in: a
    floor in another currency would price rewards as if it were the pay's, and no view can compare
    the two (no exchange rate is assumed)."""
    from clicloop.orchestrator.fairwork.currency import held_to

    paid_in = getattr(backend, "currency", None)
    floor = cfg.wage_floor.for_backend(cfg.backend.name)
    if isinstance(paid_in, str) and held_to(cfg.wage_floor, cfg.backend.name, paid_in) is None:
        raise ConfigError(
            f"the wage floor for backend {cfg.backend.name!r} is {floor.amount:.2f} {floor.currency}/h but it pays in "
            f"{paid_in}; give the floor in {paid_in} (wage_floor.per_backend.{cfg.backend.name}: {{amount: ..., currency: "
            f"{paid_in}}}) or pay in {floor.currency} (backend.params.currency: {floor.currency})", field="wage_floor")


def check_truth(cfg: Config, pool: Any) -> None:
    """A crowd that answers from the ground truth (the simulated ones) has it for every pool row
    it may be asked about: every row without a seed label."""
    if pool.truth is None:
        return
    import numpy as np

    empty = np.flatnonzero(pool.truth == None)  # noqa: E711 - elementwise, on an object array
    missing = [pool.ids[i] for i in empty if pool.ids[i] not in pool.seed_labels]
    if missing:
        shown = ", ".join(repr(str(i)) for i in missing[:5]) + (", ..." if len(missing) > 5 else "")
        raise DataError(f"{pool.source}: data.pool.truth ({cfg.data.pool.truth!r}) is empty in {len(missing)} row(s) "
                        f"without a seed label (ids {shown}); the {cfg.backend.name} crowd answers from it: fill it in, "
                        "or remove those rows")


def check_ledger_items(ledger: Any, loop: str, pool: Any, index: dict[str, int], row_numbered: bool = False) -> None:
    """Every item the ledger holds a task of, for a loop being resumed, is still in the pool. A pool
    without an id column names its items by row number: a resume says so, since rows moved in the
    file would carry earlier labels onto other items (nothing records their content)."""
    asked = ledger.item_ids(loop)
    if row_numbered and asked:
        fix = ("save it as .npz with an 'id' array beside 'X'" if str(pool.source).endswith(".npy")
               else "give the pool an id column")
        log.warning("%s has no id column (data.pool.id): its items are named by row number, and this resume takes the "
                    "%d item(s) the ledger holds by their row; if rows were added, removed or reordered since the last "
                    "run, their labels now belong to other items: start over with --restart, and %s",
                    pool.source, len(asked), fix)
    gone = sorted(i for i in asked if i not in index)
    if gone:
        more = f" (and {len(gone) - 1} more)" if len(gone) > 1 else ""
        raise DataError(f"{pool.source}: the ledger holds a task of item {gone[0]!r}{more} of loop {loop!r}, which is "
                        "not in the pool any more; put its row back to resume, or start the loop over with --restart")


def warn_cold_resume(loop: str, warm: Any, n_rounds: int) -> None:
    """A resume (two rounds in the ledger at least, so a fit was kept) that finds no fits the
    earlier run kept in the cache folder starts its fits afresh: from there it records another
    ledger than an uninterrupted run would. Said, since "same seed, same ledger" assumes the folder."""
    if warm is not None and n_rounds >= 2 and not warm.saved():
        log.warning("%s: resuming with no saved fits from the earlier run in the cache folder (%s: another machine, a "
                    "cleared cache or another CLICLOOP_CACHE_DIR); the next fits start afresh, so from here this ledger "
                    "will differ from an uninterrupted run's (nothing is lost or paid twice)", loop, warm.folder or "memory only")


def eval_digest(evalset: Any, dtype: Any = None) -> str | None:
    """A fingerprint of an evaluation set as the data gives it (its features, or texts, and labels,
    in order); None without one. ``dtype``: of the features as another clicloop read them (a
    float32 Parquet set was widened to float64 before 2026-12-07)."""
    if evalset is None:
        return None
    X = np.asarray(evalset.X)
    if dtype is not None and X.dtype != object:
        X = X.astype(dtype)
    h = hashlib.sha256()
    if X.dtype == object:  # texts
        h.update("\x1f".join(map(str, X.ravel())).encode("utf-8", "surrogatepass"))
    else:
        h.update(f"{X.dtype.str}{X.shape}".encode())
        h.update(np.ascontiguousarray(X).tobytes())
    h.update("\x1e".join(map(str, evalset.y)).encode("utf-8", "surrogatepass"))
    return h.hexdigest()


def check_eval_set(ledger: Any, loop: str, evalset: Any, digest: str | None) -> None:
    """A resumed loop measures on the evaluation set its earlier rounds measured on: a metric series
    on two sets compares nothing."""
    recorded = ledger.eval_digest(loop)
    if recorded is None or digest is None or recorded[1] == digest:
        return
    if np.asarray(evalset.X).dtype == np.float32 and recorded[1] == eval_digest(evalset, np.float64):
        return  # recorded by an older clicloop, which widened float32 Parquet features to float64
    raise DataError(f"{evalset.source}: the evaluation set changed since round {recorded[0]} of loop {loop!r} measured its "
                    "metric (rows, features, texts or labels); a metric measured on two sets compares nothing: restore the "
                    "file to resume, or measure the new set in a new loop (another loop.name, or --restart)")


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

    ray = RayEngine(address=engine.address, num_workers=engine.num_workers, range_rows=engine.range_rows)
    ray.check()  # connected before anything is bought
    return ray


def fingerprint(cfg: Config, *, legacy: bool = False) -> tuple[str, str]:
    """Hash of what decides a loop's results (stop rules and pay may change between resumes).
    Secrets are left out (``public_config``): never stored, and a new token resumes the same loop.
    Data files count as the config file names them, so a run from another folder resumes the same
    loop (``legacy``: the hash of loops begun before 2026-12-06, which counted the pool's path
    resolved against the folder the run started in)."""
    body = cfg.model_dump(mode="json", exclude={"stop": True, "ledger": True, "wage_floor": True, "worker_salt": True,
                                                "loop": {"engine", "blas_threads"}})  # engines pick the same items; threads: the machine's business
    body["backend"]["params"].pop("payments_journal", None)  # where payments are written down: no result depends on it
    if body["loop"].get("pseudo_labels") is None:  # a later field: left out when off, older loops keep their hash
        del body["loop"]["pseudo_labels"]
    elif isinstance(body["loop"]["pseudo_labels"], dict):
        pseudo = body["loop"]["pseudo_labels"]
        if not pseudo.get("check_folds"):
            del pseudo["check_folds"]  # likewise
        if pseudo.get("newest_check") == 8:
            del pseudo["newest_check"]  # likewise: it changes no pick, only which of two fits a round evaluates
        if pseudo.get("graph") == "auto":
            del pseudo["graph"]  # likewise
        if pseudo.get("max_rows") == 20_000:
            del pseudo["max_rows"]  # likewise (pools up to 20,000 items run as before)
        if pseudo.get("fit_tol") in (None, "auto"):
            pseudo.pop("fit_tol", None)  # likewise (auto is the default since 2026-12-07; no pick changes, only the fit evaluated)
        if pseudo.get("fit_C") in (None, "scaled"):
            pseudo.pop("fit_C", None)  # likewise (scaled is the default since 2026-12-07; no pick changes, only the fit evaluated)
        if pseudo.get("max_pool") is None:
            pseudo["max_pool"] = 100_000  # the default until 2026-12-04 (no limit since): older loops keep their hash
    if body["loop"].get("cold_start_labels") == "auto":
        # the default since 2026-12-05 (0 before): it picks otherwise than 0 in round 0, whose tasks a resume
        # reads back from the ledger once recorded, and in later rounds only while fewer than two items a class
        # are labeled (seed labels that few, as CLINC150's 200 over 150 intents); a loop begun with 0 resumes
        # under it, and on such a pool its later rounds then pick by coverage until two labels a class
        body["loop"]["cold_start_labels"] = 0
    for name, default in (("mode", "rounds"), ("lookahead", None), ("refit_every", 10), ("lookahead_ramp", False)):  # later fields: older loops keep their hash
        if body["loop"].get(name) == default:
            del body["loop"][name]
    for source in (body["data"].get("pool"), body["data"].get("eval")):  # later fields: left out when unset, likewise
        for key in ("vectors", "embeddings"):
            if isinstance(source, dict) and source.get(key) is None:
                source.pop(key, None)
    for key in ("pool", "eval"):
        source, dumped = getattr(cfg.data, key), body["data"].get(key)
        for field, written in ({} if source is None else source._written).items():
            if isinstance(dumped, dict) and not (legacy and field == "path"):
                dumped[field] = written
    if "plugins" in cfg._written:
        body["plugins"] = cfg._written["plugins"]
    body = public_config(body)
    text = json.dumps(body, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest(), text


def cold_start_reason(setting: int | str, r: int, n_labeled: int, has_model: bool, numeric: bool,
                      n_classes: int = 0, continuous: bool = False) -> str | None:
    """Why round ``r`` picks by pool coverage instead of the strategy (``loop.cold_start_labels``),
    or None. Without a model there is nothing else to pick by. ``auto`` (the default), on a pool
    with numeric features (the coverage needs them; a text pool keeps its strategy): the first
    round, whose picks the seed model alone would choose, and every later round while the
    ``n_labeled`` items are fewer than twice the ``n_classes`` classes the model knows (fewer than
    two labels a class: the low-budget regime where typical items beat uncertain ones, Hacohen et
    al., "Active Learning on a Budget", ICML 2022); in ``continuous`` mode the first version's wave
    alone (covering in later versions too cost it labels on CLINC150, docs/benchmarks/log.md,
    "Coverage while fewer than two labels a class"). Typical items of the pool's clusters give the next model and
    its pseudo-labels the classes' centres. Measured with the real loop (docs/benchmarks.md,
    2026-12-05): fewer labels to 95% on SNIPS at batches 10 and 50, on digits at batch 50 and, with
    the two-labels-a-class rule, on CLINC150 at batch 10. A count: while fewer items are labeled."""
    if not has_model:
        return "no model yet"
    if setting == "auto":
        if not numeric:
            return None
        if r == 0:
            return "the first round: the seed model alone would choose it (loop.cold_start_labels: auto)"
        if not continuous and n_labeled < 2 * n_classes:
            return f"{n_labeled} labeled, fewer than two for each of {n_classes} classes (loop.cold_start_labels: auto)"
        return None
    return f"{n_labeled} < loop.cold_start_labels labeled" if n_labeled < int(setting) else None
