"""Built-in model factories. Any object with ``fit`` / ``predict_proba`` / ``classes_`` works as a
model (see :class:`orchestrator.types.Model`); these are sensible defaults.

scikit-learn is imported inside the factories, so ``import orchestrator`` stays fast.
"""

from __future__ import annotations

from typing import Any

from orchestrator.hookspecs import Register, hookimpl


def logreg(C: float = 1.0, max_iter: int = 2000) -> Any:
    """Multinomial logistic regression on numeric features."""
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(C=C, max_iter=max_iter)


def scaled_logreg(C: float = 1.0, max_iter: int = 2000) -> Any:
    """Standardised numeric features, then logistic regression."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return make_pipeline(StandardScaler(), LogisticRegression(C=C, max_iter=max_iter))


def tfidf_logreg(C: float = 10.0, max_iter: int = 2000, ngram_max: int = 2, min_df: int = 1) -> Any:
    """TF-IDF on words (1..ngram_max grams), then logistic regression: a strong text baseline."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    return make_pipeline(
        TfidfVectorizer(ngram_range=(1, ngram_max), min_df=min_df, sublinear_tf=True),
        LogisticRegression(C=C, max_iter=max_iter),
    )


DEFAULT_FOR = {"text": "tfidf-logreg", "numeric": "scaled-logreg"}


@hookimpl
def clicloop_register_models(register: Register) -> None:
    register("logreg", logreg)
    register("scaled-logreg", scaled_logreg)
    register("tfidf-logreg", tfidf_logreg)
