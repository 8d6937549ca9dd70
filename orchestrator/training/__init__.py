"""The training side of a round: the built-in model factories and pseudo-labels from label
spreading (a training change, not a strategy)."""
