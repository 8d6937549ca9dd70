"""Errors of the post-deployment loop, under :class:`clicloop.orchestrator.errors.ClicloopError`."""

from __future__ import annotations

from clicloop.orchestrator.errors import ClicloopError, ConfigError


class PostDeployError(ClicloopError):
    """Base class of post-deployment errors."""


class IngestError(PostDeployError):
    """A batch of predictions could not be ingested at all (a bad record is rejected, not raised)."""


class TriageConfigError(ConfigError, PostDeployError):
    """A triage policy spec is invalid (unknown condition, bad parameter, bad combination)."""


class ReviewError(PostDeployError):
    """Review tasks could not be sent or their answers understood."""


class PromotionError(PostDeployError):
    """A model version cannot be promoted or rolled back (unknown version, nothing to roll back to)."""
