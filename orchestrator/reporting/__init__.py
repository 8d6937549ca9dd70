"""What the ledger says, for people: the per-round report, the labor card of a model version, and
the forecast of labels, hours and money still needed to reach a target."""
