"""Learn from corrections: reviewed predictions join the labeled set with their provenance; a
candidate is retrained on a schedule and promoted only if it beats the serving version on the
audited production slice (random audits, held out of training); rollback on demand.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import func, select

from clicloop.orchestrator.ledger import schema as s
from clicloop.orchestrator.postdeploy.errors import PromotionError
from clicloop.orchestrator.postdeploy.store import DeploymentStore


def featurize(rows: Sequence[Mapping[str, Any]]) -> Any:
    """The model input of prediction rows: a float32 matrix when every row has features, else texts."""
    if rows and all(r.get("features_json") for r in rows):
        return np.asarray([json.loads(r["features_json"]) for r in rows], dtype=np.float32)
    return [r.get("text") or "" for r in rows]


def load_model(path: Path) -> Any:
    """A fitted model saved with joblib (a registered version's artifact)."""
    import joblib

    try:
        model = joblib.load(path)
    except (OSError, EOFError, ValueError, ImportError, AttributeError) as e:  # joblib/pickle failures
        raise PromotionError(f"cannot load the fitted model {path}: {e}; save it with joblib.dump(model, path)") from e
    if not hasattr(model, "predict_proba") or not hasattr(model, "classes_"):
        raise PromotionError(f"{path} holds a {type(model).__name__}, not a fitted classifier with predict_proba and classes_")
    return model


def corrections(store: DeploymentStore) -> list[dict[str, Any]]:
    """Every reviewed prediction with its input, the reviewer's label and its provenance (review
    task, worker pseudonym, verdict, whether it was a random audit), in review order."""
    r, p, t = s.pd_reviews.c, s.pd_predictions.c, s.pd_triage.c
    audited = select(t.prediction_id).where(t.deployment == store.deployment, t.audit.is_(True))
    query = (select(r.prediction_id, r.label, r.verdict, r.task_key, r.worker, r.reviewed_at, r.model_version, p.text,
                    p.features_json, p.predicted_at, r.prediction_id.in_(audited).label("audit"))
             .join(s.pd_predictions, (p.deployment == r.deployment) & (p.prediction_id == r.prediction_id))
             .where(r.deployment == store.deployment).order_by(r.reviewed_at, r.task_key))
    with store.engine.connect() as conn:
        return [dict(x._mapping) for x in conn.execute(query)]


def due(store: DeploymentStore, *, every_reviews: int | None = None, every_s: float | None = None, now: float | None = None) -> bool:
    """Is a retrain due: ``every_reviews`` new reviews, or ``every_s`` seconds, since the newest version?"""
    m, r = s.pd_models.c, s.pd_reviews.c
    with store.engine.connect() as conn:
        last = conn.execute(select(func.max(m.created_at)).where(m.deployment == store.deployment)).scalar()
        newer = conn.execute(select(func.count()).where(r.deployment == store.deployment,
                                                        r.reviewed_at > (last or 0.0))).scalar_one()
    now = time.time() if now is None else now
    return bool((every_reviews is not None and newer >= every_reviews) or
                (every_s is not None and (last is None or now - last >= every_s) and newer > 0))


@dataclass(frozen=True)
class Gate:
    """A promotion decision on the audited slice."""

    promoted: bool
    candidate: str
    serving: str | None
    error_serving: float | None
    error_candidate: float | None
    n_slice: int
    reason: str


class Learner:
    """Retrains, gates and promotes model versions of one deployment.

    ``model_factory()`` builds an unfitted model; ``base`` is the labeled data the first version
    was trained on, ``(X, y)`` in the model's input form. Fitted models are kept in memory and, with
    ``artifacts``, pickled there (so another process can roll back or compare).
    """

    def __init__(self, store: DeploymentStore, model_factory: Callable[[], Any], base: tuple[Any, Sequence[str]], *,
                 featurize: Callable[[Sequence[Mapping[str, Any]]], Any] = featurize, artifacts: str | Path | None = None,
                 min_slice: int = 30, min_gain: float = 0.0):
        self.store, self.model_factory, self.base, self.featurize = store, model_factory, base, featurize
        self.artifacts = None if artifacts is None else Path(artifacts)
        self.min_slice, self.min_gain = min_slice, min_gain
        self.models: dict[str, Any] = {}

    # -- versions --------------------------------------------------------------------------------

    def deploy(self, version: str, model: Any, *, n_train: int = 0) -> None:
        """Register a fitted model as a version and make it the serving one (the first deployment)."""
        self._register(version, model, parent=None, n_train=n_train, n_corrections=0)
        self.store.record_promotion("deploy", version, reason="initial deployment")

    def _register(self, version: str, model: Any, **info: Any) -> None:
        artifact = None
        if self.artifacts is not None:
            import joblib

            path = self.artifacts / self.store.deployment / f"{version}.joblib"
            path.parent.mkdir(parents=True, exist_ok=True)
            joblib.dump(model, path)
            artifact = str(path)
        self.models[version] = model
        self.store.register_version(version, [str(c) for c in model.classes_], artifact=artifact, **info)

    def model(self, version: str) -> Any:
        """The fitted model of a version (from memory, or its artifact)."""
        if version not in self.models:
            info = self.store.versions().get(version)
            if info is None or not info["artifact"]:
                raise PromotionError(f"no fitted model for version {version!r}: register it with its model file "
                                     f"(`clicloop deploy register {version} --labels ... --model {version}.joblib`)")
            self.models[version] = load_model(Path(info["artifact"]))
        return self.models[version]

    # -- retrain, gate, promote ------------------------------------------------------------------

    def retrain(self, version: str | None = None) -> str:
        """Fit a candidate on the base data plus every non-audit review; returns its version."""
        rows = [c for c in corrections(self.store) if not c["audit"]]
        X0, y0 = self.base
        y = [*map(str, y0), *(c["label"] for c in rows)]
        X = _concat(X0, self.featurize(rows)) if rows else X0
        model = self.model_factory()
        model.fit(X, np.asarray(y, dtype=object).astype(str))
        parent = self.store.serving()
        version = version or f"{self.store.deployment}-v{len(self.store.versions()) + 1}"
        self._register(version, model, parent=parent, n_train=len(y), n_corrections=len(rows))
        return version

    def audited_slice(self) -> tuple[Any, np.ndarray]:
        """Inputs and reviewer labels of every random audit reviewed so far."""
        rows = [c for c in corrections(self.store) if c["audit"]]
        return (self.featurize(rows) if rows else []), np.asarray([c["label"] for c in rows], dtype=object).astype(str)

    def error(self, version: str, X: Any, y: np.ndarray) -> float:
        model = self.model(version)
        proba = np.asarray(model.predict_proba(X))
        predicted = np.asarray(model.classes_).astype(str)[proba.argmax(axis=1)]
        return float(np.mean(predicted != y))

    def gate(self, candidate: str) -> Gate:
        """Promote ``candidate`` if its error on the audited slice is below the serving version's
        by more than ``min_gain`` (and the slice has ``min_slice`` audits); record the decision."""
        serving = self.store.serving()
        X, y = self.audited_slice()
        if serving is None:
            self.store.record_promotion("promote", candidate, reason="nothing was serving")
            return Gate(True, candidate, None, None, None, len(y), "nothing was serving")
        if len(y) < self.min_slice:
            reason = f"audited slice too small ({len(y)} < {self.min_slice})"
            self.store.record_promotion("reject", candidate, reason=reason, n_slice=len(y))
            return Gate(False, candidate, serving, None, None, len(y), reason)
        e_serving, e_candidate = self.error(serving, X, y), self.error(candidate, X, y)
        better = e_candidate < e_serving - self.min_gain
        reason = (f"audited error {e_candidate:.4f} vs {e_serving:.4f} of {serving} on {len(y)} audits"
                  + ("" if better else f" (needs a gain above {self.min_gain:g})"))
        self.store.record_promotion("promote" if better else "reject", candidate, reason=reason,
                                    error_current=e_serving, error_candidate=e_candidate, n_slice=len(y))
        return Gate(better, candidate, serving, e_serving, e_candidate, len(y), reason)

    def rollback(self, to: str | None = None, reason: str = "rollback on demand") -> str:
        """Serve ``to`` again, or the version served before the current one."""
        return rollback(self.store, to, reason)


def rollback(store: DeploymentStore, to: str | None = None, reason: str = "rollback on demand") -> str:
    """Record a rollback to ``to`` or to the version that served before the current one."""
    serving = store.serving()
    if to is None:  # the last change of the serving version (a re-promotion of the serving one changed nothing)
        changes = [p for p in store.promotions() if p["action"] in ("deploy", "promote", "rollback")
                   and p["previous"] != p["version"]]
        if not changes or changes[-1]["previous"] is None:
            raise PromotionError(f"deployment {store.deployment!r} has no earlier serving version to roll back to")
        to = changes[-1]["previous"]
    if to == serving:
        raise PromotionError(f"{to!r} is already serving deployment {store.deployment!r}; name another version with --to")
    store.record_promotion("rollback", to, reason=reason)  # type: ignore[arg-type]
    return to  # type: ignore[return-value]


def _concat(a: Any, b: Any) -> Any:
    if isinstance(a, np.ndarray):
        return np.vstack([a, np.asarray(b, dtype=a.dtype)])
    return [*a, *b]
