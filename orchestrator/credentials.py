"""Secrets in configs and URLs: which fields hold one, how a config gives one, and how they are
kept out of the ledger, the config fingerprint, exports and everything printed.

A secret is a plugin parameter (``backend.params``, ``model.params``, ...) named ``token``,
``api_key``, ``password`` or ``secret``, or whose name ends in ``_token``, ``_key``,
``password`` or ``secret`` (``token_env``, which names an environment variable, is not one);
and the password (and any such query parameter) of a URL.

A config never holds a secret's value, only where to read it::

    backend:
      name: prolific
      params:
        token: {env: PROLIFIC_TOKEN}       # an environment variable
        # token: {file: ~/.secrets/prolific}  # or a file's content (relative to the config file)

A literal value is refused with a message saying how to pass it. The value is read when the
plugin is built (:func:`resolve_secrets`) and handed to it alone; :func:`public_config` is what
may be stored, hashed or shown (secret parameters dropped, URL passwords as ``***``).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from clicloop.orchestrator.errors import ConfigError

SECRET_NAMES = frozenset({"token", "api_key", "apikey", "password", "secret"})
SECRET_SUFFIXES = ("_token", "_key", "password", "secret")
MASK = "***"
REF_KINDS = ("env", "file")

# the userinfo of a URL as SQLAlchemy reads it: scheme://user:password@ (password without '@')
_USERINFO = re.compile(r"(?P<head>[A-Za-z][\w+.\-]*://[^:/@?#\s]*):(?P<password>[^@\s]*)@")
_QUERY_PAIR = re.compile(r"(?P<sep>[?&;])(?P<name>[^=&#;\s]+)=(?P<value>[^&#;\s]*)")


def is_secret_name(name: str) -> bool:
    """Whether a parameter (or URL query parameter) of this name holds a secret."""
    lowered = name.lower()
    return lowered in SECRET_NAMES or lowered.endswith(SECRET_SUFFIXES)


def redact_url(url: str) -> str:
    """``url`` with its password and secret query parameters replaced by ``***``
    (``postgresql://user:***@host/db``); any other text passes through unchanged."""
    if "://" not in url:
        return url
    text = _USERINFO.sub(lambda m: f"{m['head']}:{MASK}@", url)
    return _QUERY_PAIR.sub(lambda m: f"{m['sep']}{m['name']}={MASK}" if is_secret_name(m["name"]) else m[0], text)


def scrub(message: str, url: str) -> str:
    """``message`` (an error from a driver, say) with ``url``'s secrets hidden wherever they appear."""
    message = message.replace(url, redact_url(url))
    for secret in _url_secrets(url):
        if len(secret) >= 4:  # shorter strings would mask unrelated text; the URL itself is replaced above
            message = message.replace(secret, MASK)
    return redact_url(message)


def _url_secrets(url: str) -> list[str]:
    from urllib.parse import unquote

    found = [m["password"] for m in _USERINFO.finditer(url) if m["password"]]
    found += [m["value"] for m in _QUERY_PAIR.finditer(url) if is_secret_name(m["name"]) and m["value"]]
    return found + [unquote(s) for s in found]


def public_config(value: Any) -> Any:
    """A copy of a config (or any part of one) that may be stored, hashed and shown: parameters
    with secret names left out, URL passwords masked."""
    if isinstance(value, Mapping):
        return {k: public_config(v) for k, v in value.items() if not (isinstance(k, str) and is_secret_name(k))}
    if isinstance(value, (list, tuple)):
        return [public_config(v) for v in value]
    if isinstance(value, str):
        return redact_url(value)
    return value


def check_secret_params(params: Mapping[str, Any], field: str = "params") -> None:
    """Refuse a literal secret: every secret-named parameter (at any depth) must be absent,
    ``null`` (the plugin reads its own environment variable) or a ``{env: NAME}`` / ``{file: PATH}``
    reference. Raises ``ValueError`` naming the parameter and how to pass it."""
    for path, value in _secret_values(params, field):
        if value is not None and _reference(value) is None:
            name = path.rsplit(".", 1)[-1]
            raise ValueError(
                f"{path} holds a secret, which a config never contains (it would be stored, hashed and shared with "
                f"the file): give `{name}: {{env: {name.upper()}}}` and set that environment variable, or "
                f"`{name}: {{file: path/to/{name}}}` (a file only you can read)")


def resolve_secrets(params: Mapping[str, Any], field: str = "params", base_dir: Path | None = None) -> dict[str, Any]:
    """``params`` with each ``{env: NAME}`` / ``{file: PATH}`` reference under a secret name
    replaced by the secret it points to (the only place a secret's value is read)."""
    try:
        check_secret_params(params, field)
    except ValueError as e:
        raise ConfigError(str(e), field=field) from e
    return _resolved(params, field, base_dir)


def _resolved(value: Any, path: str, base_dir: Path | None) -> Any:
    if isinstance(value, Mapping):
        out = {}
        for k, v in value.items():
            ref = _reference(v) if isinstance(k, str) and is_secret_name(k) else None
            out[k] = _read(ref, f"{path}.{k}", base_dir) if ref is not None else _resolved(v, f"{path}.{k}", base_dir)
        return out
    if isinstance(value, list):
        return [_resolved(v, f"{path}[{i}]", base_dir) for i, v in enumerate(value)]
    return value


def resolve_secret_files(params: dict[str, Any], base_dir: Path) -> None:
    """Make relative ``{file: PATH}`` references absolute against the config file's folder, in place."""
    for _, value in _secret_values(params, ""):
        ref = _reference(value)
        if ref is not None and ref[0] == "file":
            path = Path(ref[1]).expanduser()
            value["file"] = str(path if path.is_absolute() else base_dir / path)


def _secret_values(value: Any, path: str) -> list[tuple[str, Any]]:
    """(dotted path, value) of every secret-named parameter at any depth."""
    found: list[tuple[str, Any]] = []
    if isinstance(value, Mapping):
        for k, v in value.items():
            sub = f"{path}.{k}" if path else str(k)
            if isinstance(k, str) and is_secret_name(k):
                found.append((sub, v))
            else:
                found += _secret_values(v, sub)
    elif isinstance(value, list):
        for i, v in enumerate(value):
            found += _secret_values(v, f"{path}[{i}]")
    return found


def _reference(value: Any) -> tuple[str, str] | None:
    if isinstance(value, Mapping) and len(value) == 1:
        ((kind, target),) = value.items()
        if kind in REF_KINDS and isinstance(target, str) and target.strip():
            return kind, target.strip()
    return None


def _read(ref: tuple[str, str], field: str, base_dir: Path | None) -> str:
    kind, target = ref
    if kind == "env":
        secret = os.environ.get(target, "").strip()
        if not secret:
            raise ConfigError(f"the environment variable {target} is not set (or empty); export it before running",
                              field=field)
        return secret
    path = Path(target).expanduser()
    if not path.is_absolute() and base_dir is not None:
        path = base_dir / path
    try:
        secret = path.read_text(encoding="utf-8").strip()
    except OSError as e:
        raise ConfigError(f"cannot read the secret file {path}: {e.strerror}", field=field) from e
    if not secret:
        raise ConfigError(f"the secret file {path} is empty", field=field)
    return secret
