"""The plugin-manager factory and the registry of named strategies, backends, models and
aggregators.

Nothing registers at import time: :func:`get_plugin_manager` registers the built-in plugin
modules, then the ``clicloop`` entry points, then any extra modules a config names, and checks
that every hook implementation matches a spec.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pluggy

from clicloop.orchestrator import hookspecs
from clicloop.orchestrator.errors import ConfigError, DuplicatePluginError, PluginError, UnknownPluginError

BUILTIN_PLUGINS = (
    "clicloop.strategies.plugin",
    "clicloop.backends.plugin",
    "clicloop.orchestrator.training.models",
    "clicloop.orchestrator.crowd.aggregate",
    "clicloop.orchestrator.crowd.crowdkit",
    "clicloop.orchestrator.fairwork.policies",
    "clicloop.orchestrator.postdeploy.plugin",
)
KINDS = ("strategy", "backend", "model", "aggregator", "triage")
_HOOK_OF_KIND = {
    "strategy": "clicloop_register_strategies",
    "backend": "clicloop_register_backends",
    "model": "clicloop_register_models",
    "aggregator": "clicloop_register_aggregators",
    "triage": "clicloop_register_triage_policies",
}


def get_plugin_manager(
    extra_modules: Iterable[str] = (), *, load_entrypoints: bool = True
) -> pluggy.PluginManager:
    """Build a plugin manager with the built-ins, installed entry points and ``extra_modules``."""
    pm = pluggy.PluginManager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)
    for name in BUILTIN_PLUGINS:
        pm.register(importlib.import_module(name), name=name)
    if load_entrypoints:
        try:
            pm.load_setuptools_entrypoints(hookspecs.PROJECT)
        except Exception as e:  # a broken third-party plugin: name it, keep the cause
            raise PluginError(f"could not load a plugin from the 'clicloop' entry points: {e}") from e
    add_modules(pm, extra_modules)
    return pm


def add_modules(pm: pluggy.PluginManager, names: Iterable[str]) -> None:
    """Register the plugin modules ``names`` (import names or ``.py`` paths, as a config's
    ``plugins`` gives them) on ``pm``, each once: one already registered, by name or as an
    installed entry point, is not registered again. Then check every hook implementation."""
    for name in names:
        if pm.has_plugin(name):
            continue
        module = _import(name)
        if not pm.is_registered(module):  # an installed plugin the config names too
            pm.register(module, name=name)
    try:
        pm.check_pending()
    except pluggy.PluginValidationError as e:
        raise PluginError(f"{e} (is the hook name misspelled? known hooks: {', '.join(_hook_names())})") from e


def _import(name: str) -> Any:
    """A plugin module by its import name, or by the path of its ``.py`` file."""
    if name.endswith(".py"):
        path = Path(name)
        spec = importlib.util.spec_from_file_location(path.stem, path) if path.is_file() else None
        if spec is None or spec.loader is None:
            raise PluginError(f"plugin file {name!r} (from the config's 'plugins') not found")
        module = importlib.util.module_from_spec(spec)
        try:
            spec.loader.exec_module(module)
        except Exception as e:  # noqa: BLE001 - any failure of a third-party file (a SyntaxError too): name it, keep the cause
            raise PluginError(f"plugin file {name!r} (from the config's 'plugins') cannot be imported: "
                              f"{type(e).__name__}: {e}") from e
        return module
    try:
        return importlib.import_module(name)
    except Exception as e:  # noqa: BLE001 - any failure of a third-party module at import: name it, keep the cause
        raise PluginError(f"plugin module {name!r} (from the config's 'plugins') cannot be imported: "
                          f"{'' if isinstance(e, ImportError) else type(e).__name__ + ': '}{e}"
                          + (f" (a file beside the config: write plugins: [{name}.py])"
                             if isinstance(e, ModuleNotFoundError) and e.name == name else "")) from e


def _hook_names() -> list[str]:
    return sorted(n for n in dir(hookspecs) if n.startswith("clicloop_"))


@dataclass(frozen=True)
class Entry:
    """One registered name: its factory and the plugin (and distribution) it came from."""

    kind: str
    name: str
    factory: Callable[..., Any]
    plugin: str
    distribution: str | None
    requires: tuple[str, ...] = ()
    extra: str | None = None

    def missing(self) -> list[str]:
        """The required modules that are not installed (found without importing them)."""
        return [m for m in self.requires if not _installed(m)]

    def install_hint(self) -> str:
        """What to install for the missing modules."""
        if self.extra is None:
            return f"pip install {' '.join(self.missing())}"
        return self.extra if " " in self.extra else f"pip install 'clicloop[{self.extra}]'"


def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # a missing parent package, or a module without a spec
        return False


class Registry:
    """Every named factory the plugins registered, by kind."""

    def __init__(self, pm: pluggy.PluginManager):
        self.pm = pm
        self.entries: dict[str, dict[str, Entry]] = {kind: {} for kind in KINDS}
        dists = {id(plugin): f"{dist.project_name} {dist.version}" for plugin, dist in pm.list_plugin_distinfo()}
        for kind, hook_name in _HOOK_OF_KIND.items():
            for impl in getattr(pm.hook, hook_name).get_hookimpls():
                plugin_name = impl.plugin_name
                dist = dists.get(id(impl.plugin))
                impl.function(register=self._register_fn(kind, plugin_name, dist))

    def _register_fn(self, kind: str, plugin: str, dist: str | None) -> hookspecs.Register:
        def register(name: str, factory: Callable[..., Any], *, requires: Sequence[str] = (), extra: str | None = None) -> None:
            if not isinstance(name, str) or not name:
                raise PluginError(f"plugin {plugin!r} registered a {kind} with an empty or non-string name")
            previous = self.entries[kind].get(name)
            if previous is not None:
                raise DuplicatePluginError(
                    f"{kind} {name!r} is registered twice: by plugin {previous.plugin!r}"
                    f"{_from(previous.distribution)} and by plugin {plugin!r}{_from(dist)}. "
                    "Uninstall one of them, or rename one."
                )
            if isinstance(requires, str) or not all(isinstance(m, str) and m for m in requires):
                raise PluginError(f"plugin {plugin!r} registered {kind} {name!r} with requires={requires!r}: "
                                  "give a list of module names")
            self.entries[kind][name] = Entry(kind, name, factory, plugin, dist, tuple(requires), extra)

        return register

    def names(self, kind: str) -> list[str]:
        return sorted(self.entries[kind])

    def get(self, kind: str, name: str, *, field: str | None = None) -> Entry:
        try:
            return self.entries[kind][name]
        except KeyError:
            raise UnknownPluginError(kind, name, self.names(kind), field=field) from None

    def create(self, kind: str, name: str, params: dict[str, Any], *, field: str | None = None) -> Any:
        """Build the named object from its params, with unknown params named in the error. Secret
        params given as ``{env: NAME}`` / ``{file: PATH}`` are read here and handed to the object only."""
        from clicloop.orchestrator.credentials import public_config, resolve_secrets

        entry = self.get(kind, name, field=field)
        missing = entry.missing()
        if missing:
            raise PluginError(f"{kind} {name!r} needs {', '.join(missing)}, which is not installed: "
                              f"{entry.install_hint()} (clicloop plugins lists what each entry needs)")
        _check_params(entry, params, field)
        where = f"{field}.params" if field else "params"
        resolved = resolve_secrets(params, where)
        _check_types(entry, resolved, field)
        try:
            return entry.factory(**resolved)
        except (TypeError, ValueError) as e:
            raise ConfigError(
                f"cannot build {kind} {name!r} from params {public_config(params)!r}: {e}", field=f"{field}.params" if field else None
            ) from e


def _check_params(entry: Entry, params: dict[str, Any], field: str | None) -> None:
    try:
        sig = inspect.signature(entry.factory)
    except (TypeError, ValueError):
        return
    if any(p.kind is p.VAR_KEYWORD for p in sig.parameters.values()):
        return
    accepted = {n for n, p in sig.parameters.items() if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)}
    unknown = sorted(set(params) - accepted)
    if unknown:
        raise ConfigError(
            f"{entry.kind} {entry.name!r} takes no parameter(s) {', '.join(unknown)}; "
            f"it accepts: {', '.join(sorted(accepted)) or '(none)'}",
            field=f"{field}.params" if field else None,
        )


_NUMBER, _WHOLE, _FLAG = "a number", "a whole number", "true or false"


def _check_types(entry: Entry, params: dict[str, Any], field: str | None) -> None:
    """A parameter annotated as a number or a flag gets one (``threshold: "abc"`` is named here,
    not left to fail inside the factory as ``'<=' not supported ...``); other annotations are the
    factory's business. The value is never printed: it may come from a secret."""
    import types
    import typing

    target = entry.factory.__init__ if inspect.isclass(entry.factory) else entry.factory
    try:
        hints = typing.get_type_hints(target)
    except (NameError, TypeError, AttributeError):  # annotations it cannot resolve: nothing to check
        return
    for name, value in params.items():
        hint = hints.get(name)
        kinds = typing.get_args(hint) if typing.get_origin(hint) in (typing.Union, types.UnionType) else (hint,)
        wanted = {_WHOLE if k is int else _NUMBER if k is float else _FLAG if k is bool else None
                  for k in kinds if k is not type(None)}
        if wanted == {_WHOLE, _NUMBER}:
            wanted = {_NUMBER}
        if len(wanted) != 1 or None in wanted or (value is None and type(None) in kinds):
            continue
        want = wanted.pop()
        if not _fits(want, value):
            raise ConfigError(f"{entry.kind} {entry.name!r}: parameter {name} is {want}, not {_kind_of(value)}",
                              field=f"{field}.params.{name}" if field else None)


def _fits(want: str, value: Any) -> bool:
    """Numbers as YAML, Python or numpy give them, or as Decimal; whole numbers as integers;
    flags as booleans (numpy's too)."""
    import numbers
    from decimal import Decimal

    import numpy as np

    if want == _FLAG:
        return isinstance(value, (bool, np.bool_))
    if isinstance(value, (bool, np.bool_)):
        return False
    if want == _WHOLE:
        return isinstance(value, numbers.Integral)
    return isinstance(value, (numbers.Real, Decimal))  # text never: a money parameter annotates str itself


def _kind_of(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        return f"{value!r} (write {int(value)})"
    if isinstance(value, str) and _YAML_EXPONENT.fullmatch(value.strip()):
        return f"text ({value!r}: YAML reads an exponent without a dot as text; write {_dotted(value.strip())})"
    return {bool: "true or false", str: "text", type(None): "null", list: "a list", dict: "a mapping",
            float: "a number with a fraction"}.get(type(value), type(value).__name__)


_YAML_EXPONENT = re.compile(r"[-+]?\d+[eE][-+]?\d+")  # 1e-5: text to YAML 1.1 (PyYAML), a number to everyone else


def _dotted(value: str) -> str:
    mantissa, exponent = re.split("[eE]", value, maxsplit=1)
    return f"{mantissa}.0e{exponent}"


def _from(dist: str | None) -> str:
    return f" (from {dist})" if dist else ""


def check_names(config: Any, registry: Registry) -> None:
    """Fail early, before any work, on a strategy, backend, model or aggregator nobody registered."""
    for kind, ref, field in (("strategy", config.strategy, "strategy.name"), ("backend", config.backend, "backend.name"),
                             ("aggregator", config.aggregator, "aggregator.name"), ("model", config.model, "model.name")):
        if not (kind == "model" and ref.name == "auto"):
            registry.get(kind, ref.name, field=field)
