"""Deterministic randomness: every random choice in clicloop comes from a Generator derived
here from the loop's seed and a stable key, never from global state or Python's ``hash``."""

from __future__ import annotations

import hashlib

import numpy as np


def stable_int(text: str) -> int:
    """A 64-bit integer from ``text``, the same in every process and on every machine."""
    return int.from_bytes(hashlib.blake2b(text.encode("utf-8"), digest_size=8).digest(), "little")


def rng_for(seed: int, *keys: str | int) -> np.random.Generator:
    """A Generator for ``seed`` and a path of keys (e.g. ``rng_for(seed, "select", round_no)``)."""
    return np.random.default_rng([seed, *(stable_int(str(k)) for k in keys)])
