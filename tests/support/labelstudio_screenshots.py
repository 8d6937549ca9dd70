"""Takes the screenshots of docs/labelstudio.md from a real Label Studio server in headless
Chromium (Debian's binary driven by Playwright; nothing is downloaded).

Usage: .venv/bin/python tests/support/labelstudio_screenshots.py [--out docs/img]
Needs `bash .ci/labelstudio` and `apt-get install -y chromium`.
"""

from __future__ import annotations

import argparse
import secrets
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from tests.support.labelstudio_server import LabelStudioServer, free_port  # noqa: E402

CONFIG = """<View>
  <Header value="Route customer e-mails to the team that can answer them."/>
  <Text name="text" value="$text"/>
  <Choices name="topic" toName="text" choice="single" showInline="true">
    <Choice value="billing"/><Choice value="delivery"/><Choice value="other"/>
  </Choices>
</View>"""
MAILS = [
    ("I was charged twice for my last invoice, please refund one payment.", "billing"),
    ("My parcel is late and the courier says the address is wrong.", "delivery"),
    ("The app keeps asking for my password after the update.", "other"),
    ("Where is my package? Tracking has not moved since Monday.", "delivery"),
    ("Can I get a VAT receipt for the card payment of March?", "billing"),
    ("I cannot change the language of my account screen.", "other"),
    ("The refund for my returned order never arrived on my card.", "billing"),
    ("Courier left the package at the wrong address again.", "delivery"),
    ("Login fails with an error since yesterday.", "other"),
    ("Was the delivery charge refunded when the parcel got lost?", None),
    ("Please update the address on my invoice and resend the package.", None),
    ("My account shows a payment I do not recognise.", None),
    ("Is the courier coming today or tomorrow?", None),
    ("How do I reset my password for the billing portal?", None),
]
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run", "--disable-dev-shm-usage"]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", default=str(ROOT / "docs" / "img"))
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    chromium = shutil.which("chromium")
    if chromium is None:
        raise SystemExit("no chromium: apt-get install -y chromium")

    import uvicorn
    from label_studio_sdk import LabelStudio
    from playwright.sync_api import sync_playwright

    from clicloop.connectors.labelstudio import create_app
    from clicloop.connectors.labelstudio.settings import ServeSettings

    tmp = Path(tempfile.mkdtemp(prefix="clicloop-shots-"))
    ls_server = LabelStudioServer().start()
    try:
        token = secrets.token_hex(20)
        app = create_app(ServeSettings(token=token, loop="support-mail", ledger=f"sqlite:///{tmp / 'ledger.db'}", train_every=5))
        port = free_port()
        server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
        threading.Thread(target=server.run, daemon=True).start()
        while not server.started:
            time.sleep(0.05)
        ls = LabelStudio(base_url=ls_server.url, api_key=ls_server.token, timeout=120)
        project = ls.projects.create(title="Support e-mails", label_config=CONFIG)
        ids = ls.projects.import_tasks(id=project.id, request=[{"text": t} for t, _ in MAILS], return_task_ids=True).task_ids
        ls.ml.create(project=project.id, url=f"http://127.0.0.1:{port}/t/{token}", title="clicloop", is_interactive=False)
        for task_id, (_, label) in zip(ids, MAILS):
            if label:
                ls.annotations.create(id=task_id, lead_time=7.5, result=[
                    {"from_name": "topic", "to_name": "text", "type": "choices", "value": {"choices": [label]}}])
        model = app.state.projects.by_id[project.id]
        model.wait_trained(60)
        ls.actions.create(id="retrieve_tasks_predictions", project=project.id)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and any(t.data.get("clicloop_acquisition") is None for t in ls.tasks.list(project=project.id)):
            time.sleep(0.2)
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=chromium, args=ARGS)  # Playwright gives it a fresh profile
            page = browser.new_page(viewport={"width": 1400, "height": 820})
            page.goto(f"{ls_server.url}/user/login/")
            page.fill("input[name=email]", ls_server.username)
            page.fill("input[name=password]", ls_server.password)
            page.click("button[type=submit]")
            page.wait_for_timeout(3000)
            page.screenshot(path=str(tmp / "after-login.png"))
            print("after login:", page.url, flush=True)
            page.goto(f"{ls_server.url}/projects/{project.id}/settings/ml")
            page.wait_for_timeout(2500)
            page.screenshot(path=str(out / "labelstudio-1-model-connected.png"))
            unlabeled = ids[len([m for m in MAILS if m[1]])]
            page.goto(f"{ls_server.url}/projects/{project.id}/data?task={unlabeled}")
            page.wait_for_timeout(4000)
            page.screenshot(path=str(out / "labelstudio-2-labeling-with-prediction.png"))
            page.goto(f"{ls_server.url}/projects/{project.id}/data")
            page.wait_for_timeout(3000)
            page.screenshot(path=str(out / "labelstudio-3-data-manager.png"))
            browser.close()
        server.should_exit = True
    finally:
        ls_server.cleanup()
        shutil.rmtree(tmp, ignore_errors=True) if "--keep" not in sys.argv else print(tmp)
    print("\n".join(str(p) for p in sorted(out.glob("labelstudio-*.png"))))


if __name__ == "__main__":
    main()
