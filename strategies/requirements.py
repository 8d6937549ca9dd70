"""What a strategy needs from the model and the pool, checked when the config loads.

A strategy lists its needs in ``requires``: model capabilities (``predict_proba``,
``predict_proba_samples`` for MC dropout, ``predict_proba_members`` for a committee) and
``features`` (a numeric 2-D pool). A model states what it offers with ``clicloop_provides()``
(so a committee of one or a dropout of 0 can say no); otherwise its methods are looked up. A
model whose own setting gives what is missing says which with ``clicloop_how_to_provide(need)``
(the sentence-embedding model's ``head``), named instead of a model to switch to.
"""

from __future__ import annotations

from typing import Any

from clicloop.strategies.scores import is_numeric

NEEDS = {
    "predict_proba": "a model with predict_proba",
    "predict_proba_samples": "a model with Monte-Carlo dropout samples",
    "predict_proba_members": "a committee of at least two members",
    "features": "numeric features (a 2-D numeric pool: NumPy, or numeric columns); this pool has none",
}
#: The model that offers a need, unless the model in use says which of its own settings does.
MODEL_FOR = {
    "predict_proba_samples": "model: mc-dropout-mlp with dropout > 0",
    "predict_proba_members": "model: committee with n_members >= 2",
}


def provides(model: Any) -> set[str]:
    offered = getattr(model, "clicloop_provides", None)
    if callable(offered):
        return set(offered())
    return {name for name in NEEDS if name != "features" and callable(getattr(model, name, None))}


def unmet(strategy: Any, model: Any, X: Any) -> list[str]:
    """Plain-language descriptions of what ``strategy`` needs and ``model`` / the pool ``X`` lack
    (``X`` None: the pool is not read yet, and only the model is checked)."""
    needs = tuple(getattr(strategy, "requires", ()))
    offered = provides(model) if model is not None else set(NEEDS) - {"features"}
    out = []
    for need in needs:
        if need == "features":
            if X is not None and not is_numeric(X):
                out.append(NEEDS["features"])
        elif need not in offered:
            how = getattr(model, "clicloop_how_to_provide", None)
            fix = (how(need) if callable(how) else None) or MODEL_FOR.get(need)
            what = NEEDS.get(need, f"a model with {need}")
            out.append(f"{what} ({fix})" if fix else what)
    return out
