"""A small Label Studio REST client with retry and backoff, shared by the crowd backend and the
ML-backend connector.

It speaks plain HTTP through httpx (no label-studio-sdk needed at run time): a legacy API token
is sent as ``Authorization: Token ...``; a personal access token (a JWT) is exchanged at
``/api/token/refresh/`` for a short-lived access token sent as ``Bearer`` and refreshed on 401.

Transient failures (connection refused, timeouts, 5xx, 429) are retried with exponential
backoff for up to ``retry_for_s`` seconds, so a Label Studio restart mid-loop is survived; any
other 4xx fails at once with a :class:`LabelStudioError` that says what the server answered.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from typing import Any

from clicloop.orchestrator.errors import BackendError

log = logging.getLogger("clicloop.labelstudio")

TRANSIENT_STATUS = frozenset({429, 500, 502, 503, 504})


class LabelStudioError(BackendError):
    """Label Studio refused a request, or stayed unreachable longer than the retry window."""

    def __init__(self, message: str, *, status: int | None = None):
        self.status = status
        super().__init__(message)


class LabelStudioUnreachable(LabelStudioError):
    """Label Studio did not answer (or answered 5xx) for the whole retry window."""


class LabelStudioClient:
    """REST calls to one Label Studio server.

    Parameters
    ----------
    url: the server's base URL, e.g. ``http://127.0.0.1:8080``.
    api_key: a legacy token (40 hex) or a personal access token (JWT).
    timeout_s: per-request timeout.
    retry_for_s: how long transient failures are retried before giving up.
    backoff_s, backoff_max_s: first and largest sleep between retries (doubling).
    """

    def __init__(self, url: str, api_key: str, *, timeout_s: float = 30.0, retry_for_s: float = 120.0,
                 backoff_s: float = 0.5, backoff_max_s: float = 8.0):
        self.url = url.rstrip("/")
        self.api_key = api_key
        self.timeout_s = timeout_s
        self.retry_for_s = retry_for_s
        self.backoff_s = backoff_s
        self.backoff_max_s = backoff_max_s
        self.lock_ = threading.Lock()

    # -- plumbing --------------------------------------------------------------------------------

    def _http(self) -> Any:
        with self.lock_:  # one client for every thread (httpx.Client is thread-safe once built)
            if not hasattr(self, "http_"):
                import httpx

                self.http_ = httpx.Client(base_url=self.url, timeout=self.timeout_s)
                self.auth_ = self._auth_header()
            return self.http_

    def _auth_header(self) -> dict[str, str]:
        if self.api_key.count(".") == 2:  # a JWT personal access token: exchange it
            r = self.http_.post("/api/token/refresh/", json={"refresh": self.api_key})
            if r.status_code != 200:
                raise LabelStudioError(f"Label Studio refused the personal access token ({r.status_code}): {r.text[:200]}", status=r.status_code)
            return {"Authorization": f"Bearer {r.json()['access']}"}
        return {"Authorization": f"Token {self.api_key}"}

    def request(self, method: str, path: str, *, ok: tuple[int, ...] = (200, 201, 204), retry: bool = True, **kwargs: Any) -> Any:
        """One call with retry; returns the decoded JSON (None for an empty body).

        ``retry=False`` makes one attempt: for calls that are not idempotent (an import whose
        answer was lost may have happened), the caller re-reads the state before trying again.
        """
        import httpx

        http = self._http()
        deadline = time.monotonic() + (self.retry_for_s if retry else 0.0)
        sleep, attempt, refreshed = self.backoff_s, 0, False
        while True:
            attempt += 1
            try:
                r = http.request(method, path, headers=self.auth_, **kwargs)
            except httpx.TransportError as e:  # refused, reset, timed out: the server is (re)starting
                problem: str = f"{type(e).__name__}: {e}"
            else:
                if r.status_code in ok:
                    return r.json() if r.content else None
                if r.status_code == 401 and self.api_key.count(".") == 2 and not refreshed:
                    self.auth_, refreshed = self._auth_header(), True  # access token expired
                    continue
                if r.status_code not in TRANSIENT_STATUS:
                    raise LabelStudioError(
                        f"Label Studio answered {r.status_code} to {method} {path}: {r.text[:300]}", status=r.status_code
                    )
                problem = f"HTTP {r.status_code}"
            if time.monotonic() + sleep > deadline:
                raise LabelStudioUnreachable(
                    f"Label Studio at {self.url} unreachable ({method} {path}, {attempt} attempt(s) in "
                    f"{self.retry_for_s if retry else 0:g}s, last: {problem}); is it running? Resume the loop once it is back."
                )
            log.warning("Label Studio %s %s failed (%s); retrying in %.1fs", method, path, problem, sleep)
            time.sleep(sleep)
            sleep = min(sleep * 2, self.backoff_max_s)

    def close(self) -> None:
        if hasattr(self, "http_"):
            self.http_.close()
            del self.http_

    # -- resources -------------------------------------------------------------------------------

    def find_project(self, title: str) -> dict[str, Any] | None:
        """The project with exactly this title (the oldest, if several), or None."""
        page = self.request("GET", "/api/projects", params={"title": title, "page_size": 100})
        found = [p for p in page.get("results", []) if p.get("title") == title]
        return min(found, key=lambda p: p["id"]) if found else None

    def project(self, project_id: int) -> dict[str, Any]:
        return self.request("GET", f"/api/projects/{project_id}")

    def create_project(self, title: str, label_config: str, description: str = "") -> dict[str, Any]:
        body = {"title": title, "label_config": label_config, "description": description, "maximum_annotations": 1}
        return self.request("POST", "/api/projects", json=body)

    def import_tasks(self, project_id: int, tasks: list[dict[str, Any]], *, retry: bool = True) -> list[int]:
        """Import task dicts (``data`` and optional ``predictions``); returns the new task ids."""
        out = self.request("POST", f"/api/projects/{project_id}/import", params={"return_task_ids": "true"}, json=tasks, retry=retry)
        return list(out.get("task_ids", []))

    def iter_tasks(self, project_id: int, *, page_size: int = 500, fields: str = "all") -> Iterator[dict[str, Any]]:
        """Every task of a project, with its annotations when ``fields="all"``."""
        page = 1
        while True:
            try:
                out = self.request("GET", "/api/tasks", params={"project": project_id, "fields": fields, "page": page, "page_size": page_size})
            except LabelStudioError as e:
                if e.status == 404:  # "Invalid page": past the end
                    return
                raise
            tasks = out.get("tasks", [])
            yield from tasks
            if len(tasks) < page_size or page * page_size >= int(out.get("total", 0)):
                return
            page += 1

    def update_task(self, task_id: int, **fields: Any) -> dict[str, Any]:
        return self.request("PATCH", f"/api/tasks/{task_id}", json=fields)

    def task(self, task_id: int) -> dict[str, Any]:
        """One task with its annotations."""
        return self.request("GET", f"/api/tasks/{task_id}")

    def webhooks(self, project_id: int) -> list[dict[str, Any]]:
        """The webhooks registered for a project."""
        out = self.request("GET", "/api/webhooks/", params={"project": project_id})
        hooks = out.get("results", []) if isinstance(out, dict) else out or []
        return [h for h in hooks if h.get("project") == project_id]

    def create_webhook(self, project_id: int, url: str, actions: tuple[str, ...]) -> dict[str, Any]:
        """Register a project webhook that sends its payload for ``actions``."""
        body = {"project": project_id, "url": url, "send_payload": True, "send_for_all_actions": False,
                "is_active": True, "actions": list(actions)}
        return self.request("POST", "/api/webhooks/", json=body)

    def delete_webhook(self, webhook_id: int, *, retry: bool = True) -> None:
        try:
            self.request("DELETE", f"/api/webhooks/{webhook_id}/", retry=retry)
        except LabelStudioError as e:
            if e.status != 404:  # already gone is fine
                raise

    def delete_tasks(self, project_id: int, task_ids: list[int]) -> None:
        """Delete tasks of a project in one request (the Data Manager's ``delete_tasks`` action;
        deleting a task that is already gone is not an error, so a retry is safe)."""
        body = {"selectedItems": {"all": False, "included": [int(i) for i in task_ids]}}
        self.request("POST", "/api/dm/actions", params={"id": "delete_tasks", "project": project_id}, json=body)

    def users(self) -> list[dict[str, Any]]:
        """The users of the token's organization (everyone who may label its projects)."""
        out = self.request("GET", "/api/users")
        return out.get("results", []) if isinstance(out, dict) else list(out or [])

    def whoami(self) -> dict[str, Any]:
        return self.request("GET", "/api/current-user/whoami")
