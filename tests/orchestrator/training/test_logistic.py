import pytest

from clicloop.orchestrator.config import config_from_dict
from clicloop.orchestrator.loop import Loop
from clicloop.orchestrator.training.logistic import logreg, scaled_logreg
from tests.conftest import digits_config


def test_the_solvers_tolerance_is_a_model_parameter_with_scikit_learns_default():
    assert logreg().get_params()["tol"] == 1e-4 and scaled_logreg().get_params()["logisticregression__tol"] == 1e-4
    assert logreg(tol=1e-6).get_params()["tol"] == 1e-6
    assert scaled_logreg(tol=1e-5).get_params()["logisticregression__tol"] == 1e-5


@pytest.mark.parametrize("name", ["logreg", "scaled-logreg"])
def test_a_loop_fits_with_the_configured_tolerance(tmp_path, name):
    cfg = digits_config(f"sqlite:///{tmp_path / 'w.db'}", model={"name": name, "params": {"tol": 1e-6}},
                        loop={"pseudo_labels": None}, stop={"max_labels": 30})
    loop = Loop(config_from_dict(cfg))
    loop.run()
    fitted = loop.warm_.fits_[-1][1]
    assert fitted.get_params()[("" if name == "logreg" else "logisticregression__") + "tol"] == 1e-6
