"""A local stand-in for Prolific's API, with a simulated participant pool and a survey tool.

We cannot reach Prolific from here (no network, and a real study costs money), so this server is
written from Prolific's published API documentation (https://docs.prolific.com/api-reference,
read in 2026) for the endpoints clicloop uses, and nothing else:

- ``POST /api/v1/studies/`` create a draft (UNPUBLISHED); refuses a reward under the minimum
  hourly pay (GBP 6.00 / USD 8.00) for the estimated completion time, as Prolific does;
- ``GET /api/v1/studies/``, ``GET /api/v1/studies/{id}/``;
- ``POST /api/v1/studies/{id}/transition/`` with the documented action table (PUBLISH, PAUSE,
  START, STOP);
- ``GET /api/v1/submissions/?study=`` (paginated ``results``), ``GET /api/v1/submissions/{id}/``;
- ``POST /api/v1/submissions/{id}/transition/`` APPROVE / REJECT (``rejection_category`` from
  the documented enum and a ``message`` of at least 100 characters), idempotent;
- ``POST /api/v1/submissions/bulk-approve/`` (``submission_ids``, or ``study_id`` +
  ``participant_ids``);
- ``POST /api/v1/submissions/bonus-payments/`` (``csv_bonuses`` lines ``<participant>,<amount>``,
  400 for someone who did not take part) and ``POST /api/v1/bulk-bonus-payments/{id}/pay/``,
  which pays again if called again (documented as not idempotent);
- ``POST /api/v1/messages/``.

Every call needs ``Authorization: Token <token>``. Under ``/survey`` it also plays the
requester's survey tool (the protocol in :mod:`clicloop.backends.prolific`).

The participant pool is simulated and seeded: each listing of a study's submissions advances
that study by one step. Participants arrive (ACTIVE), then either return the study (RETURNED;
the place reopens) or answer their tasks in the survey tool — right with their accuracy, else a
random other label; careless participants answer at random — and complete (AWAITING REVIEW).
Times come from a simulated clock, so every run with the same seed is identical.
"""

from __future__ import annotations

import math
import socket
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

import numpy as np

MINIMUM_PER_HOUR = {"GBP": 6.00, "USD": 8.00}
REJECTION_CATEGORIES = {"TOO_QUICKLY", "TOO_SLOWLY", "FAILED_INSTRUCTIONS", "INCOMP_LONGITUDINAL", "FAILED_CHECK",
                        "LOW_EFFORT", "MALINGERING", "NO_CODE", "BAD_CODE", "NO_DATA", "UNSUPP_DEVICE", "OTHER"}
STUDY_TRANSITIONS = {("UNPUBLISHED", "PUBLISH"): "ACTIVE", ("ACTIVE", "PAUSE"): "PAUSED", ("ACTIVE", "STOP"): "COMPLETED",
                     ("PAUSED", "START"): "ACTIVE", ("PAUSED", "STOP"): "COMPLETED"}
EPOCH = datetime(2026, 1, 5, 9, 0, tzinfo=timezone.utc)


@dataclass
class Pool:
    """The simulated participants."""

    n: int = 30
    accuracy: float = 0.92
    careless_fraction: float = 0.1
    return_rate: float = 0.1
    seconds_median: float = 12.0
    arrivals_per_step: int = 4


@dataclass
class State:
    """Everything the fake Prolific knows; guarded by ``lock``."""

    token: str
    currency: str
    pool: Pool
    truth: Mapping[str, str]
    rng: np.random.Generator
    participants: list[tuple[str, bool]] = field(default_factory=list)
    studies: dict[str, dict[str, Any]] = field(default_factory=dict)
    submissions: dict[str, dict[str, Any]] = field(default_factory=dict)
    batches: dict[str, dict[str, Any]] = field(default_factory=dict)
    responses: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    bonuses: dict[str, dict[str, Any]] = field(default_factory=dict)
    payments: list[dict[str, Any]] = field(default_factory=list)
    messages: list[dict[str, Any]] = field(default_factory=list)
    calls: list[tuple[str, str]] = field(default_factory=list)
    fail_after_create: int = 0  # fault injection: the next N creates make the study, then answer 500
    fail_messages: bool = False  # fault injection: messages answer 500
    refuse_pay: int = 0  # fault injection: the next N pay calls answer 400 (e.g. the balance), paying nothing
    publish_answers_publishing: bool = False  # a publish is answered PUBLISHING (the study goes ACTIVE all the same)
    clock_s: float = 0.0
    counter: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def new_id(self) -> str:
        self.counter += 1
        return f"{int(self.rng.integers(1 << 40)):010x}{self.counter:014x}"  # 24 hex, like Prolific's ids

    def now(self) -> str:
        return (EPOCH + timedelta(seconds=self.clock_s)).isoformat().replace("+00:00", "Z")


def create_app(state: State) -> Any:
    """The FastAPI app over ``state``."""
    from fastapi import FastAPI, HTTPException, Request
    from fastapi.responses import JSONResponse

    app = FastAPI(title="fake Prolific (from the published API docs)")

    def fail(status: int, detail: Any) -> HTTPException:
        return HTTPException(status, detail={"status": status, "error_code": status * 100, "title": "Error", "detail": detail})

    @app.exception_handler(HTTPException)
    async def _error(request: Request, exc: HTTPException) -> JSONResponse:
        return JSONResponse({"error": exc.detail}, status_code=exc.status_code)

    @app.middleware("http")
    async def _auth(request: Request, call_next: Any) -> Any:
        state.calls.append((request.method, request.url.path))
        if request.url.path.startswith("/api/") and request.headers.get("Authorization") != f"Token {state.token}":
            return JSONResponse({"error": {"status": 401, "title": "Unauthorized", "detail": "Invalid token."}}, status_code=401)
        return await call_next(request)

    @app.post("/api/v1/studies/", status_code=201)
    def create_study(body: dict[str, Any]) -> dict[str, Any]:
        for name in ("name", "description", "external_study_url", "prolific_id_option", "completion_codes",
                     "total_available_places", "estimated_completion_time", "reward"):
            if body.get(name) in (None, "", []):
                raise fail(400, {name: ["This field is required."]})
        minutes, reward = float(body["estimated_completion_time"]), float(body["reward"])
        if minutes < 1 or body["total_available_places"] < 1:
            raise fail(400, {"estimated_completion_time": ["Invalid value."]})
        per_hour = reward / 100.0 / (minutes / 60.0)
        if per_hour < MINIMUM_PER_HOUR[state.currency] - 1e-9:
            raise fail(400, {"reward": [f"Reward too low: {per_hour:.2f}/h is under the minimum of "
                                        f"{MINIMUM_PER_HOUR[state.currency]:.2f}/h."]})
        with state.lock:
            study = {**body, "id": state.new_id(), "status": "UNPUBLISHED", "currency": state.currency,
                     "date_created": state.now()}
            state.studies[study["id"]] = study
            if state.fail_after_create > 0:
                state.fail_after_create -= 1
                raise fail(500, "Internal server error.")
            return study

    @app.get("/api/v1/studies/")
    def list_studies() -> dict[str, Any]:
        with state.lock:
            return {"results": [{k: s.get(k) for k in ("id", "name", "internal_name", "status", "reward",
                                                       "total_available_places", "date_created")}
                                for s in state.studies.values()]}

    @app.get("/api/v1/studies/{study_id}/")
    def get_study(study_id: str) -> dict[str, Any]:
        with state.lock:
            return _study(state, study_id, fail)

    @app.post("/api/v1/studies/{study_id}/transition/")
    def transition_study(study_id: str, body: dict[str, Any]) -> dict[str, Any]:
        with state.lock:
            study = _study(state, study_id, fail)
            target = STUDY_TRANSITIONS.get((study["status"], body.get("action")))
            if target is None:
                raise fail(400, f"Cannot {body.get('action')} a study that is {study['status']}.")
            study["status"] = target
            if target == "ACTIVE" and state.publish_answers_publishing:  # as Prolific may: publishing goes on after
                return {**study, "status": "PUBLISHING"}
            return study

    @app.get("/api/v1/submissions/")
    def list_submissions(study: str, page: int = 1, page_size: int = 20) -> dict[str, Any]:
        with state.lock:
            _study(state, study, fail)
            if page == 1:
                _advance(state, study)
            rows = [_short(s) for s in state.submissions.values() if s["study_id"] == study]
            chunk = rows[(page - 1) * page_size: page * page_size]
            more = page * page_size < len(rows)
            nxt = f"/api/v1/submissions/?study={study}&page={page + 1}&page_size={page_size}" if more else None
            return {"results": chunk, "_links": {"next": {"href": nxt}}, "meta": {"count": len(rows)}}

    @app.get("/api/v1/submissions/{submission_id}/")
    def get_submission(submission_id: str) -> dict[str, Any]:
        with state.lock:
            return _submission(state, submission_id, fail)

    @app.post("/api/v1/submissions/{submission_id}/transition/")
    def transition_submission(submission_id: str, body: dict[str, Any]) -> dict[str, Any]:
        with state.lock:
            sub = _submission(state, submission_id, fail)
            action = body.get("action")
            target = {"APPROVE": "APPROVED", "REJECT": "REJECTED"}.get(action)
            if target is None:
                raise fail(400, {"action": [f"Unsupported action {action!r}."]})
            if action == "REJECT":
                if body.get("rejection_category") not in REJECTION_CATEGORIES:
                    raise fail(400, {"rejection_category": ["Required if action is 'REJECT'."]})
                if len(body.get("message") or "") < 100:
                    raise fail(400, {"message": ["It must be at least 100 chars long."]})
            if sub["status"] == target:
                return sub  # documented as idempotent
            if sub["status"] != "AWAITING REVIEW":
                raise fail(400, f"Cannot {action} a submission that is {sub['status']}.")
            sub.update(status=target, rejection=body if action == "REJECT" else None)
            return sub

    @app.post("/api/v1/submissions/bulk-approve/")
    def bulk_approve(body: dict[str, Any]) -> str:
        with state.lock:
            if "submission_ids" in body:
                chosen = [_submission(state, i, fail) for i in body["submission_ids"]]
            else:
                pids = set(body.get("participant_ids") or [])
                chosen = [s for s in state.submissions.values() if s["study_id"] == body.get("study_id") and s["participant"] in pids]
            for sub in chosen:
                if sub["status"] == "AWAITING REVIEW":
                    sub["status"] = "APPROVED"
            return "The request to bulk approve has been made successfully."

    @app.post("/api/v1/submissions/bonus-payments/", status_code=201)
    def setup_bonus(body: dict[str, Any]) -> dict[str, Any]:
        with state.lock:
            study = _study(state, str(body.get("study_id")), fail)
            took_part = {s["participant"] for s in state.submissions.values() if s["study_id"] == study["id"]}
            lines = [ln.split(",") for ln in str(body.get("csv_bonuses") or "").strip().splitlines() if ln.strip()]
            bad = [ln[0] for ln in lines if len(ln) != 2 or ln[0] not in took_part]
            if not lines or bad:
                raise fail(400, {"csv_bonuses": [f"Invalid participant or submission ids: {bad}"]})
            cents = sum(round(float(ln[1]) * 100) for ln in lines)
            bonus = {"id": state.new_id(), "study": study["id"], "amount": cents, "fees": round(cents * 0.333),
                     "total_amount": cents + round(cents * 0.333), "lines": lines}
            state.bonuses[bonus["id"]] = bonus
            return {k: v for k, v in bonus.items() if k != "lines"}

    @app.post("/api/v1/bulk-bonus-payments/{bonus_id}/pay/", status_code=202)
    def pay_bonus(bonus_id: str) -> dict[str, Any]:
        with state.lock:
            if state.refuse_pay:
                state.refuse_pay -= 1
                raise fail(400, {"detail": "Insufficient balance in the workspace."})
            bonus = state.bonuses.get(bonus_id)
            if bonus is None:
                raise fail(404, "Not found.")
            for pid, amount in bonus["lines"]:  # not idempotent: a second call pays again
                state.payments.append({"bonus_id": bonus_id, "participant": pid, "amount": float(amount), "study": bonus["study"]})
            return {}

    @app.post("/api/v1/messages/", status_code=201)
    def send_message(body: dict[str, Any]) -> dict[str, Any]:
        if state.fail_messages:
            raise fail(500, {"detail": "injected failure"})
        for name in ("recipient_id", "body", "study_id"):
            if not body.get(name):
                raise fail(400, {name: ["This field is required."]})
        with state.lock:
            state.messages.append(body)
            return {}

    @app.put("/survey/batches/{batch_id}")
    def put_batch(batch_id: str, body: dict[str, Any]) -> dict[str, Any]:
        with state.lock:
            state.batches[batch_id] = body
            state.responses.setdefault(batch_id, [])
            return {"batch_id": batch_id, "tasks": len(body.get("tasks", []))}

    @app.get("/survey/batches/{batch_id}/responses")
    def get_responses(batch_id: str) -> dict[str, Any]:
        with state.lock:
            return {"results": list(state.responses.get(batch_id, []))}

    return app


# -- simulation ----------------------------------------------------------------------------------


def _study(state: State, study_id: str, fail: Any) -> dict[str, Any]:
    if study_id not in state.studies:
        raise fail(404, "Not found.")
    return state.studies[study_id]


def _submission(state: State, submission_id: str, fail: Any) -> dict[str, Any]:
    if submission_id not in state.submissions:
        raise fail(404, "Not found.")
    return state.submissions[submission_id]


def _short(sub: dict[str, Any]) -> dict[str, Any]:
    return {"id": sub["id"], "participant_id": sub["participant"], "status": sub["status"], "started_at": sub["started_at"],
            "completed_at": sub["completed_at"], "has_siblings": False, "study_code": sub.get("study_code")}


def _advance(state: State, study_id: str) -> None:
    """One step of the participant pool on one study: finish the active, let new ones in."""
    study = state.studies[study_id]
    if study["status"] != "ACTIVE":
        return
    state.clock_s += 60.0
    batch_id = str(study["internal_name"]).removeprefix("clicloop ")
    batch = state.batches.get(batch_id, {"tasks": [], "labels": [], "tasks_per_submission": 1})
    subs = [s for s in state.submissions.values() if s["study_id"] == study_id]
    for sub in subs:
        if sub["status"] == "ACTIVE":
            _finish(state, study, batch, batch_id, sub)
    taken = {s["participant"] for s in subs}
    busy = sum(s["status"] in ("ACTIVE", "AWAITING REVIEW", "APPROVED", "REJECTED") for s in state.submissions.values()
               if s["study_id"] == study_id)
    free = [p for p in state.participants if p[0] not in taken]
    open_places = int(study["total_available_places"]) - busy
    for pid, careless in free[: max(0, min(open_places, state.pool.arrivals_per_step))]:
        sub = {"id": state.new_id(), "study_id": study_id, "participant": pid, "careless": careless, "status": "ACTIVE",
               "started_at": state.now(), "completed_at": None, "tasks": []}
        state.submissions[sub["id"]] = sub
    if open_places <= 0 and not any(s["status"] == "ACTIVE" for s in subs):
        study["status"] = "AWAITING REVIEW"


def _finish(state: State, study: dict[str, Any], batch: dict[str, Any], batch_id: str, sub: dict[str, Any]) -> None:
    rng, pool = state.rng, state.pool
    if rng.random() < pool.return_rate:
        sub.update(status="RETURNED", completed_at=state.now())
        return
    answered = {r["task_key"] for r in state.responses.get(batch_id, [])}
    k = int(batch.get("tasks_per_submission", 1))
    mine = [t for t in batch["tasks"] if t["key"] not in answered][:k]
    labels = list(batch.get("labels") or [])
    seconds = 0.0
    for task in mine:
        true = state.truth.get(task["item_id"])
        if sub["careless"] or true is None or not labels:
            label = labels[int(rng.integers(len(labels)))] if labels else None
        elif rng.random() < pool.accuracy:
            label = true
        else:
            others = [x for x in labels if x != true] or labels
            label = others[int(rng.integers(len(others)))]
        active = round(float(pool.seconds_median * math.exp(0.4 * rng.standard_normal())), 3)
        seconds += active
        state.responses[batch_id].append({"session_id": sub["id"], "participant_id": sub["participant"],
                                          "task_key": task["key"], "label": label, "active_s": active})
    started = datetime.fromisoformat(sub["started_at"].replace("Z", "+00:00"))
    done = started + timedelta(seconds=seconds + 20.0)  # + reading the instructions
    sub.update(status="AWAITING REVIEW", completed_at=done.isoformat().replace("+00:00", "Z"),
               study_code=batch.get("completion_code"), tasks=[t["key"] for t in mine])


def new_state(*, token: str = "test-token", currency: str = "GBP", seed: int = 0, pool: Pool | None = None,
              truth: Mapping[str, str] | None = None) -> State:
    """A fresh fake Prolific with a seeded participant pool."""
    pool = pool or Pool()
    rng = np.random.default_rng(seed)
    state = State(token=token, currency=currency, pool=pool, truth=dict(truth or {}), rng=rng)
    careless = rng.random(pool.n) < pool.careless_fraction
    state.participants = [(f"{int(rng.integers(1 << 40)):010x}{i:014x}", bool(careless[i])) for i in range(pool.n)]
    return state


@contextmanager
def running(state: State) -> Iterator[str]:
    """Serve ``state`` on 127.0.0.1 on a free port in a thread; yields the base URL."""
    import uvicorn

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(create_app(state), log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        for _ in range(500):
            if server.started:
                break
            threading.Event().wait(0.01)
        else:
            raise RuntimeError("the fake Prolific server did not start")
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()
