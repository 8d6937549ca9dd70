"""The forecast's learning-curve families: each recovers its own curve, inverts it, and the
held-out weights favour the family that predicts the last rounds."""

from __future__ import annotations

import math

import numpy as np
import pytest

from clicloop.orchestrator.reporting import curves

TRUE = {"power": (0.95, 2.0, 0.6), "exp": (0.93, 0.5, 0.02), "mmf": (0.96, 30.0, 40.0), "pow2": (1.0, 0.8, 0.35)}


@pytest.mark.parametrize("model", sorted(TRUE))
def test_each_family_recovers_its_own_curve_and_inverts_it(model: str) -> None:
    x = np.arange(20.0, 320.0, 10.0)
    y = curves.curve(model, x, *TRUE[model])
    a, b, t, sse = curves.fit(model, x[None, :], y[None, :])
    fitted = curves.curve(model, np.array([400.0, 1000.0]), a[0], b[0], t[0])
    assert np.allclose(fitted, curves.curve(model, np.array([400.0, 1000.0]), *TRUE[model]), atol=2e-3)
    assert sse[0] < 1e-5
    aim = float(curves.curve(model, np.array([500.0]), *TRUE[model])[0])
    assert curves.labels_at(model, TRUE[model], aim) == pytest.approx(500.0, rel=1e-6)
    assert curves.labels_at(model, TRUE[model], 1.01) == math.inf  # above the plateau


def test_the_fit_keeps_the_metric_in_range_and_rising() -> None:
    x = np.arange(20.0, 120.0, 10.0)
    falling = 0.9 - 0.001 * x  # a falling curve: the best rising one is flat (b = 0)
    a, b, _, _ = curves.fit("power", x[None, :], falling[None, :])
    assert b[0] == 0.0 and a[0] == pytest.approx(falling.mean())
    steep = np.minimum(0.5 + 0.006 * x, 1.2)  # would extrapolate past 1
    a, _, _, _ = curves.fit("mmf", x[None, :], steep[None, :])
    assert a[0] <= 1.0


def test_held_out_weights_favour_the_family_that_predicts_the_last_rounds() -> None:
    rng = np.random.default_rng(0)
    x = np.arange(20.0, 420.0, 20.0)
    fast = curves.curve("exp", x, 0.93, 0.5, 0.02) + rng.normal(0, 0.002, x.size)  # levels off within 200 labels
    w = curves.held_out_weights(x, fast, sigma=0.002, models=("power", "exp"))
    assert w["exp"] > 0.9 and sum(w.values()) == pytest.approx(1.0)
    slow = curves.curve("power", x, 0.99, 1.5, 0.4) + rng.normal(0, 0.002, x.size)
    assert curves.held_out_weights(x, slow, sigma=0.002, models=("power", "exp"))["power"] > 0.9
    assert curves.held_out_weights(x[:4], slow[:4], sigma=0.002, models=("power", "exp")) == {"power": 0.5, "exp": 0.5}
