"""What differs between the config a loop was begun with and the one a run brings, in words,
for the error that refuses to resume it."""

from __future__ import annotations

import json
from typing import Any


def _flat(value: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, inner in value.items():
            out.update(_flat(inner, f"{prefix}.{key}" if prefix else str(key)))
        return out
    return {prefix: value}


def differences(recorded: str | None, given: str, most: int = 3) -> str:
    """``"data.pool.path ('tix/a.csv' now, 'a.csv' when the loop began), ..."``: the first
    ``most`` dotted fields whose values differ; empty when either text is not a JSON object."""
    try:
        old, new = _flat(json.loads(recorded or "")), _flat(json.loads(given))
    except (TypeError, ValueError):
        return ""
    changed = sorted(key for key in old.keys() | new.keys() if old.get(key) != new.get(key))
    shown = [f"{key} ({new.get(key)!r} now, {old.get(key)!r} when the loop began)" for key in changed[:most]]
    return ", ".join(shown) + (f" and {len(changed) - most} more" if len(changed) > most else "")
