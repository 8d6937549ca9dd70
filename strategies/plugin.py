"""Registers the built-in strategies (and the models some of them need) through the same hooks
third-party plugins use. Nothing heavy is imported here: torch and modAL load when used."""

from clicloop.orchestrator.hookspecs import Register, hookimpl
from clicloop.strategies.badge import Badge
from clicloop.strategies.committee import Committee, KLToConsensus, VoteEntropy
from clicloop.strategies.cost import CostAware
from clicloop.strategies.coverage import DiverseMiniBatch, MarginCoverage
from clicloop.strategies.diversity import ClusterMargin, ColdStart, DensityWeighted, KCenterGreedy
from clicloop.strategies.modal_adapter import register_all as register_modal
from clicloop.strategies.scores import Entropy, LeastConfidence, Margin, RandomSampling
from clicloop.strategies.torch_models import BALD, MCDropoutMLP


@hookimpl
def clicloop_register_strategies(register: Register) -> None:
    register("random", RandomSampling)
    register("least-confidence", LeastConfidence)
    register("margin", Margin)
    register("margin-coverage", MarginCoverage)
    register("entropy", Entropy)
    register("bald", BALD)
    register("qbc-vote-entropy", VoteEntropy)
    register("qbc-kl", KLToConsensus)
    register("density-weighted", DensityWeighted)
    register("k-center-greedy", KCenterGreedy)
    register("cluster-margin", ClusterMargin)
    register("diverse-mini-batch", DiverseMiniBatch)
    register("badge", Badge)
    register("cold-start", ColdStart)
    register("cost-aware", CostAware)
    register_modal(register)


@hookimpl
def clicloop_register_models(register: Register) -> None:
    register("committee", Committee)
    register("mc-dropout-mlp", MCDropoutMLP, requires=("torch",), extra="torch")
