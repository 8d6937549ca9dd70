"""The learning-curve forecast: recovers a known curve, says when the target is reached or out of
reach, is seeded, and drives the stopping rule."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from clicloop.orchestrator.errors import ConfigError
from clicloop.orchestrator.reporting.forecast import forecast


def rounds(a: float, b: float, c: float, n: list[int], *, noise: float = 0.0, hours: float = 0.1, cost: float = 0.2,
           seed: int = 0) -> list[dict[str, float]]:
    rng = np.random.default_rng(seed)
    rows = []
    for i, k in enumerate(n):
        bought = n[i + 1] - k if i + 1 < len(n) else 0
        rows.append({"n_labeled": k, "metric": a - b * k ** -c + rng.normal(0, noise), "total_hours": bought * hours,
                     "cost": bought * cost})
    return rows


def test_recovers_a_known_curve_and_prices_the_labels() -> None:
    n = list(range(20, 220, 10))
    fc = forecast(rounds(0.95, 2.0, 0.6, n), target=0.9)
    truth = (2.0 / 0.05) ** (1 / 0.6) - n[-1]  # labels at which the true curve reaches 0.9
    assert fc.status == "forecast" and fc.model == "power"
    assert fc.labels_to_target.point == pytest.approx(truth, rel=0.02)
    assert fc.hours_to_target.point == pytest.approx(truth * 0.1, rel=0.02)
    assert fc.cost_to_target.point == pytest.approx(truth * 0.2, rel=0.02)
    assert fc.labels_to_target.low <= fc.labels_to_target.point <= fc.labels_to_target.high
    assert fc.predict([100])[0] == pytest.approx(0.95 - 2.0 * 100 ** -0.6, abs=1e-3)


def first_crossing(a: float, b: float, c: float, n_last: int, step: int, target: float, noise: float, seed: int) -> float:
    """More labels until the loop's measured metric first reaches the target (the truth the
    forecast predicts): the same curve, measured with the same noise, round after round."""
    rng = np.random.default_rng(seed)
    for j in range(1, 10_000):
        if a - b * (n_last + step * j) ** -c + rng.normal(0, noise) >= target:
            return float(step * j)
    return math.inf


def test_noisy_curves_the_interval_is_calibrated_and_seeded() -> None:
    n = list(range(20, 320, 10))
    inside, errors = [], []
    wide = []
    for seed in range(40):
        rows = rounds(0.93, 1.5, 0.5, n, noise=0.01, seed=seed)
        # the simulation alone (widen=1): here the curve is a true power law measured with
        # independent noise, so its own spread is the right one; the default widening is for real
        # loops, whose curves no family fits exactly (calibrated on loops, docs/benchmarks.md)
        fc = forecast(rows, target=0.9, seed=seed, widen=1.0)
        truth = first_crossing(0.93, 1.5, 0.5, n[-1], 10, 0.9, 0.01, seed=1000 + seed)
        inside.append(fc.labels_to_target.low <= truth <= fc.labels_to_target.high)
        errors.append(abs(fc.labels_to_target.point - truth) / truth)
        default = forecast(rows, target=0.9, seed=seed)
        wide.append(default.labels_to_target.low <= truth <= default.labels_to_target.high)
        assert default.labels_to_target.point == fc.labels_to_target.point
    assert 0.65 <= np.mean(inside) <= 0.95  # a nominal 80% interval
    assert np.mean(wide) >= np.mean(inside)
    assert np.median(errors) < 0.5
    rows = rounds(0.93, 1.5, 0.5, n, noise=0.01, seed=3)
    assert forecast(rows, target=0.9, seed=1) == forecast(rows, target=0.9, seed=1)
    assert forecast(rows, target=0.9, seed=2).labels_to_target != forecast(rows, target=0.9, seed=1).labels_to_target


def test_reached_unreachable_and_too_few_rounds() -> None:
    n = list(range(20, 220, 10))
    assert forecast(rounds(0.95, 2.0, 0.6, n), target=0.5).status == "reached"
    out = forecast(rounds(0.8, 2.0, 0.6, n), target=0.9)
    assert out.status == "unreachable" and math.isinf(out.hours_to_target.point)
    assert forecast(rounds(0.95, 2.0, 0.6, n[:2]), target=0.9).status == "too-few-rounds"
    assert forecast([], target=0.9).status == "too-few-rounds"


def test_stop_rule_compares_the_forecast_with_the_budget_left() -> None:
    fc = forecast(rounds(0.95, 2.0, 0.6, list(range(20, 220, 10))), target=0.9)
    assert fc.beyond(hours_left=fc.hours_to_target.low * 0.5)
    assert not fc.beyond(hours_left=fc.hours_to_target.high * 2)
    assert fc.beyond(cost_left=fc.cost_to_target.point * 0.99, conservative=False)
    assert not forecast(rounds(0.95, 2.0, 0.6, list(range(20, 220, 10))), target=0.5).beyond(hours_left=0.0)


def test_accepts_report_rows_and_checks_the_level() -> None:
    from clicloop.orchestrator.reporting.report import ReportRow

    from clicloop.orchestrator.ledger.money import ZERO, exact

    rows = [ReportRow(i, f"v{i}", k, r["metric"], None, 10, 0.1, r["total_hours"], exact(r["cost"]), ZERO, ZERO, None, None, None,
                      None, None)
            for i, (k, r) in enumerate(zip(range(20, 220, 10), rounds(0.95, 2.0, 0.6, list(range(20, 220, 10)))))]
    assert forecast(rows, 0.9).status == "forecast"
    with pytest.raises(ConfigError):
        forecast(rows, 0.9, level=1.5)


def test_the_stop_rule_in_the_config_needs_a_target_and_a_budget() -> None:
    from clicloop.orchestrator.config import config_from_dict
    from tests.conftest import digits_config

    with pytest.raises(ConfigError, match="stop.forecast needs stop.target_metric"):
        config_from_dict(digits_config("sqlite:///x.db", stop={"max_hours": 1.0, "forecast": {}}))
    with pytest.raises(ConfigError, match="stop.forecast needs"):
        config_from_dict(digits_config("sqlite:///x.db", stop={"target_metric": 0.9, "forecast": {}}))
    cfg = config_from_dict(digits_config("sqlite:///x.db", stop={"target_metric": 0.9, "max_cost": 5.0, "forecast": {}}))
    assert cfg.stop.forecast is not None and cfg.stop.forecast.conservative


def test_stop_reason_fires_when_the_forecast_exceeds_the_budget_left() -> None:
    from clicloop.orchestrator.config import ForecastStop, Stop
    from clicloop.orchestrator.stopping import Budget, stop_reason

    n = list(range(20, 220, 10))
    rows = rounds(0.95, 2.0, 0.6, n, hours=0.1, cost=0.2)
    history = [{"round_no": i, "n_labeled": r["n_labeled"], "metric": r["metric"]} for i, r in enumerate(rows)]
    hours = {i: r["total_hours"] for i, r in enumerate(rows)}
    spent_h, spent_c = sum(hours.values()), 2 * sum(hours.values())  # 2 money units per human hour
    need = forecast(rows, 0.93).hours_to_target
    assert need is not None and need.low > 0

    def reason(max_hours: float, **rule: object) -> str | None:
        stop = Stop(target_metric=0.93, max_hours=max_hours, forecast=ForecastStop(**rule))
        return stop_reason(stop, len(rows), rows[-1]["metric"], Budget(len(rows) * 10, spent_c, spent_h, 0.2), history,
                           lambda a, b: sum(hours[i] for i in range(a, b + 1)))

    assert reason(spent_h + need.low * 0.5).startswith("forecast: reaching the target 0.93 needs about")
    assert reason(spent_h + need.high * 2) is None  # the budget left covers even the pessimistic end
    between = spent_h + (need.low + need.point) / 2
    assert reason(between) is None and reason(between, conservative=False) is not None  # point vs optimistic end
    assert reason(spent_h + need.low * 0.5, min_rounds=len(rows) + 1) is None  # too few rounds yet


def test_a_loop_stops_on_the_forecast_before_its_budget_is_spent(tmp_path: Path) -> None:
    from clicloop.orchestrator.config import config_from_dict
    from clicloop.orchestrator.loop import Loop
    from tests.conftest import digits_config

    url = f"sqlite:///{tmp_path / 'forecast.db'}"
    cfg = config_from_dict(digits_config(url, stop={"max_labels": None, "target_metric": 0.999, "max_hours": 50.0,
                                                    "forecast": {"min_rounds": 4}}))
    results = Loop(cfg).run(restart=True)
    reason = results[-1].stop_reason
    assert reason is not None and reason.startswith("forecast:"), reason
    assert 4 <= len(results) < 15 and sum(r.total_hours for r in results) < 50.0

    from clicloop.orchestrator.dashboard.source import ReadOnlyLedger
    from clicloop.orchestrator.reporting.report import build_report, forecasts

    with ReadOnlyLedger(url) as led:
        rows, totals = build_report(led, "t")
        assert forecasts(led, {"t": (rows, totals)})["t"]["hours_left"] is None  # the ledger keeps no stop rules
        fc = forecasts(led, {"t": (rows, totals)}, stops={"t": cfg.stop})["t"]
    assert fc["target"] == 0.999 and fc["target_from"] == "config"  # the config's stop.target_metric
    assert fc["hours_left"] == pytest.approx(50.0 - totals.total_hours) and fc["cost_left"] is None
    assert "budget left" in fc["text"] and fc["beyond_budget"] == ("over budget" in fc["text"])


def test_describe_says_what_is_left_and_against_which_budget() -> None:
    from clicloop.orchestrator.reporting.forecast import default_target, describe

    fc = forecast(rounds(0.95, 2.0, 0.6, list(range(20, 220, 10))), target=0.9)
    text = describe(fc, "EUR", hours_left=fc.hours_to_target.low / 2)
    assert f"{fc.hours_to_target.point:.2f} human hours" in text and "over budget" in text
    assert "within reach" in describe(fc, "EUR", hours_left=fc.hours_to_target.high * 2)
    assert default_target(None, 0.913) == pytest.approx(0.94) and default_target(0.8, 0.95) == 0.8
    assert default_target(None, 0.985) == 0.99
    # a best metric on a whole point aims 2 points up, and the target is a clean 2-place number (0.93 aimed at
    # 0.96: 0.93 * 100 is 93.00000000000001 in floats; the JSON carried 0.9500000000000001)
    assert default_target(None, 0.93) == 0.95 and default_target(None, 0.9265) == 0.95 and default_target(None, 0.9555) == 0.98
    assert [repr(default_target(None, b / 1000)) for b in range(900, 970)] == [repr(round(default_target(None, b / 1000), 2))
                                                                               for b in range(900, 970)]


def test_a_curve_that_levels_off_below_the_target_is_not_reachable_and_shows_its_plateau() -> None:
    # measured noise around a curve whose plateau (0.962) is below the target: a noisy round could
    # land above 0.97, but the fitted curve never gets there, so no label count is forecast (the
    # forecast before said "8,950 more labels" here)
    rows = rounds(0.962, 0.8, 0.7, list(range(40, 1040, 50)), noise=0.006, seed=0)
    fc = forecast(rows, target=0.97)
    assert fc.status == "unreachable"
    assert fc.labels_to_target is not None and math.isinf(fc.labels_to_target.point)
    assert fc.plateau is not None and fc.plateau.high < 0.97 and fc.plateau.low <= 0.962
    assert fc.message.startswith("not reachable with this model and pool") and f"{fc.plateau.point:.4f}" in fc.message


def test_no_forecast_goes_past_the_unlabeled_pool() -> None:
    rows = rounds(0.95, 2.0, 0.6, list(range(20, 220, 10)))
    free = forecast(rows, target=0.9)
    assert free.status == "forecast" and free.labels_to_target.point > 200
    capped = forecast(rows, target=0.9, pool_left=200)
    assert capped.status == "unreachable" and math.isinf(capped.labels_to_target.point)
    assert "within the 200 unlabeled items left" in capped.message
    roomy = forecast(rows, target=0.9, pool_left=100_000)
    assert roomy.labels_to_target == free.labels_to_target


def test_the_next_points_cost_comes_from_the_fitted_curve_and_stops_at_its_plateau() -> None:
    rows = rounds(0.95, 2.0, 0.6, list(range(20, 220, 10)))
    fc = forecast(rows, 0.94)
    m = fc.marginal()
    now = float(fc.predict(fc.labels_now))
    # the labels it names move the fitted curve by one point, at the loop's own hours and money per label
    assert float(fc.predict(fc.labels_now + m.labels)) == pytest.approx(now + 0.01, abs=1e-9)
    assert m.hours == pytest.approx(m.labels * fc.hours_per_label) and m.cost == pytest.approx(m.labels * fc.cost_per_label)
    flat = forecast(rounds(0.95, 2.0, 0.6, list(range(8000, 18000, 500))), 0.99)  # within a point of its plateau
    assert flat.marginal() is not None and flat.marginal().labels == math.inf
    # and it says where: the curve now and where it levels off, which the report prints beside the forecast
    beyond = flat.marginal()
    assert beyond.plateau == flat.params[0] and beyond.curve_now == pytest.approx(float(flat.predict(flat.labels_now)))
    assert beyond.curve_now < beyond.plateau < beyond.curve_now + 0.01
    from clicloop.orchestrator.reporting.report import marginal_dict

    assert marginal_dict(flat) | {"cost_per_point": None} == {
        "labels_per_point": None, "hours_per_point": None, "cost_per_point": None, "beyond_plateau": True,
        "curve_now": beyond.curve_now, "curve_plateau": beyond.plateau}


def curve_rows(f: object, n: list[int], hours: list[float], cost: float = 0.2) -> list[dict[str, float]]:
    return [{"n_labeled": k, "metric": f(k), "total_hours": (n[i + 1] - k) * hours[i] if i + 1 < len(n) else 0.0,  # type: ignore[operator]
             "cost": (n[i + 1] - k) * cost if i + 1 < len(n) else 0.0} for i, k in enumerate(n)]


def test_a_curve_that_is_no_power_law_is_forecast_by_the_family_that_fits_it() -> None:
    # a hyperbola (Morgan-Mercer-Flodin) levels off faster than a power law fitted to its start:
    # the power law alone forecast 570 labels (380-720) where the curve needs 1,150
    n = list(range(20, 320, 10))
    fc = forecast(curve_rows(lambda k: 0.96 - 30.0 / (k + 40.0), n, [0.1] * len(n)), 0.94)
    assert fc.status == "forecast" and fc.model == "mmf"
    assert fc.labels_to_target.point == pytest.approx(1150, rel=0.02)
    assert fc.labels_to_target.low <= 1150 <= fc.labels_to_target.high
    assert float(fc.predict([1460])[0]) == pytest.approx(0.94, abs=1e-3)


def test_a_round_of_one_off_work_does_not_set_the_rate() -> None:
    # one of the last three rounds took ten times the hours (e.g. a qualification test): the rate
    # is the median round's, not the total over the rounds (0.4 h per label before)
    n = list(range(20, 320, 10))
    hours = [0.1] * len(n)
    hours[-3] = 1.0
    fc = forecast(curve_rows(lambda k: 0.96 - 30.0 / (k + 40.0), n, hours), 0.94)
    assert fc.hours_per_label == pytest.approx(0.1) and fc.cost_per_label == pytest.approx(0.2)


def test_the_families_are_checked() -> None:
    rows = rounds(0.95, 2.0, 0.6, list(range(20, 220, 10)))
    with pytest.raises(ConfigError, match="families"):
        forecast(rows, 0.9, families=("power", "spline"))
    assert forecast(rows, 0.9, families=("power",)).model == "power"


def test_widening_keeps_the_point_and_widens_every_interval() -> None:
    rows = rounds(0.93, 1.5, 0.5, list(range(20, 320, 10)), noise=0.01, seed=4)
    plain, wide = forecast(rows, 0.9, widen=1.0), forecast(rows, 0.9, widen=2.0)
    for name in ("labels_to_target", "hours_to_target", "cost_to_target"):
        a, b = getattr(plain, name), getattr(wide, name)
        assert b.point == a.point and b.low <= a.low and b.high >= a.high and (b.low, b.high) != (a.low, a.high)
    assert wide.labels_to_target.high / wide.labels_to_target.point == pytest.approx(
        (plain.labels_to_target.high / plain.labels_to_target.point) ** 2, rel=1e-9)
