"""The ``sentence-embedding`` model: sentence embeddings (:mod:`.embeddings`) and a classifier head
(standardised logistic regression by default, the numeric pools' default model), and how the
loop gives a text pool the numeric pools' defaults.

The model accepts texts (it embeds them through the cache) or rows already embedded (a 2-D numeric
array, passed through). The loop embeds a text pool and its evaluation set once, when it is set up
(:func:`embed_data`): the strategy (margin-coverage's distances), pseudo-labels and the model all
see the embeddings, while the tasks people answer still show the texts.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import Any

import numpy as np

from clicloop.orchestrator.training.embeddings import cached_mask, default_model, embed_texts, have_sentence_transformers

log = logging.getLogger("clicloop")

NAME = "sentence-embedding"
HEADS = ("logreg", "committee", "mc-dropout")


class SentenceEmbedding:
    """Sentence embeddings, then a classifier head on them.

    ``model``: a sentence-transformers model, a local folder or a Hugging Face name (default:
    :func:`~clicloop.orchestrator.training.embeddings.default_model`); ``device``: ``cuda``,
    ``cpu``, ... (default: the GPU when torch sees one).

    ``head``: ``logreg`` (logistic regression, standardised first when ``scale``; the default),
    ``committee`` (a bagged committee of such regressions, :class:`~clicloop.strategies.committee.
    Committee`, for query by committee) or ``mc-dropout`` (an MLP with Monte-Carlo dropout,
    :class:`~clicloop.strategies.torch_models.MCDropoutMLP`, for BALD); ``head_params`` go to
    that class (e.g. ``n_members``, ``seed``; ``hidden``, ``dropout``, ``epochs``)."""

    def __init__(self, model: str | None = None, C: float = 1.0, max_iter: int = 2000, scale: bool = True,
                 batch_size: int = 64, device: str | None = None, head: str = "logreg",
                 head_params: dict[str, Any] | None = None):
        self.model = model
        self.C = C
        self.max_iter = max_iter
        self.scale = scale
        self.batch_size = batch_size
        self.device = device
        self.head = head
        self.head_params = head_params

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        return {"model": self.model, "C": self.C, "max_iter": self.max_iter, "scale": self.scale,
                "batch_size": self.batch_size, "device": self.device, "head": self.head,
                "head_params": self.head_params}

    def clicloop_provides(self) -> set[str]:
        """What the head offers the strategies: MC-dropout samples or committee members too."""
        return set(self._new_head().clicloop_provides()) if self.head != "logreg" else {"predict_proba"}

    def clicloop_how_to_provide(self, need: str) -> str | None:
        """The setting that gives a strategy what it needs (``strategies/requirements.py``)."""
        return {"predict_proba_members": "model.params.head: committee (head_params n_members >= 2, the default 5)",
                "predict_proba_samples": "model.params.head: mc-dropout (head_params dropout > 0)"}.get(need)

    def set_params(self, **params: Any) -> SentenceEmbedding:
        for key, value in params.items():
            setattr(self, key, value)
        return self

    def encode(self, texts: Any, cache: bool | str = "read") -> np.ndarray:
        """The embeddings of ``texts``. ``cache=True`` (the loop's pool and evaluation set, a Label
        Studio project's tasks at training): stored in the disk cache and memory-mapped; the
        default ``"read"`` (``/predict``, fitting on texts): rows the cache holds are copied, the
        rest computed, nothing written; ``False``: all computed."""
        return embed_texts(texts, self.model, batch_size=self.batch_size, device=self.device, cache=cache)

    def cached(self, texts: Any) -> np.ndarray:
        """Which of ``texts`` the disk cache already holds (a boolean each); nothing computed."""
        return cached_mask(texts, self.model)

    def _features(self, X: Any) -> np.ndarray:
        if getattr(X, "ndim", 1) == 2 and getattr(X, "dtype", np.dtype(object)).kind in "fiu":
            return np.asarray(X, dtype=np.float32)  # embedded already (the loop embeds its pool once)
        return np.asarray(self.encode(np.asarray(X, dtype=object)))

    def _new_head(self) -> Any:
        """An unfitted head of kind ``head`` (see the class docstring)."""
        params = dict(self.head_params or {})
        if self.head == "committee":
            from clicloop.strategies.committee import Committee

            params.setdefault("C", self.C)
            params.setdefault("max_iter", self.max_iter)
            params.setdefault("base", "scaled-logreg" if self.scale else "logreg")
            return Committee(**params)
        if self.head == "mc-dropout":
            from clicloop.strategies.torch_models import MCDropoutMLP

            return MCDropoutMLP(**params)
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        head = LogisticRegression(C=self.C, max_iter=self.max_iter, **params)
        return make_pipeline(StandardScaler(), head) if self.scale else make_pipeline(head)

    def fit(self, X: Any, y: Any, sample_weight: Any = None) -> SentenceEmbedding:
        self.head_ = self._new_head()
        if self.head == "logreg":
            self.head_.fit(self._features(X), y, logisticregression__sample_weight=sample_weight)
        elif sample_weight is not None:
            raise ValueError(f"the {self.head!r} head takes no label weights: set loop.weight_by_confidence: "
                             "false, or use head: logreg")
        else:
            self.head_.fit(self._features(X), y)
        self.classes_ = self.head_.classes_
        return self

    def predict_proba(self, X: Any) -> np.ndarray:
        return self.head_.predict_proba(self._features(X))

    def predict_proba_members(self, X: Any) -> np.ndarray:
        """(members, n, classes) probabilities of a committee head (query by committee)."""
        return self._head_method("predict_proba_members")(self._features(X))

    def predict_proba_samples(self, X: Any, n_samples: int, rng: np.random.Generator, block: int = 256) -> np.ndarray:
        """(n_samples, n, classes) Monte-Carlo dropout probabilities of an ``mc-dropout`` head (BALD)."""
        return self._head_method("predict_proba_samples")(self._features(X), n_samples, rng, block)

    def _head_method(self, name: str) -> Any:
        method = getattr(self.head_, name, None)
        if method is None:
            raise ValueError(f"{name} needs head: {'committee' if name.endswith('members') else 'mc-dropout'} "
                             f"in the sentence-embedding model's params (this one has head: {self.head})")
        return method

    def predict(self, X: Any) -> np.ndarray:
        return self.classes_[self.predict_proba(X).argmax(axis=1)]

    def __repr__(self) -> str:
        return (f"SentenceEmbedding(model={self.model or default_model()!r}, C={self.C}, scale={self.scale}, "
                f"head={self.head!r})")


def sentence_embedding(model: str | None = None, C: float = 1.0, max_iter: int = 2000, scale: bool = True,
                       batch_size: int = 64, device: str | None = None, head: str = "logreg",
                       head_params: dict[str, Any] | None = None) -> SentenceEmbedding:
    """Factory of the ``sentence-embedding`` model plugin."""
    if C <= 0:
        raise ValueError(f"C must be > 0, got {C}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if head not in HEADS:
        raise ValueError(f"head must be one of {', '.join(HEADS)}, got {head!r}")
    if head_params is not None and not isinstance(head_params, dict):
        raise ValueError(f"head_params must be a mapping of the head's parameters, got {head_params!r}")
    if head == "mc-dropout":
        from importlib.util import find_spec

        if find_spec("torch") is None:
            raise ValueError("head: mc-dropout needs torch: pip install 'clicloop[torch]'")
    model_ = SentenceEmbedding(model, C, max_iter, scale, batch_size, device, head, head_params)
    try:
        model_._new_head()
    except TypeError as e:
        raise ValueError(f"head_params do not fit head {head!r}: {e}") from e
    return model_


def auto_model(kind: str) -> tuple[str, str]:
    """``(model name, why)`` that ``model: auto`` picks for a pool of ``kind`` (text or numeric)."""
    if kind != "text":
        return "scaled-logreg", "numeric pool: standardised logistic regression"
    if have_sentence_transformers():
        return NAME, f"text pool and sentence-transformers installed: embeddings of {default_model()}"
    return "tfidf-logreg", "text pool without sentence-transformers (pip install 'clicloop[text]' for sentence embeddings)"


def embed_data(model: Any, pool: Any, evalset: Any) -> tuple[Any, Any]:
    """The pool and evaluation set with their texts replaced by ``model``'s embeddings (numeric
    features); the pool keeps its texts for the tasks (``Pool.texts``). Unchanged when the pool
    is not text or the model does not embed (has no ``encode(texts, cache=...)``)."""
    encode = getattr(model, "encode", None)
    if pool.kind != "text" or not callable(encode):
        return pool, evalset
    embedded = replace(pool, X=encode(pool.X, cache=True), kind="numeric", texts=pool.texts)
    if evalset is not None and getattr(evalset.X, "ndim", 1) == 1:
        evalset = replace(evalset, X=np.asarray(encode(evalset.X, cache=True)))
    return embedded, evalset
