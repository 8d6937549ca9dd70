"""Post-deployment correction: ingest a deployed model's predictions, triage them for human
review (every decision with its reasons), review them through any backend, learn from the
corrections, promote only what beats the serving version on random audits, and measure.

Modules: :mod:`.records` (the record), :mod:`.ingest` (Python call), :mod:`.follower` (JSONL
files), :mod:`.server` (HTTP), :mod:`.conditions` and :mod:`.triage` (policies), :mod:`.review`,
:mod:`.learn`, :mod:`.metrics`, :mod:`.report` (status and report), :mod:`.card` (the labor card's
part), :mod:`.inputs` (files the CLI reads), :mod:`.store` (ledger access), :mod:`.plugin` (registration).
"""

from clicloop.orchestrator.postdeploy.ingest import IngestResult, Ingestor, ingest
from clicloop.orchestrator.postdeploy.records import OUT_OF_SCOPE, PredictionRecord
from clicloop.orchestrator.postdeploy.store import DeploymentStore, review_loop

__all__ = ["OUT_OF_SCOPE", "DeploymentStore", "IngestResult", "Ingestor", "PredictionRecord", "ingest", "review_loop"]
