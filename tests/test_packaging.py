"""One import namespace: the four folders install as ``clicloop.*``, nothing imports them by their
bare folder names, no module imports itself back through another, and the built wheel works next
to a user's own ``strategies.py``, ``backends/`` and ``orchestrator.py``."""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
import textwrap
import tomllib
import venv
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
FOLDERS = ("orchestrator", "strategies", "backends", "connectors")
PUBLIC_DIR = Path("orchestrator/_public")


def _module_name(path: Path) -> str:
    """The dotted ``clicloop.*`` name of a source file under one of the four folders."""
    rel = path.relative_to(ROOT).with_suffix("")
    parts = list(rel.parts)
    parts = ["clicloop", *parts[2:]] if parts[:2] == list(PUBLIC_DIR.parts) else ["clicloop", *parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _sources() -> dict[str, Path]:
    return {_module_name(p): p for top in FOLDERS for p in (ROOT / top).rglob("*.py") if "migrations" not in p.parts}


def test_pyproject_lists_every_package_folder():
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(config["packages"])
    # Every folder that holds files is a package to setuptools, data-only ones (templates,
    # migrations) too: one missing from the list is a warning at every install and a file the
    # wheel may leave out.
    on_disk = {_module_name(d / "__init__.py") for top in FOLDERS for d in [ROOT / top, *(ROOT / top).rglob("*")]
               if d.is_dir() and d.name != "__pycache__" and not d.name.endswith(".egg-info")
               and any(f.is_file() and f.suffix != ".pyc" for f in d.iterdir())}
    assert listed == on_disk, f"pyproject.toml's packages differ from the folders: {sorted(listed ^ on_disk)}"
    assert config["package-dir"]["clicloop"] == str(PUBLIC_DIR)


def _imports(tree: ast.AST, known: set[str]) -> set[str]:
    """Modules imported anywhere in ``tree`` (function bodies included, ``if TYPE_CHECKING`` not);
    ``from pkg import sub`` counts as importing ``pkg.sub`` when that is a module."""
    out: set[str] = set()
    skip: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skip.update(id(n) for n in ast.walk(node))
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            subs = {f"{node.module}.{a.name}" for a in node.names} & known
            out.update(subs if subs and len(subs) == len(node.names) else {node.module, *subs})
    return out


def test_nothing_imports_the_folders_by_their_bare_names():
    offenders = []
    for path in [*ROOT.glob("*/**/*.py")]:
        if path.relative_to(ROOT).parts[0] in {".venv", ".ci-cache", "build", "dist"}:
            continue
        for name in _imports(ast.parse(path.read_text()), set()):
            if name.split(".")[0] in FOLDERS:
                offenders.append(f"{path.relative_to(ROOT)}: {name}")
    assert not offenders, "import these through clicloop.*: " + ", ".join(offenders)


def test_no_import_cycles():
    sources = _sources()
    known = set(sources)
    graph = {m: (_imports(ast.parse(p.read_text()), known) & known) - {m} for m, p in sources.items()}
    cycles, index, low, stack, on_stack = [], {}, {}, [], set()

    def visit(v: str) -> None:  # Tarjan's strongly connected components
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for v in graph:
        if v not in index:
            visit(v)
    assert not cycles, f"modules that import each other: {cycles}"


def test_the_cycle_checker_finds_a_cycle():
    a = ast.parse("def f():\n    from clicloop.b import x\n")
    assert _imports(a, {"clicloop.b"}) == {"clicloop.b"}
    typed = ast.parse("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from clicloop.b import x\n")
    assert "clicloop.b" not in _imports(typed, {"clicloop.b"})


USER_PLUGIN = '''
"""The user's own plugin, in a file that happens to be called strategies.py."""
import numpy as np
from clicloop import hookimpl


class FeatureSum:
    requires = ()

    def score(self, model, X, rng):
        return np.asarray(X, dtype=float).sum(axis=1)


@hookimpl
def clicloop_register_strategies(register):
    register("feature-sum", FeatureSum)
'''


@pytest.mark.slow
def test_the_built_wheel_runs_beside_files_named_like_its_folders(tmp_path):
    # Build from a copy of the tracked files: a build/ left in the checkout could carry stale modules.
    tracked = subprocess.run(["git", "ls-files"], cwd=ROOT, check=True, capture_output=True, text=True).stdout.split()
    src = tmp_path / "src"
    for name in tracked:
        if (ROOT / name).is_file():
            (src / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, src / name)
    wheels = tmp_path / "wheels"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation", "-w", str(wheels), str(src)],
                   check=True, capture_output=True, text=True)
    wheel = next(wheels.glob("clicloop-*.whl"))
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=False).create(env_dir)
    python = env_dir / "bin" / "python"
    site = Path(subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               check=True, capture_output=True, text=True).stdout.strip())
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(site), str(wheel)],
                   check=True, capture_output=True, text=True)
    # The dependencies come from the test environment's site-packages, appended after the fresh
    # one: its .pth files (the editable install of this checkout) are not processed from there.
    deps = next(p for p in map(Path, sys.path) if p.name == "site-packages" and (p / "numpy").is_dir())
    (site / "zz_test_dependencies.pth").write_text(f"{deps}\n")

    project = tmp_path / "project"
    (project / "backends").mkdir(parents=True)
    (project / "backends" / "__init__.py").write_text("raise ImportError('the user\\'s backends/ was imported')\n")
    (project / "orchestrator.py").write_text("raise ImportError('the user\\'s orchestrator.py was imported')\n")
    (project / "strategies.py").write_text(textwrap.dedent(USER_PLUGIN))
    config = {
        "loop": {"name": "mine", "seed": 0, "purpose": "Teach a model to read handwritten digits.", "batch_size": 10},
        "data": {"builtin": "digits", "seed_size": 20},
        "strategy": {"name": "feature-sum"},
        "stop": {"max_labels": 40},
        "ledger": f"sqlite:///{project / 'ledger.db'}",
        "plugins": ["strategies"],
    }
    (project / "clicloop.yaml").write_text(yaml.safe_dump(config))
    env = {k: v for k, v in os.environ.items() if k not in {"PYTHONPATH", "VIRTUAL_ENV"}}

    where = subprocess.run([python, "-c", "import clicloop, clicloop.orchestrator.loop as l; print(clicloop.__file__, l.__file__)"],
                           cwd=project, env=env, check=True, capture_output=True, text=True).stdout
    assert str(site) in where and str(ROOT) not in where, where
    run = subprocess.run([python, "-m", "clicloop", "run", "clicloop.yaml"], cwd=project, env=env, capture_output=True, text=True,
                         timeout=300)
    assert run.returncode == 0, run.stdout + run.stderr
    quick = subprocess.run([python, "-m", "clicloop", "quickstart", "--budget", "60", "--ledger", f"sqlite:///{project / 'q.db'}"],
                           cwd=project, env=env, capture_output=True, text=True, timeout=300)
    assert quick.returncode == 0, quick.stdout + quick.stderr
    assert "effective wage" in quick.stdout, quick.stdout
    script = subprocess.run([python, "-c", "from importlib.metadata import distribution as d; "
                             "print([e.value for e in d('clicloop').entry_points if e.name == 'clicloop'])"],
                            cwd=project, env=env, check=True, capture_output=True, text=True).stdout
    assert "clicloop.orchestrator.cli.main:main" in script, script
