"""Logistic regression on numeric features, plain or standardised first: the default numeric
model (``scaled-logreg``) and the members of a committee (:mod:`clicloop.strategies.committee`).

scikit-learn is imported inside the factories, so importing this module stays fast.
"""

from __future__ import annotations

from typing import Any


def logreg(C: float = 1.0, max_iter: int = 2000, tol: float = 1e-4) -> Any:
    """Multinomial logistic regression on numeric features; ``tol``: the solver's stopping
    tolerance (scikit-learn's default)."""
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(C=C, max_iter=max_iter, tol=tol)


def scaled_logreg(C: float = 1.0, max_iter: int = 2000, tol: float = 1e-4) -> Any:
    """Standardised numeric features, then logistic regression (``tol`` as :func:`logreg`)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return make_pipeline(StandardScaler(), LogisticRegression(C=C, max_iter=max_iter, tol=tol))
