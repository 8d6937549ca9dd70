"""Issue #21, the Label Studio crowd backend's webhook receiver: 1,000 idle sockets once held
1,002 threads, forever. Now an idle or stalled connection is closed after ``idle_timeout_s`` and
at most ``max_connections`` are served at once, so the threads stay bounded and a real webhook
still gets through (sockets to 127.0.0.1 only, a bounded number of them)."""

from __future__ import annotations

import json
import socket
import threading
import time

import httpx

from clicloop.backends.labelstudio_webhook import WebhookReceiver

CAP, IDLE = 8, 60


def _webhook() -> dict:
    return {"action": "ANNOTATION_CREATED", "project": {"id": 7},
            "annotation": {"id": 1, "task": 3, "lead_time": 4.0, "result": [], "completed_by": 2}, "task": {"id": 3, "data": {}}}


def _closed_by_server(sock: socket.socket) -> bool:
    try:
        return sock.recv(1024) == b""
    except ConnectionResetError:  # closed with our unread bytes in its buffer
        return True


def test_idle_sockets_hold_a_bounded_number_of_threads_and_a_webhook_gets_through() -> None:
    receiver = WebhookReceiver("127.0.0.1", 0, "/clicloop/t/secret", 7, idle_timeout_s=0.5, max_connections=CAP).start()
    url = f"http://127.0.0.1:{receiver.port_}{receiver.path}"
    baseline = threading.active_count()
    idle: list[socket.socket] = []
    try:
        for i in range(IDLE):
            sock = socket.create_connection(("127.0.0.1", receiver.port_), timeout=10)
            if i % 2:  # half of them start a request and stall (slowloris)
                sock.sendall(b"POST /clicloop/t/secret HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n")
            idle.append(sock)
        peak, answer = threading.active_count(), None
        deadline = time.monotonic() + 60
        while answer is None and time.monotonic() < deadline:  # refused while the cap is full: retry, as a poll would
            peak = max(peak, threading.active_count())
            try:
                answer = httpx.post(url, content=json.dumps(_webhook()), headers={"Content-Type": "application/json"}, timeout=10)
            except httpx.TransportError:
                time.sleep(0.05)
        peak = max(peak, threading.active_count())
        assert answer is not None and answer.status_code == 200 and answer.json() == {"status": "queued"}
        assert peak <= baseline + CAP + 1, f"{peak - baseline} threads for {IDLE} idle sockets (cap {CAP})"
        assert [d.action for d in receiver.drain()] == ["ANNOTATION_CREATED"]
        assert receiver.stats()["refused"] > 0
        assert all(_closed_by_server(sock) for sock in idle)  # none is held: refused at once, or closed when idle
    finally:
        for sock in idle:
            sock.close()
        receiver.stop()
