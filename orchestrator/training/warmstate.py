"""What pseudo-labels carry from one round to the next: the last three rounds' spreading
solutions (``F``, their classes and labels), pseudo-labeled fits and newest-label checks (both
fits of the round and the tally the next round's check reads), in memory and, for a loop, on
disk.

Several, because a round can run twice: a loop killed after a round's fit re-fits that round when
it resumes, and in continuous mode, where the next version is fitted in the background while the
current one is in use, a loop killed then re-fits the current version and the next (three
generations: the one before the current, the current, the next). Labels seen before (a kept
generation's) start from the generation before them, as the first time; new labels start from the
newest. So a resumed loop computes what an uninterrupted one computes, bit for bit, and records
the same ledger. Deleting the folder (or resuming on another machine, or with another
``CLICLOOP_CACHE_DIR``) costs that: the next round spreads and fits afresh, so from there the loop
records another ledger than an uninterrupted run would (nothing is lost or paid twice); a resume
says so (:meth:`QueryFits.saved`).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import pickle
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

KEEP = 3  # generations kept (see the module text)
_log = logging.getLogger(__name__)
# what reading a kept file can raise: damaged, cut short, or pickled by a version of a library since changed
UNREADABLE = (OSError, ValueError, KeyError, EOFError, pickle.UnpicklingError, AttributeError, ImportError)


def labels_key(rows: np.ndarray, labels: np.ndarray) -> str:
    """A hash of which rows hold which labels."""
    h = hashlib.sha256(np.ascontiguousarray(rows, dtype=np.int64).tobytes())
    h.update("\0".join(np.asarray(labels).astype(str).tolist()).encode())
    return h.hexdigest()[:24]


class Generations:
    """The newest ``KEEP`` generations; ``folder`` (None: memory only) keeps them across processes."""

    def __init__(self, folder: Path | None = None):
        self.folder = folder

    def _gens(self) -> list[dict[str, Any]]:
        if getattr(self, "gens_", None) is None:
            self.gens_ = self._load()
        return self.gens_

    def base(self, key: str) -> dict[str, Any] | None:
        """The generation to start from for the labels ``key`` (:func:`base_of`)."""
        gens = self._gens()
        at = base_of([g["key"] for g in gens], key)
        return None if at is None else gens[at]

    def _find(self, key: str) -> int | None:
        """Where the generation of the labels ``key`` is (the newest with it), if kept."""
        return newest_with([g["key"] for g in self._gens()], key)

    def clear(self) -> None:
        """Forget every generation, on disk too: the loop starts over (round 0 of a new or
        restarted loop), so nothing from an earlier run with this ledger and name may seed it."""
        self.gens_ = []
        if self.folder is not None and self.folder.is_dir():
            for old in self.folder.iterdir():
                old.unlink(missing_ok=True)

    def record(self, key: str, F: np.ndarray, classes: np.ndarray, rows: np.ndarray, codes: np.ndarray) -> None:
        """The solution for the labels ``key``: replaces the generation that had these labels (in
        its place), else becomes the newest."""
        gens = self._gens()
        g = {"key": key, "F": F, "classes": classes, "rows": rows, "codes": codes, "trained": None, "check": None}
        at = self._find(key)
        if at is not None:
            gens[at] = g
        else:
            gens.append(g)
            del gens[:-KEEP]
        self.last_ = key
        self._save()

    def record_trained(self, trained: Any) -> None:
        """The pseudo-labeled fit of the generation recorded last."""
        gens = self._gens()
        at = self._find(getattr(self, "last_", None) or "")
        if gens:
            gens[-1 if at is None else at]["trained"] = trained
            self._save(trained_only=True)

    def record_check(self, check: dict[str, Any]) -> None:
        """The newest-label check of the generation recorded last (:func:`.newest.choose`: its human-label fit, the tallies)."""
        gens = self._gens()
        at = self._find(getattr(self, "last_", None) or "")
        if gens:
            gens[-1 if at is None else at]["check"] = check
            self._save(trained_only=True)

    def _save(self, trained_only: bool = False) -> None:
        if self.folder is None:
            return
        self.folder.mkdir(parents=True, exist_ok=True)
        for g in self.gens_:
            npz = self.folder / f"{g['key']}.npz"
            if not trained_only and not npz.exists():
                _write(self.folder, g)
            for part, end in (("trained", ".joblib"), ("check", ".check.joblib")):
                if g.get(part) is not None and not (self.folder / f"{g['key']}{end}").exists():
                    _dump(self.folder, g[part], f"{g['key']}{end}")
        _write_chain(self.folder, [g["key"] for g in self.gens_], (".npz", ".F.npy", ".joblib", ".check.joblib"))

    def _load(self) -> list[dict[str, Any]]:
        if self.folder is None or not (self.folder / "chain.json").exists():
            return []
        gens = []
        try:
            for key in json.loads((self.folder / "chain.json").read_text()):
                with np.load(self.folder / f"{key}.npz", allow_pickle=False) as z:
                    F = np.load(self.folder / f"{key}.F.npy", allow_pickle=False) if "F" not in z else z["F"]
                    g = {"key": key, "F": F, "classes": z["classes"], "rows": z["rows"], "codes": z["codes"],
                         "trained": None, "check": None}
                for part, end in (("trained", ".joblib"), ("check", ".check.joblib")):
                    if (self.folder / f"{key}{end}").exists():
                        import joblib

                        g[part] = joblib.load(self.folder / f"{key}{end}")
                gens.append(g)
        except UNREADABLE as e:  # a damaged cache, or one pickled by another library version: recomputed
            _log.warning("pseudo-labels: ignoring the saved state in %s (%s)", self.folder, e)
            return []
        return gens


def newest_with(keys: list[str], key: str) -> int | None:
    """Where the newest generation of the labels ``key`` is in ``keys`` (oldest first), if kept."""
    return next((i for i in range(len(keys) - 1, -1, -1) if keys[i] == key), None)


def base_of(keys: list[str], key: str) -> int | None:
    """Where the generation to start from for the labels ``key`` is: the one before it when it is
    kept (a round redone after a kill starts where it did the first time), else the newest."""
    at = newest_with(keys, key)
    if at is not None:
        return at - 1 if at > 0 else None
    return len(keys) - 1 if keys else None


def _write_chain(folder: Path, keys: list[str], ends: tuple[str, ...]) -> None:
    """The generations' order (``chain.json``, written atomically), then every file of a
    generation no longer kept removed (temporary files of a writer still at work stay)."""
    tmp = folder / f"chain.{os.getpid()}.tmp"
    tmp.write_text(json.dumps(keys))
    os.replace(tmp, folder / "chain.json")
    keep = {f"{key}{end}" for key in keys for end in ends} | {"chain.json"}
    for old in folder.iterdir():
        if old.name not in keep and ".tmp" not in old.name:
            old.unlink(missing_ok=True)


def _dump(folder: Path, obj: Any, name: str) -> None:
    """``obj`` into ``folder / name`` with joblib, atomically; one that cannot be pickled is only
    kept in memory (a resumed loop then recomputes without it)."""
    import joblib

    tmp = folder / f"{name}.{os.getpid()}.tmp.joblib"
    try:
        joblib.dump(obj, tmp)
    except (pickle.PicklingError, TypeError, AttributeError):
        tmp.unlink(missing_ok=True)
        return
    os.replace(tmp, folder / name)


def _write(folder: Path, g: dict[str, Any]) -> None:
    """A generation's files: ``F`` as a plain ``.npy``, written as it is in memory (an ``n x
    classes`` array in a zip would also be checksummed: 0.031 against 0.010 CPU s at 100,000 x
    100, docs/benchmarks/log.md, 2026-12-05), then its labels in the ``.npz``, which marks the
    generation complete. Each is written under a temporary name and renamed (atomic)."""
    key = g["key"]
    tmp = folder / f"{key}.{os.getpid()}.tmp.F.npy"
    np.save(tmp, g["F"], allow_pickle=False)
    os.replace(tmp, folder / f"{key}.F.npy")
    tmp = folder / f"{key}.{os.getpid()}.tmp.npz"
    np.savez(tmp, classes=g["classes"].astype(str), rows=g["rows"], codes=g["codes"])
    os.replace(tmp, folder / f"{key}.npz")


class QueryFits:
    """The fits the strategy queried with in the last ``KEEP`` rounds, keyed by their labels
    (:func:`labels_key`), so each round's fit on human labels starts from the last one's
    coefficients where the model can (``warm_start``, e.g. ``LogisticRegression``; its L-BFGS needed
    about half the iterations on CLINC150, docs/benchmarks/log.md, 2026-12-05). Chosen like
    :meth:`Generations.base`, so a round redone after a kill starts from the same fit as the first
    time and the resumed loop records the same ledger; ``folder`` (None: memory only) keeps them
    across processes, and deleting it costs a cold start (and a ledger that differs from an
    uninterrupted run's from there)."""

    def __init__(self, folder: Path | None = None):
        self.folder = folder

    def saved(self) -> bool:
        """Whether an earlier process left its fits in ``folder``, or said it had none to keep (a
        model that cannot warm-start); False when memory only."""
        return self.folder is not None and (self.folder / "chain.json").exists()

    def around(self, model: Any, idx: np.ndarray, y: np.ndarray, fit: Callable[[Any], tuple[Any, Any]]) -> tuple[Any, Any]:
        """``fit(start)`` (``(query, ...)``) for the labels ``y`` of rows ``idx``, ``start`` as
        :meth:`start` chooses (``model`` where the warm start fails: a pipeline whose features
        change from round to round); the query fit is recorded (:meth:`record`)."""
        key = labels_key(idx, y)
        start = self.start(model, key, y)
        try:
            out = fit(start)
        except ValueError:
            if start is model:
                raise
            out = fit(model)  # the base's coefficients do not fit these features (a vectorizer's vocabulary changed): cold
        self.record(key, out[0])
        return out

    def start(self, model: Any, key: str, y: np.ndarray) -> Any:
        """The model to fit on the labels ``key`` (``y``): the base fit set to warm-start, when
        :func:`warm_from` allows it; else ``model`` itself."""
        base = self._base(key)
        warm = None if base is None else warm_from(base[1], model, y)
        return model if warm is None else warm

    def record(self, key: str, fitted: Any) -> None:
        """``fitted``, the fit on the labels ``key``, as the next round's start (its ``warm_start``
        set back to off: the model the round deploys refits as configured); nothing for a model
        that cannot warm-start."""
        keys = warm_keys(fitted)
        if not keys:  # nothing to keep: an empty chain says so (a resume then has nothing to miss, :meth:`saved`)
            if self.folder is not None and not self.saved():
                self._fits()
                self._save()
            return
        fitted.set_params(**{k: False for k in keys})
        fits = self._fits()
        at = newest_with([k for k, _ in fits], key)
        if at is not None:
            fits[at] = (key, fitted)
        else:
            fits.append((key, fitted))
            del fits[:-KEEP]
        self._save()

    def start_over(self) -> None:
        """Forget every fit, on disk too (round 0 of a new or restarted loop)."""
        self.fits_ = []
        if self.folder is not None and self.folder.is_dir():
            for old in self.folder.iterdir():
                old.unlink(missing_ok=True)

    def _base(self, key: str) -> tuple[str, Any] | None:
        fits = self._fits()
        at = base_of([k for k, _ in fits], key)
        return None if at is None else fits[at]

    def _fits(self) -> list[tuple[str, Any]]:
        if getattr(self, "fits_", None) is None:
            self.fits_ = self._load()
        return self.fits_

    def _save(self) -> None:
        if self.folder is None:
            return
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            for key, fitted in self.fits_:
                if not (self.folder / f"{key}.joblib").exists():
                    _dump(self.folder, fitted, f"{key}.joblib")
            _write_chain(self.folder, [key for key, _ in self.fits_], (".joblib",))
        except OSError as e:  # a full or read-only disk: kept in memory from here on
            _log.warning("the query fits are kept in memory only: cannot write %s (%s)", self.folder, e)
            self.folder = None

    def _load(self) -> list[tuple[str, Any]]:
        if self.folder is None or not (self.folder / "chain.json").exists():
            return []
        import joblib

        try:
            keys = json.loads((self.folder / "chain.json").read_text())
            return [(key, joblib.load(self.folder / f"{key}.joblib")) for key in keys
                    if (self.folder / f"{key}.joblib").exists()]
        except UNREADABLE as e:  # a damaged cache, or fits pickled by another library version: a cold start
            _log.warning("ignoring the saved query fits in %s (%s)", self.folder, e)
            return []


def query_fits(name: str) -> QueryFits:
    """A loop's kept query fits: in the cache folder's ``query-fits/name``, or in memory only
    (a resumed loop then starts its first round cold) where that folder cannot be made."""
    from clicloop.orchestrator.cachedir import cache_dir

    try:
        return QueryFits(cache_dir("query-fits") / name)
    except OSError as e:
        _log.warning("the query fits are kept in memory only: %s (set CLICLOOP_CACHE_DIR to a writable folder)", e)
        return QueryFits(None)


def warm_from(previous: Any, model: Any, y: np.ndarray) -> Any | None:
    """A copy of ``previous`` set to start from its own coefficients (``warm_start``), when it is
    of the same kind as ``model`` and saw the same classes as ``y`` holds; else None."""
    if previous is None or type(previous) is not type(model):
        return None
    keys = warm_keys(previous)
    seen = getattr(previous, "classes_", None)
    if not keys or seen is None or not np.array_equal(np.asarray(seen).astype(str), np.unique(np.asarray(y).astype(str))):
        return None
    import copy

    warm = copy.deepcopy(previous)
    warm.set_params(**{key: True for key in keys})
    return warm


def warm_keys(model: Any) -> list[str]:
    """The ``warm_start`` parameters of ``model`` (its own, or a pipeline step's) that make a fit
    start from the last solution: those of linear models and MLPs. An ensemble's ``warm_start``
    means "keep the members fitted so far and add more" (a random forest refitted with it and the
    same ``n_estimators`` fits nothing new), so it is never set; [] for none."""
    keys = param_keys(model, "warm_start")
    if not keys:
        return []
    from sklearn.linear_model import LogisticRegression, PassiveAggressiveClassifier, Perceptron, SGDClassifier
    from sklearn.neural_network import MLPClassifier

    continues = (LogisticRegression, SGDClassifier, Perceptron, PassiveAggressiveClassifier, MLPClassifier)
    params = model.get_params()
    return [key for key in keys if isinstance(model if key == "warm_start" else params.get(key.rsplit("__", 1)[0]), continues)]


def param_keys(model: Any, name: str) -> list[str]:
    """The parameters called ``name`` of ``model`` (its own, or a pipeline step's); [] for none."""
    get_params = getattr(model, "get_params", None)
    if not callable(get_params):
        return []
    return [key for key in get_params() if key == name or key.endswith(f"__{name}")]


CONVERGED_TOL = 1e-5
"""``fit_tol: auto``'s tolerance for logistic regression: at scikit-learn's 1e-4 a fit warm-started
from the last round's stops after 4-7 L-BFGS iterations on CLINC150, 0.3-0.5 points short of the
converged fit (docs/benchmarks/log.md, 2026-12-07)."""


def fit_tolerances(model: Any, fit_tol: float | str | None) -> dict[str, float]:
    """The ``tol`` parameters to set on ``model`` for the pseudo-labeled fit: ``fit_tol`` on each
    (its own, or a pipeline step's); with ``"auto"``, at most :data:`CONVERGED_TOL` on each
    logistic regression, the others left as they are; ``{}`` for None."""
    from sklearn.linear_model import LogisticRegression

    def auto(key: str, params: dict[str, Any]) -> float | None:
        owner = model if key == "tol" else params.get(key.rsplit("__", 1)[0])
        return min(float(params[key]), CONVERGED_TOL) if isinstance(owner, LogisticRegression) else None

    return _fit_params(model, "tol", fit_tol, "auto", auto)


def fit_regularisation(model: Any, fit_C: float | str | None, n_human: int, n_rows: int) -> dict[str, float]:
    """The ``C`` parameters to set on ``model`` for the pseudo-labeled fit of ``n_rows`` rows, of
    which ``n_human`` are human labels: ``fit_C`` on each (its own, or a pipeline step's); with
    ``"scaled"``, each one's own C times ``n_human / n_rows`` (the penalty then weighs against the
    loss as in the fit on the human labels alone), a C that is not a number left as it is; ``{}``
    for None."""
    def scaled(key: str, params: dict[str, Any]) -> float | None:
        own = params[key]
        if isinstance(own, bool) or not isinstance(own, (int, float, np.number)):
            return None
        return float(own) * n_human / max(n_rows, 1)

    return _fit_params(model, "C", fit_C, "scaled", scaled)


def _fit_params(model: Any, name: str, value: float | str | None, rule_name: str,
                rule: Callable[[str, dict[str, Any]], float | None]) -> dict[str, float]:
    """``value`` for each parameter ``name`` of ``model``; where ``value`` is ``rule_name``, what
    ``rule(key, model's params)`` gives each (None: leave that one as it is); ``{}`` for None."""
    keys = param_keys(model, name)
    if value is None or not keys:
        return {}
    if value != rule_name:
        return {key: float(value) for key in keys}
    params = model.get_params()
    return {key: got for key in keys if (got := rule(key, params)) is not None}
