"""Test annotators who work the way the Label Studio UI does: each is a user of their own (joined
through the organization's invite link, with their own API token) who asks the project's label
stream for the next task (``GET /api/projects/<id>/next``, which locks the task for them), takes
a while, and submits an annotation with its ``lead_time``.

Each records what it was handed, what it submitted, and every time the stream had nothing for it
(with how many tasks the project held then), so tests can hold the loop to "nobody ever waits
for a task while budget remains".
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field

import httpx
import numpy as np


def join_organization(url: str, admin_token: str, email: str, password: str) -> tuple[int, str]:
    """Sign a new user up through the organization's invite link; their user id and API token."""
    admin = {"Authorization": f"Token {admin_token}"}
    link = httpx.get(f"{url}/api/invite", headers=admin, timeout=10).raise_for_status().json()["invite_url"]
    token = re.search(r"token=([^&]+)", link).group(1)
    with httpx.Client(base_url=url, timeout=10) as session:
        session.get(link).raise_for_status()
        r = session.post(f"/user/signup/?token={token}", headers={"Referer": url + link},
                         data={"email": email, "password": password, "csrfmiddlewaretoken": session.cookies.get("csrftoken", "")})
        if r.status_code != 302:
            raise RuntimeError(f"Label Studio refused the signup of {email}: {r.status_code} {r.text[:200]}")
        me = session.get("/api/current-user/whoami").raise_for_status().json()
        key = session.get("/api/current-user/token").raise_for_status().json()["token"]
    return int(me["id"]), str(key)


@dataclass
class Handed:
    task_id: int
    key: str
    round_no: int
    at: float  # when the annotator asked for it


@dataclass
class Empty:
    at: float
    project_tasks: int  # the tasks the project held right after the stream had none


@dataclass
class StreamAnnotator:
    url: str
    token: str
    admin_token: str
    project_id: int
    truth: Mapping[str, str]
    seed: int = 0
    lead_s: tuple[float, float] = (0.2, 0.6)  # each answer takes a uniform time in this range
    handed: list[Handed] = field(default_factory=list)
    submitted: dict[str, tuple[int, float]] = field(default_factory=dict)  # key -> (annotation id, when)
    empty: list[Empty] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.http_ = httpx.Client(base_url=self.url, headers={"Authorization": f"Token {self.token}"}, timeout=30)
        self.rng_ = np.random.default_rng(self.seed)
        self.stop_ = threading.Event()

    def _project_tasks(self) -> int:
        r = httpx.get(f"{self.url}/api/projects/{self.project_id}", headers={"Authorization": f"Token {self.admin_token}"}, timeout=30)
        return int(r.json()["task_number"])

    def step(self) -> None:
        """Ask for the next task; label it (taking the lead time), or note that there was none."""
        asked = time.time()
        r = self.http_.get(f"/api/projects/{self.project_id}/next")
        if r.status_code == 404:
            self.empty.append(Empty(asked, self._project_tasks()))
            self.stop_.wait(0.1)
            return
        r.raise_for_status()
        task = r.json()
        data = task["data"]
        self.handed.append(Handed(int(task["id"]), data["clicloop_key"], int(data["clicloop_round"]), asked))
        lead = float(np.round(self.rng_.uniform(*self.lead_s), 3))
        time.sleep(lead)
        result = [{"from_name": "label", "to_name": "text", "type": "choices",
                   "value": {"choices": [self.truth[data["clicloop_item"]]]}}]
        r = self.http_.post(f"/api/tasks/{task['id']}/annotations", json={"result": result, "lead_time": lead})
        if r.status_code != 201:
            self.errors.append(f"annotating task {task['id']} ({data['clicloop_key']}): {r.status_code} {r.text[:200]}")
            return
        self.submitted[data["clicloop_key"]] = (int(r.json()["id"]), time.time())

    def _run(self) -> None:
        while not self.stop_.is_set():
            try:
                self.step()
            except (httpx.HTTPError, KeyError, ValueError) as e:
                self.errors.append(f"{type(e).__name__}: {e}")
                self.stop_.wait(0.2)

    def start(self) -> StreamAnnotator:
        self.thread_ = threading.Thread(target=self._run, name=f"ls-stream-{self.seed}", daemon=True)
        self.thread_.start()
        return self

    def stop(self) -> None:
        self.stop_.set()
        self.thread_.join(timeout=30)
        self.http_.close()
