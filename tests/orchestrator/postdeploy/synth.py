"""Small synthetic intent data for the post-deployment tests (no ../shared needed)."""

from __future__ import annotations

from typing import Any

import numpy as np

INTENTS = {
    "weather": ["rain", "sunny", "forecast", "umbrella", "temperature", "cloudy"],
    "music": ["song", "play", "playlist", "album", "band", "volume"],
    "timer": ["timer", "minutes", "alarm", "countdown", "seconds", "remind"],
    "travel": ["flight", "hotel", "train", "ticket", "airport", "booking"],
}
NEW_INTENT = {"banking": ["balance", "account", "transfer", "deposit", "bank", "savings"]}
FILLER = ["please", "can", "you", "the", "me", "now", "for", "tomorrow", "my", "a"]


def utterances(n: int, seed: int, intents: dict[str, list[str]] | None = None, oos_share: float = 0.0) -> list[tuple[str, str]]:
    """``n`` (text, label) pairs; ``oos_share`` of them out of scope (words no intent uses)."""
    rng = np.random.default_rng(seed)
    intents = intents or INTENTS
    names = sorted(intents)
    out = []
    for _ in range(n):
        if rng.random() < oos_share:
            words = [f"zz{int(rng.integers(1000))}" for _ in range(3)] + list(rng.choice(FILLER, 2))
            out.append((" ".join(words), "out_of_scope"))
            continue
        label = names[int(rng.integers(len(names)))]
        words = list(rng.choice(intents[label], 2)) + list(rng.choice(FILLER, 3))
        if rng.random() < 0.15:  # an ambiguous word from another intent
            other = names[int(rng.integers(len(names)))]
            words.append(str(rng.choice(intents[other])))
        rng.shuffle(words)
        out.append((" ".join(words), label))
    return out


def fit_model(pairs: list[tuple[str, str]]) -> Any:
    from clicloop.orchestrator.training.models import tfidf_logreg

    model = tfidf_logreg(C=10.0)
    model.fit([t for t, _ in pairs], [label for _, label in pairs])
    return model


def records(model: Any, pairs: list[tuple[str, str]], version: str, *, start: float = 1_700_000_000.0, step: float = 60.0,
            prefix: str = "p", flag_errors: float = 0.0, seed: int = 0) -> list[dict[str, Any]]:
    """Prediction records of ``model`` on ``pairs`` (users flag a share of the wrong answers)."""
    rng = np.random.default_rng(seed)
    proba = model.predict_proba([t for t, _ in pairs])
    classes = [str(c) for c in model.classes_]
    out = []
    for i, ((text, truth), p) in enumerate(zip(pairs, proba)):
        label = classes[int(p.argmax())]
        rec: dict[str, Any] = {"id": f"{prefix}{i}", "model_version": version, "predicted_label": label, "text": text,
                               "probabilities": {c: float(v) for c, v in zip(classes, p)}, "time": start + i * step}
        if label != truth and rng.random() < flag_errors:
            rec["feedback"] = "thumbs_down"
        out.append(rec)
    return out
