"""docs/labelstudio.md's five steps, run as written against a REAL Label Studio server started
the way the page says (its environment switches read from the page), for Label Studio and
clicloop on one machine and on "another machine" (clicloop on 0.0.0.0, reached at this
machine's own non-loopback address, which Label Studio's defaults refuse like a private one)."""

from __future__ import annotations

import re
import secrets
import shlex
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sqlalchemy import create_engine, func, select

from clicloop.orchestrator.ledger import schema as s
from tests.support.doc_blocks import PREAMBLE, doc_blocks, run_block, substitute
from tests.support.labelstudio_server import LabelStudioServer, LabelStudioUnavailable, free_port
from tests.support.ml_backend import BackendProcess, choice, sdk_client, wait_for

DOC = Path(__file__).resolve().parents[2] / "docs" / "labelstudio.md"
CONFIG = """<View>
  <Text name="text" value="$text"/>
  <Choices name="topic" toName="text" choice="single"><Choice value="billing"/><Choice value="delivery"/></Choices>
</View>"""
WORDS = {"billing": ["invoice", "refund", "charge", "payment"], "delivery": ["parcel", "courier", "late", "address"]}


def _texts(n: int, seed: int) -> list[tuple[str, str]]:
    rng = np.random.default_rng(seed)
    labels = [str(x) for x in rng.choice(list(WORDS), n)]
    return [(" ".join([*rng.choice(WORDS[label], 2), "please", "order"]), label) for label in labels]


def _this_machine() -> str:
    """This machine's own non-loopback IPv4 address (what another host would connect to)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.connect(("192.0.2.1", 9))  # a UDP "connect" sends nothing: it only picks the outgoing interface
        address = sock.getsockname()[0]
    if address.startswith("127."):
        pytest.fail("this machine has no non-loopback address to stand in for another host", pytrace=False)
    return address




@pytest.fixture(scope="module")
def blocks() -> dict[str, str]:
    return doc_blocks(DOC)


@pytest.fixture(scope="module")
def documented_label_studio(blocks: dict[str, str]) -> Iterator[LabelStudioServer]:
    """Label Studio started with exactly the environment the page gives for a same-machine setup."""
    words = shlex.split(blocks["label-studio"])
    env = dict(w.split("=", 1) for w in words if "=" in w and not w.startswith("-"))
    assert words[len(env):] == ["label-studio", "start", "--port", "8080"], words
    server = LabelStudioServer(network_env=env)
    try:
        server.start()
    except LabelStudioUnavailable as e:
        pytest.fail(str(e), pytrace=False)
    yield server
    server.cleanup()






def test_the_five_steps_as_written(blocks: dict[str, str], documented_label_studio: LabelStudioServer, tmp_path: Path) -> None:
    ls, sdk = documented_label_studio, sdk_client(documented_label_studio)
    items = _texts(12, seed=3)
    project = sdk.projects.create(title=f"doc-{secrets.token_hex(3)}", label_config=CONFIG)
    ids = sdk.projects.import_tasks(id=project.id, request=[{"text": t} for t, _ in items], return_task_ids=True).task_ids
    truth = dict(zip(ids, (label for _, label in items)))
    token, port = secrets.token_hex(20), free_port()
    env = {"CLICLOOP_ML_TOKEN": token}
    api = {"127.0.0.1:8080": f"127.0.0.1:{ls.port}"}

    # 1. start the backend (the block's last command is the server: it runs in the background)
    backend = BackendProcess(PREAMBLE + substitute(blocks["backend"], {"$(openssl rand -hex 20)": token, "9090": str(port)}),
                             tmp_path, token, port)
    backend.start()
    try:
        # 2. connect it
        out = run_block(substitute(blocks["connect"], {**api, "9090": str(port), "<your Label Studio token>": ls.token,
                                                       "<your project id>": str(project.id)}), tmp_path, env)
        ml_id = int(re.search(r"connected as ML backend (\d+)", out).group(1))  # type: ignore[union-attr]
        user = {**env, "COLUMNS": "160", "LABEL_STUDIO_API_KEY": ls.token, "PROJECT_ID": str(project.id), "ML_ID": str(ml_id)}

        # 4 before any label: every task gets a prediction Label Studio accepts, /status says why it is empty
        run_block(substitute(blocks["predictions"], api), tmp_path, user)
        tasks = list(sdk.tasks.list(project=project.id, fields="all"))
        assert all(len(t.predictions) == 1 and t.predictions[0].result == [] for t in tasks)
        assert {t.predictions[0].model_version for t in tasks} == {"support-cold"}
        assert "at least one item" not in ls.log_tail(400)
        status = backend.get("/status")["projects"][0]
        assert status["predictions"] == "none" and "2 different labels" in status["why_no_predictions"]

        # 3. label: two different labels make a first model at once; Start Training makes the next
        rng = np.random.default_rng(0)
        first = [i for i in ids if truth[i] == "billing"][:1] + [i for i in ids if truth[i] == "delivery"][:1]
        rest = [i for i in ids if i not in first]
        plan = [(first, "support-v1", None), (rest[:4], "support-v2", "train"), (rest[4:6], None, None)]
        for batch, version, trigger in plan:
            for task_id in batch:
                sdk.annotations.create(id=task_id, result=choice(truth[task_id]), lead_time=float(rng.uniform(20, 60)))
            if trigger:
                run_block(substitute(blocks[trigger], api), tmp_path, user)
            if version:
                wait_for(lambda v=version: backend.get("/status")["projects"][0]["model_version"] == v, what=version)

        # 4. batch predictions by the latest model
        run_block(substitute(blocks["predictions"], api), tmp_path, user)
        tasks = list(sdk.tasks.list(project=project.id, fields="all"))
        latest = [p for t in tasks for p in t.predictions if p.model_version == "support-v2"]
        assert len(latest) == len(ids) and all(p.result and 0.5 <= p.score <= 1 for p in latest)

        # 5. the report: each model version's answers, hours and cost, in the config's currency
        out = run_block(substitute(blocks["report"], {"9090": str(port)}), tmp_path, user)
        report, status = out.split("{", 1)
        assert "pay unknown" not in report
        for version, answers in (("support-cold", 2), ("support-v1", 4), ("support-v2", 2)):
            assert re.search(rf"│ +\d+ │ {re.escape(version)} +│ +\d+ │ +- │ +- │ +{answers} │", report), (version, report)
        assert re.search(r"planned cost [\d.]+ EUR \(workers' planned pay [\d.]+ EUR\)", report) and "18.00 EUR/h on paid time" in report
        assert '"model_version":"support-v2"' in status and '"pay":"18 EUR/h of lead_time"' in status
        engine = create_engine(f"sqlite:///{tmp_path / 'support.db'}")
        with engine.connect() as conn:
            a = s.assignments.c
            per_round = dict(conn.execute(select(a.round_no, func.count()).where(
                a.loop == f"support.p{project.id}").group_by(a.round_no)).all())
            paid = conn.execute(select(s.payments.c.currency).distinct()).scalars().all()
        engine.dispose()
        assert per_round == {0: 2, 1: 4, 2: 2} and paid == ["EUR"]
    finally:
        backend.kill()


def test_label_studio_on_another_machine(blocks: dict[str, str], documented_label_studio: LabelStudioServer,
                                         tmp_path: Path) -> None:
    """clicloop on 0.0.0.0, connected at this machine's own address: the connection and the
    webhook (an annotation reaches the ledger by itself) both work with the documented setup."""
    ls, sdk = documented_label_studio, sdk_client(documented_label_studio)
    project = sdk.projects.create(title=f"doc-far-{secrets.token_hex(3)}", label_config=CONFIG)
    (task_id,) = sdk.projects.import_tasks(id=project.id, request=[{"text": "my invoice please"}], return_task_ids=True).task_ids
    token, port = secrets.token_hex(20), free_port()
    run_block(substitute(blocks["backend"], {"$(openssl rand -hex 20)": token, "9090": str(port)}).rsplit("\n", 1)[0],
              tmp_path)  # the config of step 1, without its server
    backend = BackendProcess(PREAMBLE + substitute(blocks["backend-other-host"], {"9090": str(port)}), tmp_path, token, port,
                             env={"CLICLOOP_ML_TOKEN": token})
    backend.start()
    try:
        env = {"CLICLOOP_ML_TOKEN": token, "LABEL_STUDIO_API_KEY": ls.token, "PROJECT_ID": str(project.id)}
        run_block(substitute(blocks["connect-other-host"], {"127.0.0.1:8080": f"127.0.0.1:{ls.port}", "9090": str(port),
                                                            "<clicloop machine's address>": _this_machine()}), tmp_path, env)
        sdk.annotations.create(id=task_id, result=choice("billing"), lead_time=12.5)
        engine = create_engine(f"sqlite:///{tmp_path / 'support.db'}")

        def answers() -> list[Any]:
            with engine.connect() as conn:
                return conn.execute(select(s.assignments.c.active_s).where(s.assignments.c.loop == f"support.p{project.id}")).all()

        assert [r.active_s for r in wait_for(answers, what="the annotation by webhook")] == [12.5]
        engine.dispose()
    finally:
        backend.kill()


@pytest.mark.parametrize("env", [{"SSRF_PROTECTION_ENABLED": "false"}, {"ML_BLOCK_LOCAL_IP": "false"}],
                         ids=["without-ML_BLOCK_LOCAL_IP", "without-SSRF_PROTECTION_ENABLED"])
def test_each_documented_switch_is_needed(env: dict[str, str], tmp_path: Path) -> None:
    """Why the page asks for both: with either one alone, Label Studio refuses to connect a model
    on this machine (403 "URL resolves to a reserved network address")."""
    from label_studio_sdk.core.api_error import ApiError

    from clicloop.connectors.labelstudio.settings import ServeSettings
    from tests.support.ml_backend import serve_in_thread

    server = LabelStudioServer(network_env=env)
    try:
        server.start()
    except LabelStudioUnavailable as e:
        pytest.fail(str(e), pytrace=False)
    settings = ServeSettings(token=secrets.token_hex(20), loop="sw", ledger=f"sqlite:///{tmp_path / 'l.db'}")
    try:
        with serve_in_thread(settings) as served:
            sdk = sdk_client(server)
            project = sdk.projects.create(title="switches", label_config=CONFIG)
            with pytest.raises(ApiError, match="reserved network address") as refused:
                sdk.ml.create(project=project.id, url=f"{served.url}/t/{served.token}", title="clicloop")
            assert refused.value.status_code == 403
    finally:
        server.cleanup()
