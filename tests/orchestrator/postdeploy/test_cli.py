"""The post-deployment loop as a user runs it: ``clicloop`` subprocesses, real files, a real HTTP
server, on SQLite and on the real PostgreSQL. Register -> ingest (HTTP and a file) -> triage ->
review (simulated crowd) -> retrain and gate -> status / report / labor card -> rollback; then the
bad inputs a user will make: each is one clear line, exit status 2, and the ledger stays sound."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import time
from pathlib import Path

import httpx
import joblib
import pytest

from tests.orchestrator.postdeploy.synth import INTENTS, NEW_INTENT, fit_model, records, utterances
from tests.support.labelstudio_server import free_port

POLICY = """\
all:
  - any:
      - {name: low-confidence, params: {threshold: 0.45, per_label: {travel: 0.6}}}
      - user-flagged
      - {name: novelty, params: {max_unknown_share: 0.6}}
      - {name: strategy-score, params: {strategy: margin, threshold: 0.8}}
      - {name: random-audit, params: {rate: 0.3}}
  - {name: daily-budget, params: {hours: 8, seconds_per_review: 30}}
"""


def clicloop(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "clicloop", *args], cwd=cwd, capture_output=True, text=True, timeout=300,
                          env=env)


def ok(run: subprocess.CompletedProcess) -> str:
    assert run.returncode == 0, run.stderr
    return run.stdout


def fails(run: subprocess.CompletedProcess, *needles: str) -> None:
    assert run.returncode == 2, (run.returncode, run.stdout, run.stderr)
    assert run.stderr.startswith("error: ") and "Traceback" not in run.stderr, run.stderr
    for needle in needles:
        assert needle in run.stderr, run.stderr


def _files(tmp: Path) -> tuple[list[dict], dict[str, str]]:
    base = utterances(80, seed=1)
    model = fit_model(base)
    joblib.dump(model, tmp / "v1.joblib")
    (tmp / "labels.txt").write_text("\n".join(sorted(INTENTS)) + "\n")
    (tmp / "base.jsonl").write_text("".join(json.dumps({"text": t, "label": y}) + "\n" for t, y in base))
    traffic = utterances(240, seed=2, intents={**INTENTS, **NEW_INTENT}, oos_share=0.15)  # a new intent, OOS requests
    recs = records(model, traffic, "v1", start=time.time() - 6 * 3600, step=60.0, flag_errors=0.4)
    truth = {r["id"]: y for r, (_, y) in zip(recs, traffic)}
    (tmp / "truth.jsonl").write_text("".join(json.dumps({"id": i, "label": y}) + "\n" for i, y in truth.items()))
    (tmp / "policy.yaml").write_text(POLICY)
    return recs, truth


def _serve(tmp: Path, ledger: str, port: int, token: str) -> subprocess.Popen:
    env = {**os.environ, "CLICLOOP_INGEST_TOKEN": token}
    proc = subprocess.Popen([sys.executable, "-m", "clicloop", "serve", "ingest", "--ledger", ledger, "--deployment", "bot",
                             "--port", str(port)], cwd=tmp, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200:
                return proc
        except httpx.TransportError:
            if proc.poll() is not None:
                raise AssertionError(f"the ingest server exited: {proc.stderr.read() if proc.stderr else ''}") from None
            time.sleep(0.2)
    proc.terminate()
    raise AssertionError("the ingest server did not come up in 60 s")


@pytest.mark.slow
def test_a_user_runs_the_whole_post_deployment_loop_from_the_command_line(ledger_url: str, tmp_path: Path) -> None:
    recs, truth = _files(tmp_path)
    common = ["--ledger", ledger_url, "--deployment", "bot"]
    out = ok(clicloop("deploy", "register", "v1", "--labels", "labels.txt", "--model", "v1.joblib", "--base", "base.jsonl",
                      "--serve", *common, cwd=tmp_path))
    assert "version v1 with 4 labels, now serving" in out

    # HTTP: the first 120 predictions in batches, one batch retried, one malformed record, one non-JSON body
    token, port = secrets.token_hex(20), free_port()
    server = _serve(tmp_path, ledger_url, port, token)
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", headers={"Authorization": f"Bearer {token}"}, timeout=30) as http:
            for i in range(0, 120, 40):
                assert http.post("/v1/predictions", json=recs[i:i + 40]).json()["accepted"] == 40
            assert http.post("/v1/predictions", json=recs[40:80]).json()["duplicates"] == 40  # a client's retry
            bad = {k: v for k, v in recs[0].items() if k != "predicted_label"} | {"id": "broken"}
            answer = http.post("/v1/predictions", json=[bad]).json()
            assert answer["rejected"] == 1 and answer["errors"][0]["reason"].startswith("predicted_label")
            assert http.post("/v1/predictions", content=b"{oops", headers={"content-type": "application/json"}).status_code == 400
            assert http.post("/v1/predictions", json=recs[:1], headers={"Authorization": "Bearer nope"}).status_code == 401
            assert http.get("/v1/stats").json() == {"accepted": 120, "quarantined": 0, "rejected": 2}
    finally:
        server.terminate()
        server.wait(timeout=30)

    # a file: the rest, one line for a version nobody registered, one garbage line; a second run reads nothing new
    lines = [json.dumps(r) for r in recs[120:]] + [json.dumps({**recs[0], "id": "ghost", "model_version": "v0"}), "garbage"]
    (tmp_path / "predictions.jsonl").write_text("\n".join(lines) + "\n")
    first = json.loads(ok(clicloop("deploy", "ingest", "predictions.jsonl", *common, cwd=tmp_path)))
    assert (first["accepted"], first["quarantined"], first["rejected"]) == (120, 1, 1)
    assert first["errors"] == [{"line": 122, "reason": "not JSON: Expecting value: line 1 column 1 (char 0)"}]
    again = json.loads(ok(clicloop("deploy", "ingest", "predictions.jsonl", *common, cwd=tmp_path)))
    assert (again["accepted"], again["duplicates"], again["rejected"]) == (0, 0, 0)

    out = ok(clicloop("deploy", "triage", "--policy", "policy.yaml", "--base", "base.jsonl", *common, cwd=tmp_path))
    assert out.startswith("bot/default: decided 240, selected ")
    out = ok(clicloop("deploy", "review", "--truth", "truth.jsonl", "--params", '{"careless_fraction": 0}', *common, cwd=tmp_path))
    assert " corrected, " in out and not out.startswith("batch 0: 0/")
    out = ok(clicloop("deploy", "retrain", "--base", "base.jsonl", "--version", "v2", "--min-slice", "20", "--artifacts",
                      "models", *common, cwd=tmp_path))
    assert out.startswith("promoted v2: audited error "), out
    status = json.loads(ok(clicloop("deploy", "status", "--json", *common, cwd=tmp_path)))
    est, review = status["error_rate"], status["review"]
    true_error = sum(r["predicted_label"] != truth[r["id"]] for r in recs) / len(recs)
    assert status["serving"] == "v2" and est["n"] >= 40 and est["low"] <= true_error <= est["high"]
    assert review["errors_fixed"] > 0 and review["per_hour"] > 0 and status["time_to_correction"]["n"] == review["errors_fixed"]
    assert status["ingest"] == {"accepted": 240, "quarantined": 1, "rejected": 3}
    assert status["promotions"][0]["from"] == "v1" and status["promotions"][0]["to"] == "v2"
    assert "Errors fixed per human hour" in ok(clicloop("deploy", "status", *common, cwd=tmp_path))
    ok(clicloop("deploy", "report", "--out", "report", *common, cwd=tmp_path))
    assert "# Post-deployment report: bot" in (tmp_path / "report.md").read_text()

    card = ok(clicloop("labor-card", "--ledger", ledger_url, "--model-version", "v2", cwd=tmp_path))
    assert "# Labor card: v2" in card and "of them production reviews" in card and "Post-deployment (bot, serving now)" in card
    assert "bot: rolled back to v1" in ok(clicloop("deploy", "rollback", *common, cwd=tmp_path))
    assert "v2 is serving" in ok(clicloop("deploy", "promote", "v2", "--reason", "fixed the bug", *common, cwd=tmp_path))
    fails(clicloop("deploy", "promote", "v2", *common, cwd=tmp_path), "'v2' is already serving")  # it recorded v2 -> v2
    assert "bot: rolled back to v1" in ok(clicloop("deploy", "rollback", *common, cwd=tmp_path))
    assert ok(clicloop("ledger", "verify", "--ledger", ledger_url, cwd=tmp_path)).startswith("ok:")


@pytest.mark.slow
def test_bad_input_is_one_clear_line_and_leaves_the_ledger_sound(ledger_url: str, tmp_path: Path) -> None:
    _files(tmp_path)
    common = ["--ledger", ledger_url, "--deployment", "bot"]
    fails(clicloop("deploy", "register", "v1", "--labels", "missing.txt", *common, cwd=tmp_path), "missing.txt")
    (tmp_path / "short.txt").write_text("music\n")
    fails(clicloop("deploy", "register", "v1", "--labels", "short.txt", "--model", "v1.joblib", *common, cwd=tmp_path),
          "missing from the label file")
    ok(clicloop("deploy", "register", "v1", "--labels", "labels.txt", "--model", "v1.joblib", "--serve", *common, cwd=tmp_path))
    fails(clicloop("deploy", "ingest", "nothing.jsonl", *common, cwd=tmp_path), "no file nothing.jsonl")
    fails(clicloop("deploy", "ingest", ".", *common, cwd=tmp_path), "is a folder")  # it said "no file ." of a folder
    (tmp_path / "log.csv").write_text("id,model_version,text,predicted_label,confidence,time\nc1,v1,hi,music,0.3,1767225600\n")
    fails(clicloop("deploy", "ingest", "log.csv", *common, cwd=tmp_path), "reads JSONL", "not CSV")  # one "not JSON" per line
    (tmp_path / "low.yaml").write_text("{name: low-confidence, params: {threshold: abc}}\n")
    fails(clicloop("deploy", "triage", "--policy", "low.yaml", *common, cwd=tmp_path),
          "parameter threshold is a number, not text")  # it said "'<=' not supported between instances of 'int' and 'str'"
    (tmp_path / "bad.yaml").write_text("any: [low-confidence, {name: nope}]\n")
    fails(clicloop("deploy", "triage", "--policy", "bad.yaml", *common, cwd=tmp_path), "unknown triage 'nope'")
    (tmp_path / "typo.yaml").write_text("{name: low-confidence, params: {treshold: 0.3}}\n")
    fails(clicloop("deploy", "triage", "--policy", "typo.yaml", *common, cwd=tmp_path), "treshold", "it accepts")
    (tmp_path / "novel.yaml").write_text("novelty\n")
    (tmp_path / "one.jsonl").write_text(json.dumps({"id": "a", "model_version": "v1", "predicted_label": "music", "text": "hi",
                                                    "confidence": 0.5, "time": 1_767_225_600}) + "\n")
    ok(clicloop("deploy", "ingest", "one.jsonl", *common, cwd=tmp_path))
    (tmp_path / "list.json").write_text(json.dumps([{"id": "b"}]))  # a JSON list, no newline: it waits, and says so
    waiting = clicloop("deploy", "ingest", "list.json", *common, cwd=tmp_path)
    assert waiting.returncode == 0 and "list.json: its last 13 bytes have no newline" in waiting.stderr, waiting.stderr
    assert json.loads(waiting.stdout)["unfinished_line_bytes"] == 13
    fails(clicloop("deploy", "triage", "--policy", "novel.yaml", *common, cwd=tmp_path), "--base")
    fails(clicloop("deploy", "review", "--params", "{oops", *common, cwd=tmp_path), "--params must be a JSON object")
    (tmp_path / "nolabel.jsonl").write_text('{"text": "play a song"}\n')
    fails(clicloop("deploy", "retrain", "--base", "nolabel.jsonl", *common, cwd=tmp_path), "line 1 has no 'label'")
    fails(clicloop("deploy", "retrain", "--base", "base.jsonl", "--model", "nope", *common, cwd=tmp_path), "unknown model 'nope'")
    fails(clicloop("deploy", "retrain", "--base", "base.jsonl", "--model", "logreg", *common, cwd=tmp_path),
          "--model", "needs numeric features")  # a traceback: "could not convert string to float"
    fails(clicloop("deploy", "promote", "v9", *common, cwd=tmp_path), "unknown model version 'v9'")
    fails(clicloop("deploy", "rollback", *common, cwd=tmp_path), "no earlier serving version")
    env = {k: v for k, v in os.environ.items() if k != "CLICLOOP_INGEST_TOKEN"}
    fails(clicloop("serve", "ingest", *common, cwd=tmp_path, env=env), "CLICLOOP_INGEST_TOKEN")
    fails(clicloop("serve", "ingest", *common, cwd=tmp_path, env={**env, "CLICLOOP_INGEST_TOKEN": "short"}), "16 characters")
    status = json.loads(ok(clicloop("deploy", "status", "--json", *common, cwd=tmp_path)))
    assert status["serving"] == "v1" and status["ingest"] == {"accepted": 1, "quarantined": 0, "rejected": 0}
    assert status["triage"] == [] and status["review"]["reviews"] == 0
    assert ok(clicloop("ledger", "verify", "--ledger", ledger_url, cwd=tmp_path)).startswith("ok:")


@pytest.mark.parametrize("field", ["id", "model_version", "predicted_label", "time"])
def test_a_record_without_a_required_field_is_rejected_naming_it(field: str) -> None:
    from clicloop.orchestrator.postdeploy.records import parse_record

    record = {"id": "a", "model_version": "v1", "predicted_label": "music", "text": "hi", "time": 1_767_225_600}
    reason = parse_record({k: v for k, v in record.items() if k != field})
    assert isinstance(reason, str) and reason.startswith(f"{field}: Field required")


@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_a_confidence_that_is_no_finite_number_is_rejected_as_such(value: float) -> None:
    """NaN (what json.dumps writes for float('nan')) was rejected as "less than or equal to 1"."""
    from clicloop.orchestrator.postdeploy.records import parse_record

    record = {"id": "a", "model_version": "v1", "predicted_label": "music", "text": "hi", "time": 1_767_225_600,
              "confidence": value}
    reason = parse_record(json.dumps(record))
    assert isinstance(reason, str) and reason.startswith("confidence: Input should be a finite number"), reason
