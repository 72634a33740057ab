"""Make docs/console.png (a flow's page, mid-run) and docs/console-flows.png (the home page).

    .venv/bin/python scripts/console_screenshot.py

Needs the checkout (it runs the flows of tests/console_flows.py) and /usr/bin/chromium; it serves a
throw-away SQLite database on a free loopback port, exactly as ``flowkit serve`` would.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from playwright.sync_api import sync_playwright  # noqa: E402

from flowkit.serve.settings import ServeSettings  # noqa: E402
from tests.support.console import run_in_background, wait_for  # noqa: E402
from tests.support.http_server import serving  # noqa: E402
from tests.support.persistence import fresh_backend  # noqa: E402


def main() -> None:
    work = Path(tempfile.mkdtemp(prefix="flowkit-shot-"))
    url = f"sqlite:///{work}/flows.db"
    backend = fresh_backend(url)
    done = work / "done"
    done.mkdir()
    steps = ("first", "second", *"abcd", "prepare", "node-1", "node-2-disk", "node-2-boot", "finish")
    for name in steps:
        (done / name).touch()
    for factory in ("tests.console_flows:graph", "tests.console_flows:failing", "tests.console_flows:nested"):
        _, run = run_in_background(backend, factory, done)
        run.wait(30)
    gates = work / "gates"
    gates.mkdir()
    (gates / "prepare").touch()
    (gates / "node-1").touch()
    (gates / "node-2-disk").touch()
    fd, run = run_in_background(backend, "tests.console_flows:nested", gates)
    with serving(ServeSettings(persistence_url=url)) as base, sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1200, "height": 820})
        page.goto(f"{base}/#/flows/{fd.uuid}")
        running = 'svg.dag g.node[data-name="node-2-boot"][data-state="RUNNING"]'
        page.wait_for_selector(running, timeout=20_000)
        wait_for(lambda: page.locator('tr[data-atom="node-2-disk"] td:nth-child(4)').inner_text() != "")
        page.screenshot(path=str(ROOT / "docs" / "console.png"))
        page.goto(f"{base}/")
        page.wait_for_selector("#flow-table tbody tr")
        page.screenshot(path=str(ROOT / "docs" / "console-flows.png"))
        browser.close()
    for name in ("node-2-boot", "finish"):
        (gates / name).touch()
    run.wait(30)
    backend.close()
    print("wrote docs/console.png and docs/console-flows.png")


if __name__ == "__main__":
    main()
