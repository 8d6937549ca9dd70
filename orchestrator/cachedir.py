"""Where clicloop keeps what it computes once per pool and reuses (sentence embeddings, neighbour
graphs): ``$CLICLOOP_CACHE_DIR`` when set, else the user's cache directory as platformdirs gives it
(``~/.cache/clicloop`` on Linux). Each kind of artefact gets its own sub-folder; deleting the
folder only costs recomputation."""

from __future__ import annotations

import os
from pathlib import Path

ENV = "CLICLOOP_CACHE_DIR"


def cache_dir(*parts: str) -> Path:
    """The cache folder ``parts`` below the root, created if missing."""
    root = os.environ.get(ENV)
    if not root:
        import platformdirs

        root = platformdirs.user_cache_dir("clicloop", appauthor=False)
    path = Path(root).expanduser().joinpath(*parts)
    path.mkdir(parents=True, exist_ok=True)
    return path
