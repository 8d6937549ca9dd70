"""Files the ``clicloop deploy`` commands read: label lists, JSONL (labeled data, ground truth)
and triage policy specs. Every problem is a :class:`~clicloop.orchestrator.errors.ConfigError` that names
the file, the line and the field, and says what to do."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from clicloop.orchestrator.errors import ConfigError


def read_labels(path: Path) -> list[str]:
    """A label set: one label a line (blank lines ignored, duplicates dropped)."""
    try:
        names = [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"cannot read the label file: {e}; give a text file with one label a line", source=str(path)) from e
    if not names:
        raise ConfigError("the label file is empty; give one label a line", source=str(path))
    return list(dict.fromkeys(names))


def read_jsonl(path: Path, required: Sequence[str] = ()) -> list[dict[str, Any]]:
    """The objects of a JSONL file; each must carry the ``required`` fields."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"cannot read {path}: {e}", source=str(path)) from e
    rows = []
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError as e:
            raise ConfigError(f"line {n} is not JSON ({e}); write one JSON object a line", source=str(path)) from e
        if not isinstance(row, dict):
            raise ConfigError(f"line {n} is a {type(row).__name__}, not a JSON object", source=str(path))
        missing = [f for f in required if f not in row]
        if missing:
            raise ConfigError(f"line {n} has no {', '.join(repr(f) for f in missing)}", source=str(path), field=missing[0])
        rows.append(row)
    if not rows:
        raise ConfigError("the file holds no records", source=str(path))
    return rows


@dataclass(frozen=True)
class Labeled:
    """Labeled data in the model's input form: texts or a float32 matrix, and the labels."""

    X: Any
    y: list[str]
    texts: list[str] | None


def read_labeled(path: Path) -> Labeled:
    """JSONL ``{"text", "label"}`` or ``{"features", "label"}`` (the first version's training data)."""
    rows = read_jsonl(path, ("label",))
    kind = "text" if "text" in rows[0] else "features"
    for n, row in enumerate(rows, 1):
        if kind not in row:
            raise ConfigError(f"record {n} has no {kind!r} (every record needs the input the first one has)",
                              source=str(path), field=kind)
    y = [str(r["label"]) for r in rows]
    if kind == "text":
        texts = [str(r["text"]) for r in rows]
        return Labeled(texts, y, texts)
    try:
        X = np.asarray([r["features"] for r in rows], dtype=np.float32)
    except (TypeError, ValueError) as e:
        raise ConfigError(f"'features' must be lists of numbers of one length: {e}", source=str(path), field="features") from e
    if X.ndim != 2 or not np.isfinite(X).all():
        raise ConfigError("'features' must be finite number lists of one length", source=str(path), field="features")
    return Labeled(X, y, None)


def read_policy(path: Path) -> Any:
    """A triage policy spec from YAML or JSON (see :mod:`clicloop.orchestrator.postdeploy.triage`)."""
    import yaml

    from clicloop.orchestrator.yamlfile import load_yaml

    try:
        spec = load_yaml(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as e:
        raise ConfigError(f"cannot read the triage policy: {e}", source=str(path)) from e
    if spec is None:
        raise ConfigError("the triage policy is empty; see docs/postdeploy.md for examples", source=str(path))
    return spec


def parse_json_object(text: str, option: str) -> dict[str, Any]:
    """A JSON object given on the command line (``--params '{"k": 1}'``)."""
    try:
        value = json.loads(text)
    except ValueError as e:
        raise ConfigError(f"{option} must be a JSON object such as '{{\"reward\": 0.05}}': {e}", field=option) from e
    if not isinstance(value, dict):
        raise ConfigError(f"{option} must be a JSON object, not {type(value).__name__}", field=option)
    return value


def parse_sensitive(text: str, option: str = "--sensitive") -> Any:
    """What counts as sensitive text, as a JSON object of the loop's ``sensitive`` shape
    (``{"detectors": ["email", "phone"], "patterns": ["..."]}``)."""
    from pydantic import ValidationError

    from clicloop.orchestrator.config import Sensitive

    try:
        return Sensitive.model_validate(parse_json_object(text, option))
    except ValidationError as e:
        problems = "; ".join(f"{'.'.join(map(str, err['loc'])) or option}: {err['msg']}" for err in e.errors()[:3])
        raise ConfigError(f"{option}: {problems} (detectors: email, phone, iban, card; patterns: regular expressions)",
                          field=option) from e
