"""A bound on the embedding work one ``/predict`` does, the rest embedded in the background.

Label Studio's "Retrieve predictions" sends all of a project's tasks in one ``/predict`` and
gives up after 100 s. After a training every task's text is in the disk embedding cache
(``ProjectModel.warm_embeddings``), but texts imported since, or a backend started on an empty
cache, would be embedded inside the request (196 s for 5,000 texts on a busy 2-core CPU, see
docs/benchmarks.md). :class:`EmbedDeferral` lets a request embed at most ``limit`` texts the
cache lacks; the tasks of the others get an empty prediction now, and their texts are embedded
into the cache by one background thread, so a later "Retrieve predictions" predicts them.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable
from typing import Any

import numpy as np

log = logging.getLogger("clicloop.labelstudio.ml")


class EmbedDeferral:
    """Splits a request's texts into those embedded now and those deferred, and embeds the
    deferred ones with ``warm(model, texts)`` (which writes to the cache) in a daemon thread."""

    def __init__(self, project_id: int, limit: int, warm: Callable[[Any, list[str]], int]):
        self.project_id = project_id
        self.limit = limit
        self.warm = warm
        self.cond_ = threading.Condition()
        self.jobs_: deque[tuple[Any, list[str], set[str]]] = deque()
        self.queued_: set[str] = set()  # deferred texts waiting or being embedded
        self.thread_: threading.Thread | None = None
        self.busy_ = False
        self.stopping_ = False

    def split(self, model: Any, texts: np.ndarray) -> np.ndarray:
        """The rows of ``texts`` to predict now (a boolean each): those the cache of ``model``
        holds, and the first ``limit`` distinct texts it lacks. The texts of the other rows are
        queued for the background embedding (begun by :meth:`start`) and logged once. A model that cannot tell what its
        cache holds (no ``cached``) has every row predicted now."""
        cached = getattr(model, "cached", None)
        if not callable(cached):
            return np.ones(len(texts), dtype=bool)
        now = np.asarray(cached(texts), dtype=bool).copy()
        allowed: set[str] = set()
        for i in np.flatnonzero(~now):
            text = str(texts[i])
            if text in allowed or len(allowed) < self.limit:
                allowed.add(text)
                now[i] = True
        if not now.all():
            deferred = {str(t) for t in texts[~now]}
            queued = self._submit(model, [str(t) for t in texts], deferred)
            log.warning("project %s: /predict embeds %d text(s) the embedding cache lacks (predict_embed_limit) and "
                        "defers %d task(s) (%d distinct text(s)): their predictions are empty now; %s, and a later "
                        "\"Retrieve predictions\" will have them", self.project_id, len(allowed), int((~now).sum()),
                        len(deferred), "they are being embedded in the background" if queued
                        else "the background embedding already has them")
        return now

    def _submit(self, model: Any, texts: list[str], deferred: set[str]) -> bool:
        """Queue the request's texts (the cached ones are copied, the deferred ones computed, so
        the newest cache file covers the whole request), unless every deferred text is queued
        already; returns whether a job was queued."""
        with self.cond_:
            if self.stopping_ or deferred <= self.queued_:
                return False
            self.queued_ |= deferred
            self.jobs_.append((model, texts, deferred))
            return True

    def start(self) -> None:
        """Start embedding what is queued, in the daemon thread (called once the request's own
        embedding is done, so the two never compete for the CPU inside a request)."""
        with self.cond_:
            if self.stopping_ or not self.jobs_:
                return
            if self.thread_ is None or not self.thread_.is_alive():
                self.thread_ = threading.Thread(target=self._work, name=f"ls-embed-{self.project_id}", daemon=True)
                self.thread_.start()
            self.cond_.notify_all()

    def _work(self) -> None:
        while True:
            with self.cond_:
                if self.stopping_ or not self.jobs_:
                    self.thread_ = None
                    self.cond_.notify_all()
                    return
                model, texts, deferred = self.jobs_.popleft()
                self.busy_ = True
            try:
                n = self.warm(model, texts)
                log.info("project %s: %d deferred /predict text(s) embedded into the cache", self.project_id, n)
            except Exception:  # noqa: BLE001 - a failed embedding is logged; the next /predict defers again
                log.exception("project %s: embedding deferred /predict texts failed", self.project_id)
            finally:
                with self.cond_:
                    self.busy_ = False
                    self.queued_ -= deferred
                    self.cond_.notify_all()

    def pending(self) -> int:
        """Deferred texts waiting for, or in, the background embedding."""
        with self.cond_:
            return len(self.queued_)

    def wait_idle(self, timeout_s: float = 60.0) -> bool:
        """Block until nothing is queued or being embedded (tests, benchmarks); False on timeout."""
        with self.cond_:
            return self.cond_.wait_for(lambda: not self.jobs_ and not self.busy_, timeout=timeout_s)

    def stop(self) -> None:
        """Drop what is queued (with a log line); an embedding in progress finishes in its daemon
        thread, and nothing waits for it."""
        with self.cond_:
            self.stopping_ = True
            if self.jobs_:
                log.info("project %s: %d deferred /predict text(s) not embedded (the backend stops)", self.project_id,
                         len(self.queued_))
            self.jobs_.clear()
            self.cond_.notify_all()
