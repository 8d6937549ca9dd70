"""Pseudo-labels from label spreading (``loop.pseudo_labels``, on by default for numeric pools):
a training change, not a strategy. Each round the labels bought so far are spread over a
k-nearest-neighbour graph of the pool (Zhou et al. 2004, "Learning with local and global
consistency", scikit-learn's ``LabelSpreading``); the unlabeled items on which the spread label
and the model fitted on the human labels agree (``agree``; co-training's two views, Blum and
Mitchell 1998) join the model's training set with that label. They are never written to the
ledger, never paid for and never counted as labels: only the model sees them. The strategy still
scores the pool with the fit on human labels alone (:func:`fit_with_pseudo_labels`).

Measured (``docs/benchmarks/log.md``, "Pseudo-labels where label spreading and the model agree"):
with agreement it cuts the labels to 95% and 98% of full-data accuracy on digits and on
CLINC150's sentence embeddings; without it (the surest share of spread labels alone) it helps on
digits and is worse than plain margin on CLINC150.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np

from clicloop.orchestrator.config import PseudoLabels
from clicloop.orchestrator.errors import ConfigError
from clicloop.orchestrator.training.graph import EXACT_MAX, graph_key, graph_params, neighbour_graph
from clicloop.orchestrator.training.models import predicted_labels
from clicloop.orchestrator.training.newest import choose
from clicloop.orchestrator.training.spreading import (columns_for, label_matrix, normalise, normalised_graph, respread,
                                                       spread, surest, top_share)
from clicloop.orchestrator.training.warmstate import (Generations, fit_regularisation, fit_tolerances, labels_key,
                                                       warm_from)

log = logging.getLogger(__name__)

RESPREAD_MAX = 2_000  # labels changed since the last call, at most, to move the last solution rather than spread afresh


def resolve_pseudo_labels(settings: Any, pool_kind: str, n_items: int, n_features: int = 0, n_classes: int = 0) -> Any:
    """``loop.pseudo_labels`` as the loop will run it: ``"auto"`` becomes the default settings on a
    numeric pool whose graph and spreading fit the memory bound (:func:`memory_limit`), and off
    (None) on a text pool or one over the bound; the log line says which and why. An explicit
    section is checked (:func:`check_pseudo_labels`) and returned."""
    if settings == "auto":
        default = PseudoLabels()
        if pool_kind == "text":
            log.info("loop.pseudo_labels: auto is off for this pool (text, %d items): spreading needs numeric "
                     "features", n_items)
            return None
        if not _graph_available(default, n_items):
            log.info("loop.pseudo_labels: auto is off for this pool (numeric, %d items): over %d items its graph is "
                     "approximate, from faiss, which is not installed: pip install 'clicloop[ann]'", n_items, EXACT_MAX)
            return None
        need, limit = memory_need(default, n_items, n_features, n_classes), memory_limit()
        method = "exact" if graph_params(n_items, default.neighbors, default.graph)["method"] == "exact" else \
            "approximate, faiss IVF"
        if need > limit:
            log.info("loop.pseudo_labels: auto is off for this pool (numeric, %d items): its graph and spreading "
                     "need about %.1f GB, over the limit of %.1f GB (half this machine's memory)", n_items, need / 1e9,
                     limit / 1e9)
            return None
        log.info("loop.pseudo_labels: auto is on for this pool (numeric, %d items): %d-nearest-neighbour graph (%s), "
                 "about %.1f GB of the limit of %.1f GB (half this machine's memory)", n_items, default.neighbors,
                 method, need / 1e9, limit / 1e9)
        return default
    check_pseudo_labels(settings, pool_kind, n_items)
    return settings


def memory_need(settings: Any, n_items: int, n_features: int, n_classes: int) -> int:
    """Bytes the pseudo-labels add at their peak, roughly: the index's float32 copy of the pool,
    the graph and its normalised form, and seven ``n x classes`` float32 arrays (the last two
    rounds' solutions, the iteration's, the confidences)."""
    copies = 4 * n_features
    graph = settings.neighbors * (8 + 4 + 4 + 8)
    spreading = 7 * 4 * max(n_classes, 2)
    return int(n_items * (copies + graph + spreading))


def memory_limit() -> int:
    """Half this machine's physical memory, in bytes (the bound ``auto`` keeps to)."""
    import os

    try:
        return int(os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")) // 2
    except (ValueError, OSError, AttributeError):  # no sysconf (Windows): assume 8 GB
        return 4 << 30


def check_pseudo_labels(settings: Any, pool_kind: str, n_items: int) -> None:
    """Refuse, when the loop is set up, what spreading cannot do: text pools, pools over ``max_pool``."""
    if settings is None:
        return
    if pool_kind == "text":
        raise ConfigError("loop.pseudo_labels spreads labels over a nearest-neighbour graph of numeric features; "
                          "this pool is text: give it feature columns (e.g. embeddings) or remove loop.pseudo_labels",
                          field="loop.pseudo_labels")
    if not _graph_available(settings, n_items):
        raise ConfigError(f"loop.pseudo_labels: this pool has {n_items:,} items, over {EXACT_MAX:,}, so its graph is "
                          "approximate, from faiss, which is not installed: pip install 'clicloop[ann]', or set "
                          "loop.pseudo_labels.graph: exact (n^2 distances)", field="loop.pseudo_labels.graph")
    if settings.max_pool is not None and n_items > settings.max_pool:
        raise ConfigError(f"loop.pseudo_labels builds a {settings.neighbors}-nearest-neighbour graph of the whole pool; "
                          f"this pool has {n_items:,} items, over max_pool={settings.max_pool:,}: raise or remove "
                          f"loop.pseudo_labels.max_pool if that is affordable, or remove loop.pseudo_labels",
                          field="loop.pseudo_labels.max_pool")


def state_name(ledger: Any, loop_name: str) -> str:
    """The name a loop's pseudo-label state is kept under (beside its pool's graph): one per
    ledger and loop, so other loops on the same pool never start from it."""
    import hashlib

    return hashlib.sha256(f"{ledger}\0{loop_name}".encode()).hexdigest()[:16]


def approximate_available() -> bool:
    """Whether faiss (the ``ann`` extra) is installed."""
    import importlib.util

    return importlib.util.find_spec("faiss") is not None


def _graph_available(settings: Any, n_items: int) -> bool:
    return graph_params(n_items, settings.neighbors, settings.graph)["method"] == "exact" or approximate_available()


class PseudoLabeler:
    """Spreads labels over the pool; ``share`` of the unlabeled items, surest first, are returned
    (at most ``max_rows`` of them: the second fit's cost stays bounded on a large pool).

    The graph (:func:`~clicloop.orchestrator.training.graph.neighbour_graph`: exact for small
    pools, approximate above, cached on disk with ``cache``; its searches on the Ray ``engine`` if
    one is given) is built on the first call and kept in
    ``graph_``: the pool does not change during a loop. Each call starts spreading from the last
    call's solution (``spread_``), and the pseudo-labeled fit from the last one (``trained_``)."""

    def __init__(self, share: float = 0.75, neighbors: int = 10, alpha: float = 0.2, max_iter: int = 100,
                 agree: bool = False, check_folds: int = 0, graph: str = "auto", cache: bool = True,
                 max_rows: int | None = None, engine: Any = None, state: str | None = None,
                 fit_tol: float | str | None = None, newest_check: int = 0, fit_C: float | str | None = None):
        self.share = share
        self.neighbors = neighbors
        self.alpha = alpha
        self.max_iter = max_iter
        self.agree = agree
        self.check_folds = check_folds
        self.graph = graph
        self.cache = cache
        self.max_rows = max_rows
        self.fit_tol = fit_tol
        self.fit_C = fit_C
        self.newest_check = newest_check
        self.engine = engine
        self.state = state

    def pseudo_labels(self, X: Any, labeled: np.ndarray, labels: np.ndarray,
                      remember: bool = True) -> tuple[np.ndarray, np.ndarray]:
        """``(rows, their spread labels)`` for unlabeled rows of ``X``; ``labeled`` are the rows
        with ``labels``. Deterministic: the same inputs and the same earlier rounds give the same
        pseudo-labels, in one process or across a resume (:mod:`.warmstate`). ``remember``:
        start from, and record, the rounds' solutions (False: spread afresh, record nothing)."""
        S = self._graph(X)
        classes, codes = np.unique(labels, return_inverse=True)
        key = labels_key(labeled, labels)
        base = self._state().base(key) if remember else None
        self.spread_, self.n_iter_ = self._spread(S, labeled, classes, codes, base)
        if remember:
            self._state().record(key, self.spread_, classes, np.asarray(labeled), codes)
            self.base_ = base
        unlabeled = np.setdiff1d(np.arange(S.shape[0]), labeled)
        if not unlabeled.size:
            return unlabeled, classes[:0]
        confidence = top_share(self.spread_)[unlabeled]
        keep = int(round(self.share * unlabeled.size))
        if self.max_rows is not None:
            keep = min(keep, self.max_rows)
        order = surest(confidence, keep)
        return unlabeled[order], classes[normalise(self.spread_[unlabeled[order]]).argmax(axis=1)]

    def _spread(self, S: Any, labeled: np.ndarray, classes: np.ndarray, codes: np.ndarray,
                base: dict[str, Any] | None) -> tuple[np.ndarray, int]:
        """``(F, iterations)`` for these labels: from the ``base`` generation's ``F``, moved by what
        changed (:func:`respread`) when few labels did; else spread afresh (:func:`spread`), from
        the base's ``F`` where there is one."""
        n = S.shape[0]
        start = None if base is None else columns_for(base["F"], base["classes"], classes)
        if start is None or not np.isin(base["classes"], classes).all():  # first round, or a class gone: afresh
            return spread(S, labeled, codes, classes.size, self.alpha, self.max_iter, start=start)
        where = {c: j for j, c in enumerate(classes.tolist())}
        cols = np.array([where[c] for c in base["classes"].tolist()], dtype=np.int64)
        change = label_matrix(labeled, codes, n, classes.size) - label_matrix(base["rows"], cols[base["codes"]], n,
                                                                               classes.size)
        change.eliminate_zeros()
        if change.nnz > max(RESPREAD_MAX, n // 100):
            return spread(S, labeled, codes, classes.size, self.alpha, self.max_iter, start=start)
        return start, respread(S, start, change, self.alpha, self.max_iter)

    def _graph(self, X: Any) -> Any:
        """``S``, the normalised graph spreading runs on (built or loaded once)."""
        if getattr(self, "graph_", None) is None:
            params = graph_params(len(X), self.neighbors, self.graph)
            self.key_ = graph_key(np.asarray(X), params) if self.cache else None
            self.graph_ = normalised_graph(neighbour_graph(X, self.neighbors, self.graph, cache=self.cache,
                                                           engine=self.engine, key=self.key_))
        return self.graph_

    def _state(self) -> Generations:
        """The rounds' solutions: on disk beside the graph for a loop (``state``), else in memory."""
        if getattr(self, "state_", None) is None:
            folder = None
            if self.state and self.cache and getattr(self, "key_", None):
                from clicloop.orchestrator.cachedir import cache_dir

                folder = cache_dir("graphs") / f"{self.key_}.{self.state}"
            self.state_ = Generations(folder)
            if getattr(self, "fresh_", False):
                self.state_.clear()
        return self.state_

    def start_over(self) -> None:
        """The loop starts at round 0 (a new ledger, or ``--restart``): state saved by an earlier
        run under the same ledger and loop name must not warm-start it (same seed, same ledger)."""
        self.fresh_ = True
        if getattr(self, "state_", None) is not None:
            self.state_.clear()

    def remember_check(self, check: dict[str, Any]) -> None:
        """Keep this round's human-label fit and newest-label tallies (:mod:`.newest`) for the next round's check."""
        self._state().record_check(check)

    def remember_trained(self, trained: Any) -> None:
        """Keep this round's pseudo-labeled fit: the next round's starts from it where the model can
        warm-start (:func:`warm_copy`), and its newest-label check scores it (:mod:`.newest`)."""
        self._state().record_trained(trained)


FEW_LABELS_WARNING = "The number of unique classes is greater than 50% of the number of samples"


def fit_with_pseudo_labels(model: Any, labeler: PseudoLabeler | None, X: Any, idx: np.ndarray, y: np.ndarray,
                           fit_kwargs: dict[str, Any]) -> tuple[Any, Any]:
    """``(trained, query)`` (:func:`fit_in_two`), both fitted now."""
    query, deploy = fit_in_two(model, labeler, X, idx, y, fit_kwargs)
    return deploy(), query


def fit_in_two(model: Any, labeler: PseudoLabeler | None, X: Any, idx: np.ndarray, y: np.ndarray,
               fit_kwargs: dict[str, Any]) -> tuple[Any, Callable[[], Any]]:
    """``(query, deploy)``: ``query`` is fitted now, ``deploy()`` fits and returns the trained model
    (:func:`_fit_query`, :func:`_fit_trained`), so a loop can send out the tasks ``query`` chose
    before it fits the model it evaluates and deploys. Both without scikit-learn's warning that
    many classes and few labels look like a regression target (:func:`_few_labels_quiet`)."""
    with _few_labels_quiet():
        query, labeler = _fit_query(model, labeler, X, idx, y, fit_kwargs)

    def deploy() -> Any:
        if labeler is None:
            return query
        with _few_labels_quiet():
            return _fit_trained(query, labeler, X, idx, y, fit_kwargs)

    return query, deploy


@contextmanager
def _few_labels_quiet() -> Iterator[None]:
    """Silence scikit-learn's warning that many classes and few labels look like a regression
    target: an active-learning loop starts that way on purpose (150 intents, 200 seed labels), and
    it came every round until the labels doubled."""
    import warnings

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=FEW_LABELS_WARNING, category=UserWarning)
        yield


def _fit_query(model: Any, labeler: PseudoLabeler | None, X: Any, idx: np.ndarray, y: np.ndarray,
               fit_kwargs: dict[str, Any]) -> tuple[Any, PseudoLabeler | None]:
    """Fit the model the strategy scores the pool with; returns it and the labeler the trained
    model still needs (None: the query model is the trained one).

    ``query`` is the fit on human labels alone whenever there is one (``agree``, the default): a
    pool item that trained a model with its own pseudo-label looks surer to that model than the
    human labels warrant, so uncertainty is measured without them (``docs/benchmarks/log.md``,
    "Querying with the human-label fit"). Without ``agree`` there is no such fit: both are the
    pseudo-labeled model. With ``labeler.check_folds``, a round whose pseudo-labels did worse on
    held-out human labels (:func:`pseudo_labels_help`) trains on the human labels alone."""
    if labeler is not None and labeler.check_folds and not pseudo_labels_help(copy.deepcopy(model), labeler, X, idx, y,
                                                                               fit_kwargs):
        labeler = None  # they did not help on held-out labels this round: human labels only
    if labeler is not None and not labeler.agree:
        X2, y2, kwargs = with_pseudo_labels(labeler, X, idx, y, fit_kwargs)
        model.fit(X2, y2, **kwargs)
        return model, None
    model.fit(X[idx], y, **fit_kwargs)
    return model, labeler


def _fit_trained(model: Any, labeler: PseudoLabeler, X: Any, idx: np.ndarray, y: np.ndarray,
                 fit_kwargs: dict[str, Any]) -> Any:
    """The pseudo-labeled fit: a copy of ``model`` (fitted on the human labels) trained on the
    rows whose spread label it agrees with too; ``model`` itself where none agreed."""
    X2, y2, kwargs = with_pseudo_labels(labeler, X, idx, y, fit_kwargs, model)
    if len(y2) == len(y):  # no pseudo-label agreed: the human-label fit is the trained model
        return choose(labeler, model, model, X, idx, y)
    trained = warm_copy(labeler, model, y2)
    params = fit_tolerances(trained, labeler.fit_tol) | fit_regularisation(model, labeler.fit_C, len(y), len(y2))
    if params:  # a model is anything with fit / predict_proba / classes_: set_params is optional
        trained.set_params(**params)
    trained.fit(X2, y2, **kwargs)
    labeler.remember_trained(trained)
    return choose(labeler, model, trained, X, idx, y)


def warm_copy(labeler: PseudoLabeler, model: Any, y: np.ndarray) -> Any:
    """The model to fit on the pseudo-labeled set: the last round's pseudo-labeled fit (the one
    before the labels ``labeler`` spread last), set to start from its own coefficients
    (:func:`.warmstate.warm_from`); otherwise a fresh copy of ``model``."""
    base = getattr(labeler, "base_", None)
    warm = warm_from(None if base is None else base.get("trained"), model, y)
    return copy.deepcopy(model) if warm is None else warm


def pseudo_labels_help(template: Any, labeler: PseudoLabeler, X: Any, idx: np.ndarray, y: np.ndarray,
                       fit_kwargs: dict[str, Any]) -> bool:
    """Whether pseudo-labels help on held-out human labels: ``labeler.check_folds`` folds of the
    labeled rows; for each, a copy of ``template`` (unfitted) is fitted on the other folds with and
    without pseudo-labels (held-out rows never get one), and both predict the fold. True unless the
    pseudo-labeled fits get fewer held-out rows right."""
    folds = labeler.check_folds
    fold_of = np.empty(idx.size, dtype=np.int64)
    fold_of[np.random.default_rng(idx.size).permutation(idx.size)] = np.arange(idx.size) % folds
    right = np.zeros(2, dtype=np.int64)
    for f in range(folds):
        test, train = idx[fold_of == f], idx[fold_of != f]
        if not test.size or np.unique(y[fold_of != f]).size < 2:
            continue
        kwargs = {key: w[fold_of != f] for key, w in fit_kwargs.items()}
        human = copy.deepcopy(template)
        human.fit(X[train], y[fold_of != f], **kwargs)
        X2, y2, kw2 = with_pseudo_labels(labeler, X, train, y[fold_of != f], kwargs, human, exclude=test, remember=False)
        pseudo = copy.deepcopy(template)
        pseudo.fit(X2, y2, **kw2)
        for j, m in enumerate((human, pseudo)):
            right[j] += int((predicted_labels(m, X[test]) == y[fold_of == f].astype(str)).sum())
    log.debug("pseudo-label check: %d held-out labels right without, %d with", right[0], right[1])
    return bool(right[1] >= right[0])


def with_pseudo_labels(labeler: PseudoLabeler, X: Any, idx: np.ndarray, y: np.ndarray,
                       fit_kwargs: dict[str, Any], model: Any = None,
                       exclude: np.ndarray | None = None, remember: bool = True) -> tuple[Any, np.ndarray, dict[str, Any]]:
    """The training set with the pseudo-labeled rows appended (weight 1 where weights are used).

    With ``labeler.agree``, ``model`` (fitted on the human labels alone) must be given: only the
    rows whose spread label is also the model's prediction are kept, two views of the pool that
    must agree (co-training, A. Blum and T. Mitchell, COLT 1998; tri-training, Z.-H. Zhou and
    M. Li, IEEE TKDE 2005)."""
    rows, labels = labeler.pseudo_labels(X, idx, y, remember=remember)
    if exclude is not None and exclude.size:
        keep = ~np.isin(rows, exclude)
        rows, labels = rows[keep], labels[keep]
    if labeler.agree and rows.size:
        if model is None:
            raise ValueError("agreeing pseudo-labels need the model fitted on the human labels")
        same = predicted_labels(model, X[rows]) == labels.astype(str)
        rows, labels = rows[same], labels[same]
    if not rows.size:
        return X[idx], y, fit_kwargs
    both = np.concatenate([idx, rows])
    kwargs = {key: np.concatenate([w, np.ones(rows.size)]) for key, w in fit_kwargs.items()}
    return X[both], np.concatenate([y, labels.astype(y.dtype)]), kwargs
