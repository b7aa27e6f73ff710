"""The demo notebook in real JupyterLab, driven by headless Chromium: what a user sees renders.

JupyterLab is started on 127.0.0.1 only (token auth, a free port), with a kernelspec
that ``install_kernel`` put in a temporary prefix (portable, as the demo runs): the kernel
loads and seeds the extension itself, before the first cell. The page opens a copy of the
demo notebook that walks alpha 0.4 -> 0.2 -> 0.4 on the synthetic fleet (the demo's own
plan, five epochs, so that the figure has curves) and ends with ``%repro_history --plot``,
runs all cells from the Run menu, and reads what rendered: the coloured labels, the metrics
line under each fit, the figure.

The README's picture is this test's screenshot, taken every run (kept beside the test's
files); ``REPRO_WRITE_SCREENSHOT=1`` writes it to ``docs/jupyterlab.png``, after checking
that the labels, a metrics line and the figure are all inside it.

Needs Chromium (Debian: ``apt-get install chromium``) and Playwright for Python, which
drives that browser (no browser of Playwright's own is downloaded). Without them the
test is skipped and says why; CI sets ``JUPYTER_REPRO_REQUIRE_BROWSER=1`` so that there
it fails instead.
"""
from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import nbformat
import pytest

from jupyter_repro.demo import NOTEBOOK, _cell_plan
from jupyter_repro.kernelspec import install_kernel
from kernel import QUIET_TF

ALPHAS = (0.4, 0.2, 0.4)
EPOCHS = 5           # the figure draws curves, not points
KERNEL = "repro-browser-test"
DISPLAY_NAME = "Python 3 (reproducible, seed 42, portable)"
PLOT = "%repro_history --plot"
SCREENSHOT = Path(__file__).resolve().parent.parent / "docs" / "jupyterlab.png"
VIEWPORT = {"width": 1280, "height": 1500}  # the three walks and the figure on one screen
BROWSERS = ("chromium", "chromium-browser")
STARTUP_S = 90       # JupyterLab answering; the page showing an idle kernel
RUN_ALL_S = 420      # every cell run: one kernel, three five-epoch fits on the synthetic fleet

pytestmark = pytest.mark.browser


def _browser() -> str:
    """The Chromium to drive, or a skip (a failure where CI requires it) saying what is missing."""
    found = next((path for path in map(shutil.which, BROWSERS) if path), None)
    missing = None
    if found is None:
        missing = "no Chromium on PATH (Debian: apt-get install chromium; .ci/run installs it)"
    else:
        try:
            import playwright.sync_api  # noqa: F401
        except ImportError:
            missing = "Playwright for Python is not installed (it is in the test extra)"
    if missing:
        if os.environ.get("JUPYTER_REPRO_REQUIRE_BROWSER"):
            pytest.fail(f"JUPYTER_REPRO_REQUIRE_BROWSER is set but {missing}")
        pytest.skip(missing)
    return found


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _status(url: str) -> int:
    """The HTTP status of ``url``; 0 while nothing answers."""
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code
    except OSError:
        return 0


def _notebook(path: Path):
    """The demo notebook as the demo walks it, minus its record cells, then the history's
    figure; the kernelspec, not the notebook, loads the extension. The walk's preprocessing
    and evaluation cells show their outputs only, so that one screen holds the three walks
    and the figure."""
    template = nbformat.read(NOTEBOOK, as_version=4)
    cells = []
    for cell in _cell_plan(template, ALPHAS):
        tags = set(cell.get("metadata", {}).get("tags", []))
        if "demo-record" in tags:
            continue
        if tags & {"preprocess", "evaluate"}:
            cell.metadata["jupyter"] = {"source_hidden": True}
        if cell.cell_type == "code" and cell.source.startswith("%load_ext jupyter_repro"):
            cell.source = cell.source.replace("%load_ext jupyter_repro\n", "")
        cells.append(cell)
    last_evaluate = max(i for i, cell in enumerate(cells) if "evaluate" in cell.get("metadata", {}).get("tags", []))
    cells.insert(last_evaluate + 1, nbformat.v4.new_code_cell(PLOT))
    notebook = nbformat.v4.new_notebook(cells=cells, metadata=dict(template.metadata))
    notebook.metadata["kernelspec"] = {"name": KERNEL, "display_name": DISPLAY_NAME, "language": "python"}
    nbformat.write(notebook, path)


def _configure(config_dir: Path):
    """Loopback only, no port hopping; nothing fetched from outside (news, update and build
    checks off); every cell in the page (no windowing), so that the page can be read whole."""
    server = {"ServerApp": {"ip": "127.0.0.1", "port_retries": 0, "open_browser": False,
                            "allow_root": os.name == "posix" and os.geteuid() == 0,  # CI runs as root
                            "tornado_settings": {"page_config_data": {"buildCheck": False,
                                                                      "buildAvailable": False}}},
              "LabApp": {"news_url": None,
                         "check_for_updates_class": "jupyterlab.handlers.announcements.NeverCheckForUpdate"}}
    config_dir.mkdir(parents=True)
    (config_dir / "jupyter_server_config.json").write_text(json.dumps(server))
    user = config_dir / "lab" / "user-settings" / "@jupyterlab"
    for plugin, values in {"notebook-extension/tracker": {"windowingMode": "none"},
                           "apputils-extension/notification": {"fetchNews": "false",
                                                               "checkForUpdates": False}}.items():
        path = user / f"{plugin}.jupyterlab-settings"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(values))


@pytest.fixture
def chromium() -> str:
    return _browser()


@pytest.fixture
def jupyterlab(chromium, tmp_path):
    """A JupyterLab server of this environment on 127.0.0.1; (base URL, token, root folder)."""
    root, prefix, config = tmp_path / "root", tmp_path / "prefix", tmp_path / "config"
    root.mkdir()
    install_kernel(KERNEL, display_name=DISPLAY_NAME, seed=42, prefix=str(prefix), portable=True)
    _configure(config)
    env = {key: value for key, value in os.environ.items() if key != "CMAPSS_DIR"}  # the synthetic fleet
    env.update(QUIET_TF, REPRO_EPOCHS=str(EPOCHS), JUPYTER_PATH=str(prefix / "share" / "jupyter"),
               JUPYTER_CONFIG_DIR=str(config), JUPYTER_DATA_DIR=str(tmp_path / "data"),
               JUPYTER_RUNTIME_DIR=str(tmp_path / "runtime"), IPYTHONDIR=str(tmp_path / "ipython"))
    port, token = _free_port(), secrets.token_hex(24)
    log = open(tmp_path / "jupyterlab.log", "wb")
    server = subprocess.Popen(
        [sys.executable, "-m", "jupyterlab", f"--ServerApp.port={port}", f"--IdentityProvider.token={token}",
         f"--ServerApp.root_dir={root}"],
        env=env, cwd=root, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + STARTUP_S
        while _status(f"{base}/api/status?token={token}") != 200:
            if server.poll() is not None:
                pytest.fail(f"JupyterLab exited ({server.returncode}):\n{_tail(tmp_path)}")
            if time.monotonic() > deadline:
                pytest.fail(f"JupyterLab did not answer within {STARTUP_S} s:\n{_tail(tmp_path)}")
            time.sleep(0.5)
        assert _status(f"{base}/api/status") == 403  # token auth is on
        yield base, token, root
    finally:
        server.terminate()  # SIGTERM: the server shuts its kernels down
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)  # its own session: the server and its kernels
            server.wait(timeout=30)
        log.close()


def _tail(tmp_path) -> str:
    return (tmp_path / "jupyterlab.log").read_text(errors="replace")[-3000:]


CELLS = """() => [...document.querySelectorAll('.jp-Notebook .jp-CodeCell')].map(cell => ({
    prompt: (cell.querySelector('.jp-InputPrompt') || {}).textContent || '',
    source: [...cell.querySelectorAll('.cm-line')].map(line => line.textContent).join('\\n'),
    output: (cell.querySelector('.jp-OutputArea') || {}).innerText || '',
    error: !!cell.querySelector('[data-mime-type="application/vnd.jupyter.error"]'),
    figure: !!cell.querySelector('.jp-OutputArea img'),
}))"""
# each fit's label (its verdict, its colour) and the line of metrics under it, as rendered
RICH = """() => [...document.querySelectorAll('.jp-Notebook .jp-CodeCell .repro-fit')].map(fit => ({
    verdict: (fit.querySelector('.repro-verdict') || {dataset: {}}).dataset.reproVerdict || '',
    colour: getComputedStyle(fit.querySelector('.repro-verdict-badge') || fit).color,
    metrics: [...fit.children].map(part => part.innerText).find(text => /^loss /.test(text)) || '',
}))"""


def _finished(cells) -> bool:
    """A cell failed, or the walk's last evaluation printed and no prompt says [*]
    (cells whose input is collapsed show no prompt)."""
    printed = [cell for cell in cells if "weights " in cell["output"]]
    return any(cell["error"] for cell in cells) or (
        len(printed) == len(ALPHAS) and any(cell["figure"] for cell in cells)
        and all(re.fullmatch(r"(\[\d+\]:)?", cell["prompt"].strip()) for cell in cells))


def _inside(locator) -> bool:
    """Whether the element is wholly inside the viewport: in the screenshot."""
    box = locator.bounding_box()
    return box is not None and box["y"] >= 0 and box["y"] + box["height"] <= VIEWPORT["height"]


def test_verdict_renders_identical_in_jupyterlab(chromium, jupyterlab, tmp_path):
    from playwright.sync_api import sync_playwright

    base, token, root = jupyterlab
    _notebook(root / "turbofan_fd001.ipynb")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, headless=True)
        try:
            page = browser.new_page(viewport=VIEWPORT)
            page.goto(f"{base}/lab/tree/turbofan_fd001.ipynb?reset&token={token}")
            page.wait_for_selector(".jp-Notebook .jp-CodeCell", timeout=STARTUP_S * 1000)
            # The status bar says "<kernel> | Idle" once the kernel is started and connected.
            page.locator(".jp-StatusBar-TextItem", has_text=f"{DISPLAY_NAME} | Idle").wait_for(
                timeout=STARTUP_S * 1000)
            page.locator(".lm-MenuBar-itemLabel", has_text=re.compile(r"^Run$")).click()
            page.locator(".lm-Menu-itemLabel", has_text=re.compile(r"^Run All Cells$")).click()
            deadline = time.monotonic() + RUN_ALL_S
            while not _finished(cells := page.evaluate(CELLS)):
                assert time.monotonic() < deadline, f"cells still running after {RUN_ALL_S} s: {cells}"
                page.wait_for_timeout(500)
            failed = [cell for cell in cells if cell["error"]]
            assert not failed, f"a cell failed in JupyterLab:\n{failed[0]['source']}\n{failed[0]['output']}"

            fits = [cell for cell in cells if cell["source"].startswith("%%repro_fit")]
            shown = [cell for cell in cells if "weights " in cell["output"]]
            assert len(fits) == len(shown) == 3
            verdicts = [cell["output"] for cell in fits]  # as rendered: text or HTML, the words are these
            assert re.search(r"run #1\b.*first run with these inputs", verdicts[0], re.S), verdicts[0]
            assert re.search(r"run #2\b.*first run with these inputs", verdicts[1], re.S), verdicts[1]
            assert "identical" not in verdicts[0] + verdicts[1]
            assert re.search(r"run #3\b.*same inputs as run #1\b.*identical", verdicts[2], re.S), verdicts[2]
            weights = [re.search(r"weights (\w{16})", cell["output"]).group(1) for cell in shown]
            assert weights[0] == weights[2] != weights[1]  # the repeat's bytes, and the other alpha's differ

            rich = page.evaluate(RICH)                       # the HTML forms, not the plain text
            assert [fit["verdict"] for fit in rich] == ["first", "first", "identical"], rich
            assert rich[0]["colour"] != rich[2]["colour"]    # blue and green labels, not plain text
            assert all(re.fullmatch(r"loss \S+, val_loss \S+", fit["metrics"]) for fit in rich), rich
            (plotted,) = [cell for cell in cells if cell["source"] == PLOT]
            assert plotted["figure"], plotted

            page.keyboard.press("Control+b")  # the left sidebar closed: the notebook full width
            first = next(i for i, cell in enumerate(cells) if cell["source"] == f"alpha = {ALPHAS[0]!r}")
            page.locator(".jp-Notebook .jp-CodeCell").nth(first).evaluate(
                "cell => cell.scrollIntoView({block: 'start'})")
            page.wait_for_timeout(500)  # the scroll settled
            shown = [page.locator(".repro-verdict-badge").nth(i) for i in range(len(ALPHAS))]
            shown += [page.locator(".repro-fit > div", has_text=re.compile(r"^loss ")).last,
                      page.locator(".jp-OutputArea img").last]
            assert all(_inside(element) for element in shown), "the picture would miss a label or the figure"
            screenshot = tmp_path / "jupyterlab.png"
            page.screenshot(path=str(screenshot))
        finally:
            browser.close()
    if os.environ.get("REPRO_WRITE_SCREENSHOT") == "1":
        shutil.copyfile(screenshot, SCREENSHOT)
