"""clicloop as a Label Studio ML backend: Label Studio drives, clicloop predicts, ranks and trains.

``create_app(settings)`` builds the FastAPI app (``/health``, ``/setup``, ``/predict``,
``/webhook``, ``/versions``, ``/status``); ``clicloop serve labelstudio --config ...`` runs it.
FastAPI is imported only when the app is built.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from clicloop.connectors.labelstudio.settings import ServeSettings


def create_app(settings: ServeSettings) -> Any:
    """The ASGI app serving Label Studio's ML-backend protocol for ``settings``."""
    from clicloop.connectors.labelstudio.app import build_app

    return build_app(settings)


__all__ = ["create_app"]
