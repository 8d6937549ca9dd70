"""Query strategies: pure, vectorised score functions (higher = more informative) and one
shared top-k selector that scores the pool in chunks."""

from strategies.scores import entropy, least_confidence, margin
from strategies.select import select_top_k

__all__ = ["entropy", "least_confidence", "margin", "select_top_k"]
