"""Real-browser tests (`make test-ui`): Debian's Chromium driven by Python playwright (no browser
download). JupyterLab is started headless on 127.0.0.1 (a free port, a random token, throwaway
config dirs); the tuning notebook is run in the browser, one slider is moved with the keyboard, and
the preview must change. The pre-market HTML report is opened from disk with every network request
blocked and its plotly charts must draw. Screenshots are kept under `.cache/test-artifacts/`.
"""

from __future__ import annotations

import os
import re
import secrets
import socket
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = ROOT / ".cache" / "test-artifacts"
SESSION = date(2026, 11, 20)
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]

pytestmark = [
    pytest.mark.ui,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's chromium is not installed (apt-get install -y chromium)"),
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=str(CHROMIUM), args=ARGS, headless=True)
        yield b
        b.close()


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """JupyterLab on 127.0.0.1 serving a folder with a parameterised copy of tune.ipynb."""
    from papermill.iorw import load_notebook_node
    from papermill.parameterize import parameterize_notebook

    work = tmp_path_factory.mktemp("lab")
    nb = parameterize_notebook(load_notebook_node(str(ROOT / "notebooks/tune.ipynb")), {
        "run_date": SESSION.isoformat(), "params_file": str(ROOT / "parameters/demo.yaml"),
        "save_dir": str(work / "saved"), "outputs_dir": str(work / "outputs"),
    })
    nbformat.write(nb, work / "tune.ipynb")
    port, token = _free_port(), secrets.token_hex(16)
    home = work / "home"
    env = {**os.environ, "JUPYTER_CONFIG_DIR": str(home / "config"), "JUPYTER_RUNTIME_DIR": str(home / "runtime"),
           "JUPYTERLAB_SETTINGS_DIR": str(home / "settings"), "JUPYTERLAB_WORKSPACES_DIR": str(home / "ws"),
           "JUPYTER_PREFER_ENV_PATH": "1"}
    log = open(work / "lab.log", "w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "jupyterlab", "--no-browser", "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={port}",
         f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={work}", "--LabApp.expose_app_in_browser=True",
         "--ServerApp.port_retries=0", "--allow-root", "--LabApp.extension_manager=readonly",
         "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"],
        cwd=work, env=env, stdout=log, stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 90
    while time.time() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                break
        except OSError:
            if proc.poll() is not None:
                pytest.fail(f"JupyterLab exited: {(work / 'lab.log').read_text()[-2000:]}")
            time.sleep(0.5)
    else:
        proc.kill()
        pytest.fail("JupyterLab did not start within 90 s")
    yield url, token, work
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
    log.close()


def _summary(page) -> str:
    return page.locator(".wolfkit-preview-summary").first.inner_text()


def test_tuning_panel_in_jupyterlab(browser, lab):
    url, token, work = lab
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    context = browser.new_context(viewport={"width": 1500, "height": 1100})
    context.route("**/*", lambda r: r.continue_() if r.request.url.startswith(url) else r.abort())
    page = context.new_page()
    page.goto(f"{url}/lab/tree/tune.ipynb?token={token}", wait_until="domcontentloaded", timeout=60_000)
    page.wait_for_selector(".jp-Notebook", timeout=90_000)
    page.wait_for_function(
        "() => window.jupyterapp && window.jupyterapp.shell.currentWidget"
        " && window.jupyterapp.shell.currentWidget.sessionContext"
        " && window.jupyterapp.shell.currentWidget.sessionContext.session"
        " && window.jupyterapp.shell.currentWidget.sessionContext.session.kernel"
        " && window.jupyterapp.shell.currentWidget.sessionContext.session.kernel.status === 'idle'",
        timeout=120_000,
    )
    page.evaluate("window.jupyterapp.commands.execute('notebook:run-all-cells')")
    page.wait_for_selector(".wolfkit-preview-summary", timeout=180_000)
    page.wait_for_function(
        "() => [...document.querySelectorAll('.wolfkit-preview-summary')].some(e => /positions/.test(e.innerText))",
        timeout=60_000,
    )
    before = _summary(page)
    assert re.search(r"\d+ positions, 95\.0% allocated", before), before
    page.screenshot(path=str(ARTIFACTS / "tune-before.png"), full_page=True)

    # move the "cash reserve" slider 5 steps to the right with the keyboard (5% -> 10%)
    row = page.locator(".widget-slider", has=page.locator("label", has_text="cash reserve")).first
    handle = row.locator(".noUi-handle").first
    handle.scroll_into_view_if_needed()
    handle.click()
    for _ in range(5):
        handle.press("ArrowRight")
    page.wait_for_function(  # each step re-packs; the last one leaves 90% allocated
        "() => { const e = document.querySelector('.wolfkit-preview-summary');"
        " return e && /90\\.0% allocated/.test(e.innerText); }", timeout=60_000,
    )
    after = _summary(page)
    page.screenshot(path=str(ARTIFACTS / "tune-after.png"), full_page=True)
    assert after != before and re.search(r"90\.0% allocated", after), after
    assert "portfolio.cash_reserve" in page.locator("body").inner_text()
    context.close()


@pytest.fixture(scope="module")
def premarket_html(tmp_path_factory):
    """The demo pre-market run's HTML report and its orders file (one papermill run for the module)."""
    from wolfkit import notebooks

    out = tmp_path_factory.mktemp("premarket")
    # the builder's risk rules off (they keep penny stocks out): the report's own flags must show them
    params = out / "demo-risk-off.yaml"
    params.write_text(f"extends: {ROOT / 'parameters/demo.yaml'}\nrisk:\n  min_price: 0\n  min_adv_usd: 0\n"
                      "  max_adv_share: null\n  max_position_risk: null\n")
    run = notebooks.run_notebook(
        "premarket", SESSION, notebooks.notebook_parameters("premarket", params, SESSION, out), out,
    ).raise_for_status()
    assert run.html is not None
    return run.html, run.notebook.parent / "orders.json"


def _offline_page(browser, width: int):
    """A page that may load only `file://` URLs (every other request is aborted and listed)."""
    context = browser.new_context(viewport={"width": width, "height": 1000})
    blocked: list[str] = []

    def _route(route):
        if route.request.url.startswith("file://"):
            return route.continue_()
        blocked.append(route.request.url)
        return route.abort()

    context.route("**/*", _route)
    return context, context.new_page(), blocked


def test_premarket_html_report_draws_offline(browser, premarket_html):
    """The HTML audit report opened from disk with all network blocked: every chart draws."""
    html, _ = premarket_html
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    context, page, _blocked = _offline_page(browser, 1300)
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(html.as_uri(), wait_until="load", timeout=60_000)
    page.wait_for_function("() => document.querySelectorAll('.plotly-graph-div .main-svg').length >= 5",
                           timeout=60_000)
    n_divs = page.locator(".plotly-graph-div").count()
    drawn = page.evaluate("() => [...document.querySelectorAll('.plotly-graph-div')]"
                          ".filter(d => d.querySelector('.main-svg')).length")
    page.screenshot(path=str(ARTIFACTS / "premarket-report-offline.png"), full_page=True)
    assert drawn == n_divs >= 5, f"{drawn} of {n_divs} charts drew offline"
    assert not [e for e in errors if "Plotly" in e], errors
    context.close()


def test_premarket_html_fits_1280px_with_banner_warnings_and_exits(browser, premarket_html):
    """What a trader reads at 08:35 on a 1,280 px screen: nothing scrolls sideways (neither the page nor an
    output), the warnings banner is at the top, the warnings section lists them, the orders show their exits."""
    from wolfkit.orders import read_orders

    html, orders = premarket_html
    plan = read_orders(orders)
    context, page, _blocked = _offline_page(browser, 1280)
    page.goto(html.as_uri(), wait_until="load", timeout=60_000)
    page.wait_for_function("() => document.querySelectorAll('.plotly-graph-div .main-svg').length >= 5",
                           timeout=60_000)
    page.screenshot(path=str(ARTIFACTS / "premarket-report-1280.png"), full_page=True)
    width = page.evaluate("() => [document.documentElement.scrollWidth, document.documentElement.clientWidth]")
    assert width[0] <= width[1], f"the page scrolls sideways: {width}"
    wide = page.evaluate("() => [...document.querySelectorAll('.jp-OutputArea-output, table, .plotly-graph-div')]"
                         ".filter(e => e.scrollWidth > e.clientWidth + 1)"
                         ".map(e => `${e.tagName}.${e.className} ${e.scrollWidth}/${e.clientWidth}`)")
    assert wide == [], f"outputs with a sideways scrollbar: {wide}"

    # the banners: synthetic prices, and the warnings, above the first section, linking to the section
    synthetic = page.locator(".wolfkit-banner.synthetic")
    warning = page.locator(".wolfkit-banner.warning")
    assert synthetic.count() == 1 and "synthetic" in synthetic.inner_text().lower()
    assert warning.count() == 1 and re.search(r"\d+ warnings? before the open", warning.inner_text())
    first_section = page.locator("h2").first.bounding_box()
    assert warning.bounding_box()["y"] < first_section["y"] and "Warnings" in page.locator("h2").first.inner_text()
    assert warning.locator("a[href='#warnings']").count() == 1

    # the warnings section: penny stocks and margin in use, as the orders say
    section = page.locator("table", has=page.locator("caption", has_text="Warnings")).first
    text = section.inner_text()
    penny = sorted({o.symbol for o in plan.orders if o.est_price < 5})
    assert penny and all(s in text for s in penny) and "price floor" in text
    if sum(o.est_cost for o in plan.orders) > plan.account.equity:
        assert "margin in use" in text

    # the orders table: take-profit and stop columns, each bracket's levels shown, `—` where none
    orders_table = page.locator("table", has=page.locator("th", has_text="take-profit")).first
    headers = orders_table.locator("thead th").all_inner_texts()
    assert {"take-profit", "stop", "other exits"} <= set(headers), headers
    body = orders_table.inner_text()
    brackets = [o for o in plan.orders if o.take_profit is not None]
    assert brackets and all(f"{o.take_profit:,.2f}" in body for o in brackets)  # every strategy has a target
    assert all(f"{o.stop_loss:,.2f}" in body for o in brackets if o.stop_loss is not None)
    assert "—" in body
    context.close()
