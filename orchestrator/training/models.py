"""Built-in model factories. Any object with ``fit`` / ``predict_proba`` / ``classes_`` works as a
model (see :class:`clicloop.orchestrator.types.Model`); these are sensible defaults.

scikit-learn is imported inside the factories, so ``import orchestrator`` stays fast.
"""

from __future__ import annotations

from typing import Any

from clicloop.orchestrator.hookspecs import Register, hookimpl
from clicloop.orchestrator.training.logistic import logreg, scaled_logreg


def tfidf_logreg(C: float = 10.0, max_iter: int = 2000, ngram_max: int = 2, min_df: int = 1) -> Any:
    """TF-IDF on words (1..ngram_max grams), then logistic regression: a strong text baseline."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    return make_pipeline(
        TfidfVectorizer(ngram_range=(1, ngram_max), min_df=min_df, sublinear_tf=True),
        LogisticRegression(C=C, max_iter=max_iter),
    )


def sentence_embedding(model: str | None = None, C: float = 1.0, max_iter: int = 2000, scale: bool = True,
                       batch_size: int = 64, device: str | None = None, head: str = "logreg",
                       head_params: dict[str, Any] | None = None) -> Any:
    """Sentence embeddings (sentence-transformers), then logistic regression, a committee or an
    MC-dropout MLP: see :mod:`clicloop.orchestrator.training.sentence_model`."""
    from clicloop.orchestrator.training.sentence_model import sentence_embedding as factory

    return factory(model, C, max_iter, scale, batch_size, device, head, head_params)


DEFAULT_FOR = {"text": "tfidf-logreg", "numeric": "scaled-logreg"}  # without sentence-transformers; see auto_model


@hookimpl
def clicloop_register_models(register: Register) -> None:
    register("logreg", logreg)
    register("scaled-logreg", scaled_logreg)
    register("tfidf-logreg", tfidf_logreg)
    register("sentence-embedding", sentence_embedding, requires=["sentence_transformers"], extra="text")


# -- what the loop asks of a fitted model -------------------------------------------------------


def confidence_weights(confidence: dict[str, float], item_ids: Any, model: Any) -> dict[str, Any]:
    """``fit`` keyword: ``sample_weight`` = the aggregator's confidence in each label (seed
    labels count 1); a scikit-learn Pipeline gets it routed to its last step."""
    import numpy as np

    weights = np.array([confidence.get(item, 1.0) for item in item_ids])
    steps = getattr(model, "steps", None)
    return {f"{steps[-1][0]}__sample_weight" if steps else "sample_weight": weights}


def predicted_labels(model: Any, X: Any) -> Any:
    """``model``'s most likely class for each row of ``X``, as text; a :class:`ModelError` when its
    probabilities are not finite or not one per class and row (a model answering NaN was
    evaluated as if it predicted its first class everywhere: a metric of 0.09 recorded)."""
    import numpy as np

    from clicloop.orchestrator.errors import ModelError

    proba, classes = np.asarray(model.predict_proba(X)), np.asarray(model.classes_)
    rows = X.shape[0] if hasattr(X, "shape") else len(X)  # a sparse matrix has no len()
    if proba.shape != (rows, len(classes)):
        raise ModelError(f"{type(model).__name__}.predict_proba gave shape {proba.shape} for {rows} rows and "
                         f"{len(classes)} classes; it must give one probability per class and row")
    if not np.isfinite(proba).all():
        raise ModelError(f"{type(model).__name__}.predict_proba gave non-finite probabilities (NaN or infinity) on "
                         f"{int((~np.isfinite(proba)).any(axis=1).sum())} of {rows} rows; check the model and its inputs")
    return classes[proba.argmax(axis=1)].astype(str)


def evaluate(model: Any, evalset: Any, metric: str) -> float | None:
    """``metric`` (accuracy or macro_f1) of ``model`` on the evaluation set; None without either."""
    if model is None or evalset is None:
        return None
    from sklearn.metrics import accuracy_score, f1_score

    predicted = predicted_labels(model, evalset.X)
    if metric == "macro_f1":
        return float(f1_score(evalset.y, predicted, average="macro", zero_division=0))
    return float(accuracy_score(evalset.y, predicted))


def predictions_for(model: Any, X: Any, chosen: Any) -> dict[int, tuple[str, float]]:
    """The model's label and confidence for the chosen pool rows (pre-annotations for backends)."""
    if model is None or len(chosen) == 0:
        return {}
    import numpy as np

    proba = np.asarray(model.predict_proba(X[chosen]))
    classes = np.asarray(model.classes_).astype(str)
    best = proba.argmax(axis=1)
    return {int(i): (str(classes[b]), float(proba[j, b])) for j, (i, b) in enumerate(zip(chosen, best))}
