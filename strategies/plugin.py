"""Registers the built-in strategies through the same hook third-party plugins use."""

from orchestrator.hookspecs import Register, hookimpl
from strategies.scores import Entropy, LeastConfidence, Margin, RandomSampling


@hookimpl
def clicloop_register_strategies(register: Register) -> None:
    register("random", RandomSampling)
    register("least-confidence", LeastConfidence)
    register("margin", Margin)
    register("entropy", Entropy)
