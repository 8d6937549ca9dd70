"""The model store: every fitted model version of a served Label Studio project on disk, so a
restarted ML backend serves its latest model at once and never reuses a version name.

Layout under the store directory (``--model-store``; default beside a SQLite ledger)::

    <ledger loop>/                 e.g. support.p3/
        config.xml                 the project's latest labeling config
        <version>.joblib           the fitted model (joblib, scikit-learn's documented way)
        <version>.json             version, training-set hash, sizes, library versions

Every file is written to a temporary file in the same directory and renamed into place, so a
crash leaves either the old file or the new one. A model is loaded only by the same scikit-learn
and NumPy versions that saved it (pickles are not portable across them); otherwise
:class:`StoredModelError` says so and the backend retrains. Pickles run code when loaded: the
store must be writable by the service's user only.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from clicloop.orchestrator.errors import ClicloopError

CHECKED_LIBRARIES = ("sklearn", "numpy")


class StoredModelError(ClicloopError):
    """A stored model version cannot be used (missing, unreadable, or saved by other library versions)."""


def library_versions() -> dict[str, str]:
    """Versions of the libraries a pickled model depends on (and clicloop's, for the record)."""
    from importlib.metadata import version

    import numpy
    import sklearn

    return {"sklearn": sklearn.__version__, "numpy": numpy.__version__, "joblib": version("joblib"),
            "clicloop": version("clicloop")}


def default_store(ledger_url: str) -> Path:
    """``<ledger file stem>-models`` beside a SQLite ledger file; ``./clicloop-models`` otherwise."""
    from sqlalchemy.engine import make_url

    url = make_url(ledger_url)
    if url.get_backend_name() == "sqlite" and url.database and url.database != ":memory:":
        path = Path(url.database)
        return path.with_name(f"{path.stem}-models")
    return Path("clicloop-models")


def version_number(name: str, prefix: str) -> int | None:
    """N of a version named ``<prefix>-vN``; None for any other name."""
    found = re.fullmatch(re.escape(prefix) + r"-v(\d+)", name)
    return int(found.group(1)) if found else None


def _atomic_write(path: Path, write: Callable[[IO[bytes]], None]) -> None:
    """Write through ``write`` into a temporary file beside ``path``, then rename it into place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class ModelStore:
    """The stored versions of one ledger loop (one Label Studio project)."""

    def __init__(self, root: str | Path, loop: str):
        self.root = Path(root)
        self.loop = loop

    @property
    def dir(self) -> Path:
        return self.root / self.loop

    def save(self, version: str, model: Any, meta: dict[str, Any]) -> dict[str, Any]:
        """Store a fitted model and its metadata (the metadata last: a version exists once its
        ``.json`` does). Returns the metadata written, library versions added."""
        import joblib

        record = {**meta, "model_version": version, "libraries": library_versions()}
        try:
            _atomic_write(self.dir / f"{version}.joblib", lambda f: joblib.dump(model, f))
            _atomic_write(self.dir / f"{version}.json", lambda f: f.write(json.dumps(record, indent=1).encode()))
        except OSError as e:
            raise StoredModelError(f"cannot write model {version} into the model store {self.dir}: {e}; "
                                   "check that the directory is writable (--model-store)") from e
        return record

    def meta(self, version: str) -> dict[str, Any] | None:
        """The metadata of a stored version, None if it is not stored (or unreadable)."""
        try:
            record = json.loads((self.dir / f"{version}.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        return record if isinstance(record, dict) else None

    def load(self, version: str) -> Any:
        """The fitted model of ``version``, refused unless saved by this scikit-learn and NumPy."""
        import joblib

        record = self.meta(version)
        if record is None:
            raise StoredModelError(f"model {version} is not in the model store {self.dir}")
        now, then = library_versions(), record.get("libraries") or {}
        differ = [f"{lib} {then.get(lib)} -> {now[lib]}" for lib in CHECKED_LIBRARIES if then.get(lib) != now[lib]]
        if differ:
            raise StoredModelError(f"model {version} was saved with other library versions ({', '.join(differ)}); "
                                   "it is not loaded (a pickle is not portable across them): retraining instead")
        try:
            return joblib.load(self.dir / f"{version}.joblib")
        except Exception as e:  # noqa: BLE001 - a damaged pickle fails in any way (KeyError, UnpicklingError, ...)
            raise StoredModelError(f"cannot load model {version} from {self.dir}: {type(e).__name__}: {e}; "
                                   "retraining instead") from e

    def versions(self) -> list[str]:
        """Names of the stored versions (those with metadata)."""
        if not self.dir.is_dir():
            return []
        return sorted(p.stem for p in self.dir.glob("*.json"))

    def save_config(self, xml: str) -> None:
        """Keep the project's latest labeling config (to serve it again after a restart)."""
        try:
            _atomic_write(self.dir / "config.xml", lambda f: f.write(xml.encode("utf-8")))
        except OSError as e:
            raise StoredModelError(f"cannot write the labeling config into the model store {self.dir}: {e}") from e

    def load_config(self) -> str | None:
        try:
            return (self.dir / "config.xml").read_text(encoding="utf-8")
        except OSError:
            return None


def stored_projects(root: str | Path, loop_prefix: str) -> dict[int, ModelStore]:
    """The projects of loop prefix ``loop_prefix`` with a labeling config in the store, by id."""
    base = Path(root)
    if not base.is_dir():
        return {}
    out = {}
    for path in base.iterdir():
        found = re.fullmatch(re.escape(loop_prefix) + r"\.p(\d+)", path.name)
        if found and (path / "config.xml").is_file():
            out[int(found.group(1))] = ModelStore(base, path.name)
    return out


def training_set_hash(task_ids: list[int], labels: list[str], values: list[Any]) -> str:
    """SHA-256 of a training set: each task's id, label and labeled field, in task-id order."""
    import hashlib

    rows = sorted(zip(task_ids, labels, values), key=lambda r: r[0])
    return hashlib.sha256(json.dumps(rows, sort_keys=True, default=str).encode()).hexdigest()
