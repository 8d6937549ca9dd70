"""The Label Studio projects one ML backend serves, by project id: created on the first /setup
(or the first labeling config seen), and, when the backend starts, reopened from the model store
so the latest model of each serves before Label Studio calls again."""

from __future__ import annotations

import logging
import threading

from fastapi import HTTPException

from clicloop.connectors.labelstudio.engine import ProjectModel
from clicloop.connectors.labelstudio.labelset import LabelConfigError, parse_schema
from clicloop.connectors.labelstudio.modelstore import stored_projects
from clicloop.connectors.labelstudio.settings import ServeSettings
from clicloop.orchestrator.errors import ConfigError

log = logging.getLogger("clicloop.labelstudio.ml")


class Projects:
    """The served projects; thread-safe."""

    def __init__(self, settings: ServeSettings):
        self.settings = settings

    def open(self) -> Projects:
        """Check the strategy, then reopen every project kept in the model store."""
        from clicloop.orchestrator.plugins import Registry, get_plugin_manager

        settings = self.settings
        self.registry = Registry(get_plugin_manager(list(settings.plugins)))
        strategy = self.registry.create("strategy", settings.strategy_name, settings.strategy_params, field="strategy")
        if not callable(getattr(strategy, "score", None)):  # each prediction carries one item's score
            raise ConfigError(f"strategy {settings.strategy_name!r} selects whole batches and gives no per-task score for "
                              "Label Studio's predictions; use margin-coverage, margin, entropy or least-confidence",
                              field="strategy.name")
        self.by_id: dict[int, ProjectModel] = {}
        self.lock = threading.Lock()
        for pid, store in sorted(stored_projects(settings.model_store_dir, settings.loop).items()):
            xml = store.load_config()
            try:
                schema = parse_schema(xml or "")
            except LabelConfigError as e:
                log.warning("project %s: the labeling config kept in %s is unusable (%s); waiting for /setup", pid, store.dir, e)
                continue
            self.by_id[pid] = ProjectModel(settings, pid, schema, self.registry).open(None, None)
            log.info("project %s: serving %s from %s", pid, self.by_id[pid].version, store.dir)
        return self

    def get(self, pid: int, xml: str | None = None, hostname: str | None = None, token: str | None = None) -> ProjectModel:
        """The project ``pid``; a labeling config given is the project's current one (the model
        follows it), an access token connects the project to Label Studio's API."""
        with self.lock:
            model = self.by_id.get(pid)
            if model is None:
                if not xml:
                    raise HTTPException(409, f"project {pid} is not set up yet: Label Studio calls /setup first (reconnect the model)")
                schema = parse_schema(xml)
                model = self.by_id[pid] = ProjectModel(self.settings, pid, schema, self.registry).open(hostname, token, xml)
                return model
            if token:
                model.connect(hostname, token)
        model.refresh(xml)
        return model

    def close(self) -> None:
        with self.lock:
            for model in self.by_id.values():
                model.close()
