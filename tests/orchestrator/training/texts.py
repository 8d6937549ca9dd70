"""A small, seeded text pool of three intents (weather, music, restaurants) for embedding tests."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

TEMPLATES = {
    "weather": ["will it rain in {city} {when}", "what is the forecast for {city} {when}", "is it going to be sunny in {city} {when}",
                "how cold will it be in {city} {when}", "do I need an umbrella in {city} {when}"],
    "music": ["play some {genre} music", "put on a {genre} playlist", "I want to listen to {genre} songs",
              "start my {genre} radio", "shuffle {genre} tracks by {artist}"],
    "restaurant": ["book a table for {n} at a {food} restaurant", "reserve dinner for {n} people, {food} food",
                   "find me a {food} place for {n} tonight", "I need a restaurant reservation for {n}, {food} cuisine",
                   "get us seats at a {food} bistro for {n}"],
}
FILL = {"city": ["Paris", "Lagos", "Lima", "Oslo", "Hanoi", "Denver"], "when": ["tomorrow", "today", "this weekend", "tonight"],
        "genre": ["jazz", "rock", "classical", "hip hop", "folk"], "artist": ["Miles Davis", "Queen", "Bach", "Nina Simone"],
        "n": ["two", "four", "six"], "food": ["Thai", "Italian", "Ethiopian", "Korean", "Mexican"]}


def make_texts(n_per_label: int, seed: int = 0) -> tuple[list[str], list[str]]:
    """``(texts, labels)``: distinct sentences, ``n_per_label`` per intent."""
    rng = np.random.default_rng(seed)
    texts, labels = [], []
    for label, templates in TEMPLATES.items():
        seen: set[str] = set()
        while len(seen) < n_per_label:
            t = templates[int(rng.integers(len(templates)))]
            text = t.format(**{k: v[int(rng.integers(len(v)))] for k, v in FILL.items()})
            if text not in seen:
                seen.add(text)
                texts.append(text)
                labels.append(label)
    return texts, labels


def write_csv(path: Path, texts: list[str], labels: list[str], *, label_column: str = "truth", prefix: str = "t") -> Path:
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["id", "text", label_column])
        for i, (t, y) in enumerate(zip(texts, labels)):
            w.writerow([f"{prefix}{i:03d}", t, y])
    return path
