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

from clicloop.orchestrator.training.embeddings import default_model, embed_texts, have_sentence_transformers

log = logging.getLogger("clicloop")

NAME = "sentence-embedding"
CACHE_MIN = 256  # fewer texts are embedded without the disk cache (cheap; each cached set is a file)


class SentenceEmbedding:
    """Sentence embeddings, then logistic regression (standardised first when ``scale``).

    ``model``: a sentence-transformers model, a local folder or a Hugging Face name (default:
    :func:`~clicloop.orchestrator.training.embeddings.default_model`); ``device``: ``cuda``,
    ``cpu``, ... (default: the GPU when torch sees one)."""

    def __init__(self, model: str | None = None, C: float = 1.0, max_iter: int = 2000, scale: bool = True,
                 batch_size: int = 64, device: str | None = None):
        self.model = model
        self.C = C
        self.max_iter = max_iter
        self.scale = scale
        self.batch_size = batch_size
        self.device = device

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        return {"model": self.model, "C": self.C, "max_iter": self.max_iter, "scale": self.scale,
                "batch_size": self.batch_size, "device": self.device}

    def set_params(self, **params: Any) -> SentenceEmbedding:
        for key, value in params.items():
            setattr(self, key, value)
        return self

    def encode(self, texts: Any, cache: bool | None = None) -> np.ndarray:
        """The embeddings of ``texts``, cached on disk (memory-mapped) when ``cache``; by default
        from ``CACHE_MIN`` texts on (fewer, such as a Label Studio ``/predict`` call, are computed
        directly). The loop's pool and evaluation set are always cached."""
        cache = len(texts) >= CACHE_MIN if cache is None else cache
        return embed_texts(texts, self.model, batch_size=self.batch_size, device=self.device, cache=cache)

    def _features(self, X: Any) -> np.ndarray:
        if getattr(X, "ndim", 1) == 2 and getattr(X, "dtype", np.dtype(object)).kind in "fiu":
            return np.asarray(X, dtype=np.float32)  # embedded already (the loop embeds its pool once)
        return np.asarray(self.encode(np.asarray(X, dtype=object)))

    def fit(self, X: Any, y: Any, sample_weight: Any = None) -> SentenceEmbedding:
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        head = LogisticRegression(C=self.C, max_iter=self.max_iter)
        self.head_ = make_pipeline(StandardScaler(), head) if self.scale else make_pipeline(head)
        self.head_.fit(self._features(X), y, logisticregression__sample_weight=sample_weight)
        self.classes_ = self.head_.classes_
        return self

    def predict_proba(self, X: Any) -> np.ndarray:
        return self.head_.predict_proba(self._features(X))

    def predict(self, X: Any) -> np.ndarray:
        return self.classes_[self.predict_proba(X).argmax(axis=1)]

    def __repr__(self) -> str:
        return f"SentenceEmbedding(model={self.model or default_model()!r}, C={self.C}, scale={self.scale})"


def sentence_embedding(model: str | None = None, C: float = 1.0, max_iter: int = 2000, scale: bool = True,
                       batch_size: int = 64, device: str | None = None) -> SentenceEmbedding:
    """Factory of the ``sentence-embedding`` model plugin."""
    if C <= 0:
        raise ValueError(f"C must be > 0, got {C}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    return SentenceEmbedding(model, C, max_iter, scale, batch_size, device)


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
