"""The continuous-mode benchmark (``benchmarks/continuous_loop.py``) with the ranking of each model
version changed by a variant, for exploring; the product is unchanged. Every argument after
``--variant NAME`` goes to ``continuous_loop.py``, whose continuous rows then run the variant:
give it the row ``cont-believer`` (the product's config under a name of its own), run the
product's rows in another call, and join the files with ``--merge``.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/continuous_variants.py --variant believer --data digits --seeds 40 --max-labels 300 --rows cont-believer --out cb40.json

Variants:
- ``believer``: the "kriging believer" of asynchronous batch selection (Ginsbourger, Le Riche and
  Carraro, "Kriging is well-suited to parallelize optimization", 2010; the fantasised labels of
  Desautels, Krause and Burdick, JMLR 2014): each version ranks the pool with a query model
  fitted on the labels so far plus, for every item in an open task (in someone's hands or
  queued), the label the human-label fit predicts for it, so the version does not pick again
  around what people are already answering. The evaluated and deployed model is the product's;
  only the ranking changes (one more fit per version).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def _patch_believer() -> None:
    """Rank with a fit that also holds the predicted labels of the items people are answering."""
    import numpy as np

    from clicloop.orchestrator import continuous as cont

    refit, rank = cont.ContinuousRun._refit, cont.ContinuousRun._rank

    def _refit(self: Any, r: int, queue: list[int], reward: Any, predictions: Any) -> Any:
        self.inflight_ = {task.item_id for task in self.open_.values()}  # a snapshot, before the refit thread starts
        return refit(self, r, queue, reward, predictions)

    def _rank(self: Any, r: int, query: Any, labeled: dict[str, str], *args: Any, **kwargs: Any) -> Any:
        believed = sorted(getattr(self, "inflight_", set()) - set(labeled))
        if query is not None and believed:
            loop = self.loop
            rows = np.array([loop.index_[i] for i in believed], dtype=np.int64)
            guess = np.asarray(query.predict(loop.pool_.X[rows])).astype(str)
            query, _ = loop._fit_query({**labeled, **dict(zip(believed, guess))})
        return rank(self, r, query, labeled, *args, **kwargs)

    cont.ContinuousRun._refit = _refit  # type: ignore[method-assign]
    cont.ContinuousRun._rank = _rank  # type: ignore[method-assign]


VARIANTS = {"believer": _patch_believer}


def main() -> None:
    if len(sys.argv) < 3 or sys.argv[1] != "--variant" or sys.argv[2] not in VARIANTS:
        raise SystemExit(__doc__)
    VARIANTS[sys.argv[2]]()
    from benchmarks import continuous_loop

    sys.argv = [sys.argv[0], *sys.argv[3:]]
    continuous_loop.main()


if __name__ == "__main__":
    main()
