"""Make docs/console.png (a flow's page, mid-run), docs/console-flows.png (the home page) and
docs/console-map.png (a Map's items, mid-run); ``map`` makes only the last.

    .venv/bin/python scripts/console_screenshot.py [map]

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


def map_shot() -> None:
    """The graph of ``tests.console_flows:mapped`` with item 0 half done and the others running."""
    work = Path(tempfile.mkdtemp(prefix="flowkit-shot-"))
    url = f"sqlite:///{work}/flows.db"
    backend = fresh_backend(url)
    gates = work / "gates"
    gates.mkdir()
    for name in ("hosts[0].fetch", "hosts[0].disks[0].wipe", "hosts[1].fetch"):
        (gates / name).touch()
    fd, run = run_in_background(backend, "tests.console_flows:mapped", gates, engine="parallel")
    with serving(ServeSettings(persistence_url=url)) as base, sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1200, "height": 820})
        page.goto(f"{base}/#/flows/{fd.uuid}")
        for name, state in (("hosts[0].disks[0].wipe", "SUCCESS"), ("hosts[1].disks[1].wipe", "RUNNING")):
            page.wait_for_selector(
                f'svg.dag g.node[data-name="{name}"][data-state="{state}"]', timeout=20_000
            )
        page.wait_for_timeout(500)  # the refetch that brings the durations
        page.locator("svg.dag").screenshot(path=str(ROOT / "docs" / "console-map.png"))
        browser.close()
    for k in range(3):
        (gates / f"hosts[{k}].fetch").touch()
        for j in range(2):
            (gates / f"hosts[{k}].disks[{j}].wipe").touch()
    (gates / "finish").touch()
    run.wait(30)
    backend.close()
    print("wrote docs/console-map.png")


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
    if sys.argv[1:] != ["map"]:
        main()
    map_shot()
