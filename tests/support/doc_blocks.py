"""The runnable blocks of a Markdown page: a fenced block right after ``<!-- doc-test: NAME -->``.
Tests read them from the page and run them as written, with only documented placeholders
(ports, tokens, ids) replaced, so the page and what is tested cannot drift apart."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

_BLOCK = re.compile(r"<!-- doc-test: ([\w-]+) -->\n```\w*\n(.*?)\n```", re.S)


def doc_blocks(path: Path) -> dict[str, str]:
    """NAME -> the block's text, for every tagged block of the page."""
    found = _BLOCK.findall(path.read_text(encoding="utf-8"))
    names = [name for name, _ in found]
    if len(set(names)) != len(names):
        raise ValueError(f"{path}: a doc-test name is used twice: {names}")
    return dict(found)


def substitute(block: str, replacements: Mapping[str, str]) -> str:
    """The block with each placeholder replaced (every placeholder must occur in it)."""
    for old, new in replacements.items():
        if old not in block:
            raise AssertionError(f"the documented block no longer contains {old!r}:\n{block}")
        block = block.replace(old, new)
    return block


# `pip install ...` is a no-op in tests: clicloop is installed (editable) in the test environment
PREAMBLE = "set -euo pipefail\npip() { echo \"(pip $*: clicloop is installed in the test environment)\"; }\n"


def run_block(block: str, cwd: Path, env: Mapping[str, str] | None = None, timeout_s: float = 120) -> str:
    """Run a shell block with bash (``set -euo pipefail``) in ``cwd``; its stdout, or an
    AssertionError with its output when it fails."""
    full_env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}", **(env or {})}
    done = subprocess.run(["bash", "-c", PREAMBLE + block], cwd=cwd, env=full_env, capture_output=True, text=True,
                          timeout=timeout_s)
    if done.returncode != 0:
        raise AssertionError(f"the block failed ({done.returncode}):\n{block}\n--- stdout\n{done.stdout}\n--- stderr\n{done.stderr}")
    return done.stdout
