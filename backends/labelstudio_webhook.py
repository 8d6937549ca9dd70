"""The webhook receiver of the Label Studio crowd backend: a small stdlib HTTP server in a thread.

Label Studio delivers a webhook *inside* the annotator's submit, with a 1 s timeout, so the
receiver only checks and queues: it answers each POST at once and the backend's ``collect``
does the work later, in the loop's thread.

- Only ``POST <path>`` is accepted, where the path carries a random secret (Label Studio sends
  no credentials of its own); anything else is 404.
- A body that is not JSON, too large, or not a well-formed annotation event is answered 4xx
  with the reason, and counted (``stats()["rejected"]``); it never reaches the queue.
- Actions clicloop does not use, or events of another project, are answered 200 and counted as
  ``ignored``.
- A connection idle for ``idle_timeout_s`` (no request, or a request that stalls) is closed, and
  at most ``max_connections`` are served at once: one more is closed unanswered and counted as
  ``refused`` (Label Studio does not retry; the backend's periodic poll picks the answer up).
  So idle or slow sockets hold a bounded number of threads, each for a bounded time.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any

from clicloop.backends.labelstudio_format import result_problem, user_problem

if TYPE_CHECKING:
    from clicloop.backends.labelstudio_client import LabelStudioClient

log = logging.getLogger("clicloop.labelstudio")

#: The actions the backend registers for.
WEBHOOK_ACTIONS = ("ANNOTATION_CREATED", "ANNOTATIONS_CREATED", "ANNOTATION_UPDATED", "ANNOTATIONS_DELETED")


class WebhookPayloadError(ValueError):
    """A webhook body is not a well-formed Label Studio annotation event (answered 400)."""


@dataclass(frozen=True)
class Delivery:
    """One accepted webhook: its action, the annotations it carries (for deletions: ids only),
    and the tasks embedded in the payload, by Label Studio task id."""

    action: str
    project: int | None
    annotations: tuple[dict[str, Any], ...]
    tasks: dict[int, dict[str, Any]] = field(default_factory=dict)


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _id_of(value: Any) -> int | None:
    """An id given as an int or as an object with an int ``id``."""
    return _int(value.get("id")) if isinstance(value, dict) else _int(value)


def _annotation(raw: Any, where: str, created: bool) -> dict[str, Any]:
    if not isinstance(raw, dict) or _int(raw.get("id")) is None:
        raise WebhookPayloadError(f"{where} must be an object with an integer 'id'")
    if _id_of(raw.get("task")) is None:
        raise WebhookPayloadError(f"{where}.task must be the task id (an integer)")
    lead = raw.get("lead_time")
    if lead is not None and (isinstance(lead, bool) or not isinstance(lead, (int, float)) or lead < 0):
        raise WebhookPayloadError(f"{where}.lead_time must be a non-negative number or null")
    if not isinstance(raw.get("was_cancelled", False), bool):
        raise WebhookPayloadError(f"{where}.was_cancelled must be true or false")
    for stamp in ("created_at", "updated_at"):
        if raw.get(stamp) is not None and not isinstance(raw[stamp], str):
            raise WebhookPayloadError(f"{where}.{stamp} must be a string")
    problem = result_problem(raw.get("result", []), f"{where}.result") or (
        user_problem(raw.get("completed_by"), f"{where}.completed_by") if created else None)
    if problem:
        raise WebhookPayloadError(problem)
    return raw


def _task(raw: Any, where: str) -> dict[str, Any]:
    if not isinstance(raw, dict) or _int(raw.get("id")) is None:
        raise WebhookPayloadError(f"{where} must be an object with an integer 'id'")
    if not isinstance(raw.get("data", {}), dict) or not isinstance(raw.get("meta") or {}, dict):
        raise WebhookPayloadError(f"{where}.data and {where}.meta must be objects")
    return raw


def parse_delivery(body: bytes) -> Delivery | None:
    """Validate a webhook body; None for an action clicloop does not use.

    Raises :class:`WebhookPayloadError` with the reason when the body is malformed.
    """
    try:
        payload = json.loads(body)
    except (ValueError, UnicodeDecodeError) as e:
        raise WebhookPayloadError(f"the body is not JSON: {e}") from e
    except RecursionError as e:
        raise WebhookPayloadError("the body's JSON is nested too deeply") from e
    if not isinstance(payload, dict) or not isinstance(payload.get("action"), str):
        raise WebhookPayloadError("the body must be a JSON object with a string 'action'")
    action = payload["action"]
    if action not in WEBHOOK_ACTIONS:
        return None
    project = payload.get("project")
    pid = _id_of(project)
    if project is not None and pid is None:
        raise WebhookPayloadError("'project' must be a project id or an object with an integer 'id'")
    if action == "ANNOTATIONS_DELETED":
        raw = payload.get("annotations")
        if not isinstance(raw, list) or not all(_id_of(a) is not None for a in raw):
            raise WebhookPayloadError("ANNOTATIONS_DELETED needs 'annotations': a list of objects with an integer 'id'")
        return Delivery(action, pid, tuple({"id": _id_of(a)} for a in raw))
    many = action == "ANNOTATIONS_CREATED"
    raw_annotations, raw_tasks = payload.get("annotation"), payload.get("task")
    if many:
        if not isinstance(raw_annotations, list) or not isinstance(raw_tasks if raw_tasks is not None else [], list):
            raise WebhookPayloadError(f"{action} needs 'annotation' as a list (and 'task' as a list)")
    else:
        if raw_annotations is None:
            raise WebhookPayloadError(f"{action} needs an 'annotation' object")
        raw_annotations, raw_tasks = [raw_annotations], [raw_tasks] if raw_tasks is not None else []
    created = action != "ANNOTATION_UPDATED"
    annotations = tuple(_annotation(a, f"annotation[{i}]" if many else "annotation", created)
                        for i, a in enumerate(raw_annotations))
    tasks: dict[int, dict[str, Any]] = {}
    for i, raw in enumerate(raw_tasks):
        task = _task(raw, f"task[{i}]" if many else "task")
        tasks[int(task["id"])] = task
    return Delivery(action, pid, annotations, tasks)


class WebhookReceiver:
    """A threaded HTTP server on ``host:port`` queueing Label Studio's annotation webhooks.

    ``path`` is the only accepted path (it carries the secret); ``project_id`` events of other
    projects are ignored. ``port=0`` binds a free port (see ``port_`` after :meth:`start`).
    """

    def __init__(self, host: str, port: int, path: str, project_id: int, max_body_bytes: int = 8 * 1024 * 1024,
                 idle_timeout_s: float = 10.0, max_connections: int = 32):
        self.host = host
        self.port = port
        self.path = path
        self.project_id = project_id
        self.max_body_bytes = max_body_bytes
        self.idle_timeout_s = idle_timeout_s
        self.max_connections = max_connections
        self.queue_: queue.SimpleQueue[Delivery] = queue.SimpleQueue()
        self.lock_ = threading.Lock()
        self.counts_ = {"received": 0, "accepted": 0, "ignored": 0, "rejected": 0, "refused": 0}

    def start(self) -> WebhookReceiver:
        """Bind and serve in a daemon thread; raises OSError when the port is taken."""
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            timeout = receiver.idle_timeout_s  # a socket silent this long is closed (http.server logs it)

            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                receiver._post(self)

            def do_GET(self) -> None:  # noqa: N802
                if self.path == receiver.path:
                    _reply(self, 200, {"status": "UP"})
                else:
                    _reply(self, 404, {"detail": "not found"})

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
                log.debug("webhook receiver: " + format, *args)

        self.server_ = _BoundedServer((self.host, self.port), Handler, self.max_connections, self._refused)
        self.port_ = int(self.server_.server_address[1])
        self.thread_ = threading.Thread(target=self.server_.serve_forever, kwargs={"poll_interval": 0.2},
                                        name=f"ls-webhook-{self.port_}", daemon=True)
        self.thread_.start()
        return self

    def _count(self, what: str) -> None:
        with self.lock_:
            self.counts_[what] += 1

    def _refused(self) -> None:
        with self.lock_:
            self.counts_["refused"] += 1
            n = self.counts_["refused"]
        if n == 1 or n % 1000 == 0:
            log.warning("webhook receiver: %d connection(s) refused so far: %d already open (max_connections); "
                        "the periodic poll picks up what they carried", n, self.max_connections)

    def _post(self, handler: BaseHTTPRequestHandler) -> None:
        self._count("received")
        if handler.path != self.path:
            self._count("rejected")
            _reply(handler, 404, {"detail": "not found"})
            return
        length = handler.headers.get("Content-Length", "")
        if not length.isdigit():
            self._count("rejected")
            _reply(handler, 411, {"detail": "a Content-Length header is required"}, close=True)
            return
        if int(length) > self.max_body_bytes:
            self._count("rejected")
            _reply(handler, 413, {"detail": f"body larger than {self.max_body_bytes} bytes"}, close=True)
            return
        try:
            delivery = parse_delivery(handler.rfile.read(int(length)))
        except WebhookPayloadError as e:
            self._count("rejected")
            log.warning("Label Studio webhook rejected: %s", e)
            _reply(handler, 400, {"detail": str(e)})
            return
        if delivery is None or (delivery.project is not None and delivery.project != self.project_id):
            self._count("ignored")
            _reply(handler, 200, {"status": "ignored"})
            return
        self.queue_.put(delivery)
        self._count("accepted")
        _reply(handler, 200, {"status": "queued"})

    def drain(self) -> list[Delivery]:
        """Every delivery queued so far, oldest first."""
        out: list[Delivery] = []
        while True:
            try:
                out.append(self.queue_.get_nowait())
            except queue.Empty:
                return out

    def stats(self) -> dict[str, int]:
        """Counts of POSTs received, accepted (queued), ignored and rejected, and of connections
        refused at the ``max_connections`` cap."""
        with self.lock_:
            return dict(self.counts_)

    def stop(self) -> None:
        if hasattr(self, "server_"):
            self.server_.shutdown()
            self.server_.server_close()
            self.thread_.join(timeout=5)
            del self.server_


class _BoundedServer(ThreadingHTTPServer):
    """A thread per connection, at most ``max_connections`` at once; one more is closed at once."""

    daemon_threads = True
    request_queue_size = 128  # a burst of connections waits in the kernel to be served or refused, not dropped

    def __init__(self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler], max_connections: int,
                 on_refused: Callable[[], None]):
        super().__init__(address, handler)
        self.slots_ = threading.BoundedSemaphore(max_connections)
        self.on_refused_ = on_refused

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self.slots_.acquire(blocking=False):
            self.shutdown_request(request)
            self.on_refused_()
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self.slots_.release()
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self.slots_.release()


def open_webhook(client: LabelStudioClient, project_id: int, loop: str, host: str, port: int,
                 url: str | None = None) -> tuple[WebhookReceiver, int]:
    """Start a receiver for ``project_id`` on ``host:port`` and register it in Label Studio for
    :data:`WEBHOOK_ACTIONS`; the webhooks of this loop's earlier runs are removed first (their
    path starts with ``/clicloop/<loop>/``). Returns the receiver and the webhook id."""
    import secrets
    from urllib.parse import quote, urlsplit

    from clicloop.backends.labelstudio_client import LabelStudioError

    prefix = f"/clicloop/{quote(loop, safe='')}/"
    receiver = WebhookReceiver(host, port, prefix + secrets.token_urlsafe(18), project_id)
    try:
        receiver.start()
    except OSError as e:
        raise LabelStudioError(
            f"labelstudio backend: cannot receive webhooks on {host}:{port} ({e}); "
            "choose another webhook_port (0 picks a free one) or leave it unset to poll"
        ) from e
    reachable = "127.0.0.1" if host in ("", "0.0.0.0", "::") else host
    base = (url or f"http://{reachable}:{receiver.port_}").rstrip("/")
    try:
        for hook in client.webhooks(project_id):
            if urlsplit(str(hook.get("url", ""))).path.startswith(prefix):
                client.delete_webhook(int(hook["id"]))
        hook = client.create_webhook(project_id, base + receiver.path, WEBHOOK_ACTIONS)
    except LabelStudioError as e:
        receiver.stop()
        raise LabelStudioError(
            f"Label Studio did not register the webhook to {base} ({e}); make sure it can reach that URL "
            "(set webhook_url; for 127.0.0.1 start Label Studio with SSRF_PROTECTION_ENABLED=false) "
            "or leave webhook_port unset to poll",
            status=e.status,
        ) from e
    receiver.url_ = base + receiver.path
    log.info("Label Studio project %s: webhook %s -> %s", project_id, hook["id"], base)
    return receiver, int(hook["id"])


def _reply(handler: BaseHTTPRequestHandler, status: int, body: dict[str, Any], close: bool = False) -> None:
    data = json.dumps(body).encode()
    try:
        handler.send_response(status)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(data)))
        if close:  # the unread body makes the connection unusable
            handler.send_header("Connection", "close")
            handler.close_connection = True
        handler.end_headers()
        handler.wfile.write(data)
    except (BrokenPipeError, ConnectionResetError):  # the sender gave up waiting (Label Studio: 1 s); nothing lost
        handler.close_connection = True
        log.debug("webhook sender closed the connection before the answer")
