"""Query strategies: pure, vectorised score functions (higher = more informative), batch-aware
strategies (diversity, clustering, cost, modAL), and one dispatcher, :func:`select`, that the
loop calls; pure score strategies go through the chunked running top-k :func:`select_top_k`."""

from clicloop.strategies.scores import entropy, least_confidence, margin
from clicloop.strategies.select import BatchStrategy, SelectContext, select, select_top_k

__all__ = ["BatchStrategy", "SelectContext", "entropy", "least_confidence", "margin", "select", "select_top_k"]
