"""The Prolific HTTP client (``backends/prolific_client.py``) against a tiny local server that
answers as a list or a rate limit can: pagination it ignores, rows on two pages, Retry-After."""

from __future__ import annotations

import json
import threading
import time
from email.utils import formatdate
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse

import pytest

from clicloop.backends.prolific_client import JsonClient


@pytest.fixture
def server() -> Iterator[tuple[str, dict[str, Any]]]:
    """``GET /ignores-page``: the same 3 rows whatever the page, no ``_links``; ``GET /shifting``:
    page 1 holds rows a, b; page 2 holds b again and c (a row moved between reads); ``GET
    /limited``: 429 with Retry-After 7 once, then the answer."""
    seen: dict[str, Any] = {"calls": 0, "limited": 0}

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def do_GET(self) -> None:
            url = urlparse(self.path)
            page = int(parse_qs(url.query).get("page", ["1"])[0])
            seen["calls"] += 1
            if url.path in ("/limited", "/limited-date") and seen["limited"] == 0:
                seen["limited"] += 1
                self.send_response(429)
                when = formatdate(time.time() + 20, usegmt=True) if url.path == "/limited-date" else "7"
                self.send_header("Retry-After", when)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"{}")
                return
            if url.path == "/ignores-page":
                body = {"results": [{"id": i} for i in ("a", "b", "c")]}
            elif url.path == "/all-seen":  # page 2 holds only rows seen before (the list moved a page): read on
                pages = {1: ["a", "b"], 2: ["b", "a"], 3: ["c"]}
                body = {"results": [{"id": i} for i in pages[page]], "_links": {"next": {"href": "x" if page < 3 else None}}}
            elif url.path == "/shifting":
                body = {"results": [{"id": "a"}, {"id": "b"}] if page == 1 else [{"id": "b"}, {"id": "c"}],
                        "_links": {"next": {"href": "x" if page == 1 else None}}}
            else:
                body = {"results": []}
            raw = json.dumps(body).encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(raw)))
            self.end_headers()
            self.wfile.write(raw)

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}", seen
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_a_list_that_ignores_the_page_is_read_once_not_forever(server) -> None:
    """Found 2026-12-06: a list without ``_links`` whose pages were all full was read page after
    page for ever (1,000 rows from 10 identical pages before the audit's guard stopped it)."""
    url, seen = server
    rows = list(JsonClient(url, None).paged("/ignores-page", {}, page_size=3))
    assert [r["id"] for r in rows] == ["a", "b", "c"] and seen["calls"] == 2


def test_a_row_shown_on_two_pages_is_read_once_and_retry_after_is_honoured(server) -> None:
    """Found 2026-12-06: offset pagination over a live list can show a row on two pages, and it
    came back twice (two answers for one task, its place counted twice); a 429's Retry-After of
    30 s was answered with retries after 0.5, 1 and 2 s."""
    url, _ = server
    assert [r["id"] for r in JsonClient(url, None).paged("/shifting", {}, page_size=2)] == ["a", "b", "c"]
    slept: list[float] = []
    assert JsonClient(url, None, sleep=slept.append).request("GET", "/limited") == {"results": []}
    assert slept == [7.0]  # Retry-After honoured (it slept 0.5 s, then 1, 2, ... against a 30 s limit)


def test_a_page_of_rows_seen_before_does_not_end_the_list_and_retry_after_may_be_a_date(server) -> None:
    """Found 2026-12-07 in re-check: a page made only of rows seen before (the list moved by a page
    between reads) ended the reading, and the rows after it were missed; a Retry-After given as an
    HTTP date was ignored."""
    url, seen = server
    assert [r["id"] for r in JsonClient(url, None).paged("/all-seen", {}, page_size=2)] == ["a", "b", "c"]
    slept: list[float] = []
    JsonClient(url, None, sleep=slept.append).request("GET", "/limited-date")
    assert len(slept) == 1 and 15 <= slept[0] <= 21
