"""Fixtures for the public site: the app in TestClient for page tests, and for
browser tests the real app served by uvicorn on a loopback port (one per
module, with the embedded chain and the anchoring worker on) and a headless
Debian Chromium driven by selenium through the Debian chromedriver.

Browser tests skip with the reason when Chromium or its driver is missing,
and fail under CI=true (``require`` in tests/conftest.py).
"""

from __future__ import annotations

import shutil
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from backend.app import create_app
from backend.config import Settings
from tests.api_fixtures import admin, client, regulator  # noqa: F401
from tests.conftest import ROOT, free_port, make_settings, require

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
SCREENSHOTS = ROOT / "test-artifacts" / "screenshots"
PHONE = (390, 844)
DESKTOP = (1280, 900)


def chromium_paths() -> tuple[str, str] | None:
    browser = str(CHROMIUM) if CHROMIUM.exists() else shutil.which("chromium")
    driver = str(CHROMEDRIVER) if CHROMEDRIVER.exists() else shutil.which("chromedriver")
    return (browser, driver) if browser and driver else None


@dataclass
class LiveServer:
    url: str
    app: Any
    settings: Settings
    http: httpx.Client

    @property
    def ctx(self) -> Any:
        return self.app.state.ctx

    def wait_anchored(self, record_id: str, timeout: float = 60.0) -> dict[str, Any]:
        """Wait until the anchoring worker has covered the record with a checkpoint."""
        deadline = time.monotonic() + timeout
        while True:
            body = self.http.get(f"/api/records/{record_id}").json()
            if body["anchor_status"]["status"] == "anchored":
                return body  # type: ignore[no-any-return]
            if time.monotonic() > deadline:
                raise TimeoutError(f"record {record_id} not anchored after {timeout}s: {body}")
            time.sleep(0.2)


@pytest.fixture(scope="module")
def live_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """The app on 127.0.0.1:<free port>, its bundles naming that address."""
    import uvicorn

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    settings = make_settings(
        tmp_path_factory.mktemp("site") / "data", public_base_url=url, anchor_interval_s=0.3
    )
    app = create_app(settings)
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)
    )
    thread = threading.Thread(target=server.run, name="live-server", daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the live server did not start")
        time.sleep(0.05)
    http = httpx.Client(base_url=url, timeout=30)
    try:
        yield LiveServer(url=url, app=app, settings=settings, http=http)
    finally:
        http.close()
        server.should_exit = True
        thread.join(30)


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """Headless Debian Chromium; no browser or driver is downloaded at run time."""
    paths = chromium_paths()
    require(
        paths is not None, f"Chromium and chromedriver not installed ({CHROMIUM}, {CHROMEDRIVER})"
    )
    assert paths is not None
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = paths[0]
    for arg in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        "--lang=zh-CN",
        f"--window-size={DESKTOP[0]},{DESKTOP[1]}",
        f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}",
    ):
        options.add_argument(arg)
    # CSP violations and script errors land in the browser log; tests assert it stays clean.
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(paths[1]), options=options)
    driver.set_page_load_timeout(60)
    driver.set_script_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()


def screenshot(driver: Any, name: str, size: tuple[int, int]) -> Path:
    """Save a full-page screenshot at a window width (test-artifacts/, gitignored)."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    driver.set_window_size(*size)
    height = driver.execute_script(
        "return Math.max(document.body.scrollHeight, document.documentElement.scrollHeight)"
    )
    driver.set_window_size(size[0], min(max(int(height) + 120, size[1]), 8000))
    path = SCREENSHOTS / f"{name}-{size[0]}.png"
    driver.save_screenshot(str(path))
    driver.set_window_size(*DESKTOP)
    return path
