"""Plugins: built-ins and third-party distributions register through the same hooks."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import types
from pathlib import Path

import pytest
import yaml

from clicloop.orchestrator.errors import DuplicatePluginError, PluginError
from clicloop.orchestrator.hookspecs import hookimpl
from clicloop.orchestrator.plugins import Registry, get_plugin_manager
from tests.conftest import digits_config


def test_builtins_register_through_the_hooks():
    registry = Registry(get_plugin_manager(load_entrypoints=False))
    assert {"random", "margin", "entropy", "least-confidence"} <= set(registry.names("strategy"))
    assert registry.get("backend", "simulated").plugin == "clicloop.backends.plugin"
    assert registry.get("strategy", "margin").plugin == "clicloop.strategies.plugin"


def test_a_duplicate_name_fails_naming_both_plugins():
    plugin = types.ModuleType("copycat")

    @hookimpl
    def clicloop_register_strategies(register):
        register("margin", object)

    plugin.clicloop_register_strategies = clicloop_register_strategies
    pm = get_plugin_manager(load_entrypoints=False)
    pm.register(plugin, name="copycat")
    with pytest.raises(DuplicatePluginError, match=r"strategy 'margin'.*clicloop.strategies.plugin.*copycat"):
        Registry(pm)


NEEDS_EXTRA = """
from clicloop.orchestrator.hookspecs import hookimpl


class Fancy:
    requires = ()

    def score(self, model, X, rng):
        import clicloop_missing_dependency_xyz  # noqa: F401
        return X[:, 0]


@hookimpl
def clicloop_register_strategies(register):
    register("fancy", Fancy, requires=("clicloop_missing_dependency_xyz",), extra="fancy-extra")
"""


def test_an_entry_whose_extra_is_missing_is_listed_with_what_to_install(tmp_path):
    (tmp_path / "needs_extra.py").write_text(NEEDS_EXTRA)
    cfg = digits_config(f"sqlite:///{tmp_path / 'l.db'}", strategy={"name": "fancy"}, plugins=["needs_extra"])
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump(cfg))
    env = {**os.environ, "PYTHONPATH": f"{tmp_path}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    code = ("import json, sys; from clicloop.orchestrator.plugins import Registry, get_plugin_manager; "
            "r = Registry(get_plugin_manager(['needs_extra'])); e = r.get('strategy', 'fancy'); "
            "print(json.dumps([e.missing(), e.install_hint(), r.get('strategy', 'margin').missing()]))")
    listed = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert json.loads(listed.stdout) == [["clicloop_missing_dependency_xyz"], "pip install 'clicloop[fancy-extra]'", []]

    run = subprocess.run([sys.executable, "-m", "clicloop", "run", str(config)], env=env, capture_output=True, text=True)
    assert run.returncode == 2, run.stdout + run.stderr
    assert "needs clicloop_missing_dependency_xyz" in run.stderr and "clicloop[fancy-extra]" in run.stderr
    assert "Traceback" not in run.stderr


def test_plugins_lists_every_builtin_as_usable_here():
    listed = subprocess.run([sys.executable, "-m", "clicloop", "plugins", "--json"], capture_output=True, text=True, check=True)
    rows = {(r["kind"], r["name"]): r for r in json.loads(listed.stdout)}
    assert rows[("aggregator", "dawid-skene")]["usable"]  # the test environment has every extra
    assert all(r["usable"] and r["install"] is None for r in rows.values())


def test_a_misspelled_hook_is_caught(tmp_path, monkeypatch):
    (tmp_path / "typo_plugin.py").write_text(
        "from clicloop.orchestrator.hookspecs import hookimpl\n@hookimpl\ndef clicloop_register_strategys(register):\n    pass\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(PluginError, match="clicloop_register_strategys.*misspelled"):
        get_plugin_manager(["typo_plugin"], load_entrypoints=False)


PLUGIN_PYPROJECT = """
[build-system]
requires = ["setuptools>=68"]
build-backend = "setuptools.build_meta"

[project]
name = "clicloop-demo-plugin"
version = "1.2.3"

[project.entry-points.clicloop]
demo = "clicloop_demo"
"""

PLUGIN_MODULE = '''
"""A third-party clicloop plugin: a strategy and a backend."""
import numpy as np
from clicloop.orchestrator.hookspecs import hookimpl
from clicloop.backends.simulated import SimulatedCrowd


class LongestFirst:
    """Prefers items with the largest feature sum (a toy strategy)."""
    requires = ()

    def score(self, model, X, rng):
        return np.asarray(X, dtype=float).sum(axis=1)


class SlowCrowd(SimulatedCrowd):
    def __init__(self, factor: float = 2.0):
        super().__init__(seconds_median=5.0 * factor)


@hookimpl
def clicloop_register_strategies(register):
    register("longest-first", LongestFirst)


@hookimpl
def clicloop_register_backends(register):
    register("slow-crowd", SlowCrowd)
'''


@pytest.mark.slow
def test_a_real_third_party_distribution_adds_a_strategy_and_a_backend(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    (src / "pyproject.toml").write_text(PLUGIN_PYPROJECT)
    (src / "clicloop_demo.py").write_text(textwrap.dedent(PLUGIN_MODULE))
    site = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation", "--target", str(site), str(src)],
        check=True, capture_output=True, text=True,
    )
    env = {**os.environ, "PYTHONPATH": f"{site}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}

    listed = subprocess.run([sys.executable, "-m", "clicloop", "plugins", "--json"], env=env, capture_output=True, text=True, check=True)
    rows = {(r["kind"], r["name"]): r for r in json.loads(listed.stdout)}
    assert rows[("strategy", "longest-first")]["distribution"] == "clicloop-demo-plugin 1.2.3"
    assert rows[("backend", "slow-crowd")]["plugin"] == "demo"

    cfg = digits_config(f"sqlite:///{tmp_path / 'l.db'}", strategy={"name": "longest-first"},
                        backend={"name": "slow-crowd", "params": {"factor": 3.0}}, stop={"max_labels": 20})
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump(cfg))
    run = subprocess.run([sys.executable, "-m", "clicloop", "run", str(config)], env=env, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    report = subprocess.run([sys.executable, "-m", "clicloop", "report", str(config), "--json"], env=env,
                            capture_output=True, text=True, check=True)
    totals = json.loads(report.stdout)["t"]["totals"]
    assert totals["answers"] == 20
    assert totals["active_hours"] * 3600 / 20 > 10  # the slow crowd's tasks took ~15 s each


README_PLUGIN = '''
import numpy as np
from clicloop import hookimpl

class SmallestMax:
    """Least confidence, written as a plugin: higher score = more informative."""
    requires = ("predict_proba",)

    def score(self, model, X, rng):
        return 1.0 - model.predict_proba(X).max(axis=1)

@hookimpl
def clicloop_register_strategies(register):
    register("smallest-max", SmallestMax)
'''


def test_a_plugin_file_beside_the_config_loads_from_any_folder(tmp_path, monkeypatch, capsys):
    """The README's plugin, loaded by ``plugins: [my_plugin]`` as it said, was not importable by the
    console script (whose path holds no working folder): a ``.py`` entry is a file, relative to
    the config, and a module that cannot be found says so."""
    from clicloop.orchestrator.cli.main import main

    project = tmp_path / "proj"
    project.mkdir()
    (project / "my_plugin.py").write_text(README_PLUGIN)
    cfg = digits_config("sqlite:///l.db", strategy={"name": "smallest-max"}, stop={"max_labels": 30}, plugins=["my_plugin.py"])
    (project / "c.yaml").write_text(yaml.safe_dump(cfg))
    monkeypatch.chdir(tmp_path)
    main(["run", "proj/c.yaml"])
    monkeypatch.chdir(project)
    cfg["stop"]["max_labels"] = 40
    (project / "c.yaml").write_text(yaml.safe_dump(cfg))
    main(["run", "c.yaml"])  # the same loop, resumed from the config's folder
    assert "smallest-max" in capsys.readouterr().out + (project / "c.yaml").read_text()
    with pytest.raises(PluginError, match=r"'no_such_plugin' .* \(a file beside the config: write plugins: \[no_such_plugin.py\]\)"):
        get_plugin_manager(["no_such_plugin"])
    with pytest.raises(PluginError, match=r"plugin file 'gone.py' .* not found"):
        get_plugin_manager(["gone.py"])


TOY_STRATEGY = '''
import numpy as np
from clicloop.orchestrator.hookspecs import hookimpl


class SmallestMax:
    requires = ("predict_proba",)

    def score(self, model, X, rng):
        return -model.predict_proba(X).max(axis=1)


@hookimpl
def clicloop_register_strategies(register):
    register("smallest-max", SmallestMax)
'''


def test_an_installed_plugin_the_config_names_too_is_registered_once(tmp_path, monkeypatch):
    """An entry-point plugin also listed in ``plugins:`` (the README's module-name form) failed
    with pluggy's raw "Plugin already registered under a different name"."""
    from clicloop.orchestrator.plugins import add_modules

    (tmp_path / "toy_installed.py").write_text(TOY_STRATEGY)
    monkeypatch.syspath_prepend(str(tmp_path))
    import toy_installed

    pm = get_plugin_manager(load_entrypoints=False)
    pm.register(toy_installed, name="toy-entry-point")  # as load_setuptools_entrypoints names it
    add_modules(pm, ["toy_installed"])
    assert Registry(pm).get("strategy", "smallest-max").plugin == "toy-entry-point"


def test_a_plugin_manager_given_to_the_loop_gets_the_configs_plugins(tmp_path):
    """``Loop(config, plugin_manager=pm)`` ignored ``config.plugins``: 'unknown strategy'."""
    from clicloop.orchestrator.config import config_from_dict
    from clicloop.orchestrator.loop import Loop

    (tmp_path / "toy_file.py").write_text(TOY_STRATEGY)
    cfg = config_from_dict(digits_config(f"sqlite:///{tmp_path / 'l.db'}", plugins=["toy_file.py"],
                                         strategy={"name": "smallest-max"}, stop={"max_labels": 20}), base_dir=tmp_path)
    results = Loop(cfg, plugin_manager=get_plugin_manager(load_entrypoints=False)).run()
    assert len(results) >= 2  # it ran with the file's strategy (before: "unknown strategy 'smallest-max'")


@pytest.mark.parametrize("body, says", [("def broken(:\n", "SyntaxError"),
                                        ("raise RuntimeError('no licence key')\n", "RuntimeError: no licence key")])
def test_a_plugin_that_fails_at_import_is_a_plugin_error_naming_it(tmp_path, monkeypatch, body, says):
    """A plugin file with a SyntaxError, or one raising at import, propagated raw (only
    ImportError was caught, unlike for entry points)."""
    (tmp_path / "bad_file.py").write_text(body)
    (tmp_path / "bad_module.py").write_text(body)
    monkeypatch.syspath_prepend(str(tmp_path))
    for name in (str(tmp_path / "bad_file.py"), "bad_module"):
        with pytest.raises(PluginError, match=f"{name!r}.*cannot be imported: {says}"):
            get_plugin_manager([name], load_entrypoints=False)


@pytest.mark.parametrize("params, says", [
    ({"accuracy_mean": "abc"}, "parameter accuracy_mean is a number, not text"),
    ({"accuracy_mean": True}, "parameter accuracy_mean is a number, not true or false"),
    ({"n_workers": 2.5}, "parameter n_workers is a whole number, not a number with a fraction"),
])
def test_a_parameter_of_the_wrong_kind_is_named_before_the_plugin_is_built(params, says):
    """``n_workers: 2.5`` escaped a run as numpy's TypeError; ``threshold: abc`` as "'<=' not supported"."""
    from clicloop.orchestrator.errors import ConfigError

    registry = Registry(get_plugin_manager())
    with pytest.raises(ConfigError, match=says) as caught:
        registry.create("backend", "simulated", params, field="backend")
    assert caught.value.field == f"backend.params.{next(iter(params))}"
    registry.create("backend", "simulated", {"reward": 1, "n_workers": 3}, field="backend")  # an int is a number
    import numpy as np
    from decimal import Decimal

    for fine in ({"reward": "0.05"}, {"reward": Decimal("0.05")}, {"reward": np.float64(0.05), "n_workers": np.int64(3)},
                 {"accuracy_mean": Decimal("0.9")}):
        registry.create("backend", "simulated", fine, field="backend")  # money as a decimal string, numpy numbers
    with pytest.raises(ConfigError, match=r"n_workers is a whole number, not 3.0 \(write 3\)"):
        registry.create("backend", "simulated", {"n_workers": 3.0}, field="backend")
    with pytest.raises(ConfigError, match=r"accuracy_mean is a number, not text \('9e-1': YAML reads .* write 9.0e-1\)"):
        registry.create("backend", "simulated", {"accuracy_mean": "9e-1"}, field="backend")  # what PyYAML makes of 9e-1
    with pytest.raises(ConfigError, match="accuracy_mean is a number, not text"):  # it failed at the first collect
        registry.create("backend", "simulated", {"accuracy_mean": "0.9"}, field="backend")
    registry.create("strategy", "margin-coverage", {"pending": np.True_}, field="strategy")  # numpy's bool is a flag
