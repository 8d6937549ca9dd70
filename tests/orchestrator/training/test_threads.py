import pytest
from threadpoolctl import threadpool_info

from clicloop import Loop, config_from_dict
from clicloop.orchestrator.errors import ConfigError
from clicloop.orchestrator.hookspecs import hookimpl
from clicloop.orchestrator.plugins import get_plugin_manager
from clicloop.orchestrator.training.threads import auto_threads, blas_limits, resolve_blas_threads
from tests.conftest import digits_config


def blas_threads() -> list[int]:
    return [lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"]


class ThreadSpy:
    """A plugin: the BLAS thread counts while each round runs."""

    def __init__(self) -> None:
        self.seen: list[list[int]] = []

    @hookimpl
    def clicloop_round_started(self, loop, round_no):
        self.seen.append(blas_threads())


def test_the_setting_resolves_to_a_count():
    assert resolve_blas_threads("auto") == auto_threads()
    assert [auto_threads(c) for c in (1, 2, 4, 8, 16, 64)] == [1, 1, 1, 2, 4, 4]
    assert resolve_blas_threads(None) is None and resolve_blas_threads(3) == 3
    with pytest.raises(ValueError, match="blas_threads"):
        resolve_blas_threads("many")


def test_the_limit_holds_inside_and_is_lifted_after():
    from threadpoolctl import threadpool_limits

    with threadpool_limits(2, user_api="blas"):
        with blas_limits(1):
            assert set(blas_threads()) == {1}
        assert set(blas_threads()) == {2}
        with blas_limits(None):  # null: the libraries' own choice, untouched
            assert set(blas_threads()) == {2}


@pytest.mark.parametrize("setting", ["auto", 1, None])
def test_a_round_runs_under_the_configured_blas_threads(tmp_path, setting):
    spy = ThreadSpy()
    pm = get_plugin_manager(load_entrypoints=False)
    pm.register(spy)
    from threadpoolctl import threadpool_limits

    cfg = digits_config(f"sqlite:///{tmp_path / 't.db'}", loop={"pseudo_labels": None, "blas_threads": setting},
                        stop={"max_labels": 20})
    with threadpool_limits(2, user_api="blas"):  # what the process runs with outside the loop's rounds
        Loop(config_from_dict(cfg), plugin_manager=pm).run()
        after = blas_threads()
    expected = 2 if setting is None else resolve_blas_threads(setting)
    assert spy.seen and all(set(seen) == {expected} for seen in spy.seen), (spy.seen, expected)
    assert set(after) == {2}  # lifted once the loop is done


def test_a_thread_count_below_one_is_refused_naming_the_field():
    with pytest.raises(ConfigError) as err:
        config_from_dict(digits_config("sqlite://", loop={"blas_threads": 0}))
    assert err.value.field is not None and err.value.field.startswith("loop.blas_threads")


def test_the_thread_setting_is_not_part_of_the_loops_fingerprint(tmp_path):
    from clicloop.orchestrator.loop_setup import fingerprint as _fingerprint

    one, auto = (config_from_dict(digits_config("sqlite://", loop={"blas_threads": b})) for b in (1, "auto"))
    assert _fingerprint(one)[0] == _fingerprint(auto)[0]
    text = _fingerprint(config_from_dict(digits_config("sqlite://", loop={"pseudo_labels": {}})))[1]
    assert "blas_threads" not in text and "check_folds" not in text and "newest_check" not in text  # later fields at their defaults: older loops keep their hash
