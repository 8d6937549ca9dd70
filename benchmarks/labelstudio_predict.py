"""Benchmark: clicloop's Label Studio ML backend /predict, against a real Label Studio server.

1. /predict latency for requests of 100 tasks (p50, p99 over ``--repeats`` requests), as
   Label Studio sends them (task id + data), over HTTP to the uvicorn-served app;
2. a whole 20,000-task project predicted by Label Studio itself ("Retrieve predictions" on all
   tasks): Label Studio sends them in ONE /predict call, which must answer within its 100 s
   ML_TIMEOUT_PREDICT. The call is timed inside clicloop's server (first byte in to last byte
   out, upload included) and its results counted. Label Studio then validates and stores the
   predictions itself, one by one: Label Studio's own time, not bound by the timeout, and far
   longer than this benchmark may run at 20,000 tasks; so Label Studio is restarted (which
   stops it) and the whole action, start to finish, is timed on ``--store-sample`` tasks
   instead. Plus the bare /predict time for the same 20,000 tasks;
3. the background write of acquisition scores into task data, in tasks per second: Label Studio
   has no bulk update of task data, so it is one PATCH per task; measured side by side with one
   connection (what clicloop did before) and with ``--workers`` concurrent connections,
   interleaved, ``--acquisition-repeats`` times each (medians; fresh scores every time, so no
   write is skipped).

The backend's model is ``--model`` (default ``auto``: the ``sentence-embedding`` model when
sentence-transformers is installed, else TF-IDF). After a model is trained the backend embeds every
task's text into the disk cache (``warm_embeddings``), timed with the training; ``/predict`` then
reads the cache. With ``--cold`` the bare whole-project /predict and ``--cold-repeats`` requests of
100 tasks are also timed against an empty cache folder (up to the backend's ``predict_embed_limit``
texts computed in the request, the rest deferred to the background; the model already
loaded), before the warm figures.

Needs the Label Studio server venv (``bash .ci/labelstudio``). Usage:
    .venv/bin/python benchmarks/labelstudio_predict.py [--tasks 20000] [--repeats 200] [--markdown]
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("CLICLOOP_WORKER_SALT", "clicloop-benchmarks")  # throwaway ledgers: no key file per run in ~/.config

from tests.support.labelstudio_server import LabelStudioServer, free_port  # noqa: E402

CONFIG = """<View>
  <Header value="Route customer e-mails to the team that can answer them."/>
  <Text name="text" value="$text"/>
  <Choices name="topic" toName="text" choice="single"><Choice value="billing"/><Choice value="delivery"/><Choice value="other"/></Choices>
</View>"""
VOCAB = {"billing": "invoice refund charge payment card vat receipt", "delivery": "parcel late courier address package tracking",
         "other": "password login account app screen language"}
FILLER = "hello please my the thanks today order could you help we again since".split()


def texts(n: int, seed: int) -> tuple[list[str], list[str]]:
    rng = np.random.default_rng(seed)
    labels = rng.choice(list(VOCAB), n)
    out = []
    for label in labels:
        words = list(rng.choice(VOCAB[label].split(), 3)) + list(rng.choice(FILLER, 12))
        rng.shuffle(words)
        out.append(" ".join(words))
    return out, [str(x) for x in labels]


def serve(app: Any) -> tuple[str, Any]:
    import uvicorn

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    threading.Thread(target=server.run, daemon=True).start()
    while not server.started:
        time.sleep(0.05)
    return f"http://127.0.0.1:{port}", server


class Timed:
    """ASGI wrapper recording each /predict call: seconds from the request's start to the last
    byte of the answer, the status and the number of results."""

    def __init__(self, app: Any):
        self.app, self.state, self.calls = app, app.state, []

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or not scope["path"].endswith("/predict"):
            await self.app(scope, receive, send)
            return
        t0, status, body = time.perf_counter(), {}, bytearray()

        async def timed_send(message: Any) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            body.extend(message.get("body", b""))
            await send(message)
            if message["type"] == "http.response.body" and not message.get("more_body"):
                seconds = time.perf_counter() - t0
                results = len(json.loads(body).get("results", [])) if status.get("code") == 200 else 0
                self.calls.append((seconds, status.get("code"), results))

        await self.app(scope, receive, timed_send)


def latencies(http: Any, url: str, project_uid: str, ids: list[int], X: list[str], rng: np.random.Generator,
              repeats: int) -> list[float]:
    """Seconds of ``repeats`` /predict requests of 100 random tasks each."""
    out = []
    for _ in range(repeats):
        pick = rng.choice(len(ids), 100, replace=False)
        body = {"project": project_uid, "tasks": [{"id": ids[j], "data": {"text": X[j]}} for j in pick]}
        t = time.perf_counter()
        r = http.post(f"{url}/predict", json=body)
        out.append(time.perf_counter() - t)
        if r.status_code != 200 or len(r.json()["results"]) != 100:
            raise SystemExit(f"/predict failed: {r.status_code} {r.text[:200]}")
    return out


def bare_predict(http: Any, url: str, project_uid: str, ids: list[int], X: list[str]) -> tuple[float, int]:
    """Seconds of one /predict request holding every task, and how many tasks it predicted."""
    body = {"project": project_uid, "tasks": [{"id": i, "data": {"text": x}} for i, x in zip(ids, X)]}
    t = time.perf_counter()
    r = http.post(f"{url}/predict", json=body)
    seconds = time.perf_counter() - t
    if r.status_code != 200 or len(r.json()["results"]) != len(ids):
        raise SystemExit(f"bare /predict did not answer every task: {r.status_code} {r.text[:200]}")
    return seconds, sum(1 for x in r.json()["results"] if x["result"])  # the others deferred (predict_embed_limit)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", type=int, default=20000)
    parser.add_argument("--repeats", type=int, default=200)
    parser.add_argument("--labeled", type=int, default=60)
    parser.add_argument("--acquisition-sample", type=int, default=100)
    parser.add_argument("--acquisition-repeats", type=int, default=3)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 4, 8], help="connections for the acquisition writes")
    parser.add_argument("--store-sample", type=int, default=200, help="tasks whose whole 'Retrieve predictions' is timed")
    parser.add_argument("--model", default="auto", help="the backend's model (auto: sentence-embedding when installed)")
    parser.add_argument("--cold", action="store_true", help="also time /predict with an empty embedding cache")
    parser.add_argument("--cold-repeats", type=int, default=10, help="100-task requests timed with an empty cache")
    parser.add_argument("--markdown", action="store_true", help="print a markdown table")
    args = parser.parse_args()

    import httpx
    from label_studio_sdk import LabelStudio

    from clicloop.connectors.labelstudio import create_app
    from clicloop.connectors.labelstudio.settings import ServeSettings

    started = time.perf_counter()
    tmp = Path(f"/tmp/clicloop-bench-{secrets.token_hex(3)}")
    tmp.mkdir()
    ls_server = LabelStudioServer().start()
    try:
        token = secrets.token_hex(20)
        os.environ["CLICLOOP_CACHE_DIR"] = str(tmp / "cache")  # a fresh embedding cache, warmed by the backend
        app = Timed(create_app(ServeSettings(token=token, loop="bench", ledger=f"sqlite:///{tmp / 'ledger.db'}",
                                             train_every=0, write_acquisition=False, model_name=args.model)))
        url, server = serve(app)
        ls = LabelStudio(base_url=ls_server.url, api_key=ls_server.token, timeout=300)
        project = ls.projects.create(title="bench", label_config=CONFIG)
        X, y = texts(args.tasks, seed=0)
        t0 = time.perf_counter()
        ids = ls.projects.import_tasks(id=project.id, request=[{"text": x} for x in X], return_task_ids=True).task_ids
        t_import = time.perf_counter() - t0
        ls.ml.create(project=project.id, url=f"{url}/t/{token}", title="clicloop")
        for i in range(args.labeled):
            ls.annotations.create(id=ids[i], lead_time=5.0, result=[
                {"from_name": "topic", "to_name": "text", "type": "choices", "value": {"choices": [y[i]]}}])
        model = app.state.projects.by_id[project.id]
        t = time.perf_counter()
        model.start_training()
        model.wait_trained(3600)  # fitting, then embedding every task's text into the cache
        t_train = time.perf_counter() - t
        if not model.versions_:
            raise SystemExit(f"no model trained: {model.status()}")
        model_name = model.versions_[-1].get("model", args.model)
        print(f"# model {model_name}: trained and {len(ids)} task texts embedded in {t_train:.1f}s", flush=True)
        project_uid = f"{project.id}.0"
        http = httpx.Client(timeout=600, headers={"Authorization": f"Bearer {token}"})
        rng = np.random.default_rng(1)
        cold: dict[str, Any] = {}
        if args.cold:  # an empty cache folder: /predict computes up to predict_embed_limit texts, defers the rest
            os.environ["CLICLOOP_CACHE_DIR"] = str(tmp / "empty-cache")
            cold["lat"] = latencies(http, url, project_uid, ids, X, rng, args.cold_repeats)
            cold["bare"], cold["predicted"] = bare_predict(http, url, project_uid, ids, X)
            t = time.perf_counter()  # the texts over predict_embed_limit, embedded in the background
            model.deferral_.wait_idle(3600)
            cold["deferred_s"] = time.perf_counter() - t
            os.environ["CLICLOOP_CACHE_DIR"] = str(tmp / "cache")
            print(f"# cold: /predict 100 tasks p50 {np.median(cold['lat']) * 1000:.0f} ms; {len(ids)} tasks bare: "
                  f"{cold['bare']:.2f}s, {cold['predicted']} predicted (limit {model.settings.predict_embed_limit}), "
                  f"the rest embedded in the background in {cold['deferred_s']:.1f}s more", flush=True)
        lat = latencies(http, url, project_uid, ids, X, rng, args.repeats)
        t_bare, _ = bare_predict(http, url, project_uid, ids, X)
        print(f"# /predict 100 tasks p50/p99 ms: {np.percentile(np.array(lat) * 1000, [50, 99])}; "
              f"{len(ids)} tasks bare: {t_bare:.2f}s", flush=True)

        # acquisition writes, before Label Studio gets busy storing predictions
        sample = [{"id": i, "data": {"text": x}} for i, x in zip(ids[: args.acquisition_sample], X)]
        rates: dict[int, list[float]] = {w: [] for w in args.workers}
        for _ in range(args.acquisition_repeats):
            for w in args.workers:  # interleaved, so load on the shared machine hits every setting alike
                t = time.perf_counter()
                written = model.write_acquisition(sample, list(rng.random(len(sample))), workers=w)
                rates[w].append(written / (time.perf_counter() - t))
        stored = [t.data.get("clicloop_acquisition") for t in ls.tasks.list(project=project.id, page_size=100)]
        if sum(a is not None for a in stored) < min(100, len(sample)):
            raise SystemExit("acquisition scores were not stored in task data")
        print(f"# acquisition writes, tasks/s by connections: { {w: [round(r) for r in v] for w, v in rates.items()} }", flush=True)

        # Label Studio predicts the whole project: its one /predict call, then its own storing
        app.calls.clear()
        errors: list[str] = []

        def retrieve() -> None:
            try:
                ls.actions.create(id="retrieve_tasks_predictions", project=project.id)
            except Exception as e:  # noqa: BLE001 - the server is stopped before it finishes storing
                errors.append(f"{type(e).__name__}: {e}")

        t = time.perf_counter()
        threading.Thread(target=retrieve, daemon=True).start()
        deadline = time.monotonic() + 280
        while not app.calls and time.monotonic() < deadline and not errors:
            time.sleep(0.1)
        if not app.calls:
            raise SystemExit(f"Label Studio never called /predict: {errors}")
        t_called = time.perf_counter() - t
        t_ls, ls_status, ls_results = app.calls[0]
        if len(app.calls) != 1 or ls_status != 200 or ls_results != len(ids):
            raise SystemExit(f"Label Studio's predict call: {app.calls}")
        ls_server.restart()  # it would validate and store the predictions for many minutes: stop that
        sample_ids = ids[-args.store_sample:]
        before = ls.projects.get(id=project.id).total_predictions_number or 0
        app.calls.clear()
        t = time.perf_counter()
        r = httpx.post(f"{ls_server.url}/api/dm/actions", params={"id": "retrieve_tasks_predictions", "project": project.id},
                       json={"selectedItems": {"all": False, "included": sample_ids}},
                       headers={"Authorization": f"Token {ls_server.token}"}, timeout=300)
        t_small = time.perf_counter() - t
        stored = (ls.projects.get(id=project.id).total_predictions_number or 0) - before
        if r.status_code != 200 or stored != len(sample_ids) or [c[2] for c in app.calls] != [len(sample_ids)]:
            raise SystemExit(f"the {len(sample_ids)}-task action: HTTP {r.status_code}, {stored} stored, calls {app.calls}")
        t_small_call = app.calls[0][0]
        print(f"# Label Studio's /predict call: {t_ls:.2f}s for {ls_results} tasks, answered {t_called:.1f}s after the "
              f"action; a {len(sample_ids)}-task action took {t_small:.1f}s ({t_small_call:.2f}s in /predict)", flush=True)
        server.should_exit = True
    finally:
        ls_server.cleanup()
        shutil.rmtree(tmp, ignore_errors=True)
    p50, p99 = np.percentile(np.array(lat) * 1000, [50, 99])
    n = len(ids)
    rows = [(f"model {model_name}: trained on {args.labeled} tasks + every task's text embedded", f"{t_train:.1f} s",
             "in the background after /train; /predict serves meanwhile")]
    if cold:
        c50, c99 = np.percentile(np.array(cold["lat"]) * 1000, [50, 99])
        rows += [("/predict, 100 tasks, p50, cold (empty cache)", f"{c50:.1f} ms", f"{args.cold_repeats} requests"),
                 ("/predict, 100 tasks, p99, cold (empty cache)", f"{c99:.1f} ms", f"{args.cold_repeats} requests"),
                 (f"/predict, {n:,} tasks in one request (bare), cold", f"{cold['bare']:.2f} s",
                  f"limit 100 s; {cold['predicted']:,} predicted, the rest deferred"),
                 ("... the deferred texts embedded in the background", f"{cold['deferred_s']:.1f} s", "after the answer")]
    rows += [
        ("/predict, 100 tasks, p50", f"{p50:.1f} ms", f"{args.repeats} requests"),
        ("/predict, 100 tasks, p99", f"{p99:.1f} ms", f"{args.repeats} requests"),
        (f"/predict, {n:,} tasks in one request (bare)", f"{t_bare:.2f} s", "limit 100 s"),
        (f"Label Studio 'Retrieve predictions', {n:,} tasks: its /predict call", f"{t_ls:.2f} s",
         f"{ls_results:,} results, HTTP {ls_status}; limit 100 s"),
        ("... action started -> /predict answered", f"{t_called:.1f} s", "Label Studio reading and serializing the tasks first"),
        (f"Label Studio 'Retrieve predictions', {len(sample_ids)} tasks, start to finish", f"{t_small:.1f} s",
         f"{t_small_call:.2f} s of it in /predict, the rest Label Studio validating and storing"),
        (f"import of {n:,} tasks into Label Studio", f"{t_import:.1f} s", "setup, for scale"),
    ]
    base = float(np.median(rates[args.workers[0]]))
    for w in args.workers:
        rate = float(np.median(rates[w]))
        rows.append((f"acquisition scores written to task data, {w} connection(s)", f"{rate:.1f} tasks/s",
                     f"x{rate / base:.2f}; median of {args.acquisition_repeats} x {len(sample)} tasks"))
    print(f"# load average at the end: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores; "
          f"run took {time.perf_counter() - started:.0f}s", flush=True)
    if args.markdown:
        print("| measure | value | note |\n|---|---|---|")
        for row in rows:
            print(f"| {' | '.join(row)} |")
    else:
        for row in rows:
            print(f"{row[0]:<62} {row[1]:>14}   {row[2]}")
    if t_ls >= 100:
        raise SystemExit(f"FAILED: Label Studio's /predict call took {t_ls:.1f}s, over its 100 s timeout")


if __name__ == "__main__":
    main()
