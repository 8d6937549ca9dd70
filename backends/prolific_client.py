"""A small HTTP client for Prolific's REST API (and the survey tool the studies point to), plus
the pay-floor arithmetic.

Plain ``urllib`` (no extra dependency). Every request sends ``Authorization: Token <token>``
(https://docs.prolific.com/api-reference/introduction). A 429 ("retry with exponential
back-off", https://docs.prolific.com/documentation/core-concepts/managing-high-loads) is retried
for every request; 5xx and connection failures are retried only for requests that are safe to
repeat, never for one that moves money twice (``/bulk-bonus-payments/{id}/pay/`` is documented
as not idempotent).
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any

from clicloop.orchestrator.errors import BackendError

log = logging.getLogger("clicloop.prolific")

#: Prolific's enforced minimum and its recommended pay per hour, by workspace currency
#: (../shared/notes/crowd-and-fair-work.md; checked against the median completion time).
PROLIFIC_MINIMUM_PER_HOUR = {"GBP": 6.00, "USD": 8.00}
PROLIFIC_RECOMMENDED_PER_HOUR = {"GBP": 9.00, "USD": 12.00}
#: Submission statuses that carry an answer (https://docs.prolific.com/api-reference/submissions/submission-object).
ANSWERED = ("AWAITING REVIEW", "APPROVED", "PARTIALLY APPROVED")


class ProlificError(BackendError):
    """Prolific (or the survey tool) refused a request or stayed unreachable.

    ``status`` is the HTTP status (None when the server never answered), ``body`` its answer.
    """

    def __init__(self, message: str, *, status: int | None = None, body: Any = None):
        self.status = status
        self.body = body
        super().__init__(message)


def reward_cents(per_hour: float, minutes: float) -> int:
    """The smallest whole reward in cents that pays ``per_hour`` for ``minutes`` of work."""
    return int(math.ceil(per_hour * minutes / 60.0 * 100.0 - 1e-9))


def minutes_for(seconds: float) -> int:
    """Prolific's ``estimated_completion_time`` (whole minutes, at least 1) for ``seconds``."""
    return max(1, int(math.ceil(seconds / 60.0 - 1e-9)))


class JsonClient:
    """JSON over HTTP with token auth and retry.

    Parameters
    ----------
    base_url: scheme, host and port, e.g. ``https://api.prolific.com``.
    token: the API token (sent as ``Authorization: Token <token>``); None sends no header.
    timeout_s: per-request timeout; retries: attempts after the first; backoff_s: first sleep
    (doubling); sleep: injectable for tests.
    """

    def __init__(self, base_url: str, token: str | None, *, timeout_s: float = 30.0, retries: int = 5,
                 backoff_s: float = 0.5, sleep: Callable[[float], None] = time.sleep, name: str = "Prolific"):
        self.base_url = base_url.rstrip("/")
        self.token = token
        self.timeout_s = timeout_s
        self.retries = retries
        self.backoff_s = backoff_s
        self.sleep = sleep
        self.name = name

    def request(self, method: str, path: str, *, body: Any = None, params: dict[str, Any] | None = None,
                safe_to_repeat: bool = True) -> Any:
        """Send one request; returns the decoded JSON answer (None for an empty body)."""
        url = path if path.startswith(("http://", "https://")) else f"{self.base_url}{path}"
        if params:
            url = f"{url}{'&' if '?' in url else '?'}{urllib.parse.urlencode(params)}"
        data = None if body is None else json.dumps(body).encode("utf-8")
        headers = {"Accept": "application/json"}
        if data is not None:
            headers["Content-Type"] = "application/json"
        if self.token:
            headers["Authorization"] = f"Token {self.token}"
        delay = self.backoff_s
        for attempt in range(self.retries + 1):
            wait = delay
            req = urllib.request.Request(url, data=data, method=method, headers=headers)
            try:
                with urllib.request.urlopen(req, timeout=self.timeout_s) as resp:
                    raw = resp.read()
                return json.loads(raw) if raw.strip() else None
            except urllib.error.HTTPError as e:
                answer = _decode(e.read())
                retry = e.code == 429 or (e.code >= 500 and safe_to_repeat)
                if not retry or attempt == self.retries:
                    raise ProlificError(f"{self.name} answered {e.code} to {method} {path}: {_short(answer)}",
                                        status=e.code, body=answer) from e
                wait = max(delay, _retry_after(e.headers.get("Retry-After") if e.headers else None))
            except (urllib.error.URLError, TimeoutError, ConnectionError) as e:
                if not safe_to_repeat or attempt == self.retries:
                    raise ProlificError(f"{self.name} unreachable for {method} {path}: {e}") from e
            except json.JSONDecodeError as e:
                raise ProlificError(f"{self.name} sent invalid JSON for {method} {path}: {e}") from e
            log.info("%s: %s %s failed (attempt %d), retrying in %.2fs", self.name, method, path, attempt + 1, wait)
            self.sleep(wait)
            delay = min(delay * 2, 30.0)
        raise ProlificError(f"{self.name}: {method} {path} failed")  # pragma: no cover - loop always returns

    def paged(self, path: str, params: dict[str, Any], *, page_size: int = 100) -> Iterator[dict[str, Any]]:
        """Every row of a paginated list (``page``/``page_size``; stops at the last page), each id
        once: a live list read by offset can show a row on two pages, and a server that ignores
        ``page`` (sending the same page again) ends the reading instead of looping forever."""
        page, seen, previous = 1, set(), None
        while True:
            answer = self.request("GET", path, params={**params, "page": page, "page_size": page_size})
            rows = answer.get("results", []) if isinstance(answer, dict) else []
            ids = [str(r.get("id")) if isinstance(r, dict) else repr(r) for r in rows]
            if ids == previous:  # the same page again: the server ignores ``page``
                return
            yield from (r for r, i in zip(rows, ids) if i not in seen or i == "None")
            seen.update(ids)
            links = answer.get("_links") if isinstance(answer, dict) else None
            has_next = bool((links.get("next") or {}).get("href")) if isinstance(links, dict) else len(rows) == page_size
            if not rows or not has_next:
                return
            page, previous = page + 1, ids


def readable_submission(sub: Any, study_id: str, said: set[str]) -> bool:
    """A submission names itself, its participant and its status; one that does not is skipped,
    said once per submission (in ``said``): its answer would be paid to nobody."""
    if isinstance(sub, dict) and sub.get("id") and (sub.get("participant_id") or sub.get("participant")) \
            and isinstance(sub.get("status"), str):
        return True
    mark = f"{study_id}:{sub.get('id') if isinstance(sub, dict) else sub!r}"
    if mark not in said:
        said.add(mark)
        log.warning("prolific: study %s lists a submission without its id, participant or status (%s): skipped",
                    study_id, str(sub)[:200])
    return False


def _retry_after(value: str | None) -> float:
    """Seconds a 429 or 5xx answer's ``Retry-After`` asks for, as seconds or an HTTP date (at most
    5 minutes); 0 without one."""
    from email.utils import parsedate_to_datetime

    if value is None:
        return 0.0
    try:
        seconds = float(value)
    except ValueError:
        try:
            seconds = parsedate_to_datetime(value).timestamp() - time.time()
        except (TypeError, ValueError):
            return 0.0
    return min(max(seconds, 0.0), 300.0) if math.isfinite(seconds) else 0.0


def _decode(raw: bytes) -> Any:
    try:
        return json.loads(raw) if raw.strip() else None
    except json.JSONDecodeError:
        return raw[:500].decode("utf-8", "replace")


def _short(answer: Any) -> str:
    text = answer if isinstance(answer, str) else json.dumps(answer, default=str)
    return text[:400]


@dataclass(frozen=True)
class Payment:
    """A bonus or adjustment paid through Prolific (``amount``: exact, whole cents, in ``currency``)."""

    participant: str
    study_id: str
    amount: Decimal
    currency: str
    reason: str
    bonus_id: str
    kind: str  # "bonus" | "adjustment"


@dataclass(frozen=True)
class UnpaidEffort:
    """Time a participant spent on a returned or timed-out submission (no label, no pay)."""

    participant: str
    study_id: str
    submission_id: str
    status: str
    seconds: float


# -- small helpers shared with clicloop.backends.prolific ---------------------------------------------------


def batch_id(loop: str, tasks: Sequence[Any]) -> str:
    digest = hashlib.sha256("\n".join(t.key for t in tasks).encode()).hexdigest()[:12]
    return f"{safe(loop)}-r{min(t.round_no for t in tasks)}-{digest}"


def safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "_.-" else "_" for c in name)[:60] or "loop"


def html(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def epoch(value: Any) -> float | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        when = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return (when if when.tzinfo else when.replace(tzinfo=timezone.utc)).timestamp()


def seconds(value: Any, fallback: float) -> float:
    try:
        seconds = float(value) if value is not None else fallback
    except (TypeError, ValueError):
        seconds = fallback
    return round(seconds, 3) if seconds == seconds and seconds >= 0 else float("nan")


def jsonable(value: Any) -> Any:
    if hasattr(value, "tolist"):
        return value.tolist()
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return str(value)
    return value
